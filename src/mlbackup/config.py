"""Configuration: keyword arguments, then ``MLBACKUP_*`` variables, then a config file.

The file is ``mlbackup.toml`` (keys at top level) or the ``[tool.mlbackup]`` table of
``pyproject.toml``, found in the current folder or the nearest parent that has one, or named by
``$MLBACKUP_CONFIG``::

    # mlbackup.toml
    target = "gs://my-bucket/runs/exp1"
    keep_last = 5
    source_root = "."              # relative to this file
    [storage_options]
    project = "my-project"

=================  ============================  ===========================================
key                variable                      meaning
=================  ============================  ===========================================
enabled            MLBACKUP_ENABLED              false turns every immediate backup into a skip
target             MLBACKUP_TARGET               URL or folder of the backup target
storage_options    MLBACKUP_STORAGE_OPTIONS      the backend's options (a JSON object in the
                                                 variable)
source_root        MLBACKUP_SOURCE_ROOT          names are paths relative to this folder
keep_last          MLBACKUP_KEEP_LAST            versions kept per name (default: all)
=================  ============================  ===========================================

With no target configured, backups go where a mounted store at hand says
(``Backend.default_target``; see the backends' docs), else to a folder under the user's data
directory, with a one-time warning that such a backup does not survive the loss of the machine.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["BackupConfig", "load_config"]

log = logging.getLogger("mlbackup")

ENV_PREFIX = "MLBACKUP_"
CONFIG_FILE = "mlbackup.toml"
_ENV_KEYS = {
    "MLBACKUP_ENABLED": "enabled",
    "MLBACKUP_TARGET": "target",
    "MLBACKUP_STORAGE_OPTIONS": "storage_options",
    "MLBACKUP_SOURCE_ROOT": "source_root",
    "MLBACKUP_KEEP_LAST": "keep_last",
    "MLBACKUP_INCLUDE_CREDENTIAL_FILES": "include_credential_files",
}
# Read elsewhere (mlbackup.name_lock, mlbackup.crashpoints), not settings, but still ours:
# known so that a typo in any other MLBACKUP_ name is caught.
_OTHER_ENV = {"MLBACKUP_CONFIG", "MLBACKUP_CRASH_AT", "MLBACKUP_LOCK_DIR"}


def _known_environment() -> set[str]:
    """Our own variables: the settings, those read elsewhere, and the mounted backends'."""
    from .registry import mounted_backends

    return set(_ENV_KEYS) | _OTHER_ENV | {n for b in mounted_backends() for n in b.environment}


_warned_local_default = False


@dataclass(frozen=True)
class BackupConfig:
    """Settings shared by every backup call; build one with [`load_config()`][mlbackup.load_config].

    Attributes:
        enabled: when false, [`immediate_backup_if_needed()`][mlbackup.immediate_backup_if_needed]
            skips.
        target: the target URL or folder; ``None`` picks the default (see module docs).
        storage_options: the backend's own options (credentials included: never shown).
        source_root: backup names are paths relative to this folder.
        keep_last: versions kept per name; ``None`` keeps all.
        include_credential_files: back up credential files found inside folders (service-account
            keys, ``.env``, ``.netrc``, ...); by default they are left out and reported.
    """

    enabled: bool = True
    target: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    source_root: Path = field(default_factory=Path.cwd)
    keep_last: int | None = None
    include_credential_files: bool = False

    def __repr__(self) -> str:
        # Storage options may hold secrets: show their names only.
        options = ", ".join(f"{k}=***" for k in sorted(self.storage_options))
        return (
            f"BackupConfig(enabled={self.enabled}, target={self.target!r}, "
            f"storage_options={{{options}}}, source_root={str(self.source_root)!r}, "
            f"keep_last={self.keep_last}, "
            f"include_credential_files={self.include_credential_files})"
        )

    def target_url(self) -> str:
        """The configured target, or the default one."""
        global _warned_local_default
        if self.target:
            return self.target
        project = self.source_root.name or "default"
        from .registry import mounted_backends

        for backend in mounted_backends():  # a mounted store at hand
            try:
                url = backend.default_target(project)
            except Exception:  # noqa: BLE001 - a plugin's fault must not fail the backup
                url = None
            if url is not None:
                return url
        import platformdirs  # here: most commands name their target, and it costs 4 ms

        folder = Path(platformdirs.user_data_dir("mlbackup")) / "targets" / project
        if not _warned_local_default:
            _warned_local_default = True
            log.warning(
                "no backup target configured: backing up to %s, which does NOT survive the loss "
                "of this machine; set MLBACKUP_TARGET (e.g. a mounted cloud folder or gs://bucket/path)",
                folder,
            )
        return str(folder)


_FIELDS = {f.name for f in fields(BackupConfig)}


def _unknown_key(key: str, valid: set[str], where: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, sorted(valid), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(sorted(valid))}"
    return ConfigError(f"unknown setting {key!r} in {where}; {hint}")


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")


def _as_keep_last(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1:
        raise ConfigError(f"{where} must be a whole number of at least 1, not {value!r}")
    return number


def _normalise(raw: Mapping[str, Any], where: str, base: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise _unknown_key(key, _FIELDS, where)
        if key in ("enabled", "include_credential_files"):
            out[key] = _as_bool(value, f"'{key}' in {where}")
        elif key == "keep_last":
            out[key] = _as_keep_last(value, f"'keep_last' in {where}")
        elif key == "storage_options":
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"'storage_options' in {where} is not valid JSON ({exc.msg}); write a "
                        'JSON object such as {"endpoint_url": "http://..."}'
                    ) from None
            if not isinstance(value, Mapping):
                raise ConfigError(f"'storage_options' in {where} must be a table/object")
            out[key] = dict(value)
        elif key == "source_root":
            out[key] = (base / os.path.expanduser(str(value))).absolute()
        elif key == "target":
            out[key] = str(value) if value else None
    return out


def _find_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    for folder in [start, *start.parents]:
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate, _read_toml(candidate)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("mlbackup")
            if table is not None:
                return pyproject, dict(table)
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    # Every backup loads the configuration (a callback's after every trial): a file is parsed
    # again only when it changed (5 ms for a project's pyproject.toml here).
    st = path.stat()
    return copy.deepcopy(_parsed_toml(str(path), st.st_mtime_ns, st.st_size, st.st_ino))


@functools.lru_cache(maxsize=8)
def _parsed_toml(path: str, mtime_ns: int, size: int, inode: int) -> dict[str, Any]:
    # Imported here, as most runs find no file to read.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the file") from None


def load_config(
    *,
    start: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> BackupConfig:
    """Build the configuration from arguments, environment and config file, in that order.

    Args:
        start: the folder to look for a config file from (default: the current folder).
        environ: the environment to read (default: ``os.environ``).
        **overrides: settings that win over everything else; ``None`` values are ignored.

    Raises:
        ConfigError: an unknown key (with the nearest valid one) or an invalid value.

    Examples:
        >>> load_config(environ={}, target="/tmp/backups", keep_last=3).keep_last
        3
    """
    env = os.environ if environ is None else environ
    cwd = Path(start).absolute() if start is not None else Path.cwd()
    settings: dict[str, Any] = {}

    explicit = env.get("MLBACKUP_CONFIG")
    if explicit:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"MLBACKUP_CONFIG names {path}, which does not exist; fix the path")
        raw = _read_toml(path)
        found: tuple[Path, dict[str, Any]] | None = (
            path,
            raw.get("tool", {}).get("mlbackup", {}) if path.name == "pyproject.toml" else raw,
        )
    else:
        found = _find_file(cwd)
    if found is not None:
        path, raw = found
        settings.update(_normalise(raw, str(path), path.parent))

    from_env: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in _OTHER_ENV:
            continue
        if key not in _ENV_KEYS:
            known = _known_environment()
            if key not in known:
                # An environment carries other programs' variables (a benchmark harness's own
                # MLBACKUP_*): a warning naming the nearest one, where a file's typo is an error.
                log.warning("%s; ignored", _unknown_key(key, known, "the environment"))
            continue
        from_env[_ENV_KEYS[key]] = value
    settings.update(_normalise(from_env, "the environment", cwd))

    given = {k: v for k, v in overrides.items() if v is not None}
    settings.update(_normalise(given, "the arguments", cwd))
    settings.setdefault("source_root", cwd)
    return replace(BackupConfig(), **settings)
