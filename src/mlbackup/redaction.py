"""Keep credentials out of every log record, whichever library writes it.

Client libraries log more than they should at DEBUG: botocore writes the signed request (the
access key ID in ``Credential=``, the session-token header) and its canonical form. Backends
register each secret they are given or find (options, environment, profile files) with
`register_secret()`; from then on a log record factory replaces it with ``***`` in every
record's message before any handler sees it. Credentials in the well-known shapes of request
headers (``Credential=``, ``X-Amz-Security-Token``, ``Authorization: Bearer``) are replaced
whatever their source, including ones fetched from instance metadata that mlbackup never saw.
Records below a logger's level are never built, so this costs nothing unless DEBUG logging is
on.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

__all__ = ["REDACTED", "install", "redact", "register_secret"]

REDACTED = "***"
#: Shorter values are not worth hiding (and would redact common words).
MIN_SECRET_LENGTH = 8

#: Credentials by the shape of the header or query they travel in, each found by a marker (in
#: lower case) and matched from it: group 1 is kept, group 2 (the credential) replaced. The
#: access key ID of SigV4, the session token (header, canonical request, presigned query), a
#: bearer token. A marker is looked for with ``str.find`` before any pattern runs: botocore's
#: DEBUG record of a request holds its body, and a regular expression tried at each of a 5 MiB
#: part's 20 million characters costs seconds per part.
_SHAPES = (
    ("credential=", re.compile(r"(?i)(credential=)([A-Z0-9]{12,128})")),
    (
        "x-amz-security-token",
        re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,&}]{8,})"),
    ),
    (
        "authorization",
        re.compile(r"(?i)(authorization['\"]?\s*:\s*b?['\"]?bearer\s+)([^'\"\s,}]{8,})"),
    ),
)

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: Any, min_length: int = MIN_SECRET_LENGTH) -> None:
    """Hide ``value`` (a credential's text) from every log record from now on; one shorter
    than ``min_length`` is ignored (a password is a secret whatever its length: pass 1)."""
    if not isinstance(value, str) or len(value) < max(min_length, 1):
        return
    with _lock:
        _secrets.add(value)
    install()


def install() -> None:
    """Redact every log record from now on (backends call it when they open a store)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _installed = True


def _marker_positions(text: str, lowered: str, marker: str) -> list[int]:
    if len(lowered) == len(text):
        positions, start = [], lowered.find(marker)
        while start != -1:
            positions.append(start)
            start = lowered.find(marker, start + 1)
        return positions
    # A few letters lower to two characters, which would shift the positions: search the text.
    return [m.start() for m in re.finditer(re.escape(marker), text, re.IGNORECASE)]


def _hide_shapes(text: str) -> str:
    lowered = text.lower()
    spans = []
    for marker, pattern in _SHAPES:
        for start in _marker_positions(text, lowered, marker):
            found = pattern.match(text, start)
            if found:
                spans.append(found.span(2))
    if not spans:
        return text
    pieces, kept = [], 0
    for start, end in sorted(spans):
        if start >= kept:  # overlapping matches hide the same characters once
            pieces += [text[kept:start], REDACTED]
            kept = end
    pieces.append(text[kept:])
    return "".join(pieces)


def redact(text: str) -> str:
    """``text`` with every registered secret, and every credential in the shape of a request
    header, replaced by ``***``."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _hide_shapes(text)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
