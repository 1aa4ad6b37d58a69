"""The stability :class:`~stablernn.monitor.Monitor` as a PyTorch Lightning callback
(docs/monitor.md, "In PyTorch Lightning"; the ``[lightning]`` extra).

Lightning owns the loop, so the callback calls the monitor: once when fitting starts (the
initial model) and after every training batch with the trainer's ``global_step``, logging
each record through the trainer's loggers under ``stability/``.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..adapters import as_deep_rnn
from ..monitor import Monitor

try:
    from lightning.pytorch import Callback
except ImportError as err:  # pragma: no cover - the extra is part of [dev]
    raise ImportError("stablernn.integrations.lightning needs PyTorch Lightning: pip install "
                      "'stablernn[lightning]'") from err

__all__ = ["StabilityCallback"]

PREFIX = "stability/"


def _is_recurrent(module: nn.Module) -> bool:
    try:
        as_deep_rnn(module)
    except (TypeError, ValueError):
        return False
    return True


def find_recurrent(root: nn.Module, module: nn.Module | str | None) -> nn.Module:
    """The recurrent module to watch inside ``root``: ``module`` itself, the submodule of that
    dotted name, or (None) ``root`` when it is one, else its only recurrent submodule.

    Raises:
        ValueError: no such submodule, none recurrent, or several (name the one to watch).
        TypeError: ``module`` is neither a module, a name nor None; or it is not recurrent.
    """
    if isinstance(module, nn.Module):
        found = module
    elif isinstance(module, str):
        try:
            found = root.get_submodule(module)
        except AttributeError:
            names = [n for n, _ in root.named_children()]
            raise ValueError(f"the LightningModule has no submodule {module!r}; its children: "
                             f"{', '.join(names) or 'none'}") from None
    elif module is None:
        if _is_recurrent(root):
            return root
        found_all = [(n, m) for n, m in root.named_modules() if n and _is_recurrent(m)]
        # the outermost recurrent modules (a DeepRNN's cells are not separate networks)
        outer = [(n, m) for n, m in found_all
                 if not any(n.startswith(f"{o}.") for o, _ in found_all)]
        if not outer:
            raise ValueError("the LightningModule holds no recurrent network (a DeepRNN or a "
                             "torch.nn.RNN/LSTM/GRU); pass module= the network to watch")
        if len(outer) > 1:
            raise ValueError(f"the LightningModule holds several recurrent networks "
                             f"({', '.join(n for n, _ in outer)}); pass module= the name of "
                             f"the one to watch")
        return outer[0][1]
    else:
        raise TypeError(f"module must be an nn.Module, a submodule name or None, got "
                        f"{type(module).__name__}")
    if not _is_recurrent(found):
        raise TypeError(f"module {type(found).__name__} is not a recurrent network (a DeepRNN "
                        f"or a torch.nn.RNN/LSTM/GRU)")
    return found


class StabilityCallback(Callback):
    """Stability curves of a LightningModule's recurrent network, logged by the trainer.

    Args:
        probe_inputs: a fixed input batch for the watched network (as for :class:`Monitor`).
        module: the network to watch: a submodule, its dotted name, or None (the
            LightningModule's only recurrent network).
        every: measure every this many optimiser steps (``trainer.global_step``).
        monitor_options: the other :class:`Monitor` options (``kinds``, ``measures``,
            ``band``, ``writer`` for extra files, ...).

    Attributes:
        monitor: the :class:`Monitor` (its ``history``, ``seconds``, ``plot()``), made when
            fitting starts.

    Example:
        >>> import torch
        >>> callback = StabilityCallback(torch.randn(8, 20, 1), every=50)
        >>> # lightning.Trainer(callbacks=[callback]).fit(lit_module, data)
    """

    def __init__(self, probe_inputs: Tensor, *, module: nn.Module | str | None = None,
                 every: int = 100, **monitor_options: Any) -> None:
        super().__init__()
        self.probe_inputs, self.module, self.every = probe_inputs, module, every
        self.options = monitor_options
        self.monitor: Monitor | None = None
        self._trainer: Any = None

    def _log(self, step: int, record: dict) -> None:
        metrics = {PREFIX + k: float(v) for k, v in record.items() if k != "step"}
        for logger in self._trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_fit_start(self, trainer: Any, pl_module: nn.Module) -> None:
        """Build the monitor (errors surface before the first step) and measure step 0."""
        self._trainer = trainer
        options = dict(self.options)
        extra = options.pop("writer", None)
        extra = list(extra) if isinstance(extra, (list, tuple)) else (
            [extra] if extra is not None else [])
        net = find_recurrent(pl_module, self.module)
        self.monitor = Monitor(net, self.probe_inputs, every=self.every,
                               writer=[self._log, *extra], **options)
        if trainer.global_step == 0:
            self.monitor.measure(0)

    def on_train_batch_end(self, trainer: Any, pl_module: nn.Module, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """Measure when ``trainer.global_step`` (optimiser steps so far) is a multiple of
        ``every``, once per step (gradient accumulation calls this several times)."""
        step = trainer.global_step
        if self.monitor is not None and step > 0 and (
                not self.monitor.history or self.monitor.history[-1]["step"] != step):
            self.monitor.step(step)

    def on_fit_end(self, trainer: Any, pl_module: nn.Module) -> None:
        """Close the monitor's writers (a TensorBoard folder it opened)."""
        if self.monitor is not None:
            self.monitor.close()
