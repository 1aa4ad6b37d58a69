"""Long-memory tasks (docs/algorithms.md section 7): one file per family registers its tasks.

Every task gives seeded train/valid/test splits of batch-first sequences, its loss and metric,
and the chance value of that metric (the best input-blind predictor). See docs/tasks.md.

Example:
    >>> task = make_task("copy", T=20, size="smoke")
    >>> task.split("train")[0].shape, round(task.chance_loss, 4)
    (torch.Size([64, 40, 10]), 0.5199)
"""
from .base import (
    SPLITS,
    TASKS,
    Task,
    check_task_params,
    describe_tasks,
    make_task,
    register_task,
    task_class,
)
from .digits import DigitsTask, PermutedDigitsTask, SpikeLatencyDigitsTask
from .lm import CharLMTask, PTBTask
from .mnist import MNISTTask, PermutedMNISTTask, read_idx
from .shd import SHDTask
from .synthetic import AddingTask, CopyFirstTask, CopyTask, DenoisingTask, synthetic_names

__all__ = [
    "SPLITS",
    "TASKS",
    "AddingTask",
    "CharLMTask",
    "CopyFirstTask",
    "CopyTask",
    "DenoisingTask",
    "DigitsTask",
    "MNISTTask",
    "PTBTask",
    "PermutedDigitsTask",
    "PermutedMNISTTask",
    "SHDTask",
    "SpikeLatencyDigitsTask",
    "Task",
    "check_task_params",
    "describe_tasks",
    "make_task",
    "read_idx",
    "register_task",
    "synthetic_names",
    "task_class",
]
