"""pandera checks in plain words: what `etl schema` lists, and what a row that fails one reads.

A built-in check reads like the rest of the report (`"-3" must be greater than 0`, `"150" is
larger than 100`); a custom one by its `error=` text or, without one, its name
(`"abc" fails one_link`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: how many allowed values a message lists before "…"
_LISTED = 8


def _builtin(check: Any) -> bool:
    """Whether CHECK is one of pandera's built-ins (not a custom check that took its name): a
    built-in's function is pandera's dispatcher of that name (a schema holds copies of its
    checks, so it is told by kind and name, not by identity)."""
    import pandera.pandas as pa
    from pandera.api.function_dispatch import Dispatcher

    fn = getattr(check, "_check_fn", None)
    return (isinstance(fn, Dispatcher) and check.name in pa.Check.CHECK_FUNCTION_REGISTRY
            and getattr(fn, "__name__", None) == check.name)


def _own_error(check: Any) -> str | None:
    """The `error=` text the schema's author gave a check (a built-in's default is its call)."""
    error = check.error if isinstance(check.error, str) else None
    if not error or (check.name and error.startswith(f"{check.name}(")):
        return None
    return error


def _listed(values: Any) -> str:
    items = [str(v) for v in values]
    return ", ".join(items[:_LISTED]) + (", …" if len(items) > _LISTED else "")


def label(check: Any) -> str:
    """A custom check's words: its error= text, else its name."""
    return _own_error(check) or str(check.name or "a check")


def _range(s: dict[str, Any]) -> str:
    """in_range's statistics in words, each end as included or not."""
    low, high = s.get("min_value"), s.get("max_value")
    with_low, with_high = s.get("include_min", True), s.get("include_max", True)
    if with_low and with_high:
        return f"from {low} to {high}"
    return f"{'at least' if with_low else 'above'} {low} and {'at most' if with_high else 'below'} {high}"


def rule(check: Any) -> str:
    """CHECK as a rule of a column: `greater than 0`, `at most 255 characters`."""
    if not _builtin(check) or _own_error(check):
        return label(check)
    s, name = check.statistics or {}, check.name
    simple = {"greater_than": "greater than {min_value}", "greater_than_or_equal_to": "at least {min_value}",
              "less_than": "less than {max_value}", "less_than_or_equal_to": "at most {max_value}",
              "equal_to": "equal to {value}", "not_equal_to": "not {value}",
              "str_matches": "matching {pattern}", "str_contains": "containing {pattern}",
              "str_startswith": "starting with {string}", "str_endswith": "ending with {string}"}
    if name in simple:
        try:
            return simple[name].format(**s)
        except (KeyError, IndexError):
            return str(check.error)
    if name == "in_range":
        return _range(s)
    if name == "isin":
        return f"one of {_listed(s.get('allowed_values', ()))}"
    if name == "notin":
        return f"not one of {_listed(s.get('forbidden_values', ()))}"
    if name == "str_length":
        if s.get("exact_value") is not None:
            return f"{s['exact_value']} characters"
        low, high = s.get("min_value"), s.get("max_value")
        if low is None:
            return f"at most {high} characters"
        if high is None:
            return f"at least {low} characters"
        return f"{low} to {high} characters"
    return str(check.error or name)


def failure(check: Any) -> Callable[[str, Any], str]:
    """What a cell whose value fails CHECK reads, as a function of the cell (already quoted:
    `"150"`) and its value, worked out once per check (a file may fail it a million times)."""
    if not _builtin(check) or _own_error(check):
        words = label(check)
        return lambda cell, value: f"{cell} fails {words}"
    s, name = check.statistics or {}, check.name
    fixed = {"greater_than": "must be greater than {min_value}",
             "greater_than_or_equal_to": "must be at least {min_value}",
             "less_than": "must be less than {max_value}",
             "less_than_or_equal_to": "is larger than {max_value}"}
    if name == "in_range":
        words = f"must be {_range(s)}"
        return lambda cell, value: f"{cell} {words}"
    if name in fixed:
        try:
            words = fixed[name].format(**s)
        except (KeyError, IndexError):
            words = f"must be {rule(check)}"
        return lambda cell, value: f"{cell} {words}"
    if name == "str_length":
        exact, high, low = s.get("exact_value"), s.get("max_value"), s.get("min_value")

        def length(cell: str, value: Any) -> str:
            if exact is not None:
                return f"{cell} must be {exact} characters long"
            if high is not None and (not isinstance(value, str) or len(value) > high):
                return f"{cell} is longer than {high} characters" if isinstance(value, str) else \
                    f"{cell} must be {rule(check)}"
            if low is None:
                return f"{cell} must be {rule(check)}"
            return f"{cell} is shorter than {low} characters"

        return length
    words = rule(check)
    if name in ("str_matches", "str_contains", "str_startswith", "str_endswith"):
        return lambda cell, value: f"{cell} is not {words}"
    return lambda cell, value: f"{cell} must be {words}"
