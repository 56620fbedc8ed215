"""An Optuna journal that lives in a bucket: workers on any number of machines run one study
through one target URL, with no database and no lock server.

The log is a sequence of segment objects under the journal's folder on the target::

    .mlbackup/journals/<name>/journal.json                 the journal's identity (create-only)
    .mlbackup/journals/<name>/log/000000000000.json        segment 0, 1, 2, ... in log order
    .mlbackup/journals/<name>/snapshots/<segment>-<log>.pickle   Optuna's replay state

A worker appends by creating the next segment with a create-only write (S3
``If-None-Match: *``, GCS ``ifGenerationMatch=0``, a local ``link``). If another worker took
that place first, the create fails; the worker reads that segment, then tries the next place.
So each place holds one worker's records, written whole and never overwritten, and the
segment order is the order every worker replays. Segments are never changed or deleted: a
worker that dies loses at most the trial it was running, and the log stays readable.

Segments are immutable, so a worker may keep them in a cache folder (``cache_dir``) and a
restart on that machine reads them from disk. Optuna saves a snapshot of its replay state
every 100 trials; a joining worker loads the newest and replays only the segments after it.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # the journal interfaces as Optuna 4 names them (the snapshot one is not re-exported)
    from optuna.storages.journal import BaseJournalBackend
    from optuna.storages.journal._base import BaseJournalSnapshot
except ImportError as exc:  # pragma: no cover - Optuna 3
    raise ImportError(
        "BucketJournalBackend needs Optuna 4 or later: pip install -U 'optuna>=4'"
    ) from exc

from .. import layout
from ..api import TargetArg, open_target_for
from ..config import BackupConfig, load_config
from ..crashpoints import crash_point
from ..create_only import CREATE_ONLY_ADVICE, probe_create_only
from ..errors import BackendUnavailableError, ConfigError, IntegrityError
from ..target import BackupTarget

__all__ = ["BucketJournalBackend"]

log = logging.getLogger("mlbackup")

#: Snapshots kept (older ones are deleted once a newer one is stored).
KEEP_SNAPSHOTS = 2
#: Segments whose records stay in memory for the reads that follow (the worker's own
#: appends, which its next sync replays).
_RECENT = 256
#: Times a create refused as taken may find nothing to read before the append gives up.
_UNREADABLE_TRIES = 5
_FORMAT = 1


class BucketJournalBackend(BaseJournalBackend, BaseJournalSnapshot):
    """An Optuna journal backend whose log is a sequence of create-only objects on a target.

    Every worker opens the study with ``JournalStorage(BucketJournalBackend(URL))``;
    ``append_logs`` returns once its records are stored (a confirmed create), and the
    records every worker reads are in one order, so all agree on trial numbers.

    Args:
        target: a [`BackupTarget`][mlbackup.BackupTarget], URL or folder; default: the
            configured one. It must refuse a second create of one object: S3 and GCS do, as do
            local and network folders. A store whose backend declares no create-only writes
            (`Backend.create_only`), or that overwrites when asked not to (S3 servers that
            ignore ``If-None-Match``, such as s3rver), is refused here with what to use
            instead; ``mlbackup doctor`` probes the same.
        name: the journal's name on the target (one journal holds any number of studies).
        cache_dir: a folder where the segments read are kept (they never change), so that a
            worker restarted on this machine reads the log from disk; default: none.
        poll_seconds: how stale a read may be: Optuna reads the log before every operation,
            and the store is asked for new segments at most this often (an append always
            brings the worker up to its own records, which is all Optuna's decisions about
            its own trials need). Another process's writes may thus show up to this late: where
            processes hand trial numbers to each other (one asks, another tells), use 0,
            which asks every time.
        config: settings to use instead of [`load_config()`][mlbackup.load_config]'s.

    Raises:
        ConfigError: the target lacks create-only writes, or ``name`` is not a valid name.

    Snapshots are Optuna's pickled replay state: loading one runs what the pickle says, so
    give write access to the journal's bucket only to the workers (as with the study itself).

    Examples:
        >>> import tempfile, optuna
        >>> from optuna.storages import JournalStorage
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> bucket = tempfile.mkdtemp()  # an s3:// or gs:// URL on many machines
        >>> storage = JournalStorage(BucketJournalBackend(bucket, name="hpo"))
        >>> study = optuna.create_study(study_name="hpo", storage=storage)
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        >>> other_machine = JournalStorage(BucketJournalBackend(bucket, name="hpo"))
        >>> len(optuna.load_study(study_name="hpo", storage=other_machine).trials)
        3
    """

    def __init__(
        self,
        target: TargetArg = None,
        name: str = "optuna",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        poll_seconds: float = 0.5,
        config: BackupConfig | None = None,
    ) -> None:
        if poll_seconds < 0:
            raise ConfigError(f"poll_seconds must be 0 or more, got {poll_seconds}")
        self.poll_seconds = poll_seconds
        self._polled_at = -float("inf")
        self._prefix = layout.journal_prefix(name)
        self.name = name
        self._target, self._owns_target = open_target_for(target, config or load_config())
        try:
            why_not = probe_create_only(self._target.backend)
            if why_not is not None:
                raise ConfigError(
                    f"{why_not}, which the bucket journal needs so that two workers never "
                    f"take one place in the log: {CREATE_ONLY_ADVICE}"
                )
            identity = self._identity()
        except BaseException:
            self.close()
            raise
        self._cache = Path(cache_dir) / identity if cache_dir is not None else None
        self._lock = threading.Lock()
        #: First log number of each segment known here (segment -> log number), the segments
        #: from ``_start`` on, in order: ``_firsts[i]`` is segment ``_start + i``'s.
        self._start = 0
        self._firsts: list[int] = [0]
        #: The last segments read or written (segment -> its stored bytes), decoded afresh
        #: for every read: Optuna's replay may keep and change the records it is given.
        self._recent: OrderedDict[int, bytes] = OrderedDict()
        #: Every segment read by the current `read_logs` call, whatever `_recent` kept: a
        #: replay of a long log reads each segment once.
        self._read_now: dict[int, bytes] = {}
        #: The log number up to which the last `read_logs` returned records: Optuna's replay
        #: state, when it saves a snapshot right after reading.
        self._returned_to = 0
        #: The segment where the snapshot this worker started from ends (its replay began
        #: there), or None: it replayed the log from the start.
        self.joined_at: int | None = None

    # -- Optuna's interface ---------------------------------------------------------------

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        """Every record from ``log_number_from`` on, with what other workers appended since
        the last poll (`poll_seconds`; one request that finds no new segment, if none)."""
        with self._lock:
            self._read_now.clear()
            try:
                if time.monotonic() - self._polled_at >= self.poll_seconds:
                    self._read_to_end()
                    self._polled_at = time.monotonic()
                records = list(self._records_from(log_number_from))
            finally:
                self._read_now.clear()
            self._returned_to = max(log_number_from, self._next_log)
        return iter(records)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Store ``logs`` as the next segment; returns once the store has confirmed it."""
        if not logs:
            return
        with self._lock:
            # A token of this append: whose segment a lost answer left is told by its bytes.
            token = secrets.token_hex(8)
            unreadable = 0
            while True:
                segment, first = self._next_segment, self._next_log
                body = _encode({"format": _FORMAT, "first": first, "token": token, "logs": logs})
                crash_point("journal-before-create")
                try:
                    self._target.backend.write_new(self._segment_key(segment), body)
                except FileExistsError:
                    self._read_to_end()  # another worker took the place: read on, try again
                    if self._stored_since(segment, token):
                        # Ours after all: a create whose answer was lost, which a store slow
                        # to show new objects would not let the retry recognise.
                        return
                    if self._next_segment > segment:
                        unreadable = 0
                    else:
                        # Taken, yet not found when read: a store that has not caught up.
                        unreadable += 1
                        if unreadable > _UNREADABLE_TRIES:
                            raise BackendUnavailableError(
                                f"journal {self.name}: {self._target.url} refuses to create "
                                f"segment {segment} as taken but does not show it; try again"
                            ) from None
                        time.sleep(0.1 * 2**unreadable)
                    continue
                crash_point("journal-after-create")
                self._learn(segment, len(logs), body)
                self._cache_store(segment, body)
                return

    def save_snapshot(self, snapshot: bytes) -> None:
        """Store Optuna's replay state as of the last read; older snapshots beyond the
        newest `KEEP_SNAPSHOTS` are deleted. A failure here is logged, never raised: the
        log holds everything and a snapshot only saves replay time."""
        with self._lock:
            log_number = self._returned_to
            segment = self._segment_of(log_number)
        if segment is None:
            return  # Optuna's state is not at a segment boundary known here: skip this one
        key = f"{self._prefix}/snapshots/{segment:012d}-{log_number:012d}.pickle"
        digest = hashlib.sha256(snapshot).hexdigest().encode()
        try:
            with contextlib.suppress(FileExistsError):  # another worker saved this point
                self._target.backend.write_new(key, digest + b"\n" + snapshot)
            for old in self._snapshots()[KEEP_SNAPSHOTS:]:
                self._target.backend.delete(self._snapshot_key(old))
        except Exception as exc:  # noqa: BLE001 - the log is whole; the snapshot is a shortcut
            log.warning("journal %s: a snapshot was not saved (%s)", self.name, exc)

    def load_snapshot(self) -> bytes | None:
        """The newest snapshot whose bytes check out (None: replay from the start); the
        reads that follow start at the segment it ends at."""
        with self._lock:
            for segment, log_number in self._snapshots():
                try:
                    data = self._target.backend.read_bytes(
                        self._snapshot_key((segment, log_number))
                    )
                except FileNotFoundError:
                    continue  # deleted for a newer one since the listing
                digest, _, snapshot = data.partition(b"\n")
                if hashlib.sha256(snapshot).hexdigest().encode() != digest:
                    log.warning("journal %s: snapshot %d is damaged; skipped", self.name, segment)
                    continue
                if segment > self._next_segment:
                    self._start, self._firsts = segment, [log_number]
                    self._recent.clear()
                self.joined_at = segment
                log.info(
                    "journal %s: replaying from the snapshot at record %d", self.name, log_number
                )
                return snapshot
        return None

    # -- the log --------------------------------------------------------------------------

    @property
    def _next_segment(self) -> int:
        return self._start + len(self._firsts) - 1

    @property
    def _next_log(self) -> int:
        return self._firsts[-1]

    def _read_to_end(self) -> None:
        """Read segments from the first place not known here until one is missing."""
        while True:
            segment = self._next_segment
            fetched = self._fetch(segment)
            if fetched is None:
                return
            body, count = fetched
            self._learn(segment, count, body)
            self._read_now[segment] = body

    def _stored_since(self, segment: int, token: str) -> bool:
        """Whether a segment from ``segment`` on holds the append ``token``."""
        for later in range(segment, self._next_segment):
            body = self._recent.get(later) or self._read_now.get(later)
            if body is not None and json.loads(body).get("token") == token:
                return True
        return False

    def _learn(self, segment: int, count: int, body: bytes) -> None:
        """Segment ``segment``, the next place, holds ``count`` records: the log goes on."""
        self._firsts.append(self._firsts[-1] + count)
        self._recent[segment] = body
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def _records_from(self, log_number: int) -> Iterator[dict[str, Any]]:
        if log_number < self._firsts[0]:
            # Before the snapshot this worker joined from (Optuna could not use it): walk
            # the log from its start.
            self._start, self._firsts, self.joined_at = 0, [0], None
            self._read_to_end()
        index = bisect.bisect_right(self._firsts, log_number) - 1
        for i in range(index, len(self._firsts) - 1):
            segment = self._start + i
            body = self._recent.get(segment) or self._read_now.get(segment)
            if body is None:
                fetched = self._fetch(segment)
                if fetched is None:
                    raise IntegrityError(
                        f"journal {self.name}: segment {segment} was read before and is gone; "
                        "something deleted objects of the log"
                    )
                body = fetched[0]
            records: list[dict[str, Any]] = json.loads(body)["logs"]
            yield from records[max(0, log_number - self._firsts[i]) :]

    def _segment_of(self, log_number: int) -> int | None:
        """The segment that starts at ``log_number``, if known here."""
        index = bisect.bisect_left(self._firsts, log_number)
        if index < len(self._firsts) and self._firsts[index] == log_number:
            return self._start + index
        return None

    def _fetch(self, segment: int) -> tuple[bytes, int] | None:
        """Segment ``segment``'s bytes (from the cache when there) and record count, checked
        against the log before it; None if no worker has created it yet."""
        cached = self._cache_read(segment)
        if cached is not None:
            try:
                return cached, self._check_segment(segment, cached)
            except IntegrityError as exc:  # a damaged cache file: the store has the segment
                log.warning("%s; reading it from %s", exc, self._target.url)
        try:
            body = self._target.backend.read_bytes(self._segment_key(segment))
        except FileNotFoundError:
            return None
        count = self._check_segment(segment, body)
        self._cache_store(segment, body)
        return body, count

    def _check_segment(self, segment: int, body: bytes) -> int:
        """The segment's record count, once its bytes are known to continue the log here."""
        document = _decode(body, f"journal {self.name}: segment {segment}")
        index = segment - self._start
        logs = document.get("logs")
        if not isinstance(logs, list) or document.get("first") != self._firsts[index]:
            raise IntegrityError(
                f"journal {self.name}: segment {segment} does not continue the log (it says it "
                f"starts at record {document.get('first')!r}; the log before it ends at "
                f"{self._firsts[index]}): was it written by another program?"
            )
        return len(logs)

    # -- keys, snapshots, cache -----------------------------------------------------------

    def _segment_key(self, segment: int) -> str:
        return f"{self._prefix}/log/{segment:012d}.json"

    def _snapshot_key(self, point: tuple[int, int]) -> str:
        return f"{self._prefix}/snapshots/{point[0]:012d}-{point[1]:012d}.pickle"

    def _snapshots(self) -> list[tuple[int, int]]:
        """(segment, log number) of each snapshot on the store, newest first."""
        points = []
        for base in self._target.backend.list_dir(f"{self._prefix}/snapshots"):
            stem, _, suffix = base.partition(".")
            segment, _, log_number = stem.partition("-")
            if suffix == "pickle" and segment.isdigit() and log_number.isdigit():
                points.append((int(segment), int(log_number)))
        return sorted(points, reverse=True)

    def _identity(self) -> str:
        """The journal's ID, made by its first worker: cached segments of a journal that was
        deleted and begun again under the same name are never mistaken for this one's."""
        key = f"{self._prefix}/journal.json"
        made = _encode({"format": _FORMAT, "id": secrets.token_hex(16)})
        with contextlib.suppress(FileExistsError):
            self._target.backend.write_new(key, made)
        document = _decode(self._target.backend.read_bytes(key), f"journal {self.name}")
        if document.get("format") != _FORMAT:
            raise ConfigError(
                f"journal {self.name} on {self._target.url} has format "
                f"{document.get('format')!r}; this mlbackup reads format {_FORMAT}: upgrade it"
            )
        return str(document["id"])

    def _cache_read(self, segment: int) -> bytes | None:
        if self._cache is None:
            return None
        try:
            return (self._cache / f"{segment:012d}.json").read_bytes()
        except OSError:
            return None

    def _cache_store(self, segment: int, body: bytes) -> None:
        """Keep the segment on disk (atomically: workers of this machine share the folder).
        Best effort: without the cache, the store is read again."""
        if self._cache is None:
            return
        try:
            self._cache.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self._cache, prefix=".segment-")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(temp, self._cache / f"{segment:012d}.json")
        except OSError as exc:
            log.debug("journal %s: segment %d not cached: %s", self.name, segment, exc)

    # -- lifetime -------------------------------------------------------------------------

    @property
    def target(self) -> BackupTarget:
        """The target the log is on."""
        return self._target

    def close(self) -> None:
        """Close the target if this backend opened it."""
        if self._owns_target:
            self._target.close()

    def __getstate__(self) -> Any:
        raise TypeError(
            "a BucketJournalBackend holds an open target and cannot be pickled; make one in "
            "each process with the same target URL and name"
        )

    def __repr__(self) -> str:
        return f"BucketJournalBackend({self._target.url!r}, name={self.name!r})"


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _decode(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{what} is not a complete JSON document: {exc}") from exc
    if not isinstance(document, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    return document
