"""The experiment path: configs, the training loop and run directories.

Names are imported on first use, so ``stablernn.train.config`` and ``stablernn.train.pretrain``
load without the training loop (the registry reads ``pretrain`` while the loop reads the
registry: an eager import here would make that a cycle).
"""
from .._lazy import lazy_exports

_WHERE = {"Config": "config", "ConfigError": "config", "apply_overrides": "config",
          "check_device": "config", "config_hash": "config", "train": "loop",
          "DamagedFileWarning": "runs", "RunDir": "runs", "RunDirError": "runs",
          "RunLockedError": "runs", "read_summary": "runs"}

__all__ = ["Config", "ConfigError", "DamagedFileWarning", "RunDir", "RunDirError",
           "RunLockedError", "apply_overrides", "check_device", "config_hash", "read_summary",
           "train"]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
