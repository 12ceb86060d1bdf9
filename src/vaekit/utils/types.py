"""Whether a value read from TOML, JSON or a command line is of a type hint, and the hint in words: the
checks of config files' settings and of a model's own options."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as TOML or JSON gives it) is of type ``hint`` (a TrainConfig field's, a model
    option's): unions, None, lists (and sequences) of a type, tables, bool, int, float (an int too)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, collections.abc.Sequence):  # TOML and JSON give every sequence as a list
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is dict:  # model_options: names to values, each checked by the model
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:  # TOML and JSON write 1.0 as 1 too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(hint, type) and isinstance(value, hint)


def describe_type(hint: Any) -> str:
    """``hint`` in words, for an error: "an integer", "a list of numbers", "true or false"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args if a is not type(None))
    if origin is dict:
        return "a table of name = value"
    if origin in (list, tuple, collections.abc.Sequence):
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(args[0], str(args[0]))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))
