"""Where samples from N(0, I) fall short: the Frechet distance of codes that mix the prior with the codes.

A one-latent model's samples from N(0, I) are worse than those from its fitted prior because N(0, I)
puts mass where the training images' codes (the aggregate posterior) have none. A draw z is a
direction (z / |z|) and a radius (|z|), so mixing the two sources shows which of them is missed. For
each finished run folder this decodes 10,000 codes of each kind and gives their Frechet distance from
the test images (vaekit's measuring classifier, as ``evaluate``):

- ``standard``: z ~ N(0, I), what ``vaekit sample --prior trained`` draws;
- ``prior_directions_code_radii``: the directions of N(0, I) draws, each at the radius of a training
  image's code (drawn at random): the radii of the codes, spread over every direction;
- ``code_directions_prior_radii``: the directions of training images' codes (drawn at random), each at
  the radius of an N(0, I) draw: where the codes point, at the prior's spread of radii;
- ``gaussian_of_codes``: z ~ N(m, S), the codes' own mean and covariance;
- ``codes``: the training images' codes themselves (posterior means, drawn at random): their
  reconstructions, the floor a prior over them can reach;
- ``fitted``: the run's fitted mixture prior (``vaekit sample`` by default);

and, for both the codes and N(0, I) draws, the 5%, 50% and 95% quantiles of the radius.

Writes benchmarks/results/NAME.json. From the repository root, with runs kept by mmd_prior.py:
    .venv/bin/python benchmarks/mmd_prior.py --epochs 100 --prior-draws 8 --gan-weights 3 --keep runs
    .venv/bin/python benchmarks/prior_gaps.py runs/plain runs/mmd_K=8 runs/wae-gan_lambda=3
"""

from __future__ import annotations

import torch
from _common import measuring_classifier, run_folders_arguments
from harness import machine, write_results

from vaekit import load
from vaekit.data import ImageSet
from vaekit.evaluation.classifier import classify
from vaekit.evaluation.quality import feature_distance, sample_quality
from vaekit.evaluation.runs import load_run_dataset
from vaekit.training.priors import posterior_moments, training_split
from vaekit.utils.files import read_run_config

N_CODES = 10_000
QUANTILES = (0.05, 0.5, 0.95)


def unit(z: torch.Tensor) -> torch.Tensor:
    """Each row [N, D] divided by its length: a direction on the unit sphere."""
    return z / z.norm(dim=1, keepdim=True)


def mixed_codes(codes: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """N_CODES latents [N_CODES, D] of each kind (the module's docstring) from the training codes [N, D]."""
    n, dim = codes.shape
    prior = torch.randn(N_CODES, dim, generator=generator)
    picked = codes[torch.randint(n, (N_CODES,), generator=generator)]
    radii = codes[torch.randint(n, (N_CODES,), generator=generator)].norm(dim=1, keepdim=True)
    # a square root of the codes' covariance by its eigenvectors, which a Cholesky factor is not where
    # units are inactive (their codes all near 0, the covariance singular)
    values, vectors = torch.linalg.eigh(torch.cov(codes.T))
    mean, root = codes.mean(0), vectors * values.clamp(min=0).sqrt()
    return {
        "standard": prior,
        "prior_directions_code_radii": unit(prior) * radii,
        "code_directions_prior_radii": unit(picked) * prior.norm(dim=1, keepdim=True),
        "gaussian_of_codes": mean + prior @ root.T,
        "codes": picked,
    }


@torch.no_grad()
def gaps(run, classifier, test: ImageSet, real: torch.Tensor) -> dict[str, object]:
    """The Frechet distance of each kind of latent decoded by the model of ``run`` from the ``test``
    images (their classifier features ``real``), and the radii."""
    config = read_run_config(run)
    model = load(run).eval()
    if model.conditional or not model.fits_prior or model.latent_space.groups:
        raise SystemExit(f"{run}: this takes unconditional one-latent Gaussian models, not {model.name}")
    x, labels, _ = training_split(run, config, torch.device("cpu"))
    codes, _ = posterior_moments(model, x, labels)
    generator = torch.Generator().manual_seed(0)
    row: dict[str, object] = {}
    for kind, z in mixed_codes(codes, generator).items():
        images = torch.cat([model.decode(chunk) for chunk in z.split(1000)])
        row[kind] = feature_distance(classify(classifier, images)["features"], real)
    if model.fitted_prior is not None:
        row["fitted"] = sample_quality(model, classifier, test, N_CODES, seed=0)["frechet_distance"]
    q = torch.tensor(QUANTILES)
    row["code_radius_quantiles"] = codes.norm(dim=1).quantile(q).tolist()
    prior_radii = torch.randn(N_CODES, codes.shape[1], generator=generator).norm(dim=1)
    row["prior_radius_quantiles"] = prior_radii.quantile(q).tolist()
    return row


def main() -> None:
    args = run_folders_arguments(__doc__, "prior_gaps")
    configs = [read_run_config(run) for run in args.runs]
    names = {config["data"]["dataset"] for config in configs}
    if len(names) > 1:
        raise SystemExit(f"the runs are of {len(names)} datasets ({', '.join(sorted(names))}); give one's")
    # the classifier and the test images' features once, for every run
    dataset = load_run_dataset(configs[0])
    classifier, _ = measuring_classifier(dataset)
    real = classify(classifier, dataset.test.as_float("cpu"))["features"]
    rows = {}
    for run in args.runs:
        rows[str(run)] = gaps(run, classifier, dataset.test, real)
        shown = {
            k: [round(v, 2) for v in x] if isinstance(x, list) else round(x, 2)
            for k, x in rows[str(run)].items()
        }
        print(run, shown)
    results = {"machine": machine(), "quantiles": list(QUANTILES), "rows": rows}
    path = write_results(args.name, results, args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
