"""One translation of store failures: each backend's codes, the same classes and Retry-After."""

import errno

import pytest

from mlbackup.error_table import HTTP_RULES, Facts, translate
from mlbackup.errors import BackendPermissionError, BackendUnavailableError, TargetError


def s3_failure(code: str, status: int, headers: dict | None = None) -> Exception:
    from botocore.exceptions import ClientError

    meta = {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}
    cause = ClientError({"Error": {"Code": code}, "ResponseMetadata": meta}, "PutObject")
    wrapped = OSError(code)  # what s3fs raises, keeping botocore's error as the cause
    wrapped.__cause__ = cause
    return wrapped


def drive_failure(status: int, reason: str, headers: dict | None = None) -> Exception:
    import httplib2
    from googleapiclient.errors import HttpError

    resp = httplib2.Response({"status": status, **(headers or {})})
    body = f'{{"error": {{"errors": [{{"reason": "{reason}"}}]}}}}'.encode()
    return HttpError(resp, body)


def translate_s3(exc: Exception) -> Exception:
    from mlbackup_s3.errors import translate as s3

    return s3(exc, what="upload 'a'", bucket="b", where="s3://b", source="the key options")


def translate_drive(exc: Exception, service_account: bool = False) -> Exception:
    from mlbackup_gdrive.errors import translate as drive

    return drive(
        exc,
        what="upload 'a'",
        where="gdrive://x",
        source="a token",
        service_account=service_account,
    )


@pytest.mark.parametrize(
    ("exc", "translate_with"),
    [
        (s3_failure("SlowDown", 503, {"retry-after": "7"}), translate_s3),
        (drive_failure(429, "rateLimitExceeded", {"retry-after": "7"}), translate_drive),
    ],
    ids=["s3", "gdrive"],
)
def test_the_wait_a_store_asks_for_is_kept_whichever_store(exc, translate_with):
    error = translate_with(exc)
    assert isinstance(error, BackendUnavailableError) and error.retry_after == 7.0
    assert str(error).startswith("upload 'a' on ")


def test_a_retry_after_that_is_a_date_falls_back_to_our_own_backoff():
    error = translate_s3(s3_failure("SlowDown", 503, {"retry-after": "Wed, 21 Oct 2026 07:28:00"}))
    assert isinstance(error, BackendUnavailableError) and error.retry_after is None


def test_each_store_names_its_own_fix_under_the_same_classes():
    assert isinstance(translate_s3(s3_failure("InvalidAccessKeyId", 403)), BackendPermissionError)
    denied = translate_drive(drive_failure(403, "insufficientPermissions"))
    assert isinstance(denied, BackendPermissionError) and "share the folder" in str(denied)
    quota = translate_drive(drive_failure(403, "storageQuotaExceeded"), service_account=True)
    assert "service accounts have no storage quota" in str(quota)
    assert "empty the trash" in str(translate_drive(drive_failure(403, "storageQuotaExceeded")))


def test_a_lost_connection_is_transient_on_every_http_store():
    import httplib2

    lost = httplib2.ServerNotFoundError("Unable to find the server at www.googleapis.com")
    assert isinstance(translate_drive(lost), BackendUnavailableError)
    assert isinstance(translate_s3(ConnectionResetError(104, "reset")), BackendUnavailableError)
    facts = Facts(transport=True)
    context = {"service": "GCS", "endpoint_option": "endpoint_url"}
    error = translate(OSError(), facts, HTTP_RULES, what="list", where="gs://b", context=context)
    assert isinstance(error, BackendUnavailableError) and "GCS could not be reached" in str(error)


def test_an_unknown_failure_is_a_target_error_quoting_it():
    error = translate(ValueError("odd"), Facts(), HTTP_RULES, what="list", where="gs://b")
    assert type(error) is TargetError and str(error) == "list on gs://b failed: ValueError: odd"


def test_the_local_folder_and_the_drive_mount_share_the_errno_table(tmp_path):
    from mlbackup_drive import DriveMountBackend
    from mlbackup_local import LocalBackend

    local = LocalBackend(tmp_path)
    full = local.translate_error(OSError(errno.ENOSPC, "No space left"), "write 'a'")
    assert "the disk is full" in str(full)
    mount = DriveMountBackend(tmp_path, "drive://x")
    assert "Drive quota" in str(mount.translate_error(OSError(errno.EIO, "I/O"), "write 'a'"))
    assert "the disk is full" in str(mount.translate_error(OSError(errno.ENOSPC, "x"), "write"))
    gone = mount.translate_error(OSError(errno.ENOTCONN, "x"), "write 'a'")
    assert isinstance(gone, BackendUnavailableError) and "remount" in str(gone)
