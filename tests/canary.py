"""Canary credentials: passed to every s3/gcs test target, and never allowed to show up."""

CANARY_SECRET = "canary-SECRET-5f0c2e9a"
CANARY_TOKEN = "ya29.canary-TOKEN-7d41b3c8"


def canaries(extra=()):
    return [CANARY_SECRET, CANARY_TOKEN, *extra]


def assert_no_canary(text, extra=()):
    for canary in canaries(extra):
        assert canary not in text, f"a credential leaked: {text[:300]!r}"
