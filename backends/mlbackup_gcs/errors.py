"""GCS failures turned into mlbackup errors, in one place.

gcsfs raises ``FileNotFoundError`` for 404, ``FileExistsError`` for 412, a bare ``OSError``
("Forbidden") for 403, its ``HttpError`` (with ``.code``) for other statuses, and aiohttp or
google-auth errors for the transport. Messages name the bucket, the endpoint and the credential
source, never a credential.
"""

from __future__ import annotations

from mlbackup.error_table import HTTP_RULES, Facts, Rule
from mlbackup.error_table import translate as translate_with
from mlbackup.errors import (
    BackendPermissionError,
    MLBackupError,
    is_transport_failure,
)

__all__ = ["facts", "translate"]

#: What each GCS status means, and what the user does about it.
RULES: tuple[Rule, ...] = (
    Rule(
        BackendPermissionError,
        "Google rejected the credentials from {source}; log in again or create a new key, "
        "then retry",
        codes=frozenset({"RefreshError"}),
        statuses=frozenset({401}),
    ),
    Rule(
        BackendPermissionError,
        "access denied to the credentials from {source}; grant them roles/storage.objectAdmin "
        "on bucket {bucket!r}, or use other credentials",
        codes=frozenset({"Forbidden"}),
        statuses=frozenset({403}),
    ),
    *HTTP_RULES,
)


def facts(exc: BaseException) -> Facts:
    """What gcsfs's failure says: ``HttpError.code``, google-auth's ``RefreshError``, or the
    bare ``OSError("Forbidden")`` it raises for a 403."""
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if name == "RefreshError":
        reason = name
    elif isinstance(exc, OSError) and str(exc).startswith("Forbidden"):
        reason = "Forbidden"
    else:
        reason = ""
    status = code if isinstance(code, int) else 0
    return Facts(status, reason, None, is_transport_failure(exc))


def translate(exc: Exception, *, what: str, bucket: str, where: str, source: str) -> MLBackupError:
    """The mlbackup error for ``exc``, raised while doing ``what`` (e.g. "upload 'a.txt'")."""
    context = {
        "source": source,
        "bucket": bucket,
        "service": "GCS",
        "endpoint_option": "endpoint_url",
    }
    return translate_with(exc, facts(exc), RULES, what=what, where=where, context=context)
