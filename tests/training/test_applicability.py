"""Every cell of training.applicability's table, for every registered model and every kind of dataset: an
option given where it applies is taken, and where it does not, refused in one line that names it; and
every setting of TrainConfig is in the table, so that a new one cannot be forgotten."""

from __future__ import annotations

from dataclasses import fields

import pytest

from tests.conftest import error_of
from vaekit.cli import main
from vaekit.models import MODELS, accepted_options, model_class
from vaekit.training.applicability import (
    DATASET_KINDS,
    EVERYWHERE,
    MODEL_SETTING_EXAMPLES,
    RULES,
    model_kind,
    part_rules,
)
from vaekit.training.model_settings import MODEL_SETTINGS
from vaekit.training.settings import TrainConfig


@pytest.fixture
def datasets(tmp_path) -> dict[str, str]:
    """A dataset of each kind (validate reads the name only: nothing is loaded)."""
    (tmp_path / "images").mkdir()
    return {"fixed": "digits", "generated": "shapes", "folder": f"folder:{tmp_path / 'images'}"}


def test_every_setting_is_in_the_table_or_applies_everywhere():
    settings = {f.name for f in fields(TrainConfig)}
    assert set(MODEL_SETTING_EXAMPLES) == set(MODEL_SETTINGS)
    listed = [*RULES, *MODEL_SETTING_EXAMPLES, *EVERYWHERE]
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == settings, (
        f"not in the table: {settings - set(listed)}; gone: {set(listed) - settings}"
    )


def _where(option: str, model: str, kind: str) -> bool:
    rule = RULES[option]
    return model_kind(model_class(model)) in rule.models and kind in rule.datasets


CELLS = [(option, model, kind) for option in RULES for model in sorted(MODELS) for kind in DATASET_KINDS]


@pytest.mark.parametrize("option, model, kind", CELLS, ids=["-".join(cell) for cell in CELLS])
def test_each_option_is_taken_where_the_table_says_and_refused_elsewhere(option, model, kind, datasets):
    rule = RULES[option]
    given = {**rule.needs, option: rule.example}
    config = TrainConfig(dataset=datasets[kind], model=model, **given)
    # the options given, in the table's order; the first that does not apply here is the one refused
    refused = [name for name in RULES if name in given and not _where(name, model, kind)]
    if not refused:
        config.validate()
        return
    first = RULES[refused[0]]
    flag = first.flag(config) if first.flag else f"--{refused[0].replace('_', '-')}"
    wrong_model = model_kind(model_class(model)) not in first.models
    message = error_of(config.validate)
    assert message.startswith(f"{flag} appl") and message.endswith(
        f", not {model if wrong_model else config.dataset}"
    )


SETTING_CELLS = [(name, model) for name in MODEL_SETTING_EXAMPLES for model in sorted(MODELS)]


@pytest.mark.parametrize("name, model", SETTING_CELLS, ids=["-".join(cell) for cell in SETTING_CELLS])
def test_each_model_setting_applies_where_the_model_takes_it(name, model):
    given = {name: MODEL_SETTING_EXAMPLES[name]}
    if name == "decoder_std":
        given["likelihood"] = "gaussian"
    config = TrainConfig(dataset="digits", model=model, **given)
    missing = [n for n in given if n not in accepted_options(model_class(model))]  # its constructor's
    if not missing:
        config.validate()
    else:
        assert error_of(config.validate).startswith(
            f"--{missing[0].replace('_', '-')} does not apply to model"
        )


def test_the_command_line_refuses_from_the_same_table(capsys):
    assert main(["train", "--dataset", "digits", "--model", "vqvae", "--kl-warmup", "2"]) == 1
    assert capsys.readouterr().err.strip() == (
        "vaekit train: error: --kl-warmup applies to the Gaussian-latent models (conv, cvae, hvae, mlp), "
        "not vqvae"
    )
    assert main(["train", "--dataset", "digits", "--model", "mlp", "--kl-balance"]) == 1
    assert "--kl-balance applies to the hierarchies (hvae), not mlp" in capsys.readouterr().err


# every option of every registered part (models.parts), in the rows generated from its spec
PART_CELLS = [(option, model) for option in part_rules() for model in sorted(MODELS)]


@pytest.mark.parametrize("option, model", PART_CELLS, ids=["-".join(cell) for cell in PART_CELLS])
def test_each_part_option_is_taken_where_its_generated_row_says_and_refused_elsewhere(option, model):
    """Issue 34: the parts' rows are generated from their specs; an option goes with its part (``needs``)
    and applies to the models its part's requirements allow."""
    rule = part_rules()[option]
    config = TrainConfig(dataset="digits", model=model, **rule.needs, part_options={option: rule.example})
    rows = {**RULES, **part_rules()}
    given = [name for name in rows if rows[name].given(config)]
    refused = [name for name in given if model_kind(model_class(model)) not in rows[name].models]
    if not refused:
        config.validate()
        assert config.part_options[option] == rule.example
        return
    first = rows[refused[0]]
    flag = first.flag(config) if first.flag else f"--{refused[0].replace('_', '-')}"
    assert error_of(config.validate).startswith(f"{flag} appl")


def test_an_option_of_a_part_not_chosen_names_the_part_it_goes_with():
    config = TrainConfig(dataset="digits", part_options={"lambda_od": 3.0})
    assert error_of(config.validate) == "--lambda-od applies to --objective dip-i or dip-ii, not elbo"
