"""Decode requests that arrive together share one decode call, and each gets its own image back."""

import threading

import pytest
import torch

from vaekit.serve.batching import DecodeBatcher


def test_concurrent_requests_are_decoded_together_and_each_gets_its_own_image():
    calls = []

    def decode(z, labels):
        calls.append(len(z))
        return z.view(len(z), 1, 1, -1) * 2

    batcher = DecodeBatcher(decode, window=0.05)
    results = {}

    def ask(i):
        results[i] = batcher(torch.full((1, 3), float(i)))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(calls) == 8 and len(calls) < 8 and batcher.batches == len(calls)
    for i in range(8):
        assert torch.equal(results[i], torch.full((1, 1, 1, 3), 2.0 * i))


def test_an_error_reaches_every_waiting_request_and_the_next_batch_works():
    def decode(z, labels):
        if (z < 0).any():
            raise ValueError("negative")
        return z

    batcher = DecodeBatcher(decode, window=0.0)
    with pytest.raises(ValueError, match="negative"):
        batcher(torch.tensor([[-1.0]]))
    assert torch.equal(batcher(torch.tensor([[1.0]])), torch.tensor([[1.0]]))
