"""Step 4: benchmark the model, check the ONNX file computes the same, back the report up.

    python examples/workflow/benchmark.py

On a fresh machine both models come back from the backup first.
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
import onnx
import torch
from common import BENCHMARK, MODEL, ONNX_MODEL, dataset, make_model
from onnx.reference import ReferenceEvaluator

from mlbackup import immediate_backup_if_needed, restore_if_missing


def main() -> None:
    restore_if_missing(MODEL)
    restore_if_missing(ONNX_MODEL)
    saved = torch.load(MODEL, weights_only=True)
    model = make_model(saved["hidden"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    x, y = dataset()
    batch = x[384:]
    timings = []
    with torch.no_grad():
        for _ in range(50):
            started = time.perf_counter()
            predicted = model(batch)
            timings.append(time.perf_counter() - started)
    onnx_model = ReferenceEvaluator(onnx.load(str(ONNX_MODEL)))
    (from_onnx,) = onnx_model.run(None, {onnx_model.input_names[0]: batch.numpy()})
    report = {
        "batch": len(batch),
        "median_ms": statistics.median(timings) * 1000,
        "mse": float(torch.nn.functional.mse_loss(predicted, y[384:])),
        "onnx_max_abs_diff": float(np.abs(from_onnx - predicted.numpy()).max()),
    }
    BENCHMARK.write_text(json.dumps(report, indent=1))
    result = immediate_backup_if_needed(BENCHMARK)
    print(f"{json.dumps(report)}; {BENCHMARK} {result.status.value}")


if __name__ == "__main__":
    main()
