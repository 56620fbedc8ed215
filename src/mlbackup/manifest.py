"""The manifest: the record of one committed backup version.

A manifest is a JSON document written **last**, after every byte it lists is stored and
verified; readers trust nothing else. One manifest per version, never replaced::

    {
      "format": "mlbackup.manifest/2",
      "name": "outputs/hpo/study.db",        # the backup's name (a relative POSIX path)
      "version": 3,                          # 1, 2, 3, ... per name
      "kind": "file",                        # "file" or "dir"
      "created": "2026-11-28T15:40:00.123456+00:00",
      "hash": "xxh128",                      # algorithm of every "hash" below
      "files": [                             # sorted by path
        {"path": "", "size": 28672, "hash": "9f...", "mtime_ns": 1764340800123456789,
         "mode": 420, "sig": "28672:1764340800123456789", "sqlite": true,
         "ref": "1AbC..."}                 # only where the store names objects by ID
      ],
      "dirs": [],                            # empty folders of a "dir" backup
      "meta": {}                             # free-form, e.g. the mlbackup version
    }

``path`` is relative to the backed-up item: ``""`` for a single file, ``"sub/w.bin"`` inside a
folder. ``hash`` is checked to be a digest of the declared algorithm on read: it names the
object (``.mlbackup/objects/<hash>``), so it can never be a path. ``sig`` is the cheap change
signature (sizes and mtimes of the source, plus the WAL of a SQLite database) that lets the
next backup skip unchanged files without reading them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .errors import IntegrityError, UnsafePathError
from .layout import check_digest

__all__ = ["FORMAT", "MAX_MANIFEST_BYTES", "FileEntry", "Manifest", "check_relative_path"]

#: The format this release writes; it reads format 1 too (see `mlbackup.layout`).
FORMAT = "mlbackup.manifest/2"
_READABLE = {"mlbackup.manifest/1": 1, FORMAT: 2}
#: Longest ``ref`` (a store's object ID) a manifest may hold.
_MAX_REF = 200
#: The largest manifest a reader loads: about a million files. A bigger one is refused before
#: it is parsed (a parse takes about three times its size in memory).
MAX_MANIFEST_BYTES = 256 << 20
#: Sizes and times are 64-bit on every filesystem; ``mode`` is permission bits only.
_INT_RANGES = {"size": (0, 2**63 - 1), "mtime_ns": (-(2**63), 2**63 - 1), "mode": (0, 0o7777)}

Kind = Literal["file", "dir"]


def check_relative_path(path: str, *, allow_empty: bool = False) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise `UnsafePathError`.

    Safe means: no absolute path, no ``..`` or ``.`` component, no empty component, no NUL and
    no backslash, so that joining it under a destination can never leave the destination.
    """
    if path == "" and allow_empty:
        return path
    # The common, safe case in a few C-level searches (a manifest holds a path per file);
    # anything they flag is looked at again below, to name the problem.
    framed = f"/{path}/"
    if not (
        "//" in framed or "/./" in framed or "/../" in framed or "\x00" in path or "\\" in path
    ):
        return path
    problem = None
    if not path:
        problem = "is empty"
    elif "\x00" in path:
        problem = "contains a NUL byte"
    elif "\\" in path:
        problem = "contains a backslash"
    elif path.startswith("/"):
        problem = "is absolute"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        problem = "has an empty, '.' or '..' component"
    if problem:
        raise UnsafePathError(
            f"unsafe path {path!r} in backup: it {problem}; the backup may have been tampered "
            "with, so nothing was written"
        )
    return path


@dataclass(frozen=True)
class FileEntry:
    """One file of a backup version."""

    path: str
    size: int
    hash: str
    mtime_ns: int
    mode: int = 0o644
    sig: str = ""
    sqlite: bool = False
    #: The store's own ID of the object holding the bytes, where it names objects by ID;
    #: None elsewhere (the object is found by its hash).
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "hash": self.hash,
            "mtime_ns": self.mtime_ns,
            "mode": self.mode,
            "sig": self.sig,
        }
        if self.sqlite:
            data["sqlite"] = True
        if self.ref is not None:
            data["ref"] = self.ref
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], hash_name: str) -> FileEntry:
        ref = data.get("ref")
        if ref is not None and (not isinstance(ref, str) or not 0 < len(ref) <= _MAX_REF):
            raise ValueError(f"invalid object ref {str(ref)[:40]!r}")
        return cls(
            path=check_relative_path(str(data["path"]), allow_empty=True),
            size=_checked_int(data, "size"),
            hash=check_digest(str(data["hash"]), hash_name),
            mtime_ns=_checked_int(data, "mtime_ns"),
            mode=_checked_int(data, "mode", 0o644),
            sig=str(data.get("sig", "")),
            sqlite=bool(data.get("sqlite", False)),
            ref=ref,
        )


@dataclass(frozen=True)
class Manifest:
    """One committed version of a backup."""

    name: str
    version: int
    kind: Kind
    hash_name: str
    files: tuple[FileEntry, ...]
    dirs: tuple[str, ...] = ()
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: The storage format it was written in: 2, or 1 for versions written by release 0.1.0
    #: (whose bytes are found where that release kept them).
    format_version: int = 2

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    def to_bytes(self) -> bytes:
        """The manifest as JSON, one file per line: readable and diffable, and written by
        json's C encoder (``indent`` would select its pure-Python one, 3x slower: 20 ms for
        5,000 files)."""
        if self.format_version != 2:
            raise ValueError("only format 2 manifests are written")
        head = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "created": self.created,
            "hash": self.hash_name,
            "dirs": sorted(self.dirs),
            "meta": dict(self.meta),
        }
        encode = json.JSONEncoder(ensure_ascii=False).encode
        lines = [encode(f.to_json()) for f in sorted(self.files, key=lambda f: f.path)]
        files = "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"
        return f'{encode(head)[:-1]}, "files": {files}}}\n'.encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> Manifest:
        """Parse a manifest; ``where`` names its location for error messages. One larger
        than `MAX_MANIFEST_BYTES` is refused unparsed."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise IntegrityError(
                f"manifest {where} is larger than the {MAX_MANIFEST_BYTES >> 20} MiB a reader "
                "loads (about a million files); it is damaged or not ours: restore another "
                "version with --version, or back the data up again"
            )
        try:
            doc = json.loads(data.decode("utf-8"))
            format_version = _READABLE.get(doc.get("format"))
            if format_version is None:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            kind = doc["kind"]
            if kind not in ("file", "dir"):
                raise ValueError(f"unknown kind {kind!r}")
            hash_name = str(doc["hash"])
            files = tuple(FileEntry.from_json(f, hash_name) for f in doc["files"])
            dirs = tuple(check_relative_path(str(d)) for d in doc.get("dirs", []))
            manifest = cls(
                name=str(doc["name"]),
                version=int(doc["version"]),
                kind=kind,
                hash_name=hash_name,
                files=files,
                dirs=dirs,
                created=str(doc["created"]),
                meta=dict(doc.get("meta", {})),
                format_version=format_version,
            )
        except (UnsafePathError, IntegrityError):
            raise
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                exc = ValueError("nested too deeply")
            raise IntegrityError(
                f"manifest {where} is unreadable ({exc}); restore another version with "
                "--version, or back the data up again"
            ) from exc
        _check_consistent(manifest, where)
        return manifest


def _checked_int(data: Mapping[str, Any], name: str, default: int | None = None) -> int:
    """A whole number within its field's range (not a float, a bool or a string)."""
    value = data[name] if default is None else data.get(name, default)
    low, high = _INT_RANGES[name]
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{name} {str(value)[:30]} is not a whole number in {low}..{high}")
    return value


def _check_consistent(manifest: Manifest, where: str) -> None:
    paths = [f.path for f in manifest.files]
    problems: list[str] = []
    if manifest.kind == "file" and paths != [""]:
        problems.append("a file backup must hold exactly one entry with an empty path")
    if manifest.kind == "dir" and "" in paths:
        problems.append("a folder backup holds an entry with an empty path")
    if len(set(paths)) != len(paths):
        problems.append("duplicate paths")
    problems.extend(_prefix_clashes(paths, manifest.dirs))
    if problems:
        raise IntegrityError(f"manifest {where} is inconsistent", problems)


def _prefix_clashes(paths: Iterable[str], dirs: Iterable[str]) -> list[str]:
    """Entries that are both a file and a folder (``a`` and ``a/b``): a symlink-style trick."""
    files = set(paths)
    clashes = []
    for p in [*files, *dirs]:
        parts = p.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                clashes.append(f"{p!r} lies inside the file {parent!r}")
    return clashes
