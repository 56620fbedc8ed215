"""mlbackup against the tools users would pick instead, side by side, on the same data.

    .venv/bin/python benchmarks/run.py            # full run (under 20 minutes here)
    .venv/bin/python benchmarks/run.py --quick    # a smaller tree (under 3 minutes)

Installs the peers it needs (rclone, restic, rsync, awscli; npm's s3rver as a second S3 server
in the full run), builds the workload, then per repeat and per tool (in a rotating order, so no
tool always runs on the coldest cache): first backup, no-change re-run, re-run after the
mutation (changed files then checked byte for byte at the target: missed changes), restore.
Then the study.db scenario, and a big file for memory.
Writes ``docs/benchmarks.md``, ``docs/benchmarks.svg`` and ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import measure
import peers
import report
import s3rver
from tools import CHILD, PY, S3, Tool, local_tools, s3_tools
from workload import MiB, Mutation, TreeShape, make_big_file, make_tree

HERE = Path(__file__).resolve().parent
SCENARIOS = ("first", "no-change", "after mutation", "restore")

Results = dict[str, dict[str, dict[str, list[Any]]]]  # target -> tool -> scenario -> samples


def run_tools(
    tools: list[Tool], src: Path, work: Path, shape: TreeShape, repeats: int, results: Results,
    target: str,
) -> None:  # fmt: skip
    missed: dict[str, int] = {}
    for repeat in range(repeats):
        order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
        for tool in order:
            samples = results[target][tool.name]
            tool.fresh()
            samples["first"].append(measure.run(tool.backup(src), env=tool.env))
            if tool.incremental:
                samples["no-change"].append(measure.run(tool.backup(src), env=tool.env))
                mutation = Mutation(src)
                mutation.apply(shape)
                try:
                    sample = measure.run(tool.backup(src), env=tool.env)
                    samples["after mutation"].append(sample)
                    if tool.content is not None:
                        read = tool.content
                        missed[tool.name] = sum(
                            1 for rel in mutation.changed if read(rel) != (src / rel).read_bytes()
                        )
                    samples["changed bytes"].append(mutation.changed_bytes)
                finally:
                    mutation.revert()
            if tool.restore is not None and repeat == 0:
                out = work / "restored"
                shutil.rmtree(out, ignore_errors=True)
                samples["restore"].append(measure.run(tool.restore(out), env=tool.env))
                shutil.rmtree(out, ignore_errors=True)
            print(f"  {target} · {tool.name}: repeat {repeat + 1} done", flush=True)
        tools[0].fresh()
    for name, count in missed.items():
        results[target][name]["missed"] = [count]


def references(src: Path, repeats: int, results: Results) -> None:
    for _ in range(repeats):
        for name, op in (("stat walk", "stat_walk"), ("read every byte", "read_all"),
                         ("md5 of every byte", "md5_all")):  # fmt: skip
            results["reference"][name]["first"].append(
                measure.run([PY, CHILD, op, json.dumps({"src": str(src)})])
            )


def study(work: Path, trials: int, results: Results) -> None:
    db = work / "study.db"
    sample = measure.run([PY, CHILD, "study_callback", json.dumps(
        {"db": str(db), "target": str(work / "study-target"), "trials": trials})])  # fmt: skip
    results["study"]["callback"]["values"] = [sample.extra]
    sample = measure.run([PY, CHILD, "snapshot_vs_copy", json.dumps({"db": str(db), "repeat": 20})])
    results["study"]["snapshot"]["values"] = [sample.extra]
    results["study"]["size"]["values"] = [{"bytes": db.stat().st_size, "trials": trials}]


def big_file(work: Path, size: int, results: Results) -> None:
    folder = work / "big"
    folder.mkdir()
    make_big_file(folder / "weights.bin", size)
    target = work / "big-target"
    sample = measure.run([PY, CHILD, "mlbackup_backup", json.dumps(
        {"src": str(folder), "url": str(target), "name": "big"})])  # fmt: skip
    results["big file"]["mlbackup"]["first"].append(sample)
    results["big file"]["cp -a"]["first"].append(
        measure.run(["cp", "-a", str(folder), str(work / "big-cp")])
    )
    results["big file"]["size"]["values"] = [size]
    shutil.rmtree(folder)
    shutil.rmtree(target)
    shutil.rmtree(work / "big-cp")


def no_change_requests(src: Path, s3: S3, results: Results) -> None:
    """How many requests a no-change run makes on S3, its listing of the objects included."""
    sample = measure.run([PY, CHILD, "no_change_requests", json.dumps(
        {"src": str(src), "url": f"s3://{s3.bucket}/requests", "options": s3.options(),
         "versions": 3})])  # fmt: skip
    results["requests"]["no-change"]["values"] = [sample.extra]


def start_s3() -> tuple[Any, S3]:
    from mlbackup.testing.s3_server import DEFAULT_KEY, DEFAULT_SECRET, MotoS3Server

    server = MotoS3Server().start()
    server.create_bucket("bench")
    s3 = S3(server.endpoint_url, DEFAULT_KEY, DEFAULT_SECRET, "bench", server.client())
    return server, s3


#: On the second S3 server, the tools that answer its question: is the S3 gap the server's?
SECOND_SERVER_TOOLS = ("mlbackup", "mlbackup CLI", "aws s3 sync", "rclone copy")


def s3rver_run(work: Path, src: Path, shape: TreeShape, results: Results) -> None:
    try:
        server = s3rver.S3rver(work / "s3rver", "bench").start()
    except (OSError, RuntimeError) as exc:  # a second speed point: the run goes on without it
        print(f"s3rver skipped: {exc}", flush=True)
        return
    try:
        client = server.client()
        # Above the largest file (with its append): every upload is one verifiable PutObject.
        part_size = (shape.large_size + 16 * MiB) if shape.large_files else 8 * MiB
        s3 = S3(server.endpoint_url, s3rver.KEY, s3rver.SECRET, "bench", client,
                mlbackup_options={"part_size": part_size})  # fmt: skip
        tools = [t for t in s3_tools(s3, False) if t.name in SECOND_SERVER_TOOLS]
        run_tools(tools, src, work, shape, 1, results, "S3 (s3rver)")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small tree, under 3 minutes")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: /tmp)")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite docs/ from benchmarks/results.json"
    )
    args = parser.parse_args()
    if args.report_only:
        data = json.loads((HERE / "results.json").read_text())
        data["targets"] = report.targets(data)
        report.write(data, HERE.parent / "docs")
        print(report.summary(data))
        return
    if args.quick:
        shape = TreeShape(small_files=600, large_files=2, large_size=24 * MiB)
        repeats, s3_repeats, trials, big = 3, 1, 40, 256 * MiB
    else:
        shape = TreeShape()
        repeats, s3_repeats, trials, big = 3, 1, 200, 4096 * MiB
    unavailable = peers.install()
    started = time.perf_counter()
    results: Results = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    with tempfile.TemporaryDirectory(dir=args.work, prefix="mlbackup-bench-") as tmp:
        work = Path(tmp)
        src = work / "checkpoint"
        total = make_tree(src, shape)
        print(f"workload: {shape.files} files, {total / MiB:.0f} MiB in {src}", flush=True)
        references(src, repeats, results)
        tools = [t for t in local_tools(work, not args.quick) if _available(t, unavailable)]
        run_tools(tools, src, work, shape, repeats, results, "local folder")
        server, s3 = start_s3()
        try:
            tools = [t for t in s3_tools(s3, not args.quick) if _available(t, unavailable)]
            run_tools(tools, src, work, shape, s3_repeats, results, "S3 (moto)")
            no_change_requests(src, s3, results)
        finally:
            server.stop()
        if not args.quick and s3rver.install():
            s3rver_run(work, src, shape, results)
        study(work, trials, results)
        big_file(work, big, results)
    elapsed = time.perf_counter() - started
    data = report.to_json(results, shape, total, elapsed, args.quick, unavailable)
    (HERE / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    if not args.no_report:
        report.write(data, HERE.parent / "docs")
    print(report.summary(data))
    print(f"done in {elapsed / 60:.1f} min", flush=True)


def _available(tool: Tool, unavailable: list[str]) -> bool:
    first = tool.backup(Path("."))[0]
    return Path(first).name not in unavailable


if __name__ == "__main__":
    sys.exit(main())
