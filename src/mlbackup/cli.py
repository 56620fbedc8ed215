"""The ``mlbackup`` command line (also ``python -m mlbackup``).

Exit codes: 0 success, 1 failure, 2 usage or configuration error, 23 a backup committed without
some files because of errors (partial; each is named). ``--json`` prints one JSON
document on stdout (``{"error": ...}`` on failure); errors go to stderr in one or two lines
that say what to do (a traceback only with ``--debug``). Transfers that take more than a
moment draw a progress bar on stderr when it is a terminal, unless ``--quiet`` or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .api import backup, restore
from .config import BackupConfig, load_config
from .errors import ConfigError, MLBackupError
from .paths import default_name
from .redaction import redact
from .target import BackupTarget, open_target

if TYPE_CHECKING:
    from .progress_bar import ProgressBar

__all__ = ["main"]


def _option(text: str) -> tuple[str, str]:
    # The value stays text: the backend converts it to the option's declared type.
    key, sep, value = text.partition("=")
    if not sep or not key:
        # Not echoed: a mistyped option may be a secret.
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    return key, value


def _common_flags(default: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=default, help="print JSON")
    common.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="print only errors"
    )
    common.add_argument(
        "--debug", action="store_true", default=default, help="debug logging and tracebacks"
    )
    return common


def _parser() -> argparse.ArgumentParser:
    # The flags work before the command and after it (mlbackup --json ls, mlbackup ls --json):
    # a subcommand's own copy has no default, so it never resets one given before it.
    common = _common_flags(argparse.SUPPRESS)

    def target_args(p: argparse.ArgumentParser, flag: str) -> None:
        p.add_argument(flag, dest="url", metavar="URL", help="target URL or folder")
        p.add_argument(
            "-o",
            "--option",
            dest="options",
            action="append",
            type=_option,
            default=[],
            metavar="KEY=VALUE",
            help="a storage option of the backend (repeatable)",
        )

    parser = argparse.ArgumentParser(
        prog="mlbackup",
        description="Back ML outputs up the moment they exist; restore them on the next machine.",
        parents=[_common_flags(False)],
    )
    parser.add_argument("--version", action="version", version=f"mlbackup {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("backup", parents=[common], help="back a file or folder up")
    p.add_argument("path", type=Path)
    target_args(p, "--to")
    p.add_argument("--name", help="name on the target (default: path relative to the project)")
    p.add_argument("--keep-last", type=int, metavar="N", help="keep only the newest N versions")

    p = sub.add_parser("restore", parents=[common], help="restore a backup")
    p.add_argument("name")
    target_args(p, "--from")
    p.add_argument("--to", dest="dest", type=Path, help="destination (default: ./NAME)")
    p.add_argument("--version", dest="backup_version", type=int, metavar="V")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty destination")

    p = sub.add_parser("ls", parents=[common], help="list backups and their versions")
    p.add_argument("name", nargs="?")
    target_args(p, "--from")

    p = sub.add_parser("verify", parents=[common], help="check a backup's data against its hashes")
    p.add_argument("name")
    target_args(p, "--from")
    p.add_argument("--version", dest="backup_version", type=int, metavar="V")

    p = sub.add_parser(
        "status", parents=[common], help="what is backed up where, how fresh, staged or confirmed"
    )
    target_args(p, "--from")
    p.add_argument(
        "--confirm",
        dest="confirm_options",
        action="append",
        type=_option,
        metavar="KEY=VALUE",
        help="for a target that stages writes, ask the store whether it holds each backup yet "
        "(the options its check takes, repeatable; see the backend's docs)",
    )

    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="preflight a target: reachable, writable, credentials, room, layout, duplicates",
    )
    p.add_argument("paths", nargs="*", type=Path, help="outputs you are about to back up")
    target_args(p, "--from")
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove leftovers of interrupted backups, and older duplicates of a name on "
        "stores that allow them",
    )
    p.add_argument(
        "--repair-from",
        type=Path,
        metavar="FOLDER",
        help="put back the objects versions lack whose bytes a file in FOLDER still holds "
        "(the outputs a backup was made from, or a copy)",
    )
    p.add_argument("--no-write-test", action="store_true", help="skip the test write")

    p = sub.add_parser("demo", parents=[common], help="run the offline demo story")
    target_args(p, "--to")
    p.add_argument("--workdir", type=Path, help="where the demo project goes (default: temp)")
    return parser


def _config(args: argparse.Namespace) -> BackupConfig:
    config = load_config(target=args.url)
    if args.options:  # -o KEY=VALUE adds to (and wins over) configured storage options
        config = replace(config, storage_options={**config.storage_options, **dict(args.options)})
    return config


#: A backup committed without some files because of errors (rsync's code for the same).
EXIT_PARTIAL = 23
#: Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _state_after(args: argparse.Namespace, exc: BaseException) -> str:
    """What an interrupted backup left on the target, in words (best effort)."""
    if args.command != "backup":
        return ""
    committed = getattr(exc, "mlbackup_committed", None)
    try:
        config = _config(args)
        name = args.name or default_name(args.path, config.source_root)
        if committed is not None:
            return f": version {committed} of {name!r} was committed before it"
        with open_target(config.target_url(), **config.storage_options) as target:
            versions = target.versions(name)
    except (MLBackupError, OSError, KeyboardInterrupt):
        return ": nothing committed (the target could not be asked what it holds now)"
    if not versions:
        return f": nothing committed; {name!r} has no version on the target yet"
    return f": nothing committed; version {versions[-1]} of {name!r} is intact"


def _emit(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        print(json.dumps(data, indent=1, default=str))
    elif not args.quiet:
        print(human)


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        lines: list[str] = []
        from .demo import run_demo  # only the demo needs it (and optuna)

        config = _config(args)  # -o and MLBACKUP_STORAGE_OPTIONS, as every other command
        summary = run_demo(
            args.url,
            args.workdir,
            say=lines.append if args.json else None,
            storage_options=config.storage_options if args.url else None,
        )
        if args.json:
            print(json.dumps(summary.__dict__, indent=1))
        ok = summary.byte_identical and summary.trials_after_resume > summary.trials_before_loss
        return 0 if ok else 1

    config = _config(args)
    if args.command == "backup":
        with _progress(args) as bar:
            result = backup(
                args.path, name=args.name, keep_last=args.keep_last, config=config, progress=bar
            )
        partial = (
            f"\nPARTIAL: {len(result.failed_entries)} left out for errors (the version lacks "
            "them; fix and back up again):" + "".join(f"\n  {s}" for s in result.failed_entries)
            if result.partial
            else ""
        )
        _emit(
            args,
            result.to_dict(),
            f"{result.name}: {result.status.value}, version {result.version}, "
            f"{result.files_sent}/{result.files_total} files and {result.bytes_sent:,} bytes "
            f"sent to {result.target}"
            + "".join(f"\n  skipped {s}" for s in result.skipped_entries)
            + "".join(f"\n  put back {p} (its stored bytes were gone)" for p in result.healed)
            + "".join(
                f"\n  LOST {p}: the stored bytes of its previous version are gone and the "
                "source has changed since, so the versions before this one do not restore it"
                for p in result.lost
            )
            + "".join(
                f"\n  DAMAGED version {v}: it no longer restores whole (`mlbackup doctor` "
                "names what it lacks)"
                for v in result.damaged_versions
            )
            + partial,
        )
        if result.partial:
            return EXIT_PARTIAL
    elif args.command == "restore":
        dest = args.dest or Path(args.name)
        with _progress(args) as bar:
            result_r = restore(
                args.name,
                dest,
                version=args.backup_version,
                overwrite=args.overwrite,
                config=config,
                progress=bar,
            )
        _emit(
            args,
            result_r.to_dict(),
            f"{result_r.name} version {result_r.version}: {result_r.files_restored} files, "
            f"{result_r.bytes_restored:,} bytes restored to {result_r.dest}"
            + "".join(
                f"\n  skipped version {v}: it no longer restores whole (`mlbackup doctor` "
                "names what it lacks)"
                for v in result_r.skipped_versions
            ),
        )
    elif args.command == "ls":
        with open_target(config.target_url(), **config.storage_options) as target:
            infos = target.list(args.name)
            lines = [f"{'NAME':40} {'VERSION':>7} {'FILES':>7} {'BYTES':>14}  CREATED"]
            lines += [
                f"{i.name:40} {i.version:>7} {i.files:>7} {i.bytes:>14,}  {i.created}"
                + (
                    f"  DAMAGED: the bytes of {i.missing_files} files are gone"
                    if i.missing_files
                    else ""
                )
                for i in infos
            ]
            if any(i.missing_files for i in infos):
                lines.append(
                    "DAMAGED versions no longer restore whole; `mlbackup doctor` names what "
                    "each lacks and `restore` picks the newest whole one"
                )
            _emit(
                args,
                {"target": target.url, "backups": [i.to_dict() for i in infos]},
                "\n".join(lines) if infos else f"no backups on {target.url}",
            )
    elif args.command == "verify":
        with open_target(config.target_url(), **config.storage_options) as target:
            verified = target.verify(args.name, args.backup_version)
            _emit(
                args,
                verified.to_dict(),
                f"{verified.name} version {verified.version}: {verified.files_checked} files, "
                f"{verified.bytes_checked:,} bytes verified",
            )
    elif args.command == "status":
        with open_target(config.target_url(), **config.storage_options) as target:
            _status(args, target)
    elif args.command == "doctor":
        return _doctor(args, config)
    return 0


@contextmanager
def _progress(args: argparse.Namespace) -> Iterator[ProgressBar | None]:
    """A progress bar on stderr when a person is watching it, else None."""
    if args.quiet or args.json or not sys.stderr.isatty():
        yield None
        return
    from .progress_bar import ProgressBar

    bar = ProgressBar(sys.stderr)
    try:
        yield bar
    finally:
        bar.close()


def _status(args: argparse.Namespace, target: BackupTarget) -> None:
    from .progress_bar import format_bytes
    from .status import backup_status, format_age

    confirm = None
    if args.confirm_options and target.backend.staged_writes:
        options = dict(args.confirm_options)

        def confirm(t: BackupTarget, name: str) -> list[str]:
            return t.backend.unconfirmed(t, name, options)

    reports = backup_status(target, confirm=confirm)
    lines = [f"{'NAME':40} {'VERSION':>7} {'FILES':>7} {'SIZE':>9}  {'BACKED UP':13} STATE"]
    lines += [
        f"{r.name:40} {r.version:>7} {r.files:>7} {format_bytes(r.bytes):>9}  "
        f"{format_age(r.age_seconds):13} {r.state}"
        for r in reports
    ]
    lines += [
        f"DAMAGED {r.name} version {v}: it no longer restores whole (`mlbackup doctor` names "
        "what it lacks)"
        for r in reports
        for v in r.damaged_versions
    ]
    if target.backend.staged_writes and confirm is None and reports:
        lines.append(
            f"staged: on this machine, not yet on the store; {target.backend.staged_advice}"
        )
    _emit(
        args,
        {
            "target": target.url,
            "staged_writes": target.backend.staged_writes,
            "backups": [r.to_dict() for r in reports],
        },
        "\n".join(lines) if reports else f"no backups on {target.url}",
    )


def _doctor(args: argparse.Namespace, config: BackupConfig) -> int:
    from .doctor import run_doctor

    report = run_doctor(
        config.target_url(),
        config.storage_options,
        paths=args.paths,
        repair=args.repair,
        write_test=not args.no_write_test,
        repair_from=args.repair_from,
    )
    marks = {"ok": "ok     ", "warning": "warning", "problem": "PROBLEM"}
    lines = [f"{report.target}:"]
    lines += [f"  {marks[f.level]}  {f.check}: {f.message}" for f in report.findings]
    warned = any(f.level == "warning" for f in report.findings)
    if not report.ok:
        lines.append("fix the problems above before a long run")
    else:
        lines.append("ready, but read the warnings above" if warned else "ready")
    _emit(args, report.to_dict(), "\n".join(lines))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except ConfigError as exc:
        return _fail(args, exc, 2)
    except (MLBackupError, OSError) as exc:
        return _fail(args, exc, 1)
    except KeyboardInterrupt as exc:
        print(f"mlbackup: interrupted{_state_after(args, exc)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a person gets one line; --debug has the rest
        return _fail(args, exc, 1, unexpected=True)


def _fail(
    args: argparse.Namespace, exc: BaseException, code: int, *, unexpected: bool = False
) -> int:
    text = redact(f"{type(exc).__name__}: {exc}" if unexpected else str(exc))
    print(f"mlbackup: error: {text}", file=sys.stderr)
    if args.debug:
        traceback.print_exc()
    elif unexpected:
        print("mlbackup: this looks like a bug; rerun with --debug for the traceback and report it",
              file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps({"error": text, "type": type(exc).__name__, "exit_code": code}))
    return code
