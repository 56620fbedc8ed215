"""A writer "machine" for tests/test_many_writers.py: its own source folder and lock folder.

Run as ``python writer_child.py URL OPTIONS_JSON NAME WORKDIR WRITER [LOCK_DIR]`` (default
lock folder: ``WORKDIR/locks``, a machine of its own). Each line on stdin,
``<round> own|same``, makes it write that round's tree and back it up as NAME; it answers one
JSON line ``{"round": r, "version": v, "status": s}`` (or ``{"round": r, "error": "..."}``).
"""

import json
import os
import sys
from pathlib import Path


def tree_for(writer: str, round_: int, same: bool) -> dict[str, bytes]:
    """The files a writer backs up in a round: its own, or one tree both writers share."""
    who = "both" if same else writer
    files = {f"d{i % 2}/f{i}.bin": f"{who}:{round_}:{i}:".encode() * (40 + 7 * i) for i in range(5)}
    files["shared/tokenizer.json"] = b'{"vocab": 32000}'  # the same in every round
    return files


def main() -> None:
    url, options, name, workdir, writer = sys.argv[1:6]
    locks = sys.argv[6] if len(sys.argv) > 6 else str(Path(workdir) / "locks")
    os.environ["MLBACKUP_LOCK_DIR"] = locks
    from mlbackup import backup, open_target
    from mlbackup.testing.contract import write_tree

    target = open_target(url, **json.loads(options))
    for line in sys.stdin:
        round_text, kind = line.split()
        round_ = int(round_text)
        src = Path(workdir) / f"round-{round_}"
        write_tree(src, tree_for(writer, round_, kind == "same"))
        try:
            result = backup(src, target=target, name=name)
            answer = {"round": round_, "version": result.version, "status": result.status.value}
            print(json.dumps(answer), flush=True)
        except Exception as exc:
            print(json.dumps({"round": round_, "error": f"{type(exc).__name__}: {exc}"}),
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
