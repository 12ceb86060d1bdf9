"""Property-based tests (Hypothesis) of the CLI's number parsing: any text either gives a value that
meets the option's rule or is refused with argparse's usage error, never another exception."""

from __future__ import annotations

import argparse
import math

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from vaekit.cli import arguments

# text that looks like numbers half the time: digits, signs, points, exponents, nan/inf, commas, units
NUMBERISH = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A[-+]?[0-9_]{0,30}(\.[0-9]{0,12})?([eE][-+]?[0-9]{1,4})?\Z"),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-0", "1_000", " 7 ", "9" * 5000, "", ","]),
    st.lists(st.from_regex(r"\A-?[0-9]{1,6}(\.[0-9]{1,3})?\Z"), max_size=5).map(",".join),
    st.from_regex(r"\A([0-9]{1,4}(\.[0-9])?[smhd]){1,3}\Z"),
    st.from_regex(r"\A[0-9]{1,5}[xX][0-9]{1,5}\Z"),
)

RULES = {
    "positive_int": (arguments.positive_int, lambda v: isinstance(v, int) and v >= 1),
    "non_negative_int": (arguments.non_negative_int, lambda v: isinstance(v, int) and v >= 0),
    "finite_float": (arguments.finite_float, math.isfinite),
    "positive_float": (arguments.positive_float, lambda v: math.isfinite(v) and v > 0),
    "non_negative_float": (arguments.non_negative_float, lambda v: math.isfinite(v) and v >= 0),
    "fraction": (arguments.fraction, lambda v: 0 <= v < 1),
    "sizes": (arguments.sizes("32,64"), lambda v: v and all(isinstance(s, int) and s >= 1 for s in v)),
    "duration": (arguments.duration, lambda v: math.isfinite(v) and v > 0),
    "image_size": (arguments.image_size, lambda v: len(v) == 2 and all(1 <= s <= 1024 for s in v)),
    "temperatures": (
        arguments.temperatures,
        lambda v: all(math.isfinite(t) and t > 0 for t in (v if isinstance(v, list) else [v])),
    ),
}


@settings(max_examples=150, deadline=None)
@given(text=NUMBERISH, rule=st.sampled_from(sorted(RULES)))
@example(text="9" * 400, rule="duration")  # found by Hypothesis in CI: it parsed to an infinite budget
def test_every_number_option_parses_to_a_valid_value_or_a_usage_error(text, rule):
    parse, valid = RULES[rule]
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert valid(value), (rule, text, value)


@settings(max_examples=50, deadline=None)
@given(name=st.text(max_size=10), value=st.text(max_size=30))
def test_a_model_option_is_a_name_and_a_value_or_a_usage_error(name, value):
    assume("=" not in name)  # the first "=" ends the name
    parser = arguments.Parser(prog="vaekit")
    parser.add_argument("--model-option", dest="model_options", action=arguments.ModelOption)
    try:
        namespace = parser.parse_args(["--model-option", f"{name}={value}"])
    except SystemExit as exit_:
        assert exit_.code == 2
        return
    assert list(namespace.model_options) == [name.strip()] and name.strip()
