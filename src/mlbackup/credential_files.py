"""Credential files that a folder backup leaves out by default.

A run folder often picks up a key by accident: a service-account JSON copied next to the
notebook, a ``.env``, a saved OAuth token, a home folder's tool configs. Backed up, it would
sit in the bucket (and in every kept version) for anyone who can read the backups. Folder
backups skip these files and report each one; set ``include_credential_files = true``
(``MLBACKUP_INCLUDE_CREDENTIAL_FILES=1``) to back them up anyway. A file named explicitly
(``backup("key.json")``) is always backed up.

Recognised by name, case aside (``.env``, ``prod.env``, ``.envrc``, ``.netrc``, ``.s3cfg``,
``.boto``, ``secrets.toml``, SSH private keys, ...), by the well-known paths of the tools our
users run (``.aws/credentials``, ``.kube/config``, ``.huggingface/token``, ``.docker/config.json``)
and by content, for small files whose name says nothing (``SA_KEY.JSON``, ``sa.json.bak``, a
key without an extension): a PEM private key, a Google service-account key or OAuth client or
token file in any encoding, an AWS secret key, an npm auth token.
"""

from __future__ import annotations

import re

__all__ = ["credential_reason"]

_NAMES = {
    ".env": "environment file",
    ".envrc": "environment file (direnv)",
    ".netrc": "netrc credentials",
    "_netrc": "netrc credentials",
    ".git-credentials": "git credentials",
    ".pypirc": "PyPI credentials",
    ".pgpass": "PostgreSQL password file",
    ".s3cfg": "s3cmd credentials",
    ".boto": "boto credentials",
    "secrets.toml": "Streamlit secrets",
    "kaggle.json": "Kaggle API key",
    "mycreds.txt": "saved OAuth token (the name Google's client libraries suggest)",
    "client_secrets.json": "OAuth client secret",
    "application_default_credentials.json": "Google application default credentials",
    "id_rsa": "SSH private key",
    "id_ecdsa": "SSH private key",
    "id_ed25519": "SSH private key",
    "id_dsa": "SSH private key",
}
#: (folder, file) pairs of tools' well-known credential files, whatever they hold.
_PATHS = {
    (".aws", "credentials"): "AWS credentials",
    (".docker", "config.json"): "Docker auth",
    (".kube", "config"): "Kubernetes credentials",
    (".huggingface", "token"): "Hugging Face token",
    ("huggingface", "token"): "Hugging Face token",
    (".config/gcloud", "credentials.db"): "gcloud credentials",
}
#: The same, by file name: one look-up per scanned file.
_PATHS_BY_NAME: dict[str, list[tuple[str, str]]] = {}
for (_parent, _file), _what in _PATHS.items():
    _PATHS_BY_NAME.setdefault(_file, []).append((_parent, _what))
del _parent, _file, _what
_EXAMPLES = (".env.example", ".env.sample", ".env.template", "example.env", "sample.env")
#: Files whose names say nothing are sniffed when they are this small and their extension is
#: one a key or config file has (a model's weights or a dataset shard never is).
_SNIFF_BYTES = 4 << 20
_HEAD_BYTES = 64 << 10
_SNIFFED_EXTENSIONS = {
    "", "json", "pem", "key", "p8", "txt", "bak", "old", "orig", "backup", "cfg", "conf",
    "config", "ini", "toml", "yaml", "yml", "npmrc", "creds", "token", "secret",
}  # fmt: skip
_MARKERS = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "private key (PEM)"),
    (re.compile(r'"private_key"\s*:'), "service-account key"),
    (re.compile(r'"refresh_token"\s*:'), "OAuth token"),
    (re.compile(r'"client_secret"\s*:'), "OAuth client secret"),
    (re.compile(r"(?i)aws_secret_access_key\s*[=:]"), "AWS secret key"),
    (re.compile(r"(?im)^\s*secret_key\s*=\s*\S"), "S3 secret key"),
    (re.compile(r"(?im)(:_authtoken|^_auth)\s*=\s*\S"), "npm auth token"),
)


def credential_reason(rel: str, path: str, size: int) -> str | None:
    """Why the file at ``path`` (``rel`` in the tree, ``size`` bytes) is a credential, or None."""
    folder, _, name = rel.lower().rpartition("/")
    if name in _NAMES:
        return _NAMES[name]
    if (name.startswith(".env.") or name.endswith(".env")) and name not in _EXAMPLES:
        return "environment file"
    for parent, what in _PATHS_BY_NAME.get(name, ()):
        if folder == parent or folder.endswith("/" + parent):
            return what
    extension = name.rpartition(".")[2] if "." in name.lstrip(".") else ""
    if 0 < size <= _SNIFF_BYTES and (extension in _SNIFFED_EXTENSIONS or name.startswith(".")):
        return _sniff(path)
    return None


def _sniff(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return None
    text = _text(head)
    for marker, what in _MARKERS:
        if marker.search(text):
            return what
    return None


def _text(data: bytes) -> str:
    """The bytes as text, whichever Unicode encoding a tool saved them in."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    if data[1:200:2].count(0) > 50:  # UTF-16 without a byte-order mark
        return data.decode("utf-16-le" if data[1] == 0 else "utf-16-be", "replace")
    return data.decode("utf-8", "replace")
