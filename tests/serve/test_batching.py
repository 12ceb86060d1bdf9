"""Decode requests that arrive together share one decode call, and each gets its own image back."""

import asyncio

import pytest
import torch

from vaekit.serve.batching import DecodeBatcher


def doubling(calls):
    def decode(z, labels):
        calls.append(len(z))
        return z.view(len(z), 1, 1, -1) * 2

    return decode


@pytest.mark.parametrize("window", [0.0, 0.01])
def test_requests_of_one_turn_are_decoded_together_and_each_gets_its_own_image(window):
    calls = []
    batcher = DecodeBatcher(doubling(calls), window=window)

    async def main():
        return await asyncio.gather(*(batcher(torch.full((1, 3), float(i))) for i in range(8)))

    results = asyncio.run(main())
    assert calls == [8] and batcher.batches == 1
    for i, image in enumerate(results):
        assert torch.equal(image, torch.full((1, 1, 1, 3), 2.0 * i))


def test_requests_apart_in_time_are_decoded_apart():
    calls = []
    batcher = DecodeBatcher(doubling(calls))

    async def main():
        first = await batcher(torch.ones(1, 2))
        second = await batcher(torch.zeros(1, 2))
        return first, second

    first, second = asyncio.run(main())
    assert calls == [1, 1] and first.sum() == 4 and second.sum() == 0


def test_an_error_reaches_every_waiting_request_and_the_next_batch_works():
    def decode(z, labels):
        if (z < 0).any():
            raise ValueError("negative")
        return z

    batcher = DecodeBatcher(decode)

    async def main():
        failed = await asyncio.gather(
            batcher(torch.tensor([[-1.0]])), batcher(torch.tensor([[2.0]])), return_exceptions=True
        )
        return failed, await batcher(torch.tensor([[1.0]]))

    failed, after = asyncio.run(main())
    assert all(isinstance(f, ValueError) for f in failed)
    assert torch.equal(after, torch.tensor([[1.0]]))
