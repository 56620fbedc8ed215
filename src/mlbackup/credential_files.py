"""Credential files that a folder backup leaves out by default.

A run folder often picks up a key by accident: a service-account JSON copied next to the
notebook, a ``.env``, a saved OAuth token. Backed up, it would sit in the bucket (and in every
kept version) for anyone who can read the backups. Folder backups skip these files and report
each one; set ``include_credential_files = true`` (``MLBACKUP_INCLUDE_CREDENTIAL_FILES=1``) to
back them up anyway. A file named explicitly (``backup("key.json")``) is always backed up.

Recognised by name (``.env``, ``.netrc``, ``.aws/credentials``, SSH private keys, ...) and, for
small ``.json`` files, by content: a Google service-account key or OAuth client/token file.
"""

from __future__ import annotations

__all__ = ["credential_reason"]

_NAMES = {
    ".env": "environment file",
    ".netrc": "netrc credentials",
    "_netrc": "netrc credentials",
    ".git-credentials": "git credentials",
    ".pypirc": "PyPI credentials",
    ".pgpass": "PostgreSQL password file",
    "kaggle.json": "Kaggle API key",
    "mycreds.txt": "saved pydrive2 OAuth token",
    "client_secrets.json": "OAuth client secret",
    "application_default_credentials.json": "Google application default credentials",
    "id_rsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    "id_dsa": "SSH private key",
}
#: Files under these folders, by folder name.
_FOLDERS = {".aws": ("credentials", "AWS credentials"), ".docker": ("config.json", "Docker auth")}
#: JSON files up to this size are sniffed for Google keys (a key is about 2.3 KB).
_SNIFF_BYTES = 16 << 10
_JSON_MARKERS = (
    (b'"private_key"', "service-account key"),
    (b'"refresh_token"', "OAuth token"),
    (b'"client_secret"', "OAuth client secret"),
)


def credential_reason(rel: str, path: str, size: int) -> str | None:
    """Why the file at ``path`` (``rel`` in the tree, ``size`` bytes) is a credential, or None."""
    name = rel.rsplit("/", 1)[-1]
    if name in _NAMES:
        return _NAMES[name]
    if name.startswith(".env.") and name not in (".env.example", ".env.sample", ".env.template"):
        return "environment file"
    parent = rel.rsplit("/", 2)[-2] if rel.count("/") else ""
    folder = _FOLDERS.get(parent)
    if folder is not None and folder[0] == name:
        return folder[1]
    if name.endswith(".json") and 0 < size <= _SNIFF_BYTES:
        try:
            with open(path, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        except OSError:
            return None
        for marker, what in _JSON_MARKERS:
            if marker in head:
                return what
    return None
