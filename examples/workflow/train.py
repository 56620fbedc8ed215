"""Step 2: train the final model with the best parameters, and back the model up.

    python examples/workflow/train.py

On a fresh machine the best parameters come back from the backup first.
"""

from __future__ import annotations

import json

import torch
from common import BEST_PARAMS, MODEL, make_model, train

from mlbackup import immediate_backup_if_needed, restore_if_missing


def main() -> None:
    restore_if_missing(BEST_PARAMS)
    params = json.loads(BEST_PARAMS.read_text())
    torch.manual_seed(0)
    model = make_model(params["hidden"])
    mse = train(model, params["lr"], epochs=300)
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hidden": params["hidden"], "state_dict": model.state_dict()}, MODEL)
    result = immediate_backup_if_needed(MODEL)
    print(f"final model: mse {mse:.4f}; {MODEL} {result.status.value}")


if __name__ == "__main__":
    main()
