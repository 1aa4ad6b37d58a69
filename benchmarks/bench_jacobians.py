"""Dense local Jacobians and radii: our batched-backward Jacobian vs torch.func.jacfwd, and the
krylov vs exact radius, measured side by side (LSTM time map, CPU).

    python benchmarks/bench_jacobians.py [--hidden 8,32,128] [--batch 8] [--repeats 10]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch.func import jacfwd

from stablernn import DeepRNN
from stablernn.stability import maps_at, radius
from stablernn.stability.local_maps import _ensure_jvp


def ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="8,32,128")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    _ensure_jvp()
    print("| H (state n=2H) | jacfwd ms | ours ms | speed-up | exact radius ms | krylov ms |")
    print("|---|---|---|---|---|---|")
    for H in map(int, args.hidden.split(",")):
        model = DeepRNN.build("lstm", 3, H, 2)
        m = maps_at(model, torch.randn(args.batch, 5, 3), 2, kinds=["time"])[0]
        ref = ms(lambda: jacfwd(lambda s: m.fn(s).sum(0))(m.state_in), args.repeats)
        ours = ms(m.jacobian, args.repeats)
        exact = ms(lambda: radius(m, "exact"), args.repeats)
        krylov = ms(lambda: radius(m, "krylov", k=min(32, 2 * H)), args.repeats)
        print(f"| {H} ({2 * H}) | {ref:.2f} | {ours:.2f} | {ref / ours:.1f}x | {exact:.2f} | "
              f"{krylov:.2f} |", flush=True)


if __name__ == "__main__":
    main()
