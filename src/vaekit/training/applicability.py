"""Where each training option applies: one table of option x model kind x dataset kind.

``TrainConfig.validate`` refuses, from this table alone, an option given where it does not apply, and
tests/training/test_applicability.py tests every cell of it for every registered model and every kind
of dataset. A setting of TrainConfig is either a row here or in ``EVERYWHERE``: a test fails on a new
setting that is in neither, so that nothing new is accepted silently where it means nothing.

Model kinds: ``one-latent`` (a Gaussian latent: mlp, conv, cvae, plugins), ``hierarchy`` (groups of
Gaussian latents: hvae), ``discrete`` (codes: vqvae). Dataset kinds: ``fixed`` (the MNIST family and
digits, at their own size), ``generated`` (shapes, drawn at any size), ``folder`` (folder:PATH).
Rules that depend on another setting's value (``--k`` with ``--objective iwae`` only, a hierarchy's
objectives) stay beside the settings they tie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vaekit.data import FOLDER_PREFIX, SIZED
from vaekit.models import MODELS, model_class
from vaekit.models.parts import all_options, option_parts
from vaekit.utils.errors import VaekitError

MODEL_KINDS = ("one-latent", "hierarchy", "discrete")
DATASET_KINDS = ("fixed", "generated", "folder")
GAUSSIAN = frozenset({"one-latent", "hierarchy"})
ONE_LATENT = frozenset({"one-latent"})
HIERARCHY = frozenset({"hierarchy"})
ALL_MODELS, ALL_DATASETS = frozenset(MODEL_KINDS), frozenset(DATASET_KINDS)


@dataclass(frozen=True)
class Rule:
    """Where an option applies, and how to tell that it was given (a value other than its default)."""

    given: Callable[[Any], bool]
    models: frozenset[str] = ALL_MODELS
    datasets: frozenset[str] = ALL_DATASETS
    flag: Callable[[Any], str] | None = None  # the option as the user wrote it (default: --name)
    example: Any = None  # a valid value that gives it, for the test of every cell
    needs: dict[str, Any] = field(default_factory=dict)  # settings it goes with (k: objective iwae)


def _set(name: str) -> Callable[[Any], bool]:
    return lambda config: getattr(config, name) is not None


def _not(name: str, default: Any) -> Callable[[Any], bool]:
    return lambda config: getattr(config, name) != default


RULES: dict[str, Rule] = {
    "beta": Rule(_not("beta", 1.0), GAUSSIAN, example=4.0),
    "kl_warmup": Rule(lambda c: c.kl_warmup not in (None, 0), GAUSSIAN, example=2),
    "free_bits": Rule(lambda c: c.free_bits != 0, ONE_LATENT, example=0.5),
    "objective": Rule(
        _not("objective", "elbo"), GAUSSIAN, flag=lambda c: f"--objective {c.objective}", example="iwae"
    ),
    "prior": Rule(_not("prior", "standard"), ONE_LATENT, flag=lambda c: f"--prior {c.prior}", example="vamp"),
    "posterior": Rule(
        _not("posterior", "gaussian"), ONE_LATENT, flag=lambda c: f"--posterior {c.posterior}", example="iaf"
    ),
    "kl_balance": Rule(lambda c: c.kl_balance is True, HIERARCHY, example=True),
    # the mixture fitted at the end is over a Gaussian latent (a vqvae's prior: vaekit train-prior)
    "fit_prior": Rule(
        lambda c: c.fit_prior is False, GAUSSIAN, flag=lambda c: "--no-fit-prior", example=False
    ),
    "prior_components": Rule(_set("prior_components"), GAUSSIAN, example=4),
    "image_size": Rule(_set("image_size"), datasets=frozenset({"generated", "folder"}), example=[32, 32]),
    "colour": Rule(
        _set("colour"), datasets=frozenset({"folder"}), flag=lambda c: "--grey/--rgb", example="grey"
    ),
}


def part_rules() -> dict[str, Rule]:
    """A row for every option of every registered part (``models.parts``), generated from its spec:
    given when ``part_options`` holds it, it applies to the models its part's requirements allow (the
    one-latent ones where the part needs one latent, else every Gaussian-latent model) and goes with
    its part (``needs``: the first part that takes it). Its example is its default."""
    rules = {}
    for name, (kind, _, spec_field) in all_options().items():
        owner = option_parts(kind, name)[0]
        one = "one latent" in owner.requires
        takes = [  # the models that take the part: a Gaussian latent, one if it needs one
            cls
            for cls in MODELS.values()
            if cls.latent_kind != "codes" and (not one or cls.latent_kind == "vector")
        ]
        models = frozenset(model_kind(cls) for cls in takes)
        default = spec_field.default_factory() if callable(spec_field.default_factory) else spec_field.default
        given = lambda c, name=name: name in (c.part_options or {})  # noqa: E731
        rules[name] = Rule(given, models, example=default, needs={kind: owner.name})
    return rules


# The settings that shape the model apply where its class's constructor takes them (plugins included):
# training.model_settings.check_model_settings refuses them from there. Example values for the test.
MODEL_SETTING_EXAMPLES: dict[str, Any] = {
    "latent_dim": 3, "hidden": [16], "channels": [8, 16], "likelihood": "gaussian", "codebook_size": 8,
    "scales": 2, "groups": 1, "latent_channels": 2, "width": 8, "encoder_blocks": 1, "stem": 1,
    "logvar_limit": 5.0, "decoder_std": 0.3,
}  # fmt: skip

# Settings that apply to every model and dataset.
EVERYWHERE = frozenset({
    "dataset", "data_dir", "model", "model_options", "epochs", "batch_size", "lr", "optimizer", "lr_schedule",
    "grad_clip", "skip_threshold", "max_skipped", "ema", "seed", "val_fraction", "augment", "binarize",
    "precision", "early_stopping", "device", "compile", "save_every", "max_time", "tensorboard", "mlflow",
    "part_options",  # each option's own row: part_rules
})  # fmt: skip


def model_kind(cls: type) -> str:
    """The applicability table's column of a model class: by the kind of its latent."""
    return {"vector": "one-latent", "hierarchy": "hierarchy", "codes": "discrete"}[cls.latent_kind]


def dataset_kind(name: str) -> str:
    if name.startswith(FOLDER_PREFIX):
        return "folder"
    return "generated" if name in SIZED else "fixed"


def _models_of(kinds: frozenset[str]) -> str:
    names = sorted(name for name, cls in MODELS.items() if model_kind(cls) in kinds)
    what = {GAUSSIAN: "the Gaussian-latent models", ONE_LATENT: "the one-latent Gaussian models"}
    what[HIERARCHY] = "the hierarchies"
    return f"{what[kinds]} ({', '.join(names)})"


def _datasets_of(kinds: frozenset[str]) -> str:
    return "folder: datasets" + (f" and {', '.join(SIZED)}" if "generated" in kinds else "")


def check_applicability(config: Any) -> None:
    """Refuse the first option of ``config`` (a TrainConfig) given where RULES say it does not apply."""
    kind, data = model_kind(model_class(config.model)), dataset_kind(config.dataset)
    for name, rule in {**RULES, **part_rules()}.items():
        if not rule.given(config):
            continue
        flag = rule.flag(config) if rule.flag else f"--{name.replace('_', '-')}"
        verb = "apply" if "/" in flag else "applies"
        if kind not in rule.models:
            raise VaekitError(f"{flag} {verb} to {_models_of(rule.models)}, not {config.model}")
        if data not in rule.datasets:
            raise VaekitError(f"{flag} {verb} to {_datasets_of(rule.datasets)}, not {config.dataset}")
