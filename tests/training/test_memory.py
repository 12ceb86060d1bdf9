"""A training step's memory, estimated on the meta device before the model is built: every model and part
gets an estimate that counts what autograd saves; a model or batch past the machine is refused in one
line, before the run folder is touched, and the estimate draws no random number."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.conftest import error_of, tiny_config
from vaekit.cli import main
from vaekit.data import load_dataset
from vaekit.models import MLPVAE, MODELS, LossOutput, build_model, register_model, unregister_model
from vaekit.training.memory import (
    BACKWARD_FACTOR,
    OPTIMIZER_BYTES,
    check_training_memory,
    saved_activation_bytes,
    training_bytes,
)
from vaekit.training.model_settings import model_config
from vaekit.training.settings import TrainConfig
from vaekit.utils import limits

PARTS = {
    "vamp": {"prior": "vamp", "part_options": {"pseudo_inputs": 4}},
    "iaf": {"posterior": "iaf"},
    "btcvae": {"objective": "btcvae"},
    "factorvae": {"objective": "factorvae"},
    "dip-i": {"objective": "dip-i"},
    "mmd": {"objective": "mmd"},
    "iwae": {"objective": "iwae", "part_options": {"k": 4}},
}


def estimate(config: TrainConfig, batch: int) -> tuple[int, int | None, int]:
    config.validate()
    config_of_model = model_config(config, (1, 8, 8), 10)
    weights, activations = training_bytes(config, config_of_model, (1, 8, 8), batch)
    parameters = sum(p.numel() for p in build_model(config_of_model).parameters())
    return weights, activations, parameters


class TwoLayers(nn.Module):
    """A loss whose saved tensors are known: mm saves its input (and the weight, a parameter); relu saves
    its output; the sum saves nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(5, 7))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> LossOutput:
        hidden = torch.relu(x.flatten(1) @ self.weight)
        return LossOutput(hidden.sum(), {})


def test_the_saved_tensors_are_counted_once_each_without_the_parameters():
    with torch.device("meta"):
        model = TwoLayers()
        x, y = torch.zeros(3, 1, 1, 5), torch.zeros(3)
    assert saved_activation_bytes(model, x, y, {}) == 3 * 5 * 4 + 3 * 7 * 4


def growth(config: TrainConfig) -> tuple[int, int]:
    """How much the activations grow from batch 16 to 32, and from 32 to 64."""
    first, second, third = (estimate(config, batch)[1] for batch in (16, 32, 64))
    assert first is not None and first % BACKWARD_FACTOR == 0
    return second - first, third - second


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gets_an_estimate_in_proportion_to_the_batch(name):
    config = TrainConfig(dataset="digits", model=name, latent_dim=None if name == "hvae" else 3)
    weights, _, parameters = estimate(config, 8)
    assert weights == OPTIMIZER_BYTES * parameters > 0
    step, next_step = growth(config)
    assert step > 0 and next_step == 2 * step  # every activation has a row per image


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_part_gets_an_estimate_and_batch_statistics_grow_faster_than_the_batch(part):
    step, next_step = growth(TrainConfig(dataset="digits", latent_dim=3, **PARTS[part]))
    if part in ("btcvae", "mmd"):  # [B, B, D] and [B, B] tensors: quadratic in the batch
        assert next_step > 2 * step
    else:
        assert step > 0 and next_step == 2 * step


def test_an_ema_adds_a_copy_of_the_weights():
    plain, _, parameters = estimate(TrainConfig(dataset="digits", latent_dim=3), 8)
    averaged, _, _ = estimate(TrainConfig(dataset="digits", latent_dim=3, ema=0.99), 8)
    assert averaged - plain == 4 * parameters


def test_a_model_too_large_for_the_machine_is_one_line_before_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--hidden", "100000,100000", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and not out.exists()
    assert err.startswith("vaekit train: error: the model with its gradients and Adam's state needs ")
    assert err.endswith("and one allocation may take half of it; make it smaller: --hidden")


def test_a_batch_past_the_memory_is_refused_and_a_smaller_one_trains(tmp_path, capsys, monkeypatch):
    config = tiny_config(batch_size=512)
    weights, activations, _ = estimate(config, 512)
    # half the machine's memory holds the model and a quarter of this batch's activations
    monkeypatch.setattr(limits, "available_memory", lambda device: 2 * weights + activations // 2)
    base = ["train", "--dataset", "digits", "--hidden", "32", "--latent-dim", "2", "--no-progress"]
    out = tmp_path / "run"
    assert main([*base, "--batch-size", "512", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "a training step of 512 images (the model, and " in err and err.endswith("; lower --batch-size")
    assert not out.exists()
    assert main([*base, "--batch-size", "64", "--epochs", "1", "--out", str(out)]) == 0


def test_the_estimate_draws_no_random_number_and_leaves_the_model_alone():
    config = tiny_config()
    dataset = load_dataset("digits")
    config_of_model = model_config(config, dataset.image_shape, dataset.num_classes)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    check_training_memory(config, config_of_model, dataset, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)


def test_a_model_whose_loss_reads_values_is_not_estimated_and_not_refused():
    @register_model
    class Reading(MLPVAE):
        name = "reading"

        def loss(self, x, labels=None, **options):  # .item() has no value on the meta device
            out = super().loss(x, labels, **options)
            assert out.objective.item() == out.objective.item()
            return out

    try:
        config = TrainConfig(dataset="digits", model="reading", latent_dim=3)
        weights, activations, parameters = estimate(config, 8)
        assert activations is None and weights == OPTIMIZER_BYTES * parameters
        dataset = load_dataset("digits")
        check_training_memory(config, model_config(config, (1, 8, 8), 10), dataset, torch.device("cpu"))
    finally:
        unregister_model("reading")


def test_a_shapes_set_too_large_to_draw_is_refused():
    message = error_of(load_dataset, "shapes", image_size=[1024, 1024])
    assert message.startswith("46,080 shapes at 1024x1024 needs 90.0 GB of memory at once")
    assert message.endswith("; lower --image-size")
