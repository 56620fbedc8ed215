"""Drive API failures turned into mlbackup errors, in one place.

googleapiclient raises ``HttpError`` with the status and, in the JSON body, a Drive ``reason``:
rate limits (429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``) and 5xx are transient;
``storageQuotaExceeded``, ``insufficientPermissions`` and 401 are permanent and say what to do.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigError,
    MLBackupError,
    TargetError,
    TargetMissingError,
)

__all__ = ["drive_reason", "translate"]

_RATE_LIMITS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"})


def drive_reason(exc: BaseException) -> tuple[int, str, float | None]:
    """``(status, Drive reason, Retry-After seconds)`` of an ``HttpError`` (0, "" otherwise)."""
    resp = getattr(exc, "resp", None)
    if resp is None:
        return 0, "", None
    status = int(getattr(resp, "status", 0) or 0)
    reason = ""
    try:
        errors = json.loads(getattr(exc, "content", b"") or b"{}")["error"].get("errors", [])
        reason = str(errors[0].get("reason", "")) if errors else ""
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    retry_after: float | None = None
    header = resp.get("retry-after") if hasattr(resp, "get") else None
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    return status, reason, retry_after


def translate(
    exc: Exception, *, what: str, where: str, source: str, service_account: bool
) -> Exception:
    """The mlbackup error for ``exc``; ``exc`` itself for a missing file (FileNotFoundError)."""
    if isinstance(exc, (MLBackupError, FileNotFoundError, FileExistsError)):
        return exc
    if type(exc).__name__ in ("InvalidConfigError", "SettingsError", "InvalidCredentialsError"):
        return ConfigError(f"{what} on {where}: {source} is not usable: {exc}")
    status, reason, retry_after = drive_reason(exc)
    if reason == "storageQuotaExceeded":
        if service_account:
            return BackendPermissionError(
                f"{what} on {where}: Drive refused the upload (storageQuotaExceeded) because "
                f"service accounts have no storage quota of their own ({source}); back up "
                "into a shared drive the service account is a member of "
                "(gdrive://<shared-drive-folder-id>/...), or use OAuth user credentials "
                "(credentials_file=...)"
            )
        return BackendPermissionError(
            f"{what} on {where}: the Drive storage quota is full (storageQuotaExceeded); free "
            "space in Drive (empty the trash), buy storage, or choose another target"
        )
    if status == 429 or status >= 500 or (status == 403 and reason in _RATE_LIMITS):
        return BackendUnavailableError(
            f"{what} on {where} failed after retries ({reason or status}): Drive is "
            "throttling or unavailable; retry later (background backups retry by themselves)",
            retry_after=retry_after,
        )
    if status in (401, 403):
        return BackendPermissionError(
            f"{what} on {where}: Drive denied access to {source} ({reason or status}); share "
            "the folder with that account (as Editor) or use other credentials"
        )
    if status == 404:
        return TargetMissingError(
            f"{what} on {where}: Drive has no such file or folder ({reason or 404}); check "
            "the folder ID in the URL and that it is shared with the account"
        )
    if isinstance(exc, (socket.timeout, ConnectionError, TimeoutError)) or _is_transport(exc):
        return BackendUnavailableError(
            f"{what} on {where}: Drive could not be reached ({type(exc).__name__}); check "
            "the network and retry"
        )
    return TargetError(f"{what} on {where} failed: {type(exc).__name__}: {exc}")


def _is_transport(exc: Any) -> bool:
    # Not any OSError: pydrive2's settings errors are IOErrors too.
    return type(exc).__module__.startswith("httplib2") or isinstance(exc, socket.gaierror)
