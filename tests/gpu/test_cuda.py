"""vaekit on a CUDA GPU (issue 33): every registered model trains, resumes bit-identically, evaluates
and samples there; CPU and GPU agree on a loss; a training step never synchronises with the host between
the loop's reads; a compiled step (CUDA graphs) agrees with an eager one; evaluation's batches are sized
from the GPU's memory. Skipped where CUDA is absent (the ``cuda`` marker, tests/conftest.py).

On a machine with a GPU, from the repository root: ``python -m pytest tests/gpu -m cuda``.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_RUNS, quiet_trainer, tiny_config
from vaekit import load
from vaekit.evaluation.likelihood import CPU_DECODES, importance_bounds
from vaekit.evaluation.runs import evaluate_run
from vaekit.models import MODELS
from vaekit.training import resume
from vaekit.training.compiled import CompiledLoss
from vaekit.utils.devices import device_batch

pytestmark = pytest.mark.cuda


def cuda_config(name: str, **overrides):
    return tiny_config(model=name, device="cuda", **{**TINY_RUNS[name], **overrides})


def metrics(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_every_registered_model_has_a_tiny_run():
    assert set(TINY_RUNS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_resumes_evaluates_and_samples_on_cuda(tmp_path, name):
    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    quiet_trainer(cuda_config(name, epochs=2), tmp_path / "straight").run()
    with pytest.raises(Stop):
        quiet_trainer(cuda_config(name, epochs=2), tmp_path / "resumed", on_epoch=stop_after_first).run()
    resume(tmp_path / "resumed", progress=False, log=lambda line: None)
    straight, resumed = (load_file(str(tmp_path / r / "model.safetensors")) for r in ("straight", "resumed"))
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), "a resume on one GPU is bit-identical"
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "resumed")
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["device"].startswith("cuda")
    figures = evaluate_run(tmp_path / "straight", device="cuda", iwae_k=0 if name == "vqvae" else 20)
    assert torch.isfinite(torch.tensor(figures["test_loss"]))
    model = load(tmp_path / "straight", device="cuda")
    if model.can_sample:
        images = model.sample(8, generator=torch.Generator(device="cuda").manual_seed(0))
        assert images.device.type == "cuda" and images.shape[0] == 8
        assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("name", ["mlp", "conv", "hvae"])
def test_cpu_and_cuda_give_the_same_loss(tmp_path, name):
    """The same weights on both devices: the loss at the posterior mean (no draw: the reconstruction's
    -log p(x|z) plus the closed-form KL) within 1e-4 relative (TF32 matmuls are off by default in
    PyTorch; cuDNN's convolutions may use TF32: 1e-3 for the conv models), and after two epochs trained
    on each device from one seed, test -ELBOs within 2% (their noise streams differ)."""
    quiet_trainer(cuda_config(name, epochs=2), tmp_path / "gpu").run()
    cpu_run = quiet_trainer(cuda_config(name, epochs=2, device="cpu"), tmp_path / "cpu")
    cpu_run.run()
    x = cpu_run.data.x_test[:64].float() / (255.0 if cpu_run.data.x_test.dtype == torch.uint8 else 1.0)
    on_cpu, on_gpu = load(tmp_path / "gpu", device="cpu"), load(tmp_path / "gpu", device="cuda")
    at_mean = []
    for model, images in ((on_cpu, x), (on_gpu, x.cuda())):
        with torch.no_grad():
            recon = model.reconstruct(images)
            at_mean.append(torch.nn.functional.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), images,
                                                                    reduction="sum").item())  # fmt: skip
    tolerance = 1e-4 if name == "mlp" else 1e-3
    assert at_mean[1] == pytest.approx(at_mean[0], rel=tolerance)
    losses = [json.loads((tmp_path / run / "eval.json").read_text())["test_loss"] for run in ("cpu", "gpu")]
    assert losses[1] == pytest.approx(losses[0], rel=0.02)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_training_step_never_synchronises_with_the_host(tmp_path, name):
    """Between the loop's reads every decision stays on the GPU: CUDA's sync debug mode raises on any
    synchronising call (a value read back, a blocking copy) in 25 steps of each model, with the gradient
    guard and the weights' average on."""
    trainer = quiet_trainer(cuda_config(name, grad_clip=100.0, ema=0.9, batch_size=32), tmp_path / "r")
    trainer.state.perm = torch.randperm(trainer.n_train, device="cuda")
    trainer.step(trainer.state.perm[:32])  # the first step allocates the optimizer's state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 26):
            trainer.step(trainer.state.perm[step * 32 : (step + 1) * 32])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    trainer.updates.read_skipped(trainer.state, trainer.n_batches, trainer.run_dir.last_checkpoint)
    assert trainer.state.skipped == 0


@pytest.mark.parametrize("name", ["mlp", "hvae"])
def test_a_compiled_step_on_cuda_graphs_gives_the_eager_numbers_and_resumes_exactly(tmp_path, name):
    import torch._dynamo

    torch._dynamo.reset()
    runs = {}
    for compiled in (False, True):
        out = tmp_path / f"compile={compiled}"
        trainer = quiet_trainer(cuda_config(name, epochs=2, compile=compiled, kl_warmup=2), out)
        assert isinstance(trainer.loss_of, CompiledLoss) == compiled
        trainer.run()
        runs[compiled] = metrics(out)
    for eager, compiled in zip(runs[False], runs[True], strict=True):
        assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-3)
        assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-3)

    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    config = lambda: cuda_config(name, epochs=2, compile=True, kl_warmup=2)  # noqa: E731
    with pytest.raises(Stop):
        quiet_trainer(config(), tmp_path / "resumed", on_epoch=stop_after_first).run()
    quiet_trainer(config(), tmp_path / "resumed", resume=True).run()
    assert metrics(tmp_path / "resumed") == runs[True]


def test_evaluation_batches_are_sized_from_the_gpus_memory(tmp_path):
    quiet_trainer(cuda_config("mlp", epochs=1), tmp_path / "run").run()
    model = load(tmp_path / "run", device="cuda")
    x = (torch.rand(500, 1, 8, 8, device="cuda") > 0.5).float()
    decodes = device_batch(x.device, CPU_DECODES, lambda n: model.decode(torch.zeros(n, 2, device="cuda")),
                           100 * len(x))  # fmt: skip
    assert decodes > CPU_DECODES  # a GPU's free gigabytes hold far more than a CPU's cache-sized chunk
    _, by_memory = importance_bounds(model, x, k=100, seed=0)
    _, small = importance_bounds(model, x, k=100, seed=0, max_decodes=CPU_DECODES)
    # other chunks draw other noise: the estimates agree statistically, image by image within a nat
    assert (by_memory - small).abs().mean().item() < 0.2 and (by_memory - small).abs().max().item() < 2.0
