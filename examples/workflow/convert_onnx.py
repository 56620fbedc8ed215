"""Step 3: convert the trained model to ONNX, and back the ONNX file up.

    python examples/workflow/convert_onnx.py

On a fresh machine the trained model comes back from the backup first.
"""

from __future__ import annotations

import onnx
import torch
from common import MODEL, ONNX_MODEL, make_model

from mlbackup import immediate_backup_if_needed, restore_if_missing


def main() -> None:
    restore_if_missing(MODEL)
    saved = torch.load(MODEL, weights_only=True)
    model = make_model(saved["hidden"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    torch.onnx.export(
        model, (torch.zeros(1, 3),), ONNX_MODEL, dynamic_shapes=({0: "batch"},), verbose=False
    )
    onnx.checker.check_model(str(ONNX_MODEL))
    result = immediate_backup_if_needed(ONNX_MODEL)
    print(f"{ONNX_MODEL} {result.status.value}")


if __name__ == "__main__":
    main()
