"""Errors raised by mlbackup.

Every error is an `MLBackupError`, and most also inherit from the builtin exception a
caller would naturally catch (``FileNotFoundError``, ``PermissionError``, ...), so
``except FileNotFoundError`` keeps working around mlbackup calls. Each message names the problem
and the fix. No message ever contains a credential.

Skips are not errors: [`BackupResult`][mlbackup.BackupResult] says when a backup was skipped and
why.

::

    MLBackupError
    ├── ConfigError (ValueError)                 bad configuration or argument
    │   └── UnknownBackendError                  URL scheme no installed backend serves
    ├── SourceError                              the thing to back up
    │   ├── SourceMissingError (FileNotFoundError)
    │   └── SourceChangedError                   kept changing while it was read
    ├── TargetError                              the backup storage
    │   ├── BackendUnavailableError (ConnectionError)  transient: retry later
    │   ├── BackendPermissionError (PermissionError)   credentials, access, quota
    │   ├── TargetMissingError                   the bucket or folder the URL names is absent
    │   └── CommitConflictError                  another writer committed the same version
    └── RestoreError
        ├── BackupNotFoundError (FileNotFoundError)    no such name or version
        ├── DestinationNotEmptyError (FileExistsError)
        ├── DestinationError (OSError)           the destination cannot be written (disk full)
        ├── UnsafePathError                      a manifest path escapes the destination
        └── IntegrityError                       data missing or not matching its hash
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = [
    "BackendPermissionError",
    "BackendUnavailableError",
    "BackupNotFoundError",
    "CommitConflictError",
    "ConfigError",
    "DestinationError",
    "DestinationNotEmptyError",
    "IntegrityError",
    "MLBackupError",
    "RestoreError",
    "SourceChangedError",
    "SourceError",
    "SourceMissingError",
    "TargetError",
    "TargetMissingError",
    "UnknownBackendError",
    "UnsafePathError",
    "exception_chain",
    "is_transport_failure",
]


class MLBackupError(Exception):
    """Base class of every error mlbackup raises."""


class ConfigError(MLBackupError, ValueError):
    """A configuration value or argument is invalid; the message says which and how to fix it."""


class UnknownBackendError(ConfigError):
    """No installed backend serves the URL's scheme."""


class SourceError(MLBackupError):
    """The path to back up cannot be read as asked."""


class SourceMissingError(SourceError, FileNotFoundError):
    """The path to back up does not exist."""


class SourceChangedError(SourceError):
    """A file kept changing while it was read, so no consistent copy could be taken."""


class TargetError(MLBackupError):
    """The backup storage failed or refused an operation."""


class BackendUnavailableError(TargetError, ConnectionError):
    """The storage could not be reached or answered with a transient failure; retry later.

    ``retry_after`` is the wait in seconds the store asked for (``Retry-After``), if it did.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendPermissionError(TargetError, PermissionError):
    """The storage refused access: credentials, permissions or quota."""


class TargetMissingError(TargetError):
    """The bucket (or folder) the target URL names does not exist.

    Deliberately not a ``FileNotFoundError``: the backup protocol reads that as "no such
    object", and a missing bucket must never look like an empty backup.
    """


class CommitConflictError(TargetError):
    """Another writer committed the same backup version first."""


class RestoreError(MLBackupError):
    """A restore or verification could not be carried out."""


class BackupNotFoundError(RestoreError, FileNotFoundError):
    """No committed backup exists for the name (or version) asked for."""


class DestinationNotEmptyError(RestoreError, FileExistsError):
    """The restore destination already holds data and ``overwrite`` was not given."""


class DestinationError(RestoreError, OSError):
    """The restore destination could not be written (disk full, read-only, denied); nothing
    was placed."""


class UnsafePathError(RestoreError):
    """A path recorded in a manifest would be written outside the restore destination."""


class IntegrityError(RestoreError):
    """Backed-up data is missing or does not match its recorded size and hash.

    Attributes:
        problems: one line per damaged file, e.g. ``"weights.bin: hash mismatch"``.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:20])
            more = len(self.problems) - 20
            if more > 0:
                shown += f"\n  ... and {more} more"
            message = f"{message}\n{shown}"
        super().__init__(message)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes and contexts, each once: client libraries wrap the store's
    answer (an HTTP status, an S3 error code) in exceptions of their own."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


#: What the HTTP client stacks under our backends (aiohttp, botocore, urllib3, httplib2, the
#: standard library) raise when a connection could not be made, dropped, stalled or was cut
#: off mid-body: a transient failure whatever the request, a download included.
_TRANSPORT_FAILURES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "IncompleteRead",
        "ProtocolError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ClientOSError",
        "ClientPayloadError",
        "ContentLengthError",
        "TransferEncodingError",
        "ProxyError",
        "TransportError",
        "ConnectionError",  # requests' (an IOError, not the built-in ConnectionError)
        "gaierror",  # a name that did not resolve
    }
)


def is_transport_failure(exc: BaseException) -> bool:
    """True if ``exc`` (or what it wraps) is a dropped, refused, stalled or cut-off connection."""
    return any(
        isinstance(link, (ConnectionError, TimeoutError))
        or type(link).__name__ in _TRANSPORT_FAILURES
        for link in exception_chain(exc)
    )
