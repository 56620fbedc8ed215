"""The examples run as users run them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
def test_same_folder_to_local_s3_and_gcs_changing_only_the_url():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "backup_anywhere.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0].split("://")[0] for line in lines[1:]] == ["s3", "gs"]
    assert len(lines) == 3 and all(line.endswith("restore identical") for line in lines)
    assert done.stderr == ""  # the test servers keep quiet


def run_step(script, cwd, target, *args):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "workflow" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "MLBACKUP_TARGET": str(target)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow(seconds=75)
def test_the_four_workflow_steps_each_resume_on_a_fresh_machine(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    machine, target = tmp_path / "machine", tmp_path / "target"
    outputs = machine / "outputs"
    machine.mkdir()
    assert "running 6 more" in run_step("hpo.py", machine, target, "--trials", "6")
    shutil.rmtree(outputs)  # each step below starts on a machine that lost everything
    assert "outputs/model/model.pt copied" in run_step("train.py", machine, target)
    shutil.rmtree(outputs)
    assert "outputs/model/model.onnx copied" in run_step("convert_onnx.py", machine, target)
    shutil.rmtree(outputs)
    report_line = run_step("benchmark.py", machine, target).splitlines()[-1]
    report = json.loads(report_line.split("; ")[0])
    assert report["batch"] == 128 and report["onnx_max_abs_diff"] < 1e-4
    shutil.rmtree(outputs)
    resumed = run_step("hpo.py", machine, target, "--trials", "8")
    assert "study holds 6 trials; running 2 more" in resumed
    names = {p.name for p in target.rglob("*") if p.is_file()}
    assert {"study.db", "best_params.json", "model.pt", "model.onnx", "benchmark.json"} <= names
