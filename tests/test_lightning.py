"""StabilityCallback: the Monitor inside PyTorch Lightning (docs/monitor.md), logged through the
trainer's loggers; checked against a Monitor called by hand and against training without it."""
import copy
import warnings

import pytest
import torch

L = pytest.importorskip("lightning")
from lightning.pytorch.loggers import Logger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from stablernn import DeepRNN, Monitor  # noqa: E402
from stablernn.integrations.lightning import StabilityCallback, find_recurrent  # noqa: E402


class Recorder(Logger):
    """A logger that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.rows = []

    @property
    def name(self):
        return "recorder"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Identity()
        self.rnn = DeepRNN.build("gru", 2, 6, 2, readout=1, readout_mode="last")

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.rnn(x)[0], y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(callbacks, steps=6):
    L.seed_everything(0, verbose=False)
    module = Regressor()
    start = copy.deepcopy(module.rnn)
    g = torch.Generator().manual_seed(1)
    data = DataLoader(TensorDataset(torch.randn(16, 10, 2, generator=g),
                                    torch.randn(16, 1, generator=g)), batch_size=4)
    logger = Recorder()
    trainer = L.Trainer(max_steps=steps, logger=logger, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)", FutureWarning)
        trainer.fit(module, data)
    return module, start, logger


PROBE = torch.randn(4, 10, 2, generator=torch.Generator().manual_seed(2))


def test_callback_logs_the_monitor_records_through_the_trainer():
    callback = StabilityCallback(PROBE, every=3)
    module, start, logger = fit([callback])
    stability = [(s, m) for s, m in logger.rows if any(k.startswith("stability/") for k in m)]
    assert [s for s, _ in stability] == [0, 3, 6]  # fit start, then every 3 optimiser steps
    assert [r["step"] for r in callback.monitor.history] == [0, 3, 6]
    # step 0 is the initial network, as a Monitor of it measures
    want = Monitor(start, PROBE, every=3).measure(0)
    got = stability[0][1]
    for key, value in want.items():
        if key not in ("step", "monitor/seconds"):
            assert got[f"stability/{key}"] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    # the last record is the trained network's
    final = Monitor(module.rnn, PROBE, every=3).measure(6)
    assert stability[-1][1]["stability/radius/time/layer1"] == pytest.approx(
        final["radius/time/layer1"], rel=1e-5)


def test_training_is_the_same_with_or_without_the_callback():
    watched, _, _ = fit([StabilityCallback(PROBE, every=2)])
    plain, _, _ = fit([])
    for a, b in zip(watched.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)


def test_find_recurrent_names_the_choice():
    module = Regressor()
    assert find_recurrent(module, None) is module.rnn
    assert find_recurrent(module, "rnn") is module.rnn
    assert find_recurrent(module, module.rnn) is module.rnn
    with pytest.raises(ValueError, match="no submodule 'rn'; its children: head, rnn"):
        find_recurrent(module, "rn")
    with pytest.raises(TypeError, match="Identity is not a recurrent network"):
        find_recurrent(module, "head")
    module.other = torch.nn.GRU(2, 3)
    with pytest.raises(ValueError, match=r"several recurrent networks \(rnn, other\); pass "
                                         r"module="):
        find_recurrent(module, None)
    with pytest.raises(ValueError, match="holds no recurrent network"):
        find_recurrent(torch.nn.Linear(2, 2), None)
    with pytest.raises(TypeError, match="module must be an nn.Module, a submodule name or None"):
        find_recurrent(module, 3)


def test_bad_monitor_options_fail_when_fitting_starts():
    with pytest.raises(ValueError, match="every"):
        fit([StabilityCallback(PROBE, every=0)], steps=1)
