"""Keep credentials out of every log record, whichever library writes it.

Client libraries log more than they should at DEBUG: botocore writes the signed request (the
session-token header included) and its canonical form. Backends register each secret they are
given with :func:`register_secret`; from then on a log record factory replaces it with ``***``
in every record's message before any handler sees it. Records below a logger's level are never
built, so this costs nothing unless DEBUG logging is on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["REDACTED", "redact", "register_secret"]

REDACTED = "***"
#: Shorter values are not worth hiding (and would redact common words).
MIN_SECRET_LENGTH = 8

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(value: Any) -> None:
    """Hide ``value`` (a credential's text) from every log record from now on."""
    global _installed
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.add(value)
        if not _installed:
            previous = logging.getLogRecordFactory()

            def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                if _secrets:
                    _redact_record(record)
                return record

            logging.setLogRecordFactory(redacting_factory)
            _installed = True


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
        return
    cleaned = redact(message)
    if cleaned is not message:
        record.msg, record.args = cleaned, ()
