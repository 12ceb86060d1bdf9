"""Property-based tests (Hypothesis) of the config-file readers (``vaekit train --config``, sweep files):
any file, however garbled, is read or refused with a one-line VaekitError that names it; any table of
settings is a valid TrainConfig or a one-line refusal, never another exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.sweep.spec import read_sweep_file
from vaekit.training import TrainConfig
from vaekit.training.config_files import check_settings, read_config_file
from vaekit.utils.errors import VaekitError

FIELDS = sorted(TrainConfig.__dataclass_fields__)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["mlp", "conv", "hvae", "vqvae", "cvae", "digits", "iwae", "vamp", "iaf", "dynamic"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
SETTINGS = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), VALUES, max_size=6)
# TOML-ish text: real table headers and keys among noise
LINES = st.lists(
    st.one_of(
        st.sampled_from(
            ["[train]", "[search]", "[sweep]", "[model]", "", "epochs = 2", 'dataset = "digits"']
        ),
        st.builds(
            lambda k, v: f"{k} = {v}",
            st.sampled_from(FIELDS),
            st.sampled_from(["1", "0.5", '"x"', "[1, 2]", "true", "{a = 1}", "nan", "[", '"']),
        ),
        st.text(max_size=20),
    ),
    max_size=8,
)


def one_line_or_fine(call, *args) -> None:
    try:
        call(*args)
    except VaekitError as exc:
        assert "\n" not in str(exc), str(exc)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=LINES.map("\n".join) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
def test_any_train_config_file_is_read_or_refused_naming_it(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        settings_read = read_config_file(path)
    except VaekitError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        return
    one_line_or_fine(lambda: TrainConfig(**{k: v for k, v in settings_read.items()}).validate())


@settings(max_examples=150, deadline=None)
@given(values=SETTINGS)
def test_any_table_of_settings_is_a_valid_config_or_a_one_line_refusal(values):
    def check():
        checked = check_settings(dict(values), path="c.toml")
        TrainConfig(**checked).validate()

    one_line_or_fine(check)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=LINES.map("\n".join) | st.text(max_size=80))
def test_any_sweep_file_is_read_or_refused_in_one_line(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    one_line_or_fine(read_sweep_file, path)


WORDS = [
    "mlp",
    "conv",
    "cvae",
    "vqvae",
    "hvae",
    "digits",
    "mnist",
    "shapes",
    "elbo",
    "iwae",
    "btcvae",
    "factorvae",
    "mmd",
    "dip-i",
    "vamp",
    "iaf",
    "gaussian",
    "bernoulli",
    "standard",
    "dynamic",
    "bf16",
    "cpu",
    "adamax",
    "cosine",
    "grey",
    "10s",
    "x",
] + [""]


def _typed(hint) -> st.SearchStrategy:
    """Values of a TrainConfig field's type, edge cases included, so that validate itself is reached."""
    import types
    import typing

    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return st.one_of([_typed(a) for a in args])
    if hint is type(None):
        return st.none()
    if typing.get_origin(hint) is list:
        return st.lists(_typed(args[0]), max_size=3)
    if typing.get_origin(hint) is dict:
        return st.dictionaries(
            st.sampled_from(["blocks", "depth", "hidden", "x"]), st.integers(-2, 4), max_size=2
        )
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-3, 300)
    if hint is float:
        return st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, 1e-3, -1.0, 0.5])
    return st.sampled_from(WORDS)


def _typed_settings() -> st.SearchStrategy:
    import typing

    hints = typing.get_type_hints(TrainConfig)
    hints.pop("data_dir")  # a folder on this machine: not a setting to fuzz
    return st.fixed_dictionaries({}, optional={name: _typed(hint) for name, hint in hints.items()})


@settings(max_examples=200, deadline=None)
@given(values=_typed_settings())
def test_any_well_typed_settings_are_valid_or_refused_in_one_line(values):
    one_line_or_fine(lambda: TrainConfig(**values).validate())
