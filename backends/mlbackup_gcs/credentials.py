"""Google credentials for the GCS backend, built by us so bad ones fail in seconds.

gcsfs, given a token it cannot use, retries the refresh with backoff for half a minute, and with
no token at all it quietly falls back to anonymous access. Here every ``token`` mode is turned
into a ``google.auth`` credentials object (or ``"anon"``) up front, and `refresh()`
exchanges it once, so a revoked key or a missing login is reported at once with the fix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbackup.errors import BackendPermissionError, BackendUnavailableError, ConfigError
from mlbackup.redaction import register_secret

__all__ = ["Credentials", "load_credentials", "refresh"]

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]

#: ``token`` values gcsfs resolves itself.
_PASSED_THROUGH = ("anon", "cloud")


class Credentials:
    """What to hand gcsfs as ``token``, and where it came from (for messages)."""

    def __init__(self, token: Any, source: str) -> None:
        self.token = token
        self.source = source

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r})"


def load_credentials(token: str | Mapping[str, Any] | None) -> Credentials:
    """Build credentials from the ``token`` option.

    ``None`` or ``"google_default"``: Application Default Credentials (on Colab, the user's
    login after ``google.colab.auth.authenticate_user()``). ``"anon"``: no credentials, for
    public buckets and emulators. ``"cloud"``: the VM's metadata server. A path to a JSON key
    file, or its parsed content: a service account or an authorized user.
    """
    if token in _PASSED_THROUGH:
        return Credentials(token, f"token={token!r}")
    if token is None or token == "google_default":  # noqa: S105 - a mode name, not a secret
        return _application_default()
    if isinstance(token, Mapping):
        return _from_info(dict(token), "the token option's key")
    path = Path(token).expanduser()
    source = f"key file {str(path)!r}"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"token {str(path)!r} is neither a file nor one of google_default, anon, cloud; "
            "give the path of a service-account JSON key"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{source} could not be read as JSON ({type(exc).__name__}); download the key "
            "again from the Cloud console"
        ) from None
    return _from_info(info, source)


def _application_default() -> Credentials:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    source = "Application Default Credentials (token=google_default)"
    try:
        credentials, _project = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError:
        raise BackendPermissionError(
            f"no Google credentials found in {source}; on Colab run "
            "google.colab.auth.authenticate_user() first, elsewhere set "
            "GOOGLE_APPLICATION_CREDENTIALS or pass token=<service-account.json> "
            "(token=anon for a public bucket)"
        ) from None
    return Credentials(credentials, source)


def _from_info(info: Mapping[str, Any], source: str) -> Credentials:
    kind = info.get("type") if isinstance(info, Mapping) else None
    for field in ("private_key", "client_secret", "refresh_token"):
        register_secret(info.get(field))
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            credentials: Any = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES
            )
            return Credentials(
                credentials, f"{source} (service account {info.get('client_email')})"
            )
        if kind == "authorized_user":
            from google.oauth2.credentials import Credentials as UserCredentials

            credentials = UserCredentials.from_authorized_user_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
            return Credentials(credentials, f"{source} (authorized user)")
    except (ValueError, KeyError) as exc:
        # google-auth's messages name missing fields, never their values.
        raise ConfigError(f"{source} is not a usable key: {exc}; download it again") from None
    raise ConfigError(
        f"{source} has type {kind!r}; expected a service_account or authorized_user JSON key"
    )


def refresh(credentials: Credentials, timeout: float) -> None:
    """Exchange the credentials for an access token once; raise at once if Google refuses."""
    if isinstance(credentials.token, str):
        return
    import google.auth.exceptions
    from google.auth.transport.requests import Request

    try:
        credentials.token.refresh(_TimedRequest(Request(), timeout))
        register_secret(credentials.token.token)  # the access token now in every header
    except google.auth.exceptions.RefreshError as exc:
        reason = exc.args[0] if exc.args else type(exc).__name__
        raise BackendPermissionError(
            f"Google rejected {credentials.source}: {_first_line(reason)}; the key may be "
            "revoked, deleted or mistyped: create a new key (or log in again) and retry"
        ) from exc
    except google.auth.exceptions.TransportError as exc:
        raise BackendUnavailableError(
            f"could not reach Google's token endpoint for {credentials.source}; check the "
            "network and retry"
        ) from exc


def _first_line(reason: Any) -> str:
    return str(reason).splitlines()[0][:200]


class _TimedRequest:
    """google-auth's request with a bounded timeout (its default is two minutes)."""

    def __init__(self, request: Any, timeout: float) -> None:
        self._request = request
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = min(kwargs.get("timeout") or self._timeout, self._timeout)
        return self._request(*args, **kwargs)
