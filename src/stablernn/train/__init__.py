"""The experiment path: configs, the training loop and run directories."""
from .config import Config, ConfigError, apply_overrides, check_device, config_hash
from .loop import train
from .runs import DamagedFileWarning, RunDir, RunDirError, RunLockedError, read_summary

__all__ = ["Config", "ConfigError", "DamagedFileWarning", "RunDir", "RunDirError",
           "RunLockedError", "apply_overrides", "check_device", "config_hash", "read_summary",
           "train"]
