"""Registered secrets never reach a log handler, whoever logs them."""

import logging

import pytest

from mlbackup.redaction import REDACTED, redact, register_secret


def test_a_registered_secret_is_replaced_in_every_record(caplog):
    register_secret("hunter2-but-longer")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").debug("auth header: Bearer %s!", "hunter2-but-longer")
    logging.getLogger("other").warning("key=hunter2-but-longer")
    assert [r.getMessage() for r in caplog.records] == [
        f"auth header: Bearer {REDACTED}!",
        f"key={REDACTED}",
    ]
    assert "hunter2-but-longer" not in caplog.text


def test_short_values_are_not_treated_as_secrets():
    register_secret("abc")
    register_secret(None)
    assert redact("abc and None stay") == "abc and None stay"


def _secret_like(tag):
    import uuid

    return f"{tag}{uuid.uuid4().hex[:16].upper()}"


@pytest.mark.parametrize("source", ["options", "environment", "profile"])
def test_no_s3_credential_reaches_a_debug_log_whatever_its_source(
    source, s3_server, s3_bucket, tmp_path, monkeypatch, caplog
):
    """botocore logs the signed request at DEBUG: the access key ID (Credential=...), the
    session token (its header and the canonical request). None of them may be in a record,
    whether they came as options, from the environment or from a profile file."""
    from mlbackup import backup, open_target

    key, secret, token = _secret_like("AKIA"), _secret_like("SECRET"), _secret_like("TOKEN")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    options = {"endpoint_url": s3_server.endpoint_url}
    if source == "options":
        options.update(key=key, secret=secret, token=token)
    elif source == "environment":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    else:
        credentials = tmp_path / "credentials"
        credentials.write_text(
            f"[ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
            f"aws_session_token = {token}\n"
        )
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        options["profile"] = "ci"
    (tmp_path / "m.bin").write_bytes(b"weights")
    caplog.set_level(logging.DEBUG)
    target = open_target(f"s3://{s3_bucket}/run", **options)
    backup(tmp_path / "m.bin", target=target, name="m.bin")
    text = "\n".join(logging.Formatter().format(r) for r in caplog.records)
    assert "Credential=" in text or "Authorization" in text  # botocore did log the request
    for value in (key, secret, token):
        assert value not in text


def test_credentials_in_the_shape_of_request_headers_are_hidden_whatever_their_source():
    """Credentials mlbackup never saw (instance metadata, a library's own cache)."""
    text = (
        "Authorization: AWS4-HMAC-SHA256 Credential=ASIAMETADATA1234567/20261201/us-east-1/s3 "
        "{'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjMETADATATOKEN', "
        "'Authorization': 'Bearer ya29.metadata-token-xyz'} "
        "x-amz-security-token:IQoJb3JpZ2luX2VjMETADATATOKEN\n"
        "?X-Amz-Credential=ASIAMETADATA1234567%2F20261201"
    )
    cleaned = redact(text)
    for leaked in ("ASIAMETADATA1234567", "IQoJb3JpZ2luX2VjMETADATATOKEN", "ya29.metadata"):
        assert leaked not in cleaned
    assert "Credential=***" in cleaned


def test_a_credential_beside_a_large_request_body_is_hidden():
    """botocore's DEBUG record of a part upload holds the part's bytes and its headers."""
    body = repr(bytes(range(256)) * 4096)  # a 1 MiB part as botocore prints it
    text = f"{{'body': {body}, 'headers': {{'Authorization': 'AWS4-HMAC-SHA256 "
    text += "Credential=AKIABODYNEIGHBOUR/20261201/us-east-1/s3', 'X-Amz-Security-Token': "
    text += "'IQoJbodyNeighbourToken'}}"
    cleaned = redact(text)
    assert "AKIABODYNEIGHBOUR" not in cleaned and "IQoJbodyNeighbourToken" not in cleaned
    assert cleaned.startswith("{'body': " + body)  # the rest is untouched


def test_credentials_after_letters_that_lower_to_two_characters_are_hidden():
    # "İ".lower() is two characters: positions in the lowered text would point past the key.
    text = "İstanbul İzmir Credential=ASIAUNICODEKEY12345/x Authorization: Bearer tok-unicode-1"
    cleaned = redact(text)
    assert "ASIAUNICODEKEY12345" not in cleaned and "tok-unicode-1" not in cleaned
    assert cleaned.startswith("İstanbul İzmir Credential=***/x")
