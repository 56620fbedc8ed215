"""Backend options: names and types declared per backend, text from the CLI converted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_options"]

_TYPE_NAMES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a mapping (a JSON object)",
}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _convert(value: Any, types: tuple[type, ...]) -> Any:
    """``value`` as one of ``types`` when it is text for one of them, else unchanged."""
    if not isinstance(value, str) or str in types:
        return value
    text = value.strip()
    if bool in types and text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
    for number in (int, float):
        if number in types:
            try:
                return number(text)
            except ValueError:
                pass
    if dict in types:
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None


def check_options(
    owner: str, option_types: Mapping[str, type | tuple[type, ...]], options: Mapping[str, Any]
) -> dict[str, Any]:
    """``options`` checked against ``option_types``, text values converted to their type.

    Raises:
        ConfigError: an unknown name (listing the valid ones) or a value of the wrong type
            (naming the option, never echoing the value: it may be a secret).
    """
    valid = ", ".join(sorted(option_types)) or "none"
    unknown = sorted(set(options) - set(option_types))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {owner}; valid options: {valid}"
        )
    checked: dict[str, Any] = {}
    for name, value in options.items():
        expected = option_types[name]
        types = expected if isinstance(expected, tuple) else (expected,)
        converted = _convert(value, types)
        # bool is an int in Python; an int option must not silently take True.
        wrong_bool = isinstance(converted, bool) and bool not in types
        if converted is None or wrong_bool or not isinstance(converted, types):
            wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise ConfigError(
                f"option {name!r} of {owner} must be {wanted}, "
                f"got a {type(value).__name__} that is not; fix the value"
            )
        checked[name] = converted
    return checked
