"""One validator for every settings object: run configs, latent-fit and separator options.

A settings class is a frozen dataclass whose fields carry their rules in metadata
(``rule(default, ge=0, choices=..., help=...)``). The same rules check a TOML table (``build``),
an object made in Python (``check_fields``, called from ``__post_init__``) and the CLI flags
generated from the fields (cli/options.py), so a bound is written once and every entry point
refuses the same values with the same words: the key path, the bad value and what is allowed.
Floats must be finite everywhere: an infinite learning rate is refused, not run.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, field, fields, is_dataclass
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from demixgan.errors import DemixganError


def rule(default: Any = MISSING, *, help: str = "", **rules: Any) -> Any:
    """A dataclass field whose ``rules`` (see ``RULES``) the validator checks; ``help`` is the
    one-line text of its CLI flag."""
    return field(default=default, metadata={**rules, "help": help} if help else rules)


class Problem(Exception):
    """A validation failure at a key path; callers turn it into a DemixganError naming the
    source (a file, an override, a command's options)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path} {message}")


#: Values in messages: a tampered file's 10 MB string or 900-deep list shows as a short excerpt.
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlevel = 4


def shown(value: Any) -> str:
    """``repr(value)``, shortened to an excerpt where it is long or deeply nested."""
    return _SHORT.repr(value)


def whole(value: Any) -> bool:
    """An int that is not a bool (``True`` is 1 to Python, not a width or a step)."""
    return isinstance(value, int) and not isinstance(value, bool)


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists, tuples and mappings nest in ``value`` (a scalar: 0), counted until it
    passes ``limit``. Iterative, so a structure too deep for recursion is measured as well."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > limit:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest


#: No integer setting may exceed what torch and numpy hold (int64).
MAX_INT = 2**63 - 1
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
RULES: dict[str, tuple[Callable[[Any, Any], bool], Callable[[Any], str]]] = {
    "choices": (lambda value, allowed: value in allowed, lambda c: ", ".join(map(repr, c))),
    "ge": (operator.ge, ">= {}".format),
    "gt": (operator.gt, "> {}".format),
    "le": (operator.le, "<= {}".format),
    "lt": (operator.lt, "< {}".format),
    "even": (lambda value, _: value % 2 == 0, lambda _: "even"),
    "pattern": (lambda value, rule: re.fullmatch(rule[0], value) is not None, lambda r: r[1]),
}


@cache
def hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def join(path: str, key: str) -> str:
    key = key if len(key) <= 80 else f"{key[:40]}...{key[-20:]}"  # a tampered file's long key
    return f"{path}.{key}" if path else key


def suggest(word: object, options: Sequence[str]) -> str:
    match = difflib.get_close_matches(str(word)[:100], options, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown(path: str, key: object, known: Sequence[str]) -> Problem:
    where = f"in [{path}]" if path else "at the top level"
    return Problem(
        join(path, str(key)),
        f"is not a known key{suggest(key, known)}. Keys allowed {where}: {', '.join(known)}",
    )


def optional(tp: Any) -> Any:
    """``X | None`` -> ``X`` (None means "the default behaviour"); other types unchanged."""
    if get_origin(tp) in (Union, UnionType):
        (tp,) = (arg for arg in get_args(tp) if arg is not type(None))
    return tp


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints become floats where a float is due."""
    inner = optional(tp)
    if value is None and inner is not tp:
        return None
    if is_dataclass(inner):
        return build(inner, value, path)
    if get_origin(inner) is tuple:
        item = get_args(inner)[0]
        if not isinstance(value, list | tuple):
            kind = f"an array of tables ([[{path}]])" if is_dataclass(item) else "an array"
            raise Problem(path, f"must be {kind}, but got {shown(value)}")
        return tuple(convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    bad_bool = inner in (int, float) and isinstance(value, bool)
    if not isinstance(value, inner) or bad_bool or (inner is float and not math.isfinite(value)):
        raise Problem(
            path, f"must be {TYPE_NAMES[inner]}, but got {shown(value)} ({type(value).__name__})"
        )
    if inner is int and not -MAX_INT <= value <= MAX_INT:
        raise Problem(
            path, f"must be an integer within +-{MAX_INT} (64 bits), but got {shown(value)}"
        )
    return value


def check_rules(value: Any, tp: Any, rules: Mapping[str, Any], path: str) -> Any:
    rules = {name: arg for name, arg in rules.items() if name in RULES}
    if value is None or all(RULES[name][0](value, arg) for name, arg in rules.items()):
        return value
    if "choices" in rules:
        choices = rules["choices"]
        allowed = f"one of {RULES['choices'][1](choices)}{suggest(value, choices)}"
    else:
        texts = " and ".join(RULES[name][1](arg) for name, arg in rules.items())
        allowed = f"{TYPE_NAMES[optional(tp)]} {texts}"
    raise Problem(path, f"must be {allowed}, but got {shown(value)}")


def build(cls: type, data: Any, path: str) -> Any:
    """A dataclass instance from a table, every field checked (unknown keys refused)."""
    if not isinstance(data, Mapping):
        raise Problem(path, f"must be a table, but got {shown(data)}")
    known = [f.name for f in fields(cls)]
    for key in data:
        if key not in known:
            raise unknown(path, key, known)
    values = {}
    for spec in fields(cls):
        key = join(path, spec.name)
        if spec.name in data:
            tp = hints(cls)[spec.name]
            values[spec.name] = check_rules(
                convert(data[spec.name], tp, key), tp, spec.metadata, key
            )
        elif spec.default is MISSING and spec.default_factory is MISSING:
            raise Problem(key, "is required but missing")
    return cls(**values)


def check_fields(instance: Any, what: str) -> None:
    """Check every field of a settings object made in Python against its type and rules.

    For ``__post_init__``: one DemixganError names every bad field, e.g. "Invalid latent-fit
    options: restarts must be an integer >= 1, but got 0."
    """
    problems = []
    for spec in fields(instance):
        tp, value = hints(type(instance))[spec.name], getattr(instance, spec.name)
        if is_dataclass(optional(tp)) or get_origin(optional(tp)) in (dict, Mapping):
            continue  # nested settings check themselves
        try:
            check_rules(convert(value, tp, spec.name), tp, spec.metadata, spec.name)
        except Problem as problem:
            problems.append(str(problem))
    if problems:
        raise DemixganError(f"Invalid {what}: " + "; ".join(problems) + ".")
