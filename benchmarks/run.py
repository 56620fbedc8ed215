"""mlbackup against the tools users would pick instead, side by side, on the same data.

    .venv/bin/python benchmarks/run.py            # full run (under 20 minutes here)
    .venv/bin/python benchmarks/run.py --quick    # a smaller tree (under 3 minutes)

Installs the peers it needs (rclone, restic, rsync, awscli, s5cmd; npm's s3rver as a second S3
server in the full run), builds the workload, then per repeat and per tool (in a rotating order,
so no tool always runs on the coldest cache): first backup, no-change re-run, re-run after the
mutation (changed files then checked byte for byte at the target: missed changes), restore
(checked against the source: files left out). On S3 also: the requests of a no-change run, a
study.db's backup after a trial (until committed, with its requests), and a store 20 ms away
(``delay_proxy.py``). Then the study.db callback, and a big file for speed and memory.
``request_cost.py`` (run on its own) measures one request's client cost by HTTP stack.
Writes ``docs/benchmarks.md``, ``docs/benchmarks.svg`` and ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import measure
import peers
import report
import s3rver
from delay_proxy import DelayProxy
from tools import CHILD, PY, S3, Tool, local_tools, s3_tools
from workload import MiB, Mutation, TreeShape, make_big_file, make_tree

HERE = Path(__file__).resolve().parent
SCENARIOS = ("first", "no-change", "after mutation", "restore")
FAR_DELAY = 0.010  # seconds each way: a store 20 ms away

Results = dict[str, dict[str, dict[str, list[Any]]]]  # target -> tool -> scenario -> samples


def run_tools(
    tools: list[Tool], src: Path, work: Path, shape: TreeShape, repeats: int, results: Results,
    target: str, *, mutate: bool = True, proxy: DelayProxy | None = None,
) -> None:  # fmt: skip
    missed: dict[str, int] = {}
    for repeat in range(repeats):
        order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
        for tool in order:
            samples = results[target][tool.name]

            def timed(scenario: str, argv: list[str]) -> None:
                before = proxy.cpu_seconds() if proxy is not None else 0.0
                samples[scenario].append(measure.run(argv, env=tool.env))  # noqa: B023
                if proxy is not None:
                    samples[f"proxy cpu {scenario}"].append(proxy.cpu_seconds() - before)  # noqa: B023

            tool.fresh()
            timed("first", tool.backup(src))
            changed: list[str] = []
            if tool.incremental:
                timed("no-change", tool.backup(src))
            if tool.incremental and mutate:
                mutation = Mutation(src)
                mutation.apply(shape)
                changed = [*mutation.changed, mutation.appended]
                try:
                    timed("after mutation", tool.backup(src))
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
                timed("restore", tool.restore(out))
                samples["restore gaps"].append(restore_gaps(src, out, set(changed)))
                shutil.rmtree(out, ignore_errors=True)
            # Each tool then runs against a store holding only its own data: moto lists a
            # prefix by walking every key of the bucket, so the tools that run later would
            # pay for the others' keys on every listing.
            tool.fresh()
            print(f"  {target} · {tool.name}: repeat {repeat + 1} done", flush=True)
    for name, count in missed.items():
        results[target][name]["missed"] = [count]


def restore_gaps(src: Path, out: Path, changed: set[str]) -> int:
    """How many of ``src``'s files a restore into ``out`` did not bring back whole: missing,
    or of another size, or (unless the mutation changed them since) other bytes. restic
    restores a tree under its absolute path."""
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    nested = out / str(src).lstrip("/")
    root = nested if not (out / files[0]).exists() and nested.is_dir() else out
    gaps = 0
    for rel in files:
        got = root / rel
        whole = got.is_file() and (rel in changed or filecmp.cmp(src / rel, got, shallow=False))
        gaps += not whole
    return gaps


def references(src: Path, repeats: int, results: Results) -> None:
    for _ in range(repeats):
        for name, op in (("stat walk", "stat_walk"), ("read every byte", "read_all"),
                         ("md5 of every byte", "md5_all")):  # fmt: skip
            results["reference"][name]["first"].append(
                measure.run([PY, CHILD, op, json.dumps({"src": str(src)})])
            )


def study_commit(work: Path, s3: S3, sizes: list[int], results: Results) -> None:
    """The backup a study.db gets after every trial, to S3: its commit path and requests."""
    s3.client.create_bucket(Bucket="study")  # its own: see run_tools on moto's listings
    sample = measure.run([PY, CHILD, "study_commit_path", json.dumps(
        {"work": str(work / "study-commit"), "url": "s3://study/run", "sizes": sizes,
         "options": s3.options(), "repeat": 15})])  # fmt: skip
    results["study"]["commit path"]["values"] = [sample.extra["sizes"]]


#: The latency point's tools: ours, the peers the issue names, and rclone for the restore.
FAR_TOOLS = ("mlbackup", "mlbackup CLI", "aws s3 sync", "s5cmd sync", "rclone copy")


def far_run(work: Path, s3: S3, shape: TreeShape, delay: float, results: Results) -> None:
    """Small files to a store ``2 * delay`` away: every client through the delaying proxy."""
    src = work / "far-tree"
    make_tree(src, shape)
    s3.client.create_bucket(Bucket=s3.bucket)
    # The proxy's own cost: the same sync straight to the server and through it at no delay.
    for label, proxy_delay in (("direct", None), ("through the proxy at 0 ms", 0.0)):
        proxy = DelayProxy(s3.endpoint, proxy_delay).start() if proxy_delay is not None else None
        try:
            endpoint = proxy.endpoint_url if proxy is not None else s3.endpoint
            peer = next(t for t in s3_tools(replace(s3, endpoint=endpoint), False)
                        if t.name == "aws s3 sync")  # fmt: skip
            samples = results["S3 far"][f"aws s3 sync, {label}"]
            for _ in range(2):
                peer.fresh()
                before = proxy.cpu_seconds() if proxy is not None else 0.0
                samples["first"].append(measure.run(peer.backup(src), env=peer.env))
                if proxy is not None:
                    samples["proxy cpu first"].append(proxy.cpu_seconds() - before)
            peer.fresh()
        finally:
            if proxy is not None:
                proxy.stop()
    proxy = DelayProxy(s3.endpoint, delay).start()
    try:
        far = replace(s3, endpoint=proxy.endpoint_url)
        tools = [t for t in s3_tools(far, False) if t.name in FAR_TOOLS]
        run_tools(tools, src, work, shape, 1, results, "S3 far", mutate=False, proxy=proxy)
    finally:
        proxy.stop()
    results["S3 far"]["delay"]["values"] = [{"each_way_ms": delay * 1e3, "files": shape.files,
                                             "bytes": sum(p.stat().st_size for p in src.rglob("*")
                                                          if p.is_file())}]  # fmt: skip
    shutil.rmtree(src)


def study(work: Path, trials: int, results: Results) -> None:
    db = work / "study.db"
    sample = measure.run([PY, CHILD, "study_callback", json.dumps(
        {"db": str(db), "target": str(work / "study-target"), "trials": trials})])  # fmt: skip
    results["study"]["callback"]["values"] = [sample.extra]
    sample = measure.run([PY, CHILD, "snapshot_vs_copy", json.dumps({"db": str(db), "repeat": 20})])
    results["study"]["snapshot"]["values"] = [sample.extra]
    results["study"]["size"]["values"] = [{"bytes": db.stat().st_size, "trials": trials}]


def big_file(work: Path, size: int, repeats: int, results: Results) -> None:
    folder = work / "big"
    folder.mkdir()
    make_big_file(folder / "weights.bin", size)
    target, copied = work / "big-target", work / "big-cp"
    # mlbackup flushes a local version to the disk before committing it (durable=True, the
    # default); cp does not: each is compared with the peer doing the same work.
    runs = {
        "mlbackup": [PY, CHILD, "mlbackup_backup", json.dumps(
            {"src": str(folder), "url": str(target), "name": "big"})],
        "mlbackup durable=False": [PY, CHILD, "mlbackup_backup", json.dumps(
            {"src": str(folder), "url": str(target), "name": "big",
             "options": {"durable": False}})],
        "cp -a": ["cp", "-a", str(folder), str(copied)],
        "cp -a, then sync": ["sh", "-c", f"cp -a '{folder}' '{copied}' && sync"],
    }  # fmt: skip
    for _ in range(repeats):
        for tool, argv in runs.items():
            results["big file"][tool]["first"].append(measure.run(argv))
            shutil.rmtree(target, ignore_errors=True)
            shutil.rmtree(copied, ignore_errors=True)
    results["big file"]["size"]["values"] = [size]
    shutil.rmtree(folder)


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
        far = TreeShape(small_files=200, large_files=2, large_size=8 * MiB)
        repeats, s3_repeats, trials, big, studies = 3, 1, 40, 256 * MiB, [1, 200]
    else:
        shape = TreeShape()
        far = TreeShape(small_files=1000, large_files=2, large_size=50 * MiB)
        repeats, s3_repeats, trials, big, studies = 3, 1, 200, 4096 * MiB, [1, 2000]
    unavailable = peers.install()
    compile_bytecode()
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
            tools = [t for t in tools if t.name not in ("s5cmd sync",)]  # at the far point
            run_tools(tools, src, work, shape, s3_repeats, results, "S3 (moto)")
            no_change_requests(src, s3, results)
            study_commit(work, s3, studies, results)
            far_run(work, replace(s3, bucket="far"), far, FAR_DELAY, results)
        finally:
            server.stop()
        if not args.quick and s3rver.install():
            s3rver_run(work, src, shape, results)
        study(work, trials, results)
        big_file(work, big, repeats, results)
    elapsed = time.perf_counter() - started
    data = report.to_json(results, shape, total, elapsed, args.quick, unavailable)
    (HERE / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    if not args.no_report:
        report.write(data, HERE.parent / "docs")
    print(report.summary(data))
    print(f"done in {elapsed / 60:.1f} min", flush=True)


def compile_bytecode() -> None:
    """Compile every module the tools import, as an installed package is: with
    ``PYTHONDONTWRITEBYTECODE`` set (as here) nothing else would, and every Python process
    would compile its imports again (2.4 s more for one S3 command)."""
    import compileall
    import sysconfig

    for folder in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                   str(HERE.parent / "src"), str(HERE.parent / "backends")}:  # fmt: skip
        compileall.compile_dir(folder, quiet=2, workers=0)


def _available(tool: Tool, unavailable: list[str]) -> bool:
    first = tool.backup(Path("."))[0]
    return Path(first).name not in unavailable


if __name__ == "__main__":
    sys.exit(main())
