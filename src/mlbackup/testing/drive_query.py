"""The Drive v2 ``q`` search language, enough of it to filter a fake Drive's files.

Supports ``and``/``or``/``not``, parentheses, ``'<id>' in parents``, and ``=``/``!=``/
``contains`` on ``title``, ``mimeType`` and ``trashed``. Title equality ignores case, as Drive's
does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["QueryError", "compile_query"]

Predicate = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<op>!=|=|\(|\))|(?P<word>[A-Za-z_]+))")


class QueryError(ValueError):
    """A query the fake does not understand (Drive answers 400 ``invalid``)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f"cannot parse q at {text[pos:]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.append((kind, value))
    return found


def compile_query(text: str) -> Predicate:
    """A predicate over file resources for the query ``text`` (empty: everything)."""
    tokens = _tokens(text or "")
    if not tokens:
        return lambda _f: True
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise QueryError("unexpected end of q")
        pos += 1
        return tokens[pos - 1]

    def expr() -> Predicate:
        left = term()
        while (t := peek()) and t[0] == "word" and t[1].lower() == "or":
            take()
            right = term()
            left = (lambda a, b: lambda f: a(f) or b(f))(left, right)
        return left

    def term() -> Predicate:
        left = factor()
        while (t := peek()) and t[0] == "word" and t[1].lower() == "and":
            take()
            right = factor()
            left = (lambda a, b: lambda f: a(f) and b(f))(left, right)
        return left

    def factor() -> Predicate:
        kind, value = take()
        if kind == "word" and value.lower() == "not":
            inner = factor()
            return lambda f: not inner(f)
        if kind == "op" and value == "(":
            inner = expr()
            if take() != ("op", ")"):
                raise QueryError("missing ')'")
            return inner
        if kind == "str":
            if take()[1].lower() != "in" or take()[1] != "parents":
                raise QueryError("only '<id>' in parents is supported")
            return lambda f: value in {p["id"] for p in f.get("parents", [])}
        return comparison(value)

    def comparison(field: str) -> Predicate:
        _, op = take()
        kind, raw = take()
        wanted: Any = raw if kind == "str" else raw.lower() == "true"
        if field == "trashed":
            return lambda f: (f.get("labels", {}).get("trashed", False) == wanted) == (op == "=")
        if field not in ("title", "mimeType"):
            raise QueryError(f"unsupported field {field!r}")
        if op.lower() == "contains":
            return lambda f: str(wanted).lower() in str(f.get(field, "")).lower()
        fold = field == "title"

        def equal(f: Mapping[str, Any]) -> bool:
            have = str(f.get(field, ""))
            same = have.lower() == str(wanted).lower() if fold else have == wanted
            return same == (op == "=")

        return equal

    predicate = expr()
    if pos != len(tokens):
        raise QueryError(f"unexpected {tokens[pos][1]!r} in q")
    return predicate
