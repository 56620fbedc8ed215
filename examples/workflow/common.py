"""What the four workflow steps share: the data, the model, and where outputs go.

Each step is a script that backs its output up with the one standardized call,
``immediate_backup_if_needed(path)``, and brings back what it needs from an earlier step with
``restore_if_missing(path)``, so any step can run on a fresh machine after the one before it
ran on a machine that has since died.

The target comes from ``MLBACKUP_TARGET`` (a folder, ``drive://...``, ``gs://...``,
``s3://...``); with nothing set, mlbackup uses its local default folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

OUTPUTS = Path(os.environ.get("WORKFLOW_OUTPUTS", "outputs"))
STUDY_DB = OUTPUTS / "hpo" / "study.db"
BEST_PARAMS = OUTPUTS / "hpo" / "best_params.json"
MODEL = OUTPUTS / "model" / "model.pt"
ONNX_MODEL = OUTPUTS / "model" / "model.onnx"
BENCHMARK = OUTPUTS / "benchmark.json"


def dataset(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A small regression problem: y = sin(x0) + x1 * x2, with noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 3, generator=g)
    y = torch.sin(x[:, :1]) + x[:, 1:2] * x[:, 2:3] + 0.05 * torch.randn(512, 1, generator=g)
    return x, y


def make_model(hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(3, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    )


def train(model: torch.nn.Module, lr: float, epochs: int) -> float:
    """Train on the first 384 rows; return the mean squared error on the other 128."""
    x, y = dataset()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[:384]), y[:384])
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(x[384:]), y[384:]))
