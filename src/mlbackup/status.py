"""What is backed up where and how fresh: the newest version of each name on a target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from .target import BackupTarget

__all__ = ["NameReport", "backup_status", "format_age"]

#: Asks the store itself which files of a name's newest version it does not hold yet.
Confirmer = Callable[[BackupTarget, str], list[str]]


@dataclass(frozen=True)
class NameReport:
    """The newest committed version of one name.

    Attributes:
        name: the backup's name.
        version: its newest version.
        versions: how many versions are kept.
        created: when the newest version was committed (ISO 8601, UTC).
        age_seconds: how long ago that was.
        files: files in the newest version.
        bytes: their total size.
        state: ``committed`` (the store has it); on a mounted store ``staged`` (on this
            machine, the store uploads it later), or, when checked, ``confirmed`` or
            ``unconfirmed`` (the store does not hold every file yet).
        unconfirmed: with a check, the keys the store does not hold yet.
        damaged_versions: kept versions that no longer restore whole (their stored bytes
            were deleted behind mlbackup's back), oldest first.
    """

    name: str
    version: int
    versions: int
    created: str
    age_seconds: float
    files: int
    bytes: int
    state: str
    unconfirmed: list[str] | None = None
    damaged_versions: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_age(seconds: float) -> str:
    """A short "how long ago".

    Examples:
        >>> format_age(42), format_age(3 * 60), format_age(5 * 3600), format_age(3 * 86400)
        ('42 s ago', '3 min ago', '5 h ago', '3 days ago')
    """
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"


def backup_status(
    target: BackupTarget, *, confirm: Confirmer | None = None, now: datetime | None = None
) -> list[NameReport]:
    """One `NameReport` per name on ``target``, by name.

    Args:
        target: the target to describe.
        confirm: for staged targets, a function asking the store which files of a name it
            does not hold yet, such as one calling ``target.backend.unconfirmed``.
        now: the time ages are measured from (default: now).

    Examples:
        >>> import pathlib, tempfile, mlbackup
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "study.db"
        >>> _ = src.write_bytes(b"x" * 10)
        >>> target = mlbackup.open_target(tempfile.mkdtemp())
        >>> _ = mlbackup.backup(src, target=target, name="study.db")
        >>> [(r.name, r.version, r.files, r.bytes, r.state) for r in backup_status(target)]
        [('study.db', 1, 1, 10, 'committed')]
    """
    from .damage import damaged_versions

    now = now or datetime.now(timezone.utc)
    staged = target.backend.staged_writes
    reports = []
    names = target.names()
    stored = target.stored_objects() if names else set()
    for name in names:
        versions = target.versions(name)
        manifest = target.read_manifest(name, versions[-1])
        age = (now - datetime.fromisoformat(manifest.created)).total_seconds()
        pending = confirm(target, name) if staged and confirm is not None else None
        if not staged:
            state = "committed"
        elif pending is None:
            state = "staged"
        else:
            state = "unconfirmed" if pending else "confirmed"
        reports.append(
            NameReport(
                name=name,
                version=manifest.version,
                versions=len(versions),
                created=manifest.created,
                age_seconds=max(age, 0.0),
                files=len(manifest.files),
                bytes=manifest.total_bytes,
                state=state,
                unconfirmed=pending,
                damaged_versions=[
                    d.version for d in damaged_versions(target, name, stored, versions=versions)
                ],
            )
        )
    return reports
