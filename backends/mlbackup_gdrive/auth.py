"""Credentials for the Drive API backend, from config only: a service-account key (a file, or
JSON in an environment variable), a saved OAuth token for headless reuse, or Colab's login.

pydrive2's ``GoogleAuth`` holds them; the Drive service is then built from the discovery
document bundled with google-api-python-client, with its URLs pointed at ``api_endpoint`` when
one is given (how tests reach a fake Drive).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlbackup.errors import BackendPermissionError, BackendUnavailableError, ConfigError
from mlbackup.redaction import register_secret

__all__ = ["Authorized", "authorize"]

SCOPES = ["https://www.googleapis.com/auth/drive"]


class Authorized:
    """An authorized pydrive2 ``GoogleAuth`` and where its credentials came from."""

    def __init__(self, gauth: Any, source: str, service_account: bool) -> None:
        self.gauth = gauth
        self.source = source
        self.service_account = service_account

    def __repr__(self) -> str:
        return f"Authorized(source={self.source!r})"


def _service_account_info(options: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    if "service_account_json" in options:
        path = Path(options["service_account_json"]).expanduser()
        source = f"service-account key file {str(path)!r}"
        try:
            return json.loads(path.read_text(encoding="utf-8")), source
        except FileNotFoundError:
            raise ConfigError(f"{source} does not exist; fix service_account_json") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source} is not readable JSON ({type(exc).__name__})") from None
    if "service_account_json_env" in options:
        name = options["service_account_json_env"]
        source = f"service-account key in ${name}"
        raw = os.environ.get(name)
        if not raw:
            raise ConfigError(f"{source}: the variable is not set; export the key's JSON in it")
        try:
            return json.loads(raw), source
        except ValueError:
            raise ConfigError(f"{source} is not valid JSON; paste the whole key file") from None
    return None


def _gauth(settings: dict[str, Any]) -> Any:
    from pydrive2.auth import GoogleAuth

    return GoogleAuth(settings=settings, settings_file=None)


def authorize(options: Mapping[str, Any], timeout: float) -> Authorized:
    """Build and refresh credentials from ``options``; raise at once with the fix if Google
    (or the token endpoint the key names) refuses them."""
    base = {"oauth_scope": SCOPES, "save_credentials": False}
    found = _service_account_info(options)
    if found is not None:
        info, source = found
        if info.get("type") != "service_account":
            raise ConfigError(f"{source} has type {info.get('type')!r}; expected service_account")
        register_secret(info.get("private_key"))
        gauth = _gauth(
            {
                **base,
                "client_config_backend": "service",
                "service_config": {"client_json_dict": info, "client_user_email": None},
            }
        )
        service_account = True
        source += f" (service account {info.get('client_email')})"
        try:
            gauth.ServiceAuth()
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{source} is not a usable key: {exc}") from None
    elif "credentials_file" in options:
        path = Path(options["credentials_file"]).expanduser()
        source = f"saved OAuth token {str(path)!r}"
        if not path.is_file():
            raise ConfigError(
                f"{source} does not exist; create it once on a machine with a browser "
                "(GoogleAuth().LocalWebserverAuth(); SaveCredentialsFile(path)) and copy it"
            )
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{source} is not readable JSON ({type(exc).__name__})") from None
        client = {
            "client_id": saved.get("client_id"),
            "client_secret": saved.get("client_secret"),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": saved.get("token_uri"),
            "revoke_uri": saved.get("revoke_uri"),
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        }
        gauth = _gauth({**base, "client_config_backend": "settings", "client_config": client})
        gauth.LoadCredentialsFile(str(path))
        if gauth.credentials is None:
            raise ConfigError(f"{source} holds no credentials; save them again")
        register_secret(getattr(gauth.credentials, "refresh_token", None))
        register_secret(getattr(gauth.credentials, "client_secret", None))
        service_account = False
    elif options.get("colab", _on_colab()):
        source = "Colab's login (google.colab.auth)"
        gauth = _colab_gauth(base)
        service_account = False
    else:
        raise ConfigError(
            "no Drive credentials configured: pass service_account_json=<key.json>, "
            "service_account_json_env=<VAR holding the key>, or credentials_file=<saved OAuth "
            "token>; on Colab your own login is used"
        )
    _refresh(gauth, source, timeout)
    return Authorized(gauth, source, service_account)


def _refresh(gauth: Any, source: str, timeout: float) -> None:
    import httplib2
    from oauth2client.client import Error as OAuthError

    try:
        gauth.credentials.refresh(httplib2.Http(timeout=timeout))
    except OAuthError as exc:
        raise BackendPermissionError(
            f"Google rejected {source}: {str(exc).splitlines()[0][:200]}; the key or token "
            "may be revoked, deleted or mistyped: create a new one and retry"
        ) from exc
    except (OSError, httplib2.HttpLib2Error) as exc:
        raise BackendUnavailableError(
            f"could not reach the token endpoint for {source} ({type(exc).__name__}); check "
            "the network and retry"
        ) from exc
    register_secret(getattr(gauth.credentials, "access_token", None))


def _on_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def _colab_gauth(base: dict[str, Any]) -> Any:  # pragma: no cover - needs Colab
    from google.colab import auth
    from oauth2client.client import GoogleCredentials

    auth.authenticate_user()
    gauth = _gauth({**base, "client_config_backend": "settings", "client_config": {}})
    gauth.credentials = GoogleCredentials.get_application_default()
    return gauth


def build_service(gauth: Any, api_endpoint: str | None, http: Any) -> Any:
    """The Drive v2 service, from the bundled discovery document, at ``api_endpoint``."""
    from googleapiclient.discovery import build_from_document
    from googleapiclient.discovery_cache import get_static_doc

    document = json.loads(get_static_doc("drive", "v2"))
    if api_endpoint:
        root = api_endpoint.rstrip("/") + "/"
        document["rootUrl"] = root
        document["mtlsRootUrl"] = root
        document["baseUrl"] = root + document["servicePath"]
    return _BuiltOnce(build_from_document(document, http=http), set(document["resources"]))


class _BuiltOnce:
    """The Drive service, each of its resource collections (``files()``, ``about()``, ...)
    built once: googleapiclient builds one anew on every call, every method with its
    docstring, about 6 ms of CPU per request here."""

    def __init__(self, service: Any, resources: set[str]) -> None:
        self._service = service
        self._resources = resources
        self._built: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._service, name)
        if name not in self._resources:
            return attribute

        def resource() -> Any:
            if name not in self._built:  # a race builds it twice, harmlessly
                self._built[name] = attribute()
            return self._built[name]

        return resource
