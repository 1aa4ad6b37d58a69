"""The ``ray`` backend: Ray core tasks on a local instance or a cluster (``pip install
'stablernn[ray]'``; Ray is imported only when this backend runs)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..trial import trial_one_thread
from .base import lost, optional


def run(configs: list[dict], workers: int, address: str | None) -> Iterator[tuple[int, dict]]:
    """Yield ``(index, summary)`` as each task ends; a Ray started here is shut down after."""
    ray = optional("ray", "ray", "the ray backend")
    started = not ray.is_initialized()
    if started:
        local = {} if address else {"num_cpus": workers}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **local)
    try:
        task = ray.remote(num_cpus=1)(trial_one_thread)
        pending = {task.remote(c): k for k, c in enumerate(configs)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), _ray_result(ray, done[0])
    finally:
        if started:
            ray.shutdown()


def _ray_result(ray: Any, ref: Any) -> dict:
    try:
        return ray.get(ref)
    except Exception as err:  # noqa: BLE001 - a dead worker or node is one lost trial
        return lost(err)
