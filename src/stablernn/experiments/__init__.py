"""The experiment path: sweep specs (TOML -> trial configs), trials, backends (local, ray,
slurm), run directories and reports; see docs/sweeps.md.

Modules: :mod:`.spec`, :mod:`.trial`, :mod:`.sweep`, :mod:`.backends`, :mod:`.rundir` (the only
module that spells the file names of a run directory) and :mod:`.report`. Names are imported
on first use: the training loop imports :mod:`.rundir`, and this package must not pull the
sweep machinery (and with it the config layer) into that import.
"""
from .._lazy import lazy_exports

_WHERE = {"Sweep": "spec", "load_sweep": "spec", "parse_sweep": "spec",
          "TrialResult": "trial", "run_trial": "trial",
          "SweepResult": "sweep", "run_sweep": "sweep", "sweep_command": "sweep",
          "RunDir": "rundir", "run_dir_for": "rundir",
          "load_runs": "report", "write_report": "report", "write_results": "report.results"}

__all__ = ["RunDir", "Sweep", "SweepResult", "TrialResult", "load_runs", "load_sweep",
           "parse_sweep", "run_dir_for", "run_sweep", "run_trial", "sweep_command",
           "write_report", "write_results"]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
