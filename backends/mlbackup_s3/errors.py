"""S3 failures turned into mlbackup errors: one place, so every message names the fix.

s3fs turns botocore's ``ClientError`` into an ``OSError`` and keeps the original as the cause;
the S3 error code there (``NoSuchBucket``, ``InvalidAccessKeyId``, ``SlowDown``...) decides the
class. Messages name the bucket, the endpoint and where the credentials came from, never a
credential itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    MLBackupError,
    TargetError,
    TargetMissingError,
    exception_chain,
    is_transport_failure,
)

__all__ = ["credential_source", "error_code", "not_implemented", "translate"]

#: Codes meaning the credentials themselves were rejected.
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
    }
)
#: Codes meaning the credentials are valid but may not do this.
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"})
#: Codes worth another try later.
_TRANSIENT = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
)


def error_code(exc: BaseException) -> tuple[str, int]:
    """The S3 error code and HTTP status behind ``exc`` (``("", 0)`` if it carries none)."""
    for link in exception_chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, Mapping) and "Error" in response:
            code = str(response["Error"].get("Code", ""))
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            return code, status
    return "", 0


def not_implemented(exc: BaseException) -> bool:
    """The server does not implement the request (HTTP 501): a missing feature, not a fault."""
    code, status = error_code(exc)
    return code == "NotImplemented" or status == 501


def retry_after(exc: BaseException) -> float | None:
    """The ``Retry-After`` seconds the server sent with the failure behind ``exc``, if any."""
    for link in exception_chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, Mapping):
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            value = headers.get("retry-after")
            if value is not None:
                try:
                    return float(value)
                except ValueError:
                    return None  # an HTTP date: fall back to our own backoff
    return None


def credential_source(options: Mapping[str, Any]) -> str:
    """Where the credentials come from, in words (never the credentials)."""
    if options.get("anon"):
        return "anonymous access (anon=true)"
    if options.get("key") or options.get("secret"):
        return "the key/secret options"
    if options.get("profile"):
        return f"AWS profile {options['profile']!r}"
    return (
        "the default AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "~/.aws/credentials, instance role)"
    )


def translate(exc: Exception, *, what: str, bucket: str, where: str, source: str) -> MLBackupError:
    """The mlbackup error for ``exc``, raised while doing ``what`` (e.g. "upload 'a.txt'").

    ``where`` names the bucket and endpoint; ``source`` is `credential_source()`'s text.
    """
    if isinstance(exc, MLBackupError):
        return exc
    code, status = error_code(exc)
    names = {type(link).__name__ for link in exception_chain(exc)}
    if code in _BAD_CREDENTIALS:
        return BackendPermissionError(
            f"{what} on {where}: S3 rejected the credentials from {source} ({code}); fix "
            "the key and secret (mistyped, revoked, or meant for another endpoint or region)"
        )
    if "NoCredentialsError" in names or "PartialCredentialsError" in names:
        return BackendPermissionError(
            f"{what} on {where}: no AWS credentials were found in {source}; pass key and "
            "secret (or profile) as storage options, set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or use anon=true for a public bucket"
        )
    if code in _DENIED or status == 403:
        return BackendPermissionError(
            f"{what} on {where}: access denied to the credentials from {source} "
            f"({code or status}); grant them s3:ListBucket, s3:GetObject, s3:PutObject and "
            f"s3:DeleteObject on bucket {bucket!r}, or use other credentials"
        )
    if code == "NoSuchBucket":
        return TargetMissingError(
            f"{what} on {where}: the bucket does not exist; create it "
            f"(aws s3 mb s3://{bucket}) or fix the bucket name in the URL"
        )
    if not_implemented(exc):
        return TargetError(
            f"{what} on {where}: this S3 server does not implement the request "
            f"({code or status}); use a store with the full S3 API, such as AWS S3 or MinIO"
        )
    if code in _TRANSIENT or status >= 500 or status == 429 or is_transport_failure(exc):
        return BackendUnavailableError(
            f"{what} on {where} failed after retries ({code or type(exc).__name__}): S3 "
            "could not be reached or is overloaded; check the network and endpoint_url, "
            "then retry (background backups retry by themselves)",
            retry_after=retry_after(exc),
        )
    return TargetError(f"{what} on {where} failed: {code or type(exc).__name__}: {exc}")
