"""The vaekit command end to end on tiny data, and its answers to bad input."""

import dataclasses
import gzip
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from tests.conftest import assert_refused, folder_snapshot
from vaekit import load
from vaekit.cli import main
from vaekit.data import load_dataset


def vaekit(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "vaekit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_end_to_end_on_tiny_mnist_files(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "runs" / "z2"
    done = vaekit(
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        tiny_mnist,
        "--latent-dim",
        "2",
        "--hidden",
        "64,32",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    epoch_lines = [line for line in done.stdout.splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == 3
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # the printed figures are the ones stored
    assert f"train {metrics[-1]['train_loss']:.2f}" in epoch_lines[-1]
    assert f"val {metrics[-1]['val_loss']:.2f}" in epoch_lines[-1]
    saved = json.loads((out / "eval.json").read_text())
    assert f"test loss {saved['test_loss']:.2f}" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["hidden"] == [64, 32] and config["data"]["n_test"] == 40

    # the other commands in this process (the entry point is the same function; a Python start is 2 s)
    def command(*args) -> subprocess.CompletedProcess:
        code = main([str(a) for a in args])
        output = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, output.out, output.err)

    sample = command("sample", out, "--n", "64", "--out", tmp_path / "samples.png")
    assert sample.returncode == 0, sample.stderr
    with Image.open(tmp_path / "samples.png") as picture:
        assert picture.size == (2 * (8 * 30 + 2), 2 * (8 * 30 + 2))  # 8x8 grid of 28 px + 2 pad, 2x

    recon = command("reconstruct", out, "--n", "16", "--out", tmp_path / "recon.png")
    assert recon.returncode == 0, recon.stderr
    with Image.open(tmp_path / "recon.png") as picture:
        assert picture.size == (2 * (8 * 30 + 2), 2 * (4 * 30 + 2))  # 2 pairs of rows of 8

    evaluated = command("evaluate", out, "--json", "--samples", "0")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["test_loss"] == saved["test_loss"]
    table = command("evaluate", out, "--iwae-k", "50", "--samples", "0")
    assert table.returncode == 0, table.stderr
    stored = json.loads((out / "eval.json").read_text())
    assert re.search(rf"-ELBO +{stored['test_loss']:.2f} ", table.stdout)
    assert re.search(rf"-log p\(x\), k=50 +{stored['iwae_nll']:.2f} ", table.stdout)
    assert stored["iwae_k"] == 50 and stored["iwae_nll"] < stored["test_loss"] + 0.5
    assert len(stored["kl_per_dim"]) == 2 and 0 <= stored["active_units"] <= 2


def test_resume_continues_and_refuses_changed_settings(trained_run, capsys):
    assert main(["train", "--resume", "--out", str(trained_run), "--epochs", "3", "--no-progress"]) == 0
    assert "epoch   3/3" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(trained_run), "--epochs", "3"]) == 0
    assert "already trained 3 epochs" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(trained_run), "--latent-dim", "7"]) == 1
    assert "cannot change on --resume" in capsys.readouterr().err


def _truncate(path):
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-500]))


def _corrupt(path):
    path.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)  # gzip magic, then no valid stream


# (arguments, exit status, message): 2 where the command line cannot be parsed (a value of the wrong form,
# an unknown choice), 1 for every other refusal (options that do not go together or do not apply)
BAD_TRAIN = [
    (["--epochs", "0"], 2, "--epochs: must be >= 1"),
    (["--batch-size", "-3"], 2, "--batch-size: must be >= 1"),
    (["--latent-dim", "0"], 2, "--latent-dim: must be >= 1"),
    (["--lr", "nan"], 2, "--lr: must be a finite number"),
    (["--lr", "0"], 2, "--lr: must be a positive number"),
    (["--lr", "fast"], 2, "--lr: expected a number"),
    (["--val-fraction", "1"], 2, "--val-fraction: must be in [0, 1)"),
    (["--val-fraction", "-0.1"], 2, "--val-fraction: must be in [0, 1)"),
    (["--hidden", "400,x"], 2, "--hidden: expected sizes"),
    (["--resume"], 1, "--resume needs --out"),
    (["--beta", "-1"], 2, "--beta: must be >= 0"),
    (["--kl-warmup", "1.5"], 2, "--kl-warmup: expected an integer"),
    (["--free-bits", "nan"], 2, "--free-bits: must be a finite number"),
    (["--objective", "vimco"], 2, "invalid choice"),
    (["--channels", "32,0"], 2, "--channels: expected sizes like 32,64"),
    (["--decoder-std", "0"], 2, "--decoder-std: must be a positive number"),
    (["--early-stopping", "0"], 2, "--early-stopping: must be >= 1"),
    (
        ["--model", "vqvae", "--beta", "4"],
        1,
        "--beta applies to the Gaussian-latent models (conv, cvae, hvae",
    ),
    (["--model", "vqvae", "--k", "5"], 1, "--k applies to the Gaussian-latent models"),
    (["--model", "vqvae", "--hidden", "64"], 1, "--hidden does not apply to model vqvae"),
    (
        ["--dataset", "cifar"],
        1,
        "unknown dataset 'cifar'; choose from digits, fashion-mnist, kmnist, mnist, shapes",
    ),
    (["--dataset", "folder:/no/such/folder"], 1, "image folder /no/such/folder does not exist"),
    (["--image-size", "0"], 2, "image size sides must be between 1 and 1024"),
    (
        ["--image-size", "64"],
        1,
        "--image-size applies to folder: datasets and shapes, shapes-rgb, shapes-dsprites, not digits",
    ),
    (["--grey"], 1, "--grey/--rgb apply to folder: datasets, not digits"),
    (["--k", "5"], 1, "--k applies to --objective iwae, not elbo"),
    (
        ["--likelihood", "bernoulli", "--decoder-std", "0.1"],
        1,
        "--decoder-std applies to --likelihood gaussian",
    ),
    (["--prior-components", "0"], 2, "--prior-components: must be >= 1"),
    (["--no-fit-prior", "--prior-components", "4"], 1, "--prior-components applies only when training ends"),
    (["--model", "vqvae", "--no-fit-prior"], 1, "--no-fit-prior applies to the Gaussian-latent models"),
    (["--model", "vqvae", "--prior-components", "4"], 1, "--prior-components applies to the Gaussian-latent"),
]


@pytest.mark.parametrize("args, status, message", BAD_TRAIN)
def test_bad_train_options(args, status, message, capsys):
    dataset = [] if "--dataset" in args else ["--dataset", "digits"]  # an option is given once
    code = main(["train", *dataset, *args])
    err = capsys.readouterr().err
    assert code == status and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "train-images-idx3-ubyte.gz").unlink(), "could not download"),
        (lambda d: _truncate(d / "t10k-images-idx3-ubyte.gz"), "truncated data file"),
        (lambda d: _corrupt(d / "train-labels-idx1-ubyte.gz"), "corrupt data file"),
        (
            lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(
                (d / "train-labels-idx1-ubyte.gz").read_bytes()
            ),
            "40 images but t10k-labels-idx1-ubyte.gz 96 labels",
        ),
    ],
)
def test_bad_data_files(tiny_mnist, tmp_path, monkeypatch, capsys, damage, message):
    monkeypatch.setenv("VAEKIT_MIRROR", "http://127.0.0.1:9/")  # nothing listens: fail fast, offline
    from vaekit.data import mnist

    monkeypatch.setitem(mnist.IDX_SPECS, "mnist", dataclasses.replace(mnist.MNIST, mirrors=()))
    damage(tiny_mnist)
    code = main(["train", "--dataset", "mnist", "--data-dir", str(tiny_mnist), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "make_bad, command, message",
    [
        (lambda run: None, ["train", "--dataset", "digits", "--out", "{run}"], "already holds another run"),
        (
            lambda run: (run / "model.safetensors").write_bytes(b"junk"),
            ["sample", "{run}"],
            "corrupt weights",
        ),
        (
            lambda run: (run / "config.json").write_text(
                (run / "config.json").read_text().replace('"latent_dim": 2', '"latent_dim": 9')
            ),
            ["reconstruct", "{run}"],
            "do not match its config",
        ),
        (lambda run: None, ["sample", "{run}", "--n", "0"], "--n: must be >= 1"),
        (
            lambda run: None,
            ["sample", "{run}", "--label", "3", "--from", "trained"],
            "samples from the prior it trained with",
        ),
        (lambda run: None, ["sample", "{run}", "--label", "10"], "label must be in 0..9"),
        (lambda run: None, ["sample", "{run}", "--from", "best"], "--from: invalid choice"),
        (
            lambda run: None,
            ["sample", "{run}", "--from", "fitted", "--prior", "fitted"],
            "the old name of --from",
        ),
        (lambda run: None, ["sample", "{run}", "--label", "-1"], "--label: must be >= 0"),
        (lambda run: None, ["train-prior", "{run}"], "already has a fitted prior; pass --overwrite"),
        (lambda run: None, ["train-prior", "{run}", "--overwrite", "--components", "0"], "must be >= 1"),
        (
            lambda run: None,
            ["train-prior", "{run}", "--overwrite", "--components", "200"],
            "fewer than the 200",
        ),
        (
            lambda run: None,
            ["train-prior", "{run}", "--overwrite", "--width", "8"],
            "--width applies to vqvae runs",
        ),
        (lambda run: None, ["reconstruct", "{run}", "--n", "100000"], "more than the 359 images"),
        (lambda run: None, ["sample", "{run}/missing"], "does not exist"),
        (lambda run: None, ["evaluate", "{run}/missing"], "does not exist"),
        (
            lambda run: (run / "checkpoints" / "last.pt").write_bytes(b"junk"),
            ["train", "--resume", "--out", "{run}", "--epochs", "5"],
            "corrupt checkpoint",
        ),
    ],
)
def test_bad_run_commands_leave_the_run_alone(
    trained_run, tmp_path, capsys, make_bad, command, message, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    make_bad(trained_run)
    before = folder_snapshot(trained_run)
    code = main([part.format(run=trained_run) for part in command])
    assert_refused(code, capsys.readouterr().err, message)
    assert folder_snapshot(trained_run) == before
    assert not (tmp_path / "samples.png").exists() and not (tmp_path / "reconstructions.png").exists()


def test_a_reader_that_goes_ends_the_run_quietly_and_it_resumes(tmp_path):
    """vaekit train | head -1: each line reaches the pipe as it is printed, and once the reader has gone
    the run stops at its next line as `yes | head` does (status 141, no error line, no traceback), the
    epochs it finished checkpointed for --resume."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vaekit", "train", "--dataset", "digits", "--epochs", "500"]
    command += ["--hidden", "16", "--latent-dim", "2", "--no-progress", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline().decode()  # before the run ends: line-buffered, not block-buffered
    process.stdout.close()
    stderr = process.communicate(timeout=300)[1].decode()
    assert first.startswith("training mlp (") and " on digits: " in first, first
    assert process.returncode == 141, stderr
    assert "error" not in stderr and "Traceback" not in stderr, stderr
    epochs = len((out / "metrics.jsonl").read_text().splitlines())
    assert 1 <= epochs < 500
    # the resume in this process: the checkpoint is what is tested, not another Python start
    assert main(["train", "--resume", "--epochs", str(epochs + 1), "--no-progress", "--out", str(out)]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == epochs + 1


def test_usage_error_is_one_line():
    done = vaekit("train", "--no-such-option")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


def test_conditional_model_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cvae"
    args = ["train", "--dataset", "digits", "--model", "cvae", "--epochs", "1", "--out", str(out)]
    assert main([*args, "--no-progress", "--latent-dim", "2"]) == 0
    assert main(["sample", str(out), "--label", "7", "--n", "12", "--out", str(tmp_path / "sevens.png")]) == 0
    assert "12 samples of class 7" in capsys.readouterr().out
    assert main(["sample", str(out), "--out", str(tmp_path / "all.png")]) == 0
    assert "8 samples of each of the 10 classes" in capsys.readouterr().out
    with Image.open(tmp_path / "all.png") as picture:
        assert picture.size[1] / picture.size[0] == pytest.approx((10 * 10 + 2) / (8 * 10 + 2))
    assert main(["sample", str(out), "--label", "10"]) == 1
    assert "label must be in 0..9" in capsys.readouterr().err
    assert main(["reconstruct", str(out), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0


def test_a_plain_vae_samples_a_digit_through_its_fitted_prior(tmp_path, capsys):
    out = tmp_path / "mlp"
    args = ["train", "--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--epochs", "2"]
    assert main([*args, "--no-progress", "--no-fit-prior", "--out", str(out)]) == 0
    assert "fitted a Gaussian mixture prior" not in capsys.readouterr().out
    picture = str(tmp_path / "threes.png")
    assert main(["sample", str(out), "--label", "3", "--out", picture]) == 1
    assert "has no fitted prior (`vaekit train-prior RUN` fits one)" in capsys.readouterr().err
    assert main(["train-prior", str(out), "--components", "2"]) == 0
    assert "fitted a Gaussian mixture prior (10 classes x 2 full-covariance" in capsys.readouterr().out
    assert main(["sample", str(out), "--label", "3", "--n", "16", "--out", picture]) == 0
    assert "16 samples of class 3 from the fitted prior written to" in capsys.readouterr().out
    again = ["--out", picture, "--overwrite"]
    assert main(["sample", str(out), "--from", "trained", "--temperature", "0.5", *again]) == 0
    assert "64 samples from the prior it trained with, N(0, I), at temperature 0.5 written to" in (
        capsys.readouterr().out
    )
    assert main(["sample", str(out), "--prior", "standard", "--out", picture, "--overwrite"]) == 0  # old name
    assert "64 samples from the prior it trained with, N(0, I) written to" in capsys.readouterr().out
    assert main(["train-prior", str(out), "--components", "5", "--classes", "no", "--overwrite"]) == 0
    assert "(5 full-covariance components)" in capsys.readouterr().out
    assert main(["sample", str(out), "--label", "3", "--out", picture, "--overwrite"]) == 1
    assert "its prior has no classes" in capsys.readouterr().err


def test_vqvae_and_its_prior_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "vq"
    train = ["train", "--dataset", "digits", "--model", "vqvae", "--channels", "8,16", "--latent-dim", "4"]
    assert main([*train, "--codebook-size", "16", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert main(["sample", str(out)]) == 1
    assert "vaekit train-prior" in capsys.readouterr().err
    assert main(["train-prior", str(out), "--epochs", "1", "--width", "30", "--no-progress"]) == 1
    assert "multiple of 4" in capsys.readouterr().err
    assert (
        main(["train-prior", str(out), "--epochs", "1", "--width", "16", "--depth", "1", "--no-progress"])
        == 0
    )
    assert "with the prior" in capsys.readouterr().out
    assert main(["train-prior", str(out), "--epochs", "1"]) == 1
    assert "already has a prior; pass --overwrite" in capsys.readouterr().err
    assert main(["train-prior", str(out), "--components", "4", "--overwrite"]) == 1
    assert "--components applies to Gaussian-latent runs" in capsys.readouterr().err
    assert main(["sample", str(out), "--from", "trained"]) == 1
    assert "it trains with no prior" in capsys.readouterr().err
    assert main(["sample", str(out), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()


@pytest.mark.parametrize(
    "model, options",
    [
        ("mlp", ["--hidden", "16"]),
        ("conv", ["--channels", "4,8"]),
        ("cvae", ["--hidden", "16"]),
        ("vqvae", ["--channels", "4,8", "--codebook-size", "8"]),
    ],
)
def test_every_command_works_with_every_model(model, options, tmp_path, capsys):
    out = tmp_path / model
    base = [
        "train",
        "--dataset",
        "digits",
        "--model",
        model,
        *options,
        "--latent-dim",
        "2",
        "--out",
        str(out),
    ]
    assert main([*base, "--epochs", "1", "--no-progress"]) == 0
    assert main([*base, "--epochs", "2", "--no-progress", "--resume"]) == 0
    assert main(["reconstruct", str(out), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "val", "--json", "--samples", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["val_loss"] == pytest.approx(result["val_recon"] + result["val_kl"])
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert result["val_loss"] == pytest.approx(last["val_loss"], abs=1e-4)
    if model == "vqvae":
        assert main(["train-prior", str(out), "--epochs", "1", "--width", "8", "--depth", "1"]) == 0
    assert main(["sample", str(out), "--n", "10", "--out", str(tmp_path / "s.png")]) == 0


def test_evaluate_warns_of_posterior_collapse_and_only_then(tmp_path, capsys):
    # beta = 50 pushes every latent unit to the prior; beta = 1 keeps several in use
    args = ["train", "--dataset", "digits", "--hidden", "64", "--latent-dim", "4", "--epochs", "8"]
    args.append("--no-progress")
    for beta, collapsed in (("50", True), ("1", False)):
        run = tmp_path / f"beta{beta}"
        assert main([*args, "--beta", beta, "--out", str(run)]) == 0
        capsys.readouterr()
        assert main(["evaluate", str(run), "--samples", "0"]) == 0
        captured = capsys.readouterr()
        # active units counted here, by their definition (Burda et al. 2015): the variance over the test
        # images of each unit's posterior mean above 0.01
        model = load(run)
        with torch.no_grad():
            active = int((model.encode(load_dataset("digits").test.as_float())[0].var(0) > 0.01).sum())
        assert json.loads((run / "eval.json").read_text())["active_units"] == active
        assert re.search(rf"active units +{active} of 4\n", captured.out)
        assert (active <= 1) == collapsed, active  # the warning's rule: at most a quarter of the units
        warned = "latent units are active" in captured.err and "collapsed to the prior" in captured.err
        assert warned == collapsed, captured.err


def test_every_command_on_a_hierarchical_run(tmp_path, capsys):
    """A tiny hvae on the bundled digits through the commands: each succeeds, says what it wrote, and the
    figures of every group reach eval.json, the table and the compare report."""
    run = tmp_path / "hvae"
    hvae = ["--model", "hvae", "--width", "8", "--latent-channels", "2", "--groups", "1", "--stem", "1"]
    assert (
        main(["train", "--dataset", "digits", *hvae, "--epochs", "2", "--out", str(run), "--no-progress"])
        == 0
    )
    out = capsys.readouterr().out
    assert "kl1" in out and "kl weight" in out  # every group's KL on the epoch line, the warm-up's weight
    assert main(["evaluate", str(run), "--iwae-k", "20", "--samples", "0"]) == 0
    table = capsys.readouterr().out
    saved = json.loads((run / "eval.json").read_text())
    assert saved["group_sizes"] == [2 * 2 * 2, 2 * 4 * 4] and len(saved["active_units_per_group"]) == 2
    assert "latent groups, from the top" in table and "group 2" in table and "-log p(x), k=20" in table
    assert saved["test_kl"] == pytest.approx(saved["test_kl1"] + saved["test_kl2"])
    assert (run / "groups.png").is_file()
    commands = [
        ["sample", str(run), "--temperature", "1,0.5", "--out", str(tmp_path / "s.png")],
        ["sample", str(run), "--from", "trained", "--temperature", "0.7", "--out", str(tmp_path / "t.png")],
        ["reconstruct", str(run), "--out", str(tmp_path / "r.png")],
        ["traverse", str(run), "--out", str(tmp_path / "v.png")],
        ["interpolate", str(run), "--from", "0", "--to", "1", "--out", str(tmp_path / "i.png")],
        ["latent", str(run), "--out", str(tmp_path / "l.png")],
    ]
    for command in commands:
        assert main(command) == 0, command
        out = capsys.readouterr().out
        assert str(tmp_path) in out
        if "1,0.5" in command:  # one temperature per group, said as given
            assert ", at temperature 1,0.5 written to" in out
    shutil.copytree(run, tmp_path / "hvae2")
    assert main(["compare", str(run), str(tmp_path / "hvae2"), "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "groups: active units, KL" in report and "Latent groups from the top" in report


def test_hierarchy_refusals_are_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    bad = [
        (["--model", "hvae", "--scales", "5"], "5 scales after a stem of 2 halvings halve a 8x8 image"),
        (
            ["--model", "hvae", "--prior", "vamp"],
            "--prior vamp applies to the one-latent Gaussian models (conv, cvae, mlp), not hvae",
        ),
        (["--kl-balance"], "--kl-balance applies to the hierarchies (hvae), not mlp"),
        (["--groups", "2"], "--groups does not apply to model mlp"),
    ]
    for flags, message in bad:
        assert main(["train", "--dataset", "digits", *flags, "--out", str(run)]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not run.exists()
    assert main(["train", "--dataset", "digits", "--groups", "0", "--out", str(run)]) == 2  # usage
