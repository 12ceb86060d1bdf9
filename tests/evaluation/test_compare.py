"""vaekit compare: the report's figures are the runs' own, its pictures are theirs, nothing is clobbered."""

import base64
import json
import re
import shutil

import pytest

from tests.conftest import folder_snapshot, quiet_trainer, tiny_config
from vaekit.cli import main
from vaekit.evaluation.compare import compare_runs
from vaekit.evaluation.runs import evaluate_run
from vaekit.utils.errors import VaekitError


@pytest.fixture
def two_runs(trained_run, tmp_path, digits_classifier_dir):
    conv = tmp_path / "conv"
    quiet_trainer(tiny_config(model="conv", hidden=None, channels=[8, 16]), conv).run()
    evaluate_run(trained_run, iwae_k=20, samples=500)
    evaluate_run(conv, samples=500)
    return trained_run, conv


def table(markdown):
    """The report's table as {run name: {column: cell}}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows if len(row) == len(header)}


def test_report_shows_each_runs_own_figures_and_pictures(two_runs, tmp_path):
    mlp, conv = two_runs
    written = compare_runs([mlp, conv], out=tmp_path / "report")
    markdown = written["markdown"].read_text()
    rows = table(markdown)
    for run in (mlp, conv):
        figures = json.loads((run / "eval.json").read_text())
        config = json.loads((run / "config.json").read_text())
        history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        row = rows[run.name]
        assert row["model"] == config["model"]["name"]
        assert row["test -ELBO"] == f"{figures['test_loss']:.2f}"
        assert row["Frechet distance"] == f"{figures['frechet_distance']:.2f}"
        assert row["mode coverage"] == f"{figures['mode_coverage']}/10"
        assert row["epochs"] == "2" and row["latent"] == "2"
        assert row["training time"] == f"{sum(h['seconds'] for h in history):.1f} s"
    mlp_nll = json.loads((mlp / "eval.json").read_text())["iwae_nll"]
    assert rows["run"]["-log p(x)"] == f"{mlp_nll:.2f} (k=20)"
    assert rows["conv"]["-log p(x)"] == "-" and "vaekit evaluate RUN --iwae-k 5000" in markdown
    # parameters: counted from the saved weights
    import vaekit

    conv_model = vaekit.load(conv)
    prior_size = sum(
        t.numel() for t in conv_model.fitted_prior.buffers()
    )  # the fitted mixture, counted apart
    own = sum(p.numel() for p in conv_model.parameters())
    assert rows["conv"]["parameters"] == f"{own:,} + prior {prior_size:,}"
    # the Markdown's pictures are copies of each run's last grids
    for run, kind in ((mlp, "samples"), (conv, "reconstructions")):
        grid = "samples/prior.png" if kind == "samples" else f"{kind}/epoch_002.png"  # as vaekit sample draws
        link = re.search(rf"\]\((images/[^)]*{run.name}-{kind}\.png)\)", markdown).group(1)
        assert (written["markdown"].parent / link).read_bytes() == (run / grid).read_bytes()


def test_html_report_is_self_contained(two_runs, tmp_path):
    mlp, conv = two_runs
    written = compare_runs([mlp, conv], out=tmp_path / "report")
    page = written["html"].read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 5  # loss curves, two sample grids, two reconstruction grids
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    decoded = [base64.b64decode(s.split(",", 1)[1]) for s in sources]
    assert (mlp / "samples" / "prior.png").read_bytes() in decoded  # samples from the fitted prior
    assert (conv / "reconstructions" / "epoch_002.png").read_bytes() in decoded
    assert page.count("<tr>") == 3 and "<th>Frechet distance</th>" in page


def test_missing_figures_are_dashes_with_the_command_that_adds_them(trained_run, tmp_path):
    written = compare_runs([trained_run], out=tmp_path / "report")
    markdown = written["markdown"].read_text()
    row = table(markdown)["run"]
    assert row["Frechet distance"] == "-" and row["mode coverage"] == "-"
    assert "No sample quality for run: run `vaekit evaluate RUN`" in markdown


def test_conditional_runs_add_label_accuracy_and_evaluate_fills_the_table(tmp_path, digits_classifier_dir):
    out = tmp_path / "cvae"
    quiet_trainer(tiny_config(model="cvae"), out).run()
    written = compare_runs([out], out=tmp_path / "report", evaluate=True, samples=400)
    figures = json.loads((out / "eval.json").read_text())
    row = table(written["markdown"].read_text())["cvae"]
    assert row["label accuracy"] == f"{figures['fitted_label_accuracy']:.1%}"  # from the fitted prior
    assert row["Frechet distance"] == f"{figures['frechet_distance']:.2f}"  # z ~ N(0, I)
    assert row["Frechet, fitted prior"] == f"{figures['fitted_frechet_distance']:.2f}"
    # the second classifier's view of the same samples, with a note on what a disagreement means
    assert row["Frechet, second classifier"] == f"{figures['independent_frechet_distance']:.2f}"
    second = figures["fitted_independent_frechet_distance"]
    assert row["Frechet, fitted prior, second classifier"] == f"{second:.2f}"
    assert "independently trained classifier" in written["markdown"].read_text()


def test_runs_of_different_datasets_and_shared_names_are_flagged(trained_run, tmp_path, tiny_mnist):
    other = tmp_path / "elsewhere" / "run"
    config = tiny_config(dataset="mnist", data_dir=str(tiny_mnist), epochs=1)
    quiet_trainer(config, other).run()
    markdown = compare_runs([trained_run, other], out=tmp_path / "report")["markdown"].read_text()
    assert "different datasets" in markdown
    assert set(table(markdown)) == {str(trained_run), str(other)}  # both are named "run": full paths


def test_existing_reports_and_bad_runs_are_refused_without_harm(trained_run, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["compare", str(trained_run), "--out", str(report)]) == 0
    before = folder_snapshot(report)
    assert main(["compare", str(trained_run), "--out", str(report)]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert folder_snapshot(report) == before
    assert main(["compare", str(trained_run), "--out", str(report), "--overwrite"]) == 0

    fresh = tmp_path / "fresh"
    assert main(["compare", str(trained_run), str(tmp_path / "nope"), "--out", str(fresh)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err and not fresh.exists()
    with pytest.raises(VaekitError, match="given twice"):
        compare_runs([trained_run, trained_run], out=fresh)


def test_overwrite_drops_pictures_of_runs_no_longer_compared(trained_run, tmp_path):
    second = tmp_path / "second"
    shutil.copytree(trained_run, second)
    report = tmp_path / "report"
    compare_runs([trained_run, second], out=report)
    compare_runs([trained_run], out=report, overwrite=True)
    assert not any("second" in p.name for p in (report / "images").iterdir())


def test_a_vqvae_with_its_prior_is_compared_with_the_prior_counted_apart(tmp_path, digits_classifier_dir):
    from vaekit.training.code_prior import train_prior

    out = tmp_path / "vq"
    config = tiny_config(model="vqvae", hidden=None, latent_dim=4, channels=[8, 8], codebook_size=8)
    quiet_trainer(config, out).run()
    train_prior(out, epochs=1, width=8, depth=1, progress=False, log=lambda line: None)
    written = compare_runs([out], out=tmp_path / "report", evaluate=True, samples=200)
    markdown = written["markdown"].read_text()
    row = table(markdown)["vq"]
    import vaekit

    model = vaekit.load(out)
    in_prior = sum(p.numel() for p in model.fitted_prior.parameters())
    own = sum(p.numel() for p in model.parameters()) - in_prior
    assert row["parameters"] == f"{own:,} + prior {in_prior:,}"
    assert row["latent"] == "2x2 codes of 8" and row["-log p(x)"] == "-"
    assert row["Frechet distance"] == f"{json.loads((out / 'eval.json').read_text())['frechet_distance']:.2f}"
    assert "No -log p(x) estimate" not in markdown  # it does not apply to a vqvae
    assert "images/1-vq-samples.png" in markdown  # the prior's samples


def test_runs_of_different_likelihoods_are_in_separate_tables_saying_why(trained_run, tmp_path, capsys):
    gaussian = tmp_path / "gaussian"
    quiet_trainer(tiny_config(likelihood="gaussian", decoder_std=0.1, epochs=1), gaussian).run()
    plain = tmp_path / "plain"
    shutil.copytree(trained_run, plain)
    assert main(["compare", str(trained_run), str(gaussian), str(plain), "--out", str(tmp_path / "r")]) == 0
    assert "the runs have 2 likelihoods (Bernoulli, Gaussian): in separate tables" in capsys.readouterr().out
    markdown = (tmp_path / "r" / "report.md").read_text()
    bernoulli_part, gaussian_part = markdown.split("## Gaussian likelihood")
    assert "## Bernoulli likelihood" in bernoulli_part
    assert set(table(bernoulli_part.split("## Bernoulli likelihood")[1])) == {"run", "plain"}
    gaussian_rows = table(gaussian_part.split("\n- ")[0])
    assert (
        list(gaussian_rows) == ["gaussian"] and gaussian_rows["gaussian"]["likelihood"] == "Gaussian, std 0.1"
    )
    assert "different quantities" in markdown
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<h2>Bernoulli likelihood</h2>" in html and "<h2>Gaussian likelihood</h2>" in html
    one = compare_runs([trained_run, plain], out=tmp_path / "one")["markdown"].read_text()
    assert "likelihood</h2>" not in one and "## Bernoulli" not in one and "different quantities" not in one
    assert {row["likelihood"] for row in table(one).values()} == {"Bernoulli"}
