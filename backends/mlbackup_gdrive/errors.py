"""Drive API failures turned into mlbackup errors: the Drive codes of the one translation.

googleapiclient raises ``HttpError`` with the status and, in the JSON body, a Drive ``reason``:
rate limits (429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``) and 5xx are transient;
``storageQuotaExceeded``, ``insufficientPermissions`` and 401 are permanent and say what to do.
"""

from __future__ import annotations

import json

from mlbackup.error_table import HTTP_RULES, Facts, Rule, parse_retry_after
from mlbackup.error_table import translate as translate_with
from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    ConfigError,
    TargetMissingError,
    exception_chain,
    is_transport_failure,
)

__all__ = ["facts", "translate"]

_QUOTA = frozenset({"storageQuotaExceeded"})
#: pydrive2's complaints about its settings or saved credentials.
_UNUSABLE = frozenset({"InvalidConfigError", "SettingsError", "InvalidCredentialsError"})
#: What each Drive reason (or status) means, and what the user does about it; the quota rule
#: is the one that differs for a service account (`translate` picks the table).
_RULES: tuple[Rule, ...] = (
    Rule(ConfigError, "{source} is not usable: {exc}", codes=_UNUSABLE),
    Rule(
        BackendUnavailableError,
        "failed after retries ({code}): Drive is throttling or unavailable; retry later "
        "(background backups retry by themselves)",
        codes=frozenset({"rateLimitExceeded", "userRateLimitExceeded", "sharingRateLimitExceeded"}),
        statuses=frozenset({429, *range(500, 600)}),
    ),
    Rule(
        BackendPermissionError,
        "Drive denied access to {source} ({code}); share the folder with that account (as "
        "Editor) or use other credentials",
        statuses=frozenset({401, 403}),
    ),
    Rule(
        TargetMissingError,
        "Drive has no such file or folder ({code}); check the folder ID in the URL and that it "
        "is shared with the account",
        statuses=frozenset({404}),
    ),
    *HTTP_RULES,
)
USER_RULES: tuple[Rule, ...] = (
    Rule(
        BackendPermissionError,
        "the Drive storage quota is full (storageQuotaExceeded); free space in Drive (empty "
        "the trash), buy storage, or choose another target",
        codes=_QUOTA,
    ),
    *_RULES,
)
SERVICE_ACCOUNT_RULES: tuple[Rule, ...] = (
    Rule(
        BackendPermissionError,
        "Drive refused the upload (storageQuotaExceeded) because service accounts have no "
        "storage quota of their own ({source}); back up into a shared drive the service "
        "account is a member of (gdrive://<shared-drive-folder-id>/...), or use OAuth user "
        "credentials (credentials_file=...)",
        codes=_QUOTA,
    ),
    *_RULES,
)


def facts(exc: BaseException) -> Facts:
    """What the Drive API client's failure says: an ``HttpError``'s status, the Drive
    ``reason`` in its JSON body and its ``Retry-After``; or pydrive2's settings errors."""
    name = type(exc).__name__
    # Not any OSError: pydrive2's settings errors are IOErrors too (they match by name). Every
    # exception of httplib2, the client's HTTP library, is about the connection.
    transport = is_transport_failure(exc) or any(
        type(link).__module__.partition(".")[0] == "httplib2" for link in exception_chain(exc)
    )
    resp = getattr(exc, "resp", None)
    if resp is None:
        return Facts(0, name if name in _UNUSABLE else "", None, transport)
    status = int(getattr(resp, "status", 0) or 0)
    reason = ""
    try:
        errors = json.loads(getattr(exc, "content", b"") or b"{}")["error"].get("errors", [])
        reason = str(errors[0].get("reason", "")) if errors else ""
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    header = resp.get("retry-after") if hasattr(resp, "get") else None
    return Facts(status, reason, parse_retry_after(header), transport)


def translate(
    exc: Exception, *, what: str, where: str, source: str, service_account: bool
) -> Exception:
    """The mlbackup error for ``exc``; ``exc`` itself for a missing file (FileNotFoundError)."""
    if isinstance(exc, (FileNotFoundError, FileExistsError)):
        return exc  # the protocol relies on both
    rules = SERVICE_ACCOUNT_RULES if service_account else USER_RULES
    context = {"source": source, "service": "Drive", "endpoint_option": "api_endpoint"}
    return translate_with(exc, facts(exc), rules, what=what, where=where, context=context)
