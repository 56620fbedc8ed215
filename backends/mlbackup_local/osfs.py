"""The few filesystem calls the local backends make, straight to ``os``.

Named and shaped like fsspec's (``open``, ``info``, ``ls``, ``mv``, ...), so
`mlbackup.testing.faulty_fs.FaultyFS` wraps it as it wraps any fsspec filesystem. It
replaces fsspec's ``LocalFileSystem`` here because importing that costs about 28 ms of every
command-line run (fsspec pulls in asyncio), and its path handling about 17 µs per file.
"""

from __future__ import annotations

import functools
import os
import stat
from typing import IO, Any

__all__ = ["UNNAMED_FILES", "OsFileSystem"]

#: Whether this platform can make files with no name (Linux's ``O_TMPFILE``); a filesystem may
#: still refuse them (FUSE mounts, NFS), which `OsFileSystem.open_unnamed()` reports.
UNNAMED_FILES = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@functools.cache
def _proc_fd() -> int:
    # ``/proc`` itself, not ``/proc/self``: "self" is then looked up at each link, so the fd
    # stays right in a forked child.
    return os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)


class OsFileSystem:
    """Local files through ``os``, with fsspec's method names and results."""

    def open(self, path: str, mode: str = "rb") -> IO[Any]:
        if mode == "rb":  # a key on the target: never through a symlink planted there
            return os.fdopen(os.open(path, os.O_RDONLY | _NOFOLLOW), "rb")
        return open(path, mode)

    def info(self, path: str) -> dict[str, Any]:
        st = os.lstat(path)  # a symlink is "other", never what it points to
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

    def open_unnamed(self, folder: str, mode: int = 0o600) -> IO[bytes]:
        """A new file with no name, on ``folder``'s filesystem, open for writing. Nothing can
        see it until `link_unnamed()` names it, and it vanishes with its descriptor if the
        process dies first. ``OSError`` (EOPNOTSUPP, EISDIR, EINVAL) where the filesystem or
        kernel has no unnamed files."""
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, mode)
        return open(fd, "wb")

    def link_unnamed(self, dest: str, file: IO[bytes]) -> None:
        """Name the unnamed ``file`` ``dest``; ``FileExistsError`` if the name is taken."""
        # linkat(AT_SYMLINK_FOLLOW) of the descriptor's /proc link (os.link passes the flag
        # only when a dir fd is given); unlike AT_EMPTY_PATH it needs no privilege.
        os.link(f"self/fd/{file.fileno()}", dest, src_dir_fd=_proc_fd())

    def rm_file(self, path: str) -> None:
        os.remove(path)

    def cat_file(self, path: str) -> bytes:
        with self.open(path, "rb") as f:
            data: bytes = f.read()
        return data

    def __repr__(self) -> str:
        return "OsFileSystem()"
