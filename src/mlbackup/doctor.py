"""Preflight checks before a long run: is the target reachable and writable, with which
credentials, how much room is left, and will the outputs suit it.

``mlbackup doctor`` prints these; `run_doctor()` returns them for code.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import layout
from .commit import GRACE_SECONDS
from .create_only import CREATE_ONLY_ADVICE, probe_create_only
from .errors import MLBackupError
from .progress_bar import format_bytes
from .sources import scan
from .target import BackupTarget, open_target

__all__ = ["DoctorReport", "Finding", "run_doctor"]

#: Less free room than this on the target is worth a warning before a long run.
LOW_FREE_BYTES = 1 << 30

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    Attributes:
        level: ``ok``, ``warning`` (works, but worth knowing) or ``problem`` (fix it first).
        check: what was checked: ``reachable``, ``credentials``, ``write``, ``space``,
            ``backups``, ``format``, ``staged``, ``layout``, ``duplicates``.
        message: what was found and, unless ok, what to do.
    """

    level: Level
    check: str
    message: str


@dataclass
class DoctorReport:
    """Everything `run_doctor()` found.

    Attributes:
        target: the target's URL.
        findings: one per check, in the order run.
        credentials: where the credentials come from, in words (never the credentials).
        free_bytes: room left where the store reports it, else None.
        backups: how many names hold a committed backup.
        duplicates: keys held by several stored files, where the store allows it (key -> IDs).
        repaired: older duplicates moved to the trash with ``repair=True``.
    """

    target: str
    findings: list[Finding] = field(default_factory=list)
    credentials: str | None = None
    free_bytes: int | None = None
    backups: int | None = None
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    repaired: int | None = None
    #: The versions, by name, that list a file whose stored bytes are gone (deleted or
    #: trashed behind mlbackup's back): they no longer restore whole.
    damaged: dict[str, list[int]] = field(default_factory=dict)
    #: With ``repair_from``: how many missing objects were put back from that folder.
    put_back: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing (warnings allowed)."""
        return not any(f.level == "problem" for f in self.findings)

    def add(self, level: Level, check: str, message: str) -> None:
        self.findings.append(Finding(level, check, message))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def run_doctor(
    url: str,
    options: Mapping[str, Any] | None = None,
    *,
    paths: Iterable[str | Path] = (),
    repair: bool = False,
    write_test: bool = True,
    repair_from: str | Path | None = None,
) -> DoctorReport:
    """Check a target before a long run; never raises for what it finds.

    Args:
        url: the target URL or folder.
        options: the backend's storage options.
        paths: outputs you are about to back up: checked against the room left and the
            target's layout limits (`Backend.many_files_warning`).
        repair: remove leftovers of interrupted backups and, on stores that allow duplicate
            names, older duplicates of a name.
        write_test: write and delete a small object, to prove the credentials may write.
        repair_from: a local folder (the outputs a backup was made from, a copy of them):
            the objects versions lack whose bytes a file in it holds are put back, before
            the ``missing`` check tells what is still gone.

    Examples:
        >>> import tempfile
        >>> report = run_doctor(tempfile.mkdtemp())
        >>> report.ok
        True
        >>> [f.check for f in report.findings]  # doctest: +NORMALIZE_WHITESPACE
        ['reachable', 'credentials', 'write', 'create-only', 'space', 'backups', 'format',
         'missing', 'duplicates']
    """
    report = DoctorReport(target=url)
    try:
        target = open_target(url, **dict(options or {}))
    except MLBackupError as exc:
        report.add("problem", "reachable", str(exc))
        return report
    with target:
        report.target = target.url
        try:
            _check(report, target, [Path(p) for p in paths], repair, write_test, repair_from)
        except MLBackupError as exc:  # the store failed between checks
            report.add("problem", "reachable", str(exc))
    return report


def _check(
    report: DoctorReport,
    target: BackupTarget,
    paths: list[Path],
    repair: bool,
    write_test: bool,
    repair_from: str | Path | None,
) -> None:
    backend = target.backend
    report.add("ok", "reachable", f"{target.url} answered")
    report.credentials = backend.credentials()
    report.add("ok", "credentials", f"{report.credentials}: accepted")
    absent = backend.absent_because()
    if absent is not None:  # never made by a preflight: the path may be mistyped
        report.add("warning", "write", f"no test write: {absent}")
    elif write_test:
        _write_test(report, target)
    report.free_bytes = backend.free_bytes()
    needed = sum(_size(p) for p in paths)
    _space(report, needed, backend.no_room_advice)
    names = target.names()
    report.backups = len(names)
    report.add("ok", "backups", f"{report.backups} backups on the target")
    _format(report, target, names)
    _missing(report, target, names, Path(repair_from) if repair_from is not None else None)
    if backend.staged_writes:
        report.add(
            "warning",
            "staged",
            f"writes are staged on this machine until the store has them: {backend.staged_advice}",
        )
    for path in paths:
        _layout(report, target, path)
    _leftovers(report, target, repair)
    report.duplicates = backend.duplicates()
    for key, ids in sorted(report.duplicates.items()):
        report.add(
            "problem" if not repair else "ok",
            "duplicates",
            f"{key}: {len(ids)} files with this name on the store (the newest is read)",
        )
    if report.duplicates and repair:
        report.repaired = backend.repair_duplicates()
        report.add("ok", "duplicates", f"{report.repaired} older duplicates moved to the trash")
    elif report.duplicates:
        report.add("problem", "duplicates", "run `mlbackup doctor --repair` to keep the newest")
    else:
        report.add("ok", "duplicates", "no duplicate names")


def _leftovers(report: DoctorReport, target: BackupTarget, repair: bool) -> None:
    """Objects no version lists: left by backups that failed or were killed (or written by one
    running now, which is why only those older than retention's grace period are removed)."""
    backend = target.backend
    unlisted = sorted(target.stored_objects() - target.listed_digests())
    if not unlisted:
        return
    now = time.time()
    sizes: dict[str, int] = {}
    old: list[str] = []
    for digest in unlisted:
        key = layout.object_key(digest)
        info = backend.info(key)
        modified = backend.modified(key)
        sizes[digest] = info.size if info is not None else 0
        if modified is not None and now - modified >= GRACE_SECONDS:
            old.append(digest)
    total = format_bytes(sum(sizes.values()))
    hours = GRACE_SECONDS // 3600
    what = f"{len(unlisted)} object{'s' if len(unlisted) != 1 else ''} ({total})"
    if repair and old:
        for digest in old:
            backend.delete(layout.object_key(digest))
        freed = format_bytes(sum(sizes[d] for d in old))
        kept = len(unlisted) - len(old)
        report.add(
            "ok",
            "leftovers",
            f"removed {len(old)} objects ({freed}) that no version lists"
            + (
                f"; {kept} younger than {hours} h kept (a backup may be writing them)"
                if kept
                else ""
            ),
        )
        return
    report.add(
        "warning",
        "leftovers",
        f"{what} that no version lists: left by backups that failed or were killed, or being "
        f"written by one running now; `mlbackup doctor --repair` removes those older than "
        f"{hours} h ({len(old)} now), as retention does",
    )


def _missing(
    report: DoctorReport, target: BackupTarget, names: list[str], repair_from: Path | None
) -> None:
    """Every version whose files' bytes are not all on the store: one listing of the objects,
    then each manifest compared with it; with ``repair_from``, put back what it holds."""
    from .damage import damaged_versions, repair_from_folder

    stored = target.stored_objects()
    damage = [d for name in names for d in damaged_versions(target, name, stored)]
    if repair_from is not None:
        if not repair_from.is_dir():
            report.add("problem", "missing", f"nothing repaired: {repair_from} is not a folder")
        else:
            repaired = repair_from_folder(target, damage, repair_from)
            report.put_back = len(repaired.put_back)
            report.add(
                "ok",
                "missing",
                f"put back {report.put_back} missing objects from {repair_from}"
                + (
                    f"; no copy there of {len(repaired.still_missing)} files: "
                    + ", ".join(f"{n!r} version {v} {p}" for n, v, p in repaired.still_missing[:5])
                    + (", ..." if len(repaired.still_missing) > 5 else "")
                    if repaired.still_missing
                    else ""
                ),
            )
            if repaired.put_back:
                stored = target.stored_objects()
                damage = [d for name in names for d in damaged_versions(target, name, stored)]
    for d in damage:
        report.damaged.setdefault(d.name, []).append(d.version)
        report.add(
            "problem",
            "missing",
            f"{d.describe()}, so it no longer restores whole (something other than mlbackup "
            f"deleted them); `mlbackup verify {d.name} --version {d.version}` names each, and "
            "`mlbackup doctor --repair-from FOLDER` puts back what a local copy still holds",
        )
    if not report.damaged:
        report.add("ok", "missing", "every version's files are on the store")


def _format(report: DoctorReport, target: BackupTarget, names: list[str]) -> None:
    old = [n for n in names if (m := target.latest_manifest(n)) and m.format_version == 1]
    if not old:
        report.add("ok", "format", "storage format 2 (immutable versions)")
        return
    shown = ", ".join(repr(n) for n in old[:5]) + (", ..." if len(old) > 5 else "")
    report.add(
        "ok",
        "format",
        f"storage format 1 (release 0.1.0) for {len(old)} of {len(names)} names ({shown}): "
        "every version restores; the next backup of each that changes something moves it to "
        "format 2 without sending the kept files again",
    )


def _write_test(report: DoctorReport, target: BackupTarget) -> None:
    key = f"{layout.tmp_prefix()}/doctor-{uuid.uuid4().hex}"
    try:
        target.backend.write_new(key, b"mlbackup doctor write test\n")
        target.backend.delete(key)
    except MLBackupError as exc:
        report.add("problem", "write", f"a test write failed: {exc}")
    else:
        report.add("ok", "write", "a test object was written and deleted")
        _create_only(report, target)


def _create_only(report: DoctorReport, target: BackupTarget) -> None:
    try:
        why_not = probe_create_only(target.backend)
    except (MLBackupError, OSError) as exc:
        report.add("problem", "create-only", f"the create-only probe failed: {exc}")
        return
    if why_not is None:
        report.add(
            "ok", "create-only", "a second create of one object is refused (create-only writes)"
        )
        return
    report.add(
        "warning",
        "create-only",
        f"{why_not}; backups still work, but the Optuna bucket journal refuses this store "
        f"(two workers could take one place in its log): {CREATE_ONLY_ADVICE}",
    )


def _space(report: DoctorReport, needed: int, no_room_advice: str) -> None:
    free = report.free_bytes
    if free is None:
        report.add("ok", "space", "the store reports no size limit")
    elif free < needed:
        report.add(
            "problem",
            "space",
            f"{format_bytes(free)} free, but the outputs given hold {format_bytes(needed)}: "
            "free space there or choose another target",
        )
    elif free == 0:
        report.add(
            "problem",
            "space",
            f"no room left: {no_room_advice}",
        )
    elif free < LOW_FREE_BYTES:
        report.add("warning", "space", f"only {format_bytes(free)} free")
    else:
        report.add("ok", "space", f"{format_bytes(free)} free")


def _size(path: Path) -> int:
    try:
        return sum(f.size for f in scan(path).files)
    except MLBackupError:
        return 0  # reported by _layout


def _layout(report: DoctorReport, target: BackupTarget, path: Path) -> None:
    try:
        scanned = scan(path)
    except MLBackupError as exc:
        report.add("problem", "layout", str(exc))
        return
    count = len(scanned.files)
    small = sum(1 for f in scanned.files if f.size < 1 << 20)
    limit = target.backend.many_files_warning
    if limit is not None and count > limit:
        report.add(
            "warning",
            "layout",
            f"{path} holds {count:,} files ({small:,} under 1 MB); {target.url} handles each "
            "file with a round trip: archive them (one .tar or .zip) or use another kind of target",
        )
    else:
        report.add("ok", "layout", f"{path}: {count:,} files")
    for reason in scanned.skipped:
        report.add("warning", "layout", f"{path}: {reason} (left out of backups)")
    unreadable = [
        f"{f.path}: unreadable" for f in scanned.files if not os.access(f.abspath, os.R_OK)
    ]
    for reason in scanned.failed + unreadable:
        report.add("problem", "layout", f"{path}: {reason} (a backup would be partial)")
