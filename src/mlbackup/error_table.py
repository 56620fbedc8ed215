"""Store failures turned into mlbackup errors: one translation, each backend's table.

A backend reads what its client's exception says into `Facts` (an HTTP status, the store's
own code or reason, a ``Retry-After``, whether the connection itself failed) and lists `Rule`s
saying which codes and statuses mean which mlbackup error and what the user should do.
`translate()` walks the backend's rules first, then `HTTP_RULES` where the store speaks HTTP,
and falls back to `TargetError`: so the classes, the message shape and ``Retry-After`` are
decided in one place, and a backend supplies only its codes and its fixes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .errors import BackendUnavailableError, MLBackupError, TargetError

__all__ = ["HTTP_RULES", "Facts", "Rule", "parse_retry_after", "translate", "translating"]


@dataclass(frozen=True)
class Facts:
    """What a store's failure says, in the terms the rules decide on.

    Attributes:
        status: the HTTP status, 0 where there is none.
        code: the store's own name for the failure (an S3 error code, an API's reason, an
            errno name), "" where it gave none.
        retry_after: the seconds the store asked us to wait, if it did.
        transport: the connection failed (refused, dropped, stalled, cut off mid-body).
    """

    status: int = 0
    code: str = ""
    retry_after: float | None = None
    transport: bool = False


@dataclass(frozen=True)
class Rule:
    """``error`` for a failure whose code is in ``codes`` or whose status is in ``statuses``
    (or, with ``transport``, whose connection failed); ``fix`` is the message after
    ``"<what> on <where>: "``, formatted with ``{code}`` (the code, status or exception name),
    ``{exc}`` and the backend's context (such as ``{source}``: where the credentials came from)."""

    error: type[MLBackupError]
    fix: str
    codes: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    transport: bool = False

    def matches(self, facts: Facts) -> bool:
        return (
            facts.code in self.codes
            or facts.status in self.statuses
            or (self.transport and facts.transport)
        )


#: What every HTTP store shares: throttling, server faults and lost connections are transient.
#: Its message needs ``service`` (the store's name) and ``endpoint_option`` in the context.
HTTP_RULES: tuple[Rule, ...] = (
    Rule(
        BackendUnavailableError,
        "failed after retries ({code}): {service} could not be reached or is overloaded; "
        "check the network and {endpoint_option}, then retry (background backups retry by "
        "themselves)",
        statuses=frozenset({429, *range(500, 600)}),
        transport=True,
    ),
)


def parse_retry_after(value: object) -> float | None:
    """The seconds of a ``Retry-After`` header; None for none, for an HTTP date or for a value
    that is no wait (negative, ``nan``, ``inf``): our own backoff applies then.

    Examples:
        >>> parse_retry_after("3"), parse_retry_after(None), parse_retry_after("Wed, 21 Oct")
        (3.0, None, None)
        >>> parse_retry_after("nan"), parse_retry_after("-1")
        (None, None)
    """
    if value is None:
        return None
    try:
        seconds = float(str(value))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def translate(
    exc: BaseException,
    facts: Facts,
    rules: Sequence[Rule],
    *,
    what: str,
    where: str,
    context: Mapping[str, Any] | None = None,
) -> MLBackupError:
    """The mlbackup error for ``exc``, raised while doing ``what`` on ``where``: the first of
    ``rules`` that matches ``facts``, else a `TargetError` quoting the failure.

    Examples:
        >>> missing = Rule(TargetError, "no bucket; create it", codes=frozenset({"NoSuchBucket"}))
        >>> error = translate(OSError(), Facts(code="NoSuchBucket"), [missing], what="list",
        ...                   where="s3://b")
        >>> str(error)
        'list on s3://b: no bucket; create it'
    """
    if isinstance(exc, MLBackupError):
        return exc
    shown = facts.code or (str(facts.status) if facts.status else type(exc).__name__)
    for rule in rules:
        if rule.matches(facts):
            message = f"{what} on {where}: " + rule.fix.format(
                code=shown, exc=exc, **(context or {})
            )
            if issubclass(rule.error, BackendUnavailableError):
                return rule.error(message, retry_after=facts.retry_after)
            return rule.error(message)
    return TargetError(f"{what} on {where} failed: {shown}: {exc}")


@contextmanager
def translating(translate_error: Callable[[Exception], Exception]) -> Iterator[None]:
    """Raise what ``translate_error`` makes of a failure in the block; a failure it returns
    unchanged (``FileNotFoundError`` for a missing object) passes through, and so do
    ``FileExistsError`` (create-only writes rely on it) and mlbackup's own errors."""
    try:
        yield
    except (FileExistsError, MLBackupError):
        raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc
