"""The ``local`` backend: a process pool of spawned workers, one torch thread each."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator

from ..trial import limit_threads, run_trial
from .base import lost


def _init_local_worker() -> None:
    """One torch thread, and exit when the sweep process dies (a killed ``stablernn sweep``
    must not leave workers training; their checkpoints let the next run resume)."""
    import threading

    limit_threads()
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run(configs: list[dict], workers: int) -> Iterator[tuple[int, dict]]:
    """Yield ``(index, summary)`` of each config as its trial ends (a dead worker is one
    lost trial)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child of a process that already ran OpenMP threads can hang
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(workers, len(configs)), mp_context=ctx,
                               initializer=_init_local_worker)
    try:
        futures = {pool.submit(run_trial, c): k for k, c in enumerate(configs)}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], lost(error) if error else future.result()
    finally:  # Ctrl-C: drop the queued trials instead of running them all first
        pool.shutdown(wait=True, cancel_futures=True)
