"""Parsing ``multipart/related`` upload bodies byte-exact, for the test servers."""

from __future__ import annotations

import re

__all__ = ["split_related"]


def split_related(raw: bytes, content_type: str) -> tuple[bytes, bytes, str] | None:
    """Split a ``multipart/related`` upload into (metadata JSON, content, content type),
    byte-exact: only the one line break before each delimiter belongs to the delimiter."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        return None
    delimiter = b"--" + match.group(1).encode()
    # The sender's line break (gcsfs writes bare LF) ends each delimiter line and is the one
    # line break before each delimiter that belongs to it.
    eol = b"\r\n" if raw.startswith(delimiter + b"\r\n") else b"\n"
    parts = []
    for chunk in raw.split(eol + delimiter)[:-1]:
        chunk = chunk.split(eol, 1)[1]  # drop the delimiter line itself
        head, _, body = chunk.partition(eol + eol)
        headers = dict(line.split(":", 1) for line in head.decode().splitlines() if ":" in line)
        kind = {k.strip().lower(): v.strip() for k, v in headers.items()}.get(
            "content-type", "application/octet-stream"
        )
        parts.append((body, kind))
    if len(parts) != 2:
        return None
    return parts[0][0], parts[1][0], parts[1][1]
