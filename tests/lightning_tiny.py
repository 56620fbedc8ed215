"""The tiny Lightning model the Lightning tests train, in a module of its own: the tests import
it only when they run (every parallel test process collects their module, and importing
Lightning costs 10 to 20 s of CPU here)."""

import logging

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.steps_started = []

    def training_step(self, batch, batch_idx):
        self.steps_started.append(self.global_step)
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(64, 4, generator=g), torch.randn(64, 1))
        return torch.utils.data.DataLoader(data, batch_size=4)


def fit(dirpath, max_steps, backup, ckpt_path=None):
    torch.manual_seed(0)
    model = Tiny()
    trainer = L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=dirpath, every_n_train_steps=2, save_last=True), backup],
    )
    trainer.fit(model, ckpt_path=ckpt_path)
    return model
