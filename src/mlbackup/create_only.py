"""Does the store really refuse to create an object that exists? Asked, not assumed.

A backend declares `Backend.create_only` from its protocol (S3 ``If-None-Match: *``, GCS
``ifGenerationMatch=0``), but a server may ignore the condition (s3rver, some S3 clones)
and overwrite instead. `probe_create_only()` writes one object twice and looks: what
``doctor`` reports and what the bucket journal checks before it trusts a store.
"""

from __future__ import annotations

import contextlib
import uuid

from . import layout
from .backend import Backend

__all__ = ["CREATE_ONLY_ADVICE", "probe_create_only"]

#: What to use where a store lacks create-only writes, for messages.
CREATE_ONLY_ADVICE = (
    "use an S3 or GCS bucket (AWS S3, Google Cloud Storage, MinIO: they honour the "
    "condition), a local or network folder, or a database server for the study"
)


def probe_create_only(backend: Backend) -> str | None:
    """None if ``backend`` refuses a second create of one key; else why it cannot be trusted
    to (it declares no create-only writes, or it overwrote the probe). Leaves nothing behind.

    Examples:
        >>> import tempfile
        >>> from mlbackup import open_target
        >>> print(probe_create_only(open_target(tempfile.mkdtemp()).backend))
        None
    """
    if not backend.create_only:
        return f"{backend.url} cannot create an object only where none exists (create-only writes)"
    key = f"{layout.tmp_prefix()}/create-only-probe-{uuid.uuid4().hex}"
    backend.write_new(key, b"first\n")
    try:
        backend.write_new(key, b"second\n")
    except FileExistsError:
        return None
    else:
        return (
            f"{backend.url} overwrote an object that a create-only write was told to leave "
            "alone: the server ignores the condition"
        )
    finally:
        with contextlib.suppress(Exception):  # a leftover in tmp is swept by doctor --repair
            backend.delete(key)
