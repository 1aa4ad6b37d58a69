"""Train a LightningModule holding a 3-layer GRU on sequential 8x8 digits (one pixel per step,
T = 64) with the StabilityCallback on: the trainer's logger (a CSV logger here) gets the
stability curves next to the loss; writes metrics.csv and lightning_stability.png (needs
matplotlib and the [lightning] extra) into a new temporary folder, or into --out DIR.

    python examples/lightning_digits.py      # ~1 min on a 2-core CPU
"""
import os
import warnings

import lightning as L
import torch
from _out import out_dir
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from stablernn import DeepRNN, make_task
from stablernn.integrations.lightning import StabilityCallback

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


class DigitsGRU(L.LightningModule):
    """A 3-layer GRU classifier; the callback finds it as the module's recurrent network."""

    def __init__(self, task, hidden: int) -> None:
        super().__init__()
        self.task = task
        self.net = DeepRNN.build("gru", task.input_size, hidden, 3, readout=task.output_size,
                                 readout_mode=task.readout_mode)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.task.loss(self.net(x)[0], y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main() -> None:
    out = out_dir(__doc__, __file__)
    hidden, steps, every = (8, 6, 3) if SMOKE else (64, 400, 20)
    L.seed_everything(0, verbose=False)
    task = make_task("digits", seed=0, size="smoke" if SMOKE else "full")
    x, y = task.split("train")
    data = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    probe = task.split("valid")[0][:8]
    callback = StabilityCallback(probe, every=every)
    trainer = L.Trainer(max_steps=steps, logger=CSVLogger(out, name="", version=""),
                        callbacks=[callback], enable_checkpointing=False,
                        enable_progress_bar=not SMOKE, enable_model_summary=False,
                        default_root_dir=out, log_every_n_steps=1 if SMOKE else every,
                        accelerator="cpu")
    with warnings.catch_warnings():  # a toy in-memory dataset needs no loader workers
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        # Lightning 2.6 on torch 2.13 warns about its own use of torch's pytree (not ours)
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)
        trainer.fit(DigitsGRU(task, hidden), data)
    monitor = callback.monitor
    print(f"{len(monitor.history)} stability records, monitor time {monitor.seconds:.1f} s; "
          f"last: time radii " + ", ".join(f"{monitor.history[-1][f'radius/time/layer{i}']:.3f}"
                                           for i in range(3)))
    fig = monitor.plot()
    fig.savefig(out / "lightning_stability.png", dpi=110)
    print(f"wrote {out / 'metrics.csv'} and {out / 'lightning_stability.png'}")


if __name__ == "__main__":
    main()
