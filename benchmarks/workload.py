"""Deterministic workloads: a checkpoint-like tree, a mutation of it, a big file (the Optuna
study is grown by the benchmark child itself, in benchmarks/child.py).

The same seed gives the same bytes, names and sizes on every machine.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class TreeShape:
    small_files: int = 5000
    small_min: int = 1 << 10
    small_max: int = 64 << 10
    large_files: int = 8
    large_size: int = 120 * MiB
    seed: int = 0

    @property
    def files(self) -> int:
        return self.small_files + self.large_files


def make_tree(root: Path, shape: TreeShape) -> int:
    """Write the tree under ``root``; returns its size in bytes."""
    rng = random.Random(shape.seed)
    total = 0
    for i in range(shape.small_files):
        path = root / f"layer{i % 16:02d}" / f"shard{i % 64:02d}" / f"tensor{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(shape.small_min, shape.small_max))
        path.write_bytes(data)
        total += len(data)
    for i in range(shape.large_files):
        path = root / "weights" / f"model-{i:02d}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        block = rng.randbytes(MiB)
        with open(path, "wb") as out:
            for j in range(shape.large_size // MiB):
                # Distinct blocks (a real weight file does not repeat), cheaply.
                out.write(j.to_bytes(8, "little") + block[8:])
        total += shape.large_size
    return total


@dataclass
class Mutation:
    """1% of the small files rewritten (same size, new bytes), one large file appended to;
    :meth:`revert` puts the tree back exactly, mtimes included."""

    root: Path
    changed: list[str] = field(default_factory=list)
    appended: str = ""
    changed_bytes: int = 0
    _saved: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    _appended_size: int = 0

    def apply(self, shape: TreeShape, append_bytes: int = 8 * MiB) -> None:
        rng = random.Random(shape.seed + 1)
        count = max(1, shape.small_files // 100)
        for i in rng.sample(range(shape.small_files), count):
            rel = f"layer{i % 16:02d}/shard{i % 64:02d}/tensor{i:05d}.bin"
            path = self.root / rel
            old = path.read_bytes()
            self._saved[rel] = (old, path.stat().st_mtime_ns)
            path.write_bytes(rng.randbytes(len(old)))
            self.changed.append(rel)
            self.changed_bytes += len(old)
        if shape.large_files:
            self.appended = "weights/model-00.safetensors"
            path = self.root / self.appended
            self._appended_size = path.stat().st_size
            self._saved[self.appended] = (b"", path.stat().st_mtime_ns)
            with open(path, "ab") as out:
                out.write(rng.randbytes(append_bytes))
            self.changed.append(self.appended)
            self.changed_bytes += append_bytes

    def revert(self) -> None:
        for rel, (data, mtime_ns) in self._saved.items():
            path = self.root / rel
            if rel == self.appended:
                os.truncate(path, self._appended_size)
            else:
                path.write_bytes(data)
            os.utime(path, ns=(mtime_ns, mtime_ns))
        self._saved.clear()
        self.changed.clear()
        self.changed_bytes = 0


def make_big_file(path: Path, size: int) -> None:
    """A file of ``size`` bytes, distinct blocks, written without holding it in memory."""
    block = random.Random(7).randbytes(MiB)
    with open(path, "wb") as out:
        for j in range(size // MiB):
            out.write(j.to_bytes(8, "little") + block[8:])
