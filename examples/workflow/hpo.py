"""Step 1: tune hyperparameters with Optuna; the study survives the machine.

    python examples/workflow/hpo.py --trials 20

The study database is restored if this machine lacks it, backed up after every trial (in the
background), and the best parameters are backed up at the end. Kill it at any trial and run
it again on a new machine: it continues where the backup left it.
"""

from __future__ import annotations

import argparse
import json

import optuna
import torch
from common import BEST_PARAMS, STUDY_DB, make_model, train

from mlbackup import immediate_backup_if_needed
from mlbackup.integrations.optuna import BackupCallback, resume_study


def objective(trial: optuna.Trial) -> float:
    torch.manual_seed(trial.number)
    hidden = trial.suggest_int("hidden", 4, 64, log=True)
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    return train(make_model(hidden), lr, epochs=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="total trials the study needs")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    STUDY_DB.parent.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{STUDY_DB}"
    study = resume_study(
        "workflow", storage, sampler=optuna.samplers.TPESampler(seed=0), direction="minimize"
    )
    remaining = args.trials - len(study.trials)
    print(f"study holds {len(study.trials)} trials; running {max(remaining, 0)} more")
    with BackupCallback(storage=storage) as backup_after_each_trial:
        study.optimize(objective, n_trials=max(remaining, 0), callbacks=[backup_after_each_trial])
    BEST_PARAMS.write_text(json.dumps(study.best_params))
    result = immediate_backup_if_needed(BEST_PARAMS)
    print(f"best {study.best_params} (mse {study.best_value:.4f}); {result.status.value}")


if __name__ == "__main__":
    main()
