"""Every command shown in README.md and docs/ runs, or says why it cannot.

Each line of a fenced code block that starts with ``vaekit``, ``make`` or ``torchrun`` is a documented
command. A command is either in SKIP (a pattern and the reason it cannot run here: a server, several
processes, a database, the reader's own folders, long jobs) or it is rewritten to a small version of
itself and run, and must exit 0: MNIST becomes scikit-learn's bundled digits, ``--epochs N`` one epoch,
``--iwae-k 5000`` a few samples, ``--samples`` none (no classifier to train), model sizes small,
``--trials`` one trial of examples/sweep.toml shortened to 2 epochs, and every run folder it names
(``runs/z2``, ``runs/cvae``, ``runs/vq``, ...) a fresh copy of a tiny run of that kind, trained once
for this module. Each command runs in its own folder under tmp_path, so relative outputs never meet.
A documented command that is neither run nor skipped fails, so a new command cannot be forgotten.

The commands run in this process through ``vaekit.cli.main``, the function ``python -m vaekit`` calls:
a process per command would spend about 3 s each importing torch, scikit-learn and matplotlib.
``test_entry_point`` runs the real ``python -m vaekit`` once.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from vaekit.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
PROGRAMS = ("vaekit", "make", "torchrun")

# (pattern searched in the command, why it is not run here); the first match wins.
SKIP: list[tuple[str, str]] = [
    (r"^make (demo|install)$", "sets up .venv from scratch: the environment this suite already runs in"),
    (r"^make test$", "the test suite itself"),
    (r"^make docs$", "tests/test_docs.py builds the site"),
    (r"^make bench$", "the benchmarks: long MNIST runs, never timed beside another torch process"),
    (r"^torchrun ", "several processes, GPUs or machines: tests/training/test_distributed.py runs torchrun"),
    (r"^vaekit serve ", "a server that runs until stopped: tests/serve/ drive the app and the page"),
    (r"(^| )\.\.\.( |$)", "an outline with its arguments elided (...), not a runnable command"),
    (r"--storage postgresql://", "needs a PostgreSQL server"),
    (r"--device cuda", "needs a CUDA GPU: tests/gpu/ runs the commands there"),
    (r"--model resnet", "the plugin example, installed: tests/models/test_plugin_example.py installs it"),
    (r"~/", "a folder on the reader's machine (~/Pictures)"),
    (
        r"shapes",
        "the generated shapes: an epoch of the documented conv model over 46,080 images is beyond this "
        "file's budget (tests/data/test_shapes.py and tests/evaluation/test_disentanglement.py cover them)",
    ),
]

MNIST_FAMILY = {"mnist", "fashion-mnist", "kmnist"}
# the commands on one run folder, and compare's options that take a value
RUN_COMMANDS = {"sample", "reconstruct", "evaluate", "export"}
PICTURE_COMMANDS = {"latent", "manifold", "interpolate", "traverse"}
OUTPUT_COMMANDS = {"encode", "score"}
COMPARE_VALUES = {"--out", "--iwae-k", "--samples", "--data-dir", "--device"}
SMALL_IWAE_K = 8

# The tiny runs every documented run folder maps to, trained once for this module (about 1 s each).
HVAE_SMALL = ["--width", "8", "--latent-channels", "2", "--stem", "1"]  # 2 groups per scale: 4 in all
TEMPLATES = {
    "z2": ["--latent-dim", "2", "--hidden", "32", "--prior-components", "1"],
    "conv": ["--model", "conv", "--channels", "8,16", "--latent-dim", "4", "--prior-components", "1"],
    "cvae": ["--model", "cvae", "--hidden", "32", "--latent-dim", "2", "--prior-components", "1"],
    "vq-noprior": ["--model", "vqvae", "--channels", "8,16", "--codebook-size", "16", "--latent-dim", "4"],
    "hvae": ["--model", "hvae", *HVAE_SMALL, "--prior-components", "1"],
}
VQ_PRIOR = ["--epochs", "1", "--width", "16", "--depth", "1", "--no-progress"]

# exp.toml, as in docs/commands/train.md, on the digits and small.
EXP_TOML = """[train]
dataset = "digits"
model = "conv"
channels = [8, 16]
latent_dim = 4
beta = 4.0
kl_warmup = 5
epochs = 1
prior_components = 1
"""


@dataclass(frozen=True)
class Documented:
    command: str  # as written, comments and continuation lines removed
    where: str  # the first file:line that shows it


def fenced_lines(text: str):
    """(line number, line) of every line inside a fenced code block, continuation lines joined."""
    fence = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"^(```+|~~~+)", stripped)
            if match:
                fence = match.group(1)
            continue
        if stripped.startswith(fence):
            fence = None
            continue
        if pending:
            pending += " " + stripped
        else:
            pending, start = stripped, number
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        yield start, pending
        pending = ""


def documented_commands() -> list[Documented]:
    found: dict[str, Documented] = {}
    for path in DOC_FILES:
        for number, line in fenced_lines(path.read_text(encoding="utf-8")):
            if not line.startswith(tuple(p + " " for p in PROGRAMS)) and line not in PROGRAMS:
                continue
            tokens = shlex.split(line, comments=True)
            # "a && b" shows two commands
            parts, current = [], []
            for token in tokens:
                if token == "&&":
                    parts.append(current)
                    current = []
                else:
                    current.append(token)
            parts.append(current)
            for part in parts:
                command = shlex.join(part)
                where = f"{path.relative_to(ROOT)}:{number}"
                found.setdefault(command, Documented(command, where))
    return list(found.values())


COMMANDS = documented_commands()


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIP:
        if re.search(pattern, command):
            return reason
    return None


def short_sweep(path: Path) -> str:
    """examples/sweep.toml with its trials trained for 2 epochs instead of 20 (pruning from the first)."""
    text = path.read_text(encoding="utf-8")
    short = re.sub(r"(?m)^epochs = \d+", "epochs = 2", text)
    short = re.sub(r"(?m)^warmup_epochs = \d+", "warmup_epochs = 1", short)
    assert short != text, f"{path} has no epochs = N line to shorten: update short_sweep"
    return short


# ------------------------------------------------------------------------------------ the tiny runs
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and much faster when the machine is busy: this file took
    2.5 minutes with torch's two threads beside another test run, and 30 s with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("templates")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEKIT_DATA", str(folder / "cache"))
        for name, options in TEMPLATES.items():
            argv = ["train", "--dataset", "digits", "--epochs", "1", "--out", str(folder / name), *options]
            assert main(argv) == 0, argv
        shutil.copytree(folder / "vq-noprior", folder / "vq")
        assert main(["train-prior", str(folder / "vq"), *VQ_PRIOR]) == 0
    return folder


def template_for(name: str, command: str) -> str:
    """Which tiny run stands in for the documented run folder ``name`` in ``command``."""
    if "cvae" in name:
        return "cvae"
    if "hvae" in name:
        return "hvae"
    if "vq" in name:  # train-prior trains a VQ-VAE's prior: give it one without
        return "vq-noprior" if command == "train-prior" else "vq"
    if "conv" in name or "pictures" in name:
        return "conv"
    return "z2"  # every MLP run (z2, mlp, grey, binary, beta4, ...): a 2-D latent keeps t-SNE out


class Rewriter:
    """Turns a documented command into a small one in ``work``, with run folders copied from ``templates``."""

    def __init__(self, templates: Path, work: Path) -> None:
        self.templates, self.work = templates, work
        self.copies = 0

    def run_copy(self, path: str, command: str) -> str:
        """A fresh copy of the tiny run standing in for ``runs/NAME[/file]`` (or the placeholder RUN)."""
        match = re.match(r"^(?:(?:\./)?runs/([^/]+)|(RUN))(/.*)?$", path)
        if not match:
            return path
        self.copies += 1
        name = match.group(1) or match.group(2)
        copy = self.work / "runs-copied" / f"{self.copies}-{name}"
        shutil.copytree(self.templates / template_for(name, command), copy)
        return str(copy) + (match.group(3) or "")

    def __call__(self, tokens: list[str]) -> list[str]:
        assert tokens[0] == "vaekit", tokens
        tokens = [t.strip("[]") for t in tokens[1:]]  # "[--slerp]": an optional part, run with it
        command, args = tokens[0], tokens[1:]
        if command == "train":
            return self.train(args)
        if command == "sweep":
            return ["sweep", *self.options(args, {"--trials": lambda v: "1"})]
        if command == "train-prior":
            run, rest = self.run_copy(args[0], command), args[1:]
            if template_for(args[0], command) == "vq-noprior" and "--epochs" not in rest:
                rest += VQ_PRIOR
            return [command, run, *rest]
        if command == "compare":
            out, i = [], 0
            while i < len(args):  # the run folders are the positional arguments
                if args[i] in COMPARE_VALUES:
                    out += args[i : i + 2]
                    i += 2
                else:
                    out.append(args[i] if args[i].startswith("-") else self.run_copy(args[i], command))
                    i += 1
            out = self.options(out, self.evaluation_rules())
            if "--samples" in out or "--evaluate" not in out:  # --samples acts only with --evaluate
                return [command, *out]
            return [command, *out, "--samples", "0"]
        if command in OUTPUT_COMMANDS:
            digits = lambda v: "digits" if v in MNIST_FAMILY else v  # noqa: E731
            rules = {"--dataset": digits, "--reference": digits, "--k": lambda v: str(min(int(v), 4))}
            rules["--background"] = lambda v: self.run_copy(v, command)
            return [command, self.run_copy(args[0], command), *self.options(args[1:], rules)]
        if command in RUN_COMMANDS | PICTURE_COMMANDS:
            run, rest = self.run_copy(args[0], command), self.options(args[1:], self.evaluation_rules())
            if command == "evaluate" and "--samples" not in rest:
                rest += ["--samples", "0"]
            return [command, run, *rest]
        pytest.fail(f"no rule runs `vaekit {command}`: add one to Rewriter, or the command to SKIP")

    @staticmethod
    def evaluation_rules() -> dict:
        return {"--iwae-k": lambda v: str(min(int(v), SMALL_IWAE_K)), "--samples": lambda v: "0"}

    @staticmethod
    def options(args: list[str], rules: dict) -> list[str]:
        out, i = [], 0
        while i < len(args):
            if args[i] in rules and i + 1 < len(args):
                out += [args[i], rules[args[i]](args[i + 1])]
                i += 2
            else:
                out.append(args[i])
                i += 1
        return out

    def train(self, args: list[str]) -> list[str]:
        given = {name: args[i + 1] if i + 1 < len(args) else None for i, name in enumerate(args)}
        resume = "--resume" in args
        out: list[str] = []
        i = 0
        while i < len(args):
            name = args[i]
            value = args[i + 1] if i + 1 < len(args) else None
            if name == "--data-dir":  # the MNIST folder of the docs: the digits need none
                i += 2
                continue
            if name == "--dataset":
                out += [name, "digits" if value in MNIST_FAMILY else value]
            elif name == "--epochs":
                out += [name, "2" if resume else "1"]
            elif name == "--out":
                target = self.work / "runs-trained" / Path(value).name
                if resume:  # continue a tiny run of one epoch
                    shutil.copytree(self.templates / template_for(Path(value).name, "train"), target)
                out += [name, str(target)]
            elif name == "--config":
                out += [name, self.run_copy(value, "train")]
            elif name.startswith("--") and value is not None and not value.startswith("--"):
                out += [name, value]
            else:
                out.append(name)
                i += 1
                continue
            i += 2
        if resume:
            return ["train", *out]
        if "--config" not in given:
            model = given.get("--model") or "mlp"
            if "--dataset" not in given:
                out += ["--dataset", "digits"]
            if "--epochs" not in given:
                out += ["--epochs", "1"]
            if model in ("mlp", "cvae") and "--hidden" not in given:
                out += ["--hidden", "32"]
            if model in ("conv", "vqvae") and "--channels" not in given:
                out += ["--channels", "8,16"]
            if model == "hvae" and "--width" not in given:
                out += HVAE_SMALL
            if model != "vqvae" and "--prior-components" not in given:
                out += ["--prior-components", "1"]  # the prior fit, in a few EM steps
        return ["train", *out]


# ------------------------------------------------------------------------------------------ tests
def test_commands_are_found():
    assert len(COMMANDS) > 20, "the extraction of documented commands found almost nothing"
    assert any(c.command.startswith("vaekit train") for c in COMMANDS)


def test_every_skip_rule_is_used():
    """A rule that matches no documented command is stale: remove it."""
    unused = [p for p, _ in SKIP if not any(re.search(p, c.command) for c in COMMANDS)]
    assert not unused, f"SKIP patterns that match no documented command: {unused}"


@pytest.mark.parametrize("documented", COMMANDS, ids=lambda d: d.command[:80])
def test_documented_command(documented: Documented, templates: Path, tmp_path: Path, monkeypatch, capsys):
    reason = skip_reason(documented.command)
    if reason is not None:
        pytest.skip(f"{documented.where}: {reason}")
    tokens = shlex.split(documented.command)
    if tokens[0] != "vaekit":
        pytest.fail(f"{documented.where}: `{documented.command}` is neither run nor in SKIP")
    work = tmp_path / "work"
    (work / "examples").mkdir(parents=True)
    (work / "examples" / "sweep.toml").write_text(short_sweep(ROOT / "examples" / "sweep.toml"))
    (work / "exp.toml").write_text(EXP_TOML)
    monkeypatch.chdir(work)  # relative outputs (samples.png, cmp/, sweeps/...) land in tmp_path
    argv = Rewriter(templates, work)(tokens)
    code = main(argv)
    output = capsys.readouterr()
    assert code == 0, (
        f"{documented.where}: `{documented.command}`\nran as: vaekit {shlex.join(argv)}\n"
        f"exit {code}\n{output.out[-2000:]}\n{output.err[-2000:]}"
    )


def test_entry_point():
    """``python -m vaekit`` itself, as the documented commands would run it, lists every command."""
    result = subprocess.run(
        [sys.executable, "-m", "vaekit", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    documented = {shlex.split(c.command)[1] for c in COMMANDS if c.command.startswith("vaekit ")}
    for command in documented:
        assert command in result.stdout, f"vaekit {command} is documented but not in vaekit --help"
