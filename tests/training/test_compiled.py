"""--compile (training/compiled.py) on the CPU's inductor path: compiled and eager runs agree, a compiled
run resumes exactly, the warm-up leaves no trace, nothing recompiles, and where torch.compile cannot
work the run says so in one line before anything is written."""

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import error_of, quiet_trainer, tiny_config
from vaekit.training import compiled as compiled_module
from vaekit.training.compiled import CompiledLoss
from vaekit.utils.errors import VaekitError

HVAE = {"model": "hvae", "hidden": None, "latent_dim": None, "width": 8, "latent_channels": 2, "groups": 1,
        "stem": 1}  # fmt: skip


def metrics(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def weights(run):
    return load_file(str(run / "model.safetensors"))


@pytest.fixture
def no_recompiles():
    """Any second compilation of a frame fails the test: the KL weight that changes every step and the
    epoch's shorter last batch must not recompile."""
    import torch._dynamo

    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=1, fail_on_recompile_limit_hit=True):
        yield
    torch._dynamo.reset()


CAPACITY = {"objective": "capacity", "part_options": {"capacity": 3.0, "capacity_steps": 30}}


@pytest.mark.parametrize("settings", [{"kl_warmup": 2}, HVAE, CAPACITY], ids=["mlp", "hvae", "capacity"])
def test_a_compiled_run_gives_the_eager_runs_numbers(tmp_path, no_recompiles, settings):
    """The same draws (fallback_random), so compiled and eager differ only by the rounding of fused
    arithmetic: every epoch's losses within 1e-4 relative, the weights within 1e-3. 1,294 images at batch
    64 end each epoch in a batch of 14 (eager), and the KL weight rises every step of the warm-up (a
    capacity's target every step of its rise)."""
    runs = {}
    for compiled in (False, True):
        out = tmp_path / f"compile={compiled}"
        trainer = quiet_trainer(tiny_config(epochs=2, compile=compiled, **settings), out)
        assert isinstance(trainer.loss_of, CompiledLoss) == compiled
        trainer.run()
        runs[compiled] = out
    eager, compiled = (metrics(runs[c]) for c in (False, True))
    for row_e, row_c in zip(eager, compiled, strict=True):
        assert row_e.keys() == row_c.keys()
        for key, value in row_e.items():
            assert row_c[key] == (value if value is None else pytest.approx(value, rel=1e-4, abs=1e-6)), key
    w_eager, w_compiled = weights(runs[False]), weights(runs[True])
    for key in w_eager:
        torch.testing.assert_close(w_compiled[key], w_eager[key], rtol=1e-3, atol=1e-4)


def test_a_compiled_run_resumes_exactly(tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    config = lambda: tiny_config(epochs=3, compile=True, kl_warmup=2)  # noqa: E731
    quiet_trainer(config(), tmp_path / "straight").run()
    with pytest.raises(Stop):
        quiet_trainer(config(), tmp_path / "resumed", on_epoch=stop_after_first).run()
    quiet_trainer(config(), tmp_path / "resumed", resume=True).run()
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "resumed")


def test_the_warm_up_puts_back_the_weights_and_the_random_state(tmp_path):
    """Compiling tries one step before the folder is touched; the model and the RNG are as before it."""
    eager = quiet_trainer(tiny_config(), tmp_path / "eager")
    rng = torch.get_rng_state()
    compiled = quiet_trainer(tiny_config(compile=True), tmp_path / "compiled")
    assert torch.equal(torch.get_rng_state(), rng)  # both seeded alike, and the warm-up's draws undone
    before, after = eager.model.state_dict(), compiled.model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(p.grad is None for p in compiled.model.parameters())
    assert not (tmp_path / "compiled").exists()


def test_without_a_compiler_compile_is_refused_in_one_line_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(compiled_module.shutil, "which", lambda name: None)  # no g++, clang++ or c++
    message = error_of(quiet_trainer, tiny_config(compile=True), tmp_path / "run")
    assert message.startswith("--compile: torch.compile cannot compile this model's loss (no C++ compiler")
    assert "\n" not in message and not (tmp_path / "run").exists()


def test_where_compiling_is_the_devices_default_a_failure_trains_eagerly_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(compiled_module.DEFAULT_BY_DEVICE, "cpu", True)

    def failing(*args, **kwargs):
        raise RuntimeError("backend 'inductor' failed\nwith a long story")

    monkeypatch.setattr(torch, "compile", failing)
    lines = []
    trainer = quiet_trainer(tiny_config(epochs=1), tmp_path / "run")
    assert not isinstance(trainer.loss_of, CompiledLoss)
    from vaekit.training import Trainer

    Trainer(tiny_config(epochs=1), tmp_path / "noted", progress=False, log=lines.append).run()
    note = "note: training eagerly, as torch.compile cannot compile this model's loss (RuntimeError: "
    assert note + "backend 'inductor' failed)" in lines
    assert (tmp_path / "noted" / "model.safetensors").is_file()
    assert "--compile" in error_of(quiet_trainer, tiny_config(compile=True), tmp_path / "asked")


def test_compile_is_a_setting_that_may_change_on_resume_and_takes_only_booleans(tmp_path):
    with pytest.raises(VaekitError, match="compile must be true or false"):
        tiny_config(compile="yes").validate()
    quiet_trainer(tiny_config(epochs=1), tmp_path / "run").run()
    from vaekit.training import resume

    resume(tmp_path / "run", epochs=2, compile=True, progress=False, log=lambda line: None)
    assert len(metrics(tmp_path / "run")) == 2
