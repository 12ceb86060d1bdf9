"""A hierarchy's fitted prior at the end of training (training/group_prior.py): fitted to the informative
units of its groups' noise, its temperatures chosen on held-out images by the measuring classifier's
Frechet distance, and the figures it reports recomputed independently."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import TINY_RUNS, error_of, tiny_config
from vaekit.cli import main
from vaekit.data import load_dataset, unit_float
from vaekit.evaluation.classifier import classify, load_classifier
from vaekit.evaluation.quality import draw_samples, feature_distance
from vaekit.models import build_model
from vaekit.models.priors.groups import ACTIVE_VARIANCE, GroupNoisePrior
from vaekit.models.saving import load
from vaekit.serve.requests import SampleRequest
from vaekit.serve.routes import _draw_samples
from vaekit.training.group_prior import choose_temperatures, fit_group_prior, training_noise
from vaekit.training.loop import Trainer

# a tiny hvae that keeps information in its groups on the bundled digits (narrower, fewer or larger
# batches, or a fixed binarization, and the KL empties every group in this many steps)
HVAE = {**TINY_RUNS["hvae"], "width": 16, "latent_channels": 4, "binarize": "dynamic", "batch_size": 32}


@pytest.fixture(scope="module")
def hvae_run(tmp_path_factory, _digits_classifier_cache):
    """That hvae trained for 12 epochs, and what its training said."""
    out = tmp_path_factory.mktemp("hvae") / "run"
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAEKIT_DATA", str(_digits_classifier_cache))
        Trainer(tiny_config(model="hvae", epochs=12, **HVAE), out, progress=False, log=lines.append).run()
    return out, "\n".join(lines)


def test_the_prior_covers_the_informative_units_down_to_the_last_group_that_has_one(hvae_run):
    model = load(hvae_run[0]).eval()
    dataset = load_dataset("digits")
    x, labels = dataset.train.images[:600], dataset.train.labels[:600]
    info = fit_group_prior(model, x, labels, 10, components=2, per_class=True)
    noise, _ = training_noise(model, x)
    informative = (noise.var(0) > ACTIVE_VARIANCE).nonzero().squeeze(1)
    sizes = [math.prod(s) for s in model.group_shapes]
    last = next(g for g in range(len(sizes)) if sum(sizes[: g + 1]) > informative.max())
    prior = model.fitted_prior
    assert isinstance(prior, GroupNoisePrior) and prior.covered_groups == last + 1 == info["groups"]
    assert prior.units.tolist() == informative.tolist() and info["units"] == len(informative)
    # one component per class: class 3's mixture is centred on class 3's noise
    fit_group_prior(model, x, labels, 10, components=1, per_class=True)
    class_mean = noise[labels == 3][:, informative].mean(0)
    torch.testing.assert_close(model.fitted_prior.mixture.means[3, 0], class_mean, atol=1e-4, rtol=1e-4)


def test_no_training_images_is_one_line():
    options = {k: v for k, v in TINY_RUNS["hvae"].items() if v is not None}
    model = build_model({"name": "hvae", "image_shape": [1, 8, 8], **options})
    empty = torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)
    assert "no training images" in error_of(fit_group_prior, model, *empty, 10, 2, True)


def test_chosen_temperatures_give_the_distance_they_report(hvae_run, digits_classifier_dir):
    model = load(hvae_run[0]).eval()
    dataset = load_dataset("digits")
    fit_group_prior(model, dataset.train.images, dataset.train.labels, 10, components=2, per_class=True)
    classifier, _ = load_classifier(dataset)
    reference = unit_float(dataset.test.images)
    info = choose_temperatures(model, reference, classifier, seed=3, samples=400, grid=(1.0, 0.8, 0.6))
    chosen = info["temperatures"]
    assert model.sample_temperature() == chosen and len(chosen) == len(model.group_shapes)
    assert info["frechet_distance"] <= info["frechet_distance_at_1"]
    # recomputed here: the same draws at the chosen temperatures give the distance reported
    with torch.no_grad():
        images, _ = draw_samples(model, 400, 3, prior="fitted", temperature=chosen)
        real = classify(classifier, reference)["features"]
        fd = feature_distance(classify(classifier, images)["features"], real)
    assert fd == pytest.approx(info["frechet_distance"], rel=1e-6)
    label = info["label"]
    assert model.sample_temperature(by_class=True) == label["temperatures"]
    with torch.no_grad():
        images, labels = draw_samples(
            model, 400, 3, prior="fitted", by_class=True, temperature=label["temperatures"]
        )
        accuracy = (classify(classifier, images)["predictions"] == labels).double().mean().item()
    assert accuracy == pytest.approx(label["label_accuracy"])
    # 95% read as their class, or (none reaching it) the best factor, at least as good as 1's
    assert label["label_accuracy"] >= 0.95 or label["label_accuracy"] >= label["label_accuracy_at_1"]


def test_training_ends_with_chosen_temperatures_that_sample_uses_and_says(
    hvae_run, tmp_path, capsys, digits_classifier_dir
):
    run, said = hvae_run
    prior = json.loads((run / "config.json").read_text())["model"]["prior"]
    assert prior["kind"] == "group_noise" and len(prior["temperatures"]) == 2
    shown = ",".join(f"{t:g}" for t in prior["temperatures"])
    assert f"sample temperatures {shown} chosen on 144 validation images" in said
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert f"at temperature {shown} (the run's, chosen on held-out images; --temperature overrides)" in out
    by_class = ",".join(f"{t:g}" for t in prior["label_temperatures"])
    assert main(["sample", str(run), "--label", "3", "--out", str(tmp_path / "3.png")]) == 0
    out = capsys.readouterr().out
    assert "of class 3 from the fitted prior" in out and f"at temperature {by_class} (the run's" in out
    assert main(["sample", str(run), "--temperature", "0.5", "--out", str(tmp_path / "t.png")]) == 0
    out = capsys.readouterr().out
    assert "at temperature 0.5 written" in out and "held-out" not in out


def test_the_explorer_samples_a_class_at_the_temperatures_chosen_for_a_class(hvae_run):
    model = load(hvae_run[0]).eval()
    model.fitted_prior.set_temperatures([1.0, 0.9], [0.5, 0.5])  # a class's unlike the others
    served = SimpleNamespace(gaussian=True, model=model)

    def seeded():
        return torch.Generator().manual_seed(5)

    drawn = _draw_samples(served, SampleRequest(n=4, label=3), seeded())
    torch.testing.assert_close(drawn, model.sample(4, label=3, generator=seeded()))
    unlabelled = model.sample(4, label=3, generator=seeded(), temperature=model.sample_temperature())
    assert not torch.equal(drawn, unlabelled)
