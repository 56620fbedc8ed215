"""Registered secrets never reach a log handler, whoever logs them."""

import logging

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
