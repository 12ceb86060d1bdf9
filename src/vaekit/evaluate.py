"""Evaluation of a trained model: the negative ELBO per image, its parts and the model's own terms."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vaekit.atomic import write_json
from vaekit.data import Dataset, ImageSet, binarize, load_dataset, split_train_val, unit_float
from vaekit.devices import resolve_device
from vaekit.errors import VaekitError
from vaekit.models import VAE, GaussianVAE
from vaekit.saving import load, read_run_config


@torch.no_grad()
def elbo_terms(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 1000,
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """Per-image means of every term of ``model.loss`` (``loss`` = negative ELBO, ``recon``, ``kl``, and
    the model's own, e.g. ``iwae``) over ``images`` (float, [0, 1]) with their ``labels``.

    ``options`` go to ``model.loss`` (e.g. ``iwae_k``). z is drawn from a generator seeded with ``seed``,
    so the estimate is reproducible and draws nothing from the global RNG (training's noise stream is
    left as it was). Sums are kept in float64.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        batch = unit_float(images[start : start + batch_size])
        batch_labels = None if labels is None else labels[start : start + batch_size]
        terms = model.loss(batch, batch_labels, generator=generator, **options).terms
        for name, value in terms.items():
            totals[name] = totals.get(name, 0.0) + value.double() * len(batch)
    model.train(was_training)
    return {name: (total / max(len(images), 1)).item() for name, total in totals.items()}


@torch.no_grad()
def reconstruction_errors(
    model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000
) -> dict[str, float]:
    """How far ``model.reconstruct`` (pixel means from the most likely latent) is from the images.

    ``recon_bce``: binary cross-entropy summed over pixels, averaged over images (nats per image;
    reconstructions clamped to [1e-6, 1 - 1e-6], so a Gaussian decoder's means outside [0, 1] count as
    the nearest valid value). ``recon_mse``: squared error averaged over pixels and images.
    Unlike ``recon`` (an expectation over z ~ q(z|x)), both use one deterministic reconstruction.
    """
    was_training = model.training
    model.eval()
    bce = sse = 0.0
    for start in range(0, len(images), batch_size):
        x = unit_float(images[start : start + batch_size]).float()
        y = None if labels is None else labels[start : start + batch_size]
        r = model.reconstruct(x, y).float()
        bce += F.binary_cross_entropy(r.clamp(1e-6, 1 - 1e-6), x, reduction="sum").double().item()
        sse += (r - x).square().sum().double().item()
    model.train(was_training)
    n = max(len(images), 1)
    return {"recon_bce": bce / n, "recon_mse": sse / (n * math.prod(images.shape[1:]))}


@torch.no_grad()
def iwae_nll(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    k: int = 5000,
    seed: int = 0,
    max_decodes: int = 1024,
    prior: str = "standard",
) -> torch.Tensor:
    """Importance-sampled estimate of -log p(x) per image: -L_k with k draws z_i ~ q(z|x) (Burda et al. 2015).

    -log p(x) ~= -log (1/k) sum_i p(x, z_i) / q(z_i | x). For each image the k log-weights are taken in
    chunks of at most ``max_decodes`` decoded images in all (images x draws; small chunks stay in
    the CPU's cache: 1,024 ran 2.1x faster than 32,768 for the MLP VAE), combined by a running
    log-sum-exp, so memory stays bounded whatever k is and nothing underflows. In expectation -L_k is
    above -log p(x), falls with k and is at most the negative ELBO. Draws come from a generator seeded
    with ``seed`` (the global RNG is untouched). ``prior`` is p(z) in the weights: "standard", the one
    the model was trained with, or "fitted", its fitted mixture (a different generative model, whose
    -log p(x) this then estimates). Shapes: images [N, C, H, W] -> [N], nats, float64.
    """
    if k < 1:
        raise VaekitError(f"the number of importance samples must be >= 1, got {k}")
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=images.device).manual_seed(seed)
    batch = max(1, min(len(images), max_decodes // min(k, max_decodes)))
    chunk = max(1, max_decodes // batch)
    out = torch.empty(len(images), dtype=torch.float64, device=images.device)
    for start in range(0, len(images), batch):
        x = unit_float(images[start : start + batch])
        y = None if labels is None else labels[start : start + batch]
        posterior = tuple(t.float() for t in model.encode(x, y))
        total = torch.full((len(x),), -math.inf, dtype=torch.float64, device=x.device)
        for done in range(0, k, chunk):
            log_w, _ = model.log_weights(
                x, y, min(chunk, k - done), generator, posterior=posterior, prior=prior
            )
            total = torch.logaddexp(total, torch.logsumexp(log_w.double(), dim=0))
        out[start : start + len(x)] = -(total - math.log(k))
    model.train(was_training)
    return out


@torch.no_grad()
def latent_statistics(
    model: GaussianVAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 1000,
    threshold: float = 0.01,
) -> dict[str, Any]:
    """Active units and the KL per latent dimension over ``images``.

    A unit u is active when Cov_x(E_q(u|x)[u]) > ``threshold`` (Burda et al. 2015, sec. 5.2: the posterior
    mean moves with the input); a unit whose mean does not is unused by the model (posterior collapse).
    ``kl_per_dim``: KL(q(z_j|x) || p(z_j)) against the trained prior (N(0, 1), or a conditional model's
    N(m_yj, 1)) averaged over the images, nats, one per dimension.
    """
    was_training = model.training
    model.eval()
    means, kls = [], []
    for start in range(0, len(images), batch_size):
        y = None if labels is None else labels[start : start + batch_size]
        mu, logvar = (t.float() for t in model.encode(unit_float(images[start : start + batch_size]), y))
        means.append(mu.double())
        kls.append(model.kl_per_dim(mu, logvar, y).double().sum(0))
    model.train(was_training)
    mu = torch.cat(means)
    variance = mu.var(dim=0, unbiased=False)
    kl_per_dim = (torch.stack(kls).sum(0) / len(images)).tolist()
    return {
        "active_units": int((variance > threshold).sum()),
        "latent_dim": model.latent_dim,
        "posterior_mean_variance": variance.tolist(),
        "kl_per_dim": kl_per_dim,
    }


def bits_per_dim(nats_per_image: float, image_shape: tuple[int, ...]) -> float:
    """Nats per image -> bits per pixel (and channel): divide by the pixel count and by ln 2."""
    return nats_per_image / (math.prod(image_shape) * math.log(2))


def nll_bits_key(split: str) -> str:
    """The eval.json key of -log p(x) in bits per dimension: ``bits_per_dim`` for the test split, and
    ``val_iwae_bits_per_dim`` for val, whose ``val_bits_per_dim`` is already its -ELBO's."""
    return "bits_per_dim" if split == "test" else f"{split}_iwae_bits_per_dim"


def eval_options(train_config: dict[str, Any]) -> dict[str, Any]:
    """The ``model.loss`` options an evaluation of a run uses: its IWAE k, if it trained on that bound."""
    if train_config.get("objective") == "iwae":
        return {"iwae_k": train_config["k"]}
    return {}


def eval_record(terms: dict[str, float], split: str, n_images: int, epochs: int | None) -> dict[str, Any]:
    """The eval.json entries of one split: ``{split}_{term}`` for each term and ``{split}_n_images``."""
    record: dict[str, Any] = {f"{split}_{k}": v for k, v in terms.items()}
    record.update({f"{split}_n_images": n_images, "epochs_trained": epochs})
    return record


def write_eval(path: Path, record: dict[str, Any]) -> None:
    """Merge ``record`` into the eval.json at ``path``, so that a val evaluation keeps the test figures."""
    previous = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, {**previous, **record})


def run_data_dir(config: dict[str, Any], data_dir: str | os.PathLike | None = None) -> str | None:
    """The data folder of a run: ``data_dir`` if given, else the one it trained from (None: the default)."""
    return data_dir or config["data"]["data_dir"]


def load_run_dataset(
    config: dict[str, Any],
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """The dataset of a run (its config.json), prepared as for training (image size, colour)."""
    train = config["train"]
    return load_dataset(
        config["data"]["dataset"],
        run_data_dir(config, data_dir),
        image_size=train.get("image_size"),
        colour=train.get("colour"),
        log=log or (lambda line: None),
    )


def run_split(
    config: dict[str, Any],
    split: str,
    data_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
) -> ImageSet:
    """The test or validation images of a run (its config.json), as it was split for training."""
    if split not in ("test", "val"):
        raise VaekitError(f"unknown split {split!r}; choose test or val")
    if dataset is None:
        dataset = load_run_dataset(config, data_dir)
    if split == "test":
        return dataset.test
    _, images = split_train_val(dataset.train, config["train"]["val_fraction"], config["train"]["seed"])
    if len(images) == 0:
        raise VaekitError("the run was trained with no validation split")
    return images


def evaluate_run(
    run: str | os.PathLike,
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    write: bool = True,
    iwae_k: int = 0,
    samples: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a run folder's model on its dataset's ``split`` (test or val); merge it into eval.json.

    Keys: ``{split}_loss``, ``{split}_recon``, ``{split}_kl`` and the model's other terms (nats per
    image), ``{split}_n_images``, ``epochs_trained``, ``{split}_bits_per_dim`` (of the negative ELBO),
    ``{split}_recon_bce`` and ``{split}_recon_mse``; for Gaussian-latent models ``active_units`` and
    ``kl_per_dim``, and with ``iwae_k`` > 0 the importance-sampled ``iwae_nll`` (nats per image,
    k = ``iwae_k``) and its ``bits_per_dim`` (see ``nll_bits_key``). With ``samples`` > 0, the sample
    quality of that many samples against the split's images (see ``quality.sample_quality``:
    ``frechet_distance``, ``class_histogram``, ``mode_coverage``, ``class_tv_distance``, conditional
    models ``label_accuracy``) and the measuring classifier's ``classifier_test_accuracy``. Keys
    without a split prefix are the test split's; a val evaluation prefixes them with ``val_``. ``log``
    gets notes (training the classifier, a model that cannot sample yet).
    """
    run = Path(run)
    config = read_run_config(run)
    dataset = load_run_dataset(config, data_dir, log)
    images = run_split(config, split, dataset=dataset)
    dev = resolve_device(device)
    model = load(run, device=dev)
    if iwae_k and not isinstance(model, GaussianVAE):
        raise VaekitError(f"--iwae-k applies to the Gaussian-latent models, not {model.name}")
    x, labels = images.images.to(dev), images.labels.to(dev)  # uint8: the evaluators convert batches
    if config["train"].get("binarize", "none") != "none":  # the same fixed binary images as training saw
        x = binarize(unit_float(x), split)
    seed = config["train"]["seed"]
    terms = elbo_terms(model, x, labels, seed=seed, **eval_options(config["train"]))
    result = eval_record(terms, split, len(images), config.get("epochs_completed"))
    prefix = "" if split == "test" else f"{split}_"
    result[f"{split}_bits_per_dim"] = bits_per_dim(terms["loss"], model.image_shape)
    result.update({f"{split}_{k}": v for k, v in reconstruction_errors(model, x, labels).items()})
    if isinstance(model, GaussianVAE):
        stats = latent_statistics(model, x, labels)
        result[f"{prefix}active_units"] = stats["active_units"]
        result[f"{prefix}kl_per_dim"] = stats["kl_per_dim"]
        if iwae_k:
            nll = iwae_nll(model, x, labels, k=iwae_k, seed=seed).mean().item()
            result.update(
                {
                    f"{prefix}iwae_nll": nll,
                    f"{prefix}iwae_k": iwae_k,
                    nll_bits_key(split): bits_per_dim(nll, model.image_shape),
                }
            )
            if model.prior is not None:  # the same estimate with the fitted mixture as p(z)
                fitted = iwae_nll(model, x, labels, k=iwae_k, seed=seed, prior="fitted").mean().item()
                result[f"{prefix}fitted_iwae_nll"] = fitted
    if dataset.factor_names and isinstance(model, GaussianVAE):
        scores = disentanglement_scores(model, x, labels, images.factors, dataset.factor_names)
        result.update({f"{prefix}{k}": v for k, v in scores.items()})
    if samples and not model.can_sample:
        if log:
            log(f"no sample quality: this {model.name} run cannot sample until vaekit train-prior has run")
    elif samples and dataset.num_classes == 0:
        if log:
            log(
                f"no sample quality: {dataset.name} has no classes to train the measuring classifier on "
                "(give the folder class subfolders to have it)"
            )
    elif samples:
        from vaekit.quality import label_swap_accuracy, load_classifier, sample_quality

        classifier, info = load_classifier(dataset, device=dev, log=log)
        # A Gaussian-latent model is measured with N(0, I) (unprefixed keys) and with its fitted prior
        # (fitted_*); a vqvae with its prior over codes, the only one it has.
        priors = [("", "standard" if isinstance(model, GaussianVAE) else None)]
        if isinstance(model, GaussianVAE) and model.prior is not None:
            priors.append(("fitted_", "fitted"))
        for key_prefix, prior in priors:
            quality = sample_quality(model, classifier, images, n_samples=samples, seed=seed, prior=prior)
            result.update({f"{prefix}{key_prefix}{k}": v for k, v in quality.items()})
        result[f"{prefix}classifier_test_accuracy"] = info["test_accuracy"]
        if model.conditional:
            swap = label_swap_accuracy(model, classifier, images, seed=seed)
            result.update({f"{prefix}{k}": v for k, v in swap.items()})
    if write:
        write_eval(run / "eval.json", result)
    return result


def disentanglement_scores(
    model: GaussianVAE, x: torch.Tensor, labels: torch.Tensor, factors: torch.Tensor, names: list[str]
) -> dict[str, Any]:
    """MIG (with its term per factor, by name) and the FactorVAE score of the posterior means of images
    ``x`` against their known ``factors`` [N, K] (value indices), as in vaekit.disentanglement."""
    from vaekit.analysis import latent_means
    from vaekit.disentanglement import factor_vae_score, mig

    means = latent_means(model, x, labels).double().numpy()
    gap = mig(means, factors.numpy())
    return {
        "mig": gap["mig"],
        "mig_per_factor": dict(zip(names, gap["per_factor"], strict=True)),
        "factor_vae_score": factor_vae_score(means, factors.numpy(), seed=0)["factor_vae_score"],
    }


def collapse_warning(result: dict[str, Any], latent_dim: int) -> str | None:
    """A plain warning when few latent units carry information (posterior collapse), else None."""
    active = next((v for k, v in result.items() if k.endswith("active_units")), None)
    if active is None or active > max(1, latent_dim // 4):
        return None
    return (
        f"warning: only {active} of {latent_dim} latent units are active (their posterior mean varies "
        "with the input); the rest have collapsed to the prior"
    )


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, list):
        return " ".join("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def _percentages(values: list[float | None]) -> str:
    return " ".join("-" if a is None else f"{a:.0%}" for a in values)


def format_result(result: dict[str, Any], split: str = "test") -> str:
    """An evaluation (``evaluate_run``'s result) as a table for people: grouped, labelled, with units.

    Every entry of ``result`` appears: those the table does not know (a model's own terms, say) are listed
    last under their eval.json names.
    """
    shown: set[str] = set()

    def take(key: str) -> Any:
        shown.add(key)
        return result.get(key)

    p, q = f"{split}_", "" if split == "test" else f"{split}_"  # per-split terms; latent and sample figures
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    rows: list[tuple[str, str]] = []
    loss, recon, kl = take(p + "loss"), take(p + "recon"), take(p + "kl")
    bpd = take(p + "bits_per_dim")
    if loss is not None:
        parts = f"   recon {recon:.2f} + kl {kl:.2f}" if recon is not None and kl is not None else ""
        rows.append(("-ELBO", f"{loss:.2f}" + ("" if bpd is None else f"   {bpd:.4f} bits/dim") + parts))
    nll, k, nll_bpd = take(q + "iwae_nll"), take(q + "iwae_k"), take(nll_bits_key(split))
    if nll is not None:
        rows.append((f"-log p(x), k={k}", f"{nll:.2f}   {nll_bpd:.4f} bits/dim"))
    fitted_nll = take(q + "fitted_iwae_nll")
    if fitted_nll is not None:
        rows.append(("  with the fitted prior", f"{fitted_nll:.2f}   (p(z) = the fitted mixture, same k)"))
    sections.append(("likelihood (nats per image, lower is better)", rows))
    rows = []
    for key, label in ((p + "recon_bce", "BCE per image"), (p + "recon_mse", "MSE per pixel")):
        if take(key) is not None:
            rows.append((label, _text(result[key])))
    sections.append(("reconstruction from the posterior mean", rows))
    rows = []
    kl_per_dim, active = take(q + "kl_per_dim"), take(q + "active_units")
    if active is not None:
        rows.append(("active units", f"{active} of {len(kl_per_dim)}"))
    if kl_per_dim is not None:
        rows.append(("KL per dimension", _text(kl_per_dim)))
    gap, per_factor, factor_vae = take(q + "mig"), take(q + "mig_per_factor"), take(q + "factor_vae_score")
    if gap is not None:
        terms = "  ".join(f"{name} {value:.2f}" for name, value in per_factor.items())
        rows.append(("MIG (Chen et al. 2018)", f"{gap:.3f}   {terms}"))
    if factor_vae is not None:
        rows.append(("FactorVAE score", f"{factor_vae:.1%}   (Kim & Mnih 2018; chance 1/factors)"))
    sections.append(("latent", rows))
    rows = []
    # One column per prior the samples came from: N(0, I) (or a vqvae's code prior) and the fitted one.
    columns = [(q, "N(0, I)")] + (
        [(q + "fitted_", "fitted prior")] if q + "fitted_frechet_distance" in result else []
    )

    def row(label: str, key: str, show: Callable[[Any], str]) -> None:
        values = [take(prefix + key) for prefix, _ in columns]
        if any(v is not None for v in values):
            rows.append((label, "".join(("-" if v is None else show(v)).ljust(18) for v in values).rstrip()))

    if len(columns) > 1:
        rows.append(("", "".join(title.ljust(18) for _, title in columns).rstrip()))
    row("Frechet distance", "frechet_distance", _text)
    row("class mix distance (TV)", "class_tv_distance", _text)
    row("mode coverage", "mode_coverage", lambda v: f"{v} of {len(result[q + 'class_histogram'])} classes")
    row("label accuracy", "label_accuracy", lambda v: f"{v:.1%}")
    for prefix, title in columns:
        histogram = take(prefix + "class_histogram")
        if histogram is not None:
            where = f" ({title})" if len(columns) > 1 else ""
            rows.append((f"samples per class{where}", " ".join(f"{c}:{n}" for c, n in enumerate(histogram))))
        per_class = take(prefix + "label_accuracy_per_class")
        if per_class is not None:
            where = f" ({title})" if len(columns) > 1 else ""
            rows.append((f"label accuracy per class{where}", _percentages(per_class)))
    swap = take(q + "label_swap_accuracy")
    if swap is not None:
        rows.append(("label swap test", f"{swap:.1%} of latents decoded with another label show it"))
        rows.append(("  per new label", _percentages(take(q + "label_swap_accuracy_per_class"))))
    count, accuracy = take(q + "quality_samples"), take(q + "classifier_test_accuracy")
    take(q + "fitted_quality_samples")
    title = "sample quality"
    if count is not None:
        each = " each" if len(columns) > 1 else ""
        title += f" ({count:,} samples{each}; the classifier is {accuracy:.2%} accurate on the test set)"
    sections.append((title, rows))
    n, epochs = take(p + "n_images"), take("epochs_trained")
    rows = [(key, _text(value)) for key, value in result.items() if key not in shown]
    sections.append(("the model's other figures (eval.json names)", rows))

    labels = [label for _, rows in sections for label, _ in rows]
    width = max((len(label) for label in labels), default=0)
    lines = [f"{split} split: {n:,} images" + ("" if epochs is None else f", after {epochs} epochs")]
    for title, rows in sections:
        if rows:
            lines += ["", title] + [f"  {label.ljust(width)}  {text}" for label, text in rows]
    return "\n".join(lines)
