"""S3 failures turned into mlbackup errors: one place, so every message names the fix.

s3fs turns botocore's ``ClientError`` into an ``OSError`` and keeps the original as the cause;
the S3 error code there (``NoSuchBucket``, ``InvalidAccessKeyId``, ``SlowDown``...) decides the
class. Messages name the bucket, the endpoint and where the credentials came from, never a
credential itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlbackup.error_table import HTTP_RULES, Facts, Rule, parse_retry_after
from mlbackup.error_table import translate as translate_with
from mlbackup.errors import (
    BackendPermissionError,
    BackendUnavailableError,
    MLBackupError,
    TargetError,
    TargetMissingError,
    exception_chain,
    is_transport_failure,
)

__all__ = ["credential_source", "error_code", "facts", "not_implemented", "translate"]

#: What each S3 error code (or HTTP status) means, and what the user does about it.
RULES: tuple[Rule, ...] = (
    Rule(
        BackendPermissionError,
        "S3 rejected the credentials from {source} ({code}); fix the key and secret "
        "(mistyped, revoked, or meant for another endpoint or region)",
        codes=frozenset(
            {
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
                "InvalidToken",
                "TokenRefreshRequired",
                "AuthorizationHeaderMalformed",
            }
        ),
    ),
    Rule(
        BackendPermissionError,
        "no AWS credentials were found in {source}; pass key and secret (or profile) as "
        "storage options, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use anon=true "
        "for a public bucket",
        codes=frozenset({"NoCredentialsError", "PartialCredentialsError"}),
    ),
    Rule(
        BackendPermissionError,
        "access denied to the credentials from {source} ({code}); grant them s3:ListBucket, "
        "s3:GetObject, s3:PutObject and s3:DeleteObject on bucket {bucket!r}, or use other "
        "credentials",
        codes=frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem"}),
        statuses=frozenset({403}),
    ),
    Rule(
        TargetMissingError,
        "the bucket does not exist; create it (aws s3 mb s3://{bucket}) or fix the bucket "
        "name in the URL",
        codes=frozenset({"NoSuchBucket"}),
    ),
    Rule(
        TargetError,
        "this S3 server does not implement the request ({code}); use a store with the full "
        "S3 API, such as AWS S3 or MinIO",
        codes=frozenset({"NotImplemented"}),
        statuses=frozenset({501}),
    ),
    Rule(
        BackendUnavailableError,
        HTTP_RULES[0].fix,
        codes=frozenset(
            {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"}
        ),
    ),
    *HTTP_RULES,
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


def _retry_after(exc: BaseException) -> float | None:
    for link in exception_chain(exc):
        response = getattr(link, "response", None)
        if isinstance(response, Mapping):
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            if "retry-after" in headers:
                return parse_retry_after(headers["retry-after"])
    return None


def facts(exc: BaseException) -> Facts:
    """What the failure behind ``exc`` says: botocore's error code and status under s3fs's
    ``OSError``, or the name of botocore's credential errors, which carry no code."""
    code, status = error_code(exc)
    if not code:
        names = {type(link).__name__ for link in exception_chain(exc)}
        code = next(
            (n for n in ("NoCredentialsError", "PartialCredentialsError") if n in names), ""
        )
    return Facts(status, code, _retry_after(exc), is_transport_failure(exc))


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
    context = {
        "source": source,
        "bucket": bucket,
        "service": "S3",
        "endpoint_option": "endpoint_url",
    }
    return translate_with(exc, facts(exc), RULES, what=what, where=where, context=context)
