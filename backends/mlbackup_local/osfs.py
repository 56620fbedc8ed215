"""The few filesystem calls the local backends make, straight to ``os``.

Named and shaped like fsspec's (``open``, ``info``, ``ls``, ``mv``, ...), so
:class:`mlbackup.testing.faulty_fs.FaultyFS` wraps it as it wraps any fsspec filesystem. It
replaces fsspec's ``LocalFileSystem`` here because importing that costs about 28 ms of every
command-line run (fsspec pulls in asyncio), and its path handling about 17 µs per file.
"""

from __future__ import annotations

import os
import stat
from typing import IO, Any

__all__ = ["OsFileSystem"]


class OsFileSystem:
    """Local files through ``os``, with fsspec's method names and results."""

    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        return open(path, mode)

    def info(self, path: str) -> dict[str, Any]:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            kind = "file"
        else:
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "other"
        return {"name": path, "size": st.st_size, "type": kind, "mtime": st.st_mtime}

    def ls(self, path: str, detail: bool = False) -> list[str]:
        if detail:
            raise NotImplementedError("only names: ls(path, detail=False)")
        return [os.path.join(path, name) for name in os.listdir(path)]

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def mv(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def link(self, src: str, dst: str) -> None:
        os.link(src, dst)

    def rm_file(self, path: str) -> None:
        os.remove(path)

    def cat_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def __repr__(self) -> str:
        return "OsFileSystem()"
