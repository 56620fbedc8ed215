"""GCS failures turned into mlbackup errors, in one place.

gcsfs raises ``FileNotFoundError`` for 404, ``FileExistsError`` for 412, a bare ``OSError``
("Forbidden") for 403, its ``HttpError`` (with ``.code``) for other statuses, and aiohttp or
google-auth errors for the transport. Messages name the bucket, the endpoint and the credential
source, never a credential.
"""

from __future__ import annotations

from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    MLBackupError,
    TargetError,
    is_transport_failure,
)

__all__ = ["translate"]


def translate(exc: Exception, *, what: str, bucket: str, where: str, source: str) -> MLBackupError:
    """The mlbackup error for ``exc``, raised while doing ``what`` (e.g. "upload 'a.txt'")."""
    if isinstance(exc, MLBackupError):
        return exc
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if name == "RefreshError" or code == 401:
        return BackendPermissionError(
            f"{what} on {where}: Google rejected the credentials from {source}; log in again "
            "or create a new key, then retry"
        )
    if code == 403 or (isinstance(exc, OSError) and str(exc).startswith("Forbidden")):
        return BackendPermissionError(
            f"{what} on {where}: access denied to the credentials from {source}; grant them "
            f"roles/storage.objectAdmin on bucket {bucket!r}, or use other credentials"
        )
    if code == 429 or (isinstance(code, int) and code >= 500) or is_transport_failure(exc):
        return BackendUnavailableError(
            f"{what} on {where} failed after retries ({code or name}): GCS could not be "
            "reached or is overloaded; check the network and endpoint_url, then retry "
            "(background backups retry by themselves)"
        )
    return TargetError(f"{what} on {where} failed: {name}: {exc}")
