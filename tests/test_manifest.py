"""The manifest's own encoding: what is written is read back exactly, one file per line."""

from __future__ import annotations

import json

import pytest

from mlbackup.manifest import FileEntry, Manifest


def manifest(*files: FileEntry) -> Manifest:
    return Manifest(
        name="run/é",
        version=3,
        kind="dir",
        hash_name="xxh128",
        files=files,
        dirs=("empty",),
        meta={"source": "/content/run"},
    )


@pytest.mark.parametrize(
    "files",
    [
        (),
        (FileEntry("a.bin", 1, "cd" * 16, 6, mode=0o600, sig="6:1:9", sqlite=True),),
        (FileEntry("a", 1, "cd" * 16, 6), FileEntry('b/ü "q".txt', 3, "ab" * 16, 5, ref="1xY")),
    ],
)
def test_a_manifest_reads_back_as_written(files: tuple[FileEntry, ...]) -> None:
    written = manifest(*files)
    data = written.to_bytes()
    assert Manifest.from_bytes(data, where="test") == written
    assert json.loads(data)["files"] == [f.to_json() for f in files]


def test_each_file_has_its_own_line_and_the_text_is_utf8() -> None:
    files = [FileEntry(f"layer{i}/w-ß.bin", i, f"{i:032x}", i) for i in range(3)]
    data = manifest(*files).to_bytes()
    lines = data.decode("utf-8").splitlines()
    assert [line for line in lines if line.startswith('{"path"')] == [
        json.dumps(f.to_json(), ensure_ascii=False) + ("," if i < 2 else "")
        for i, f in enumerate(files)
    ]
    assert "ß".encode() in data


def test_files_are_written_in_path_order() -> None:
    later, earlier = FileEntry("z", 1, "a", 1), FileEntry("a", 1, "b", 1)
    data = manifest(later, earlier).to_bytes()
    assert [f["path"] for f in json.loads(data)["files"]] == ["a", "z"]
