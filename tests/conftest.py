"""Shared fixtures: tiny IDX datasets written on the fly, a tiny trained run, a local HTTP server."""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.training import TrainConfig, Trainer
from vaekit.utils.errors import VaekitError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` (tests/gpu/) need a CUDA GPU: skipped, with the reason, where there is none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (tests/gpu/ runs on one: python -m pytest tests/gpu)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian sizes, data."""
    assert array.dtype == np.uint8
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def tiny_digit_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images of bars whose position encodes the label: learnable, generated."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 255
    images = np.clip(images.astype(int) + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    return images, labels


def write_tiny_mnist(folder: Path, n_train: int = 96, n_test: int = 40) -> Path:
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = tiny_digit_images(n, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    return write_tiny_mnist(tmp_path / "data")


@pytest.fixture
def shared_mnist() -> Path:
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("../shared/data/mnist is not beside this checkout")
    return SHARED_MNIST


# A statistical assertion allows this many standard errors of its estimate: a normal variable lies beyond
# it with probability 5.7e-7 (two-sided), so such a test fails by chance at most once in a million runs.
Z_MISS = 5.0


def error_of(call, *args, **kwargs) -> str:
    """The message of the VaekitError that ``call`` raises, checked to be one line."""
    with pytest.raises(VaekitError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# every registered model, small: tiny_config's settings that make each (tests/gpu/ and the loop's tests)
TINY_RUNS = {
    "mlp": {},
    "conv": {"hidden": None, "channels": [4, 8]},
    "cvae": {},
    "vqvae": {"hidden": None, "latent_dim": None, "channels": [4, 8], "codebook_size": 8},
    "hvae": {"hidden": None, "latent_dim": None, "width": 8, "latent_channels": 2, "groups": 1, "stem": 1},
}


def tiny_config(**overrides) -> TrainConfig:
    values = dict(dataset="digits", hidden=[32], latent_dim=2, epochs=2, batch_size=64, seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def quiet_trainer(config: TrainConfig, out: Path, **kwargs) -> Trainer:
    return Trainer(config, out, progress=False, log=lambda line: None, **kwargs)


def signal_at_step(trainer: Trainer, step: int, signum: int = signal.SIGINT) -> None:
    """``trainer`` gets ``signum`` from the OS during the ``step``-th training step it takes (from 1,
    counting from where it starts, across epochs; validation's losses, which pass a generator, are not
    steps): the loop then stops after that step, as a user's Ctrl-C or a scheduler's SIGTERM stops it."""
    real_loss, steps = trainer.model.loss, []

    def loss_then_signal(*args, **kwargs):
        if "generator" not in kwargs:
            steps.append(None)
            if len(steps) == step:
                os.kill(os.getpid(), signum)
        return real_loss(*args, **kwargs)

    trainer.model.loss = loss_then_signal


@pytest.fixture(scope="session")
def trained_run_template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("template") / "run"
    quiet_trainer(tiny_config(), out).run()
    return out


@pytest.fixture
def trained_run(trained_run_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of a tiny trained digits run (2 epochs), safe to modify."""
    return Path(shutil.copytree(trained_run_template, tmp_path / "run"))


@pytest.fixture(scope="session")
def _digits_classifier_cache(tmp_path_factory) -> Path:
    from vaekit.data import load_dataset
    from vaekit.evaluation.classifier import load_classifier

    folder = tmp_path_factory.mktemp("classifier-cache")
    load_classifier(load_dataset("digits"), folder)
    from vaekit.evaluation.classifier import SECOND_RECIPE, SECOND_SEED

    load_classifier(load_dataset("digits"), folder, SECOND_SEED, recipe=SECOND_RECIPE)  # the second one
    return folder


@pytest.fixture
def digits_classifier_dir(_digits_classifier_cache: Path, monkeypatch) -> Path:
    """vaekit's data folder ($VAEKIT_DATA) for this test, holding the digits classifier of sample
    quality, trained once per session (~15 s)."""
    monkeypatch.setenv("VAEKIT_DATA", str(_digits_classifier_cache))
    return _digits_classifier_cache


@pytest.fixture
def small_filesystem():
    """A real 4 MB filesystem (a tmpfs mounted for the test; skipped where the machine cannot mount
    one); yields (its folder, remount), remount taking mount options: "size=64m", "ro", "rw"."""
    folder = Path(tempfile.mkdtemp(prefix="vaekit-tmpfs-"))
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)]
    done = subprocess.run(mount, capture_output=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    try:
        yield folder, remount
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()


def folder_snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path.startswith("/error/"):
            self.send_error(500, "server exploded")
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server(tmp_path: Path):
    """Serves a fresh folder on 127.0.0.1; yields (base_url, folder). /error/* answers 500."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: _Handler(*a, directory=str(root), **k)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _seeded_and_isolated(monkeypatch, tmp_path: Path):
    """No test reads or writes the user's cache or talks to a real mirror by accident."""
    torch.manual_seed(0)
    monkeypatch.setenv("VAEKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEKIT_MIRROR", raising=False)


@pytest.fixture(scope="module")
def _subprocess_temp_files_in_pytests_tmp(tmp_path_factory):
    """TMPDIR for the processes a module starts: torchrun makes a torchelastic_* folder in it per job
    and leaves it, which would pile up in /tmp run after run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("subprocess-tmp")))
        yield


def assert_refused(code: int, err: str, message: str) -> None:
    """A refusal as the README promises: one line that holds ``message``, no traceback, and exit status 2
    for a command line that cannot be parsed (argparse's "argument ..." errors), 1 for any other."""
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line and message in line, err
    assert code == (2 if ": error: argument " in line else 1), (code, line)


@pytest.fixture(autouse=True)
def _refusals_name_what_the_user_typed(monkeypatch):
    """Every refusal ``vaekit.cli.main`` prints, anywhere in the suite, names only options that its command
    has (or that a command it tells the user to run has), and names an option or something the user gave
    (tests/cli/messages.py)."""
    import os

    import vaekit.cli
    from tests.cli import messages

    report = vaekit.cli.report_error

    def checked(args, exc) -> None:
        text = str(exc)
        foreign = messages.foreign_flags(args.command, text)
        vague = not messages.names_something(args, text)
        survey = os.environ.get("VAEKIT_MESSAGE_SURVEY")
        if survey:
            with open(survey, "a") as f:
                f.write(f"{args.command}\t{foreign}\t{vague}\t{text}\n")
        else:
            assert not foreign, f"vaekit {args.command} refused naming {foreign}, not its options: {text}"
            assert not vague, f"vaekit {args.command} refused naming no option and no value given: {text}"
        report(args, exc)

    monkeypatch.setattr(vaekit.cli, "report_error", checked)
