"""Speed of the spectral parametrisation (docs/spectral.md), measured side by side with its peers.

Table 1: forward + backward time of building one n x n weight, as a ratio to a dense
``n x n @ n x n`` matmul (forward + weight gradient) measured in the same run:
  - ours: the blocked compact-WY build of ``U diag(sigma) V^T`` (k = n, and the paper's
    k = n/4), Note [Blocked build] in stablernn/spectral.py;
  - ours, unblocked: the version-1 build (one compact WY factor per side, autograd), for the
    record;
  - ``torch.nn.utils.parametrizations.orthogonal`` (Cayley, matrix_exp): builds an orthogonal
    ``Q`` only, a smaller function class than ``U f(sigma) V^T``;
  - ``geotorch.almost_orthogonal`` (Cayley, expm): ``U f(sigma) V^T`` like ours (the
    ``[geotorch]`` extra; skipped when missing).
Table 2: forward + backward of a tanh RNN over T steps, W built once per batch vs a dense W,
  in our step loop (RNNCell vs SpectralRNNCell) and in ``torch.nn.RNN`` (fused kernel).

Usage: python benchmarks/bench_spectral.py [--sizes 128 256 512] [--T 64] [--batch 32] [--threads 1]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from stablernn.cells import RNNCell
from stablernn.cells.spectral_rnn import SpectralRNNCell
from stablernn.spectral import Spectral, spectral, wy_factor


def timeit_all(fns: list[Callable[[], None]], reps: int, budget: float = 3.0) -> list[float]:
    """Best wall time of each ``fn`` in milliseconds, measured round-robin.

    Interleaving gives every candidate the same share of a noisy machine, and the minimum is the
    least disturbed sample. A candidate stops after ``reps`` samples or ``budget`` seconds.
    """
    best = [float("inf")] * len(fns)
    spent = [0.0] * len(fns)
    for fn in fns:
        fn()  # warm-up
    for rep in range(reps):
        for i, fn in enumerate(fns):
            if rep and spent[i] > budget:
                continue
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best[i], spent[i] = min(best[i], dt), spent[i] + dt
    return [1e3 * t for t in best]


def fwd_bwd(build: Callable[[], torch.Tensor], params: list[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for p in params:
            p.grad = None
        build().sum().backward()
    return run


def param(*shape: int) -> torch.Tensor:
    return (torch.randn(*shape) / shape[-1] ** 0.5).requires_grad_()


def build_wy(n: int, k: int) -> Callable[[], None]:
    sp = Spectral((n, n), 1, k, 0.01, 1.0)
    args = [t.requires_grad_() for t in sp.sample()]
    return fwd_bwd(lambda: sp(*args), args)


def build_unblocked(n: int) -> Callable[[], None]:
    """Version 1: ``W = [B; 0] - Y_u (X_u B)``, ``B = diag(sigma) V^T``, autograd throughout."""
    sp = Spectral((n, n), 1, n, 0.01, 1.0)
    A_u, A_v, s = (t.requires_grad_() for t in sp.sample())

    def build() -> torch.Tensor:
        Y_u, X_u = wy_factor(A_u)
        Y_v, X_v = wy_factor(A_v)
        B = sp.sigma(s).unsqueeze(-1) * (torch.eye(n) - X_v.mT @ Y_v.mT)
        return B - Y_u @ (X_u @ B)
    return fwd_bwd(build, [A_u, A_v, s])


def build_parametrized(register: Callable[[nn.Module], object], n: int) -> Callable[[], None]:
    lin = nn.Linear(n, n, bias=False)
    register(lin)
    params = list(lin.parameters())
    return fwd_bwd(lambda: lin.weight, params)


def peers(n: int) -> dict[str, Callable[[], None]]:
    """The peers' builds of an n x n weight (geotorch only when installed)."""
    orth = nn.utils.parametrizations.orthogonal
    out = {f"torch orthogonal ({m})": build_parametrized(
        lambda lin, m=m: orth(lin, orthogonal_map=m), n) for m in ("cayley", "matrix_exp")}
    try:
        import geotorch
    except ImportError:
        return out
    for triv in ("cayley", "expm"):
        out[f"geotorch almost_orthogonal ({triv})"] = build_parametrized(
            lambda lin, t=triv: geotorch.almost_orthogonal(lin, "weight", lam=0.01,
                                                           f="scaled_sigmoid", triv=t), n)
    return out


def dense_matmul(n: int) -> Callable[[], None]:
    W, X = param(n, n), torch.randn(n, n)
    return fwd_bwd(lambda: W @ X, [W])


def build_table(sizes: list[int], reps: int) -> list[str]:
    """Rows: builds; columns: sizes; cells: ms (ratio to the dense matmul of that size)."""
    times: dict[str, dict[int, float]] = {}
    for n in sizes:
        runs = {"dense matmul": dense_matmul(n), "ours, k = n": build_wy(n, n),
                "ours, k = n/4": build_wy(n, max(1, n // 4)),
                "ours v1 (unblocked), k = n": build_unblocked(n), **peers(n)}
        for name, ms in zip(runs, timeit_all(list(runs.values()), reps), strict=True):
            times.setdefault(name, {})[n] = ms
    base = times["dense matmul"]
    rows = ["| build | " + " | ".join(f"n = {n}" for n in sizes) + " |",
            "|---|" + "---|" * len(sizes)]
    for name, row in times.items():
        cells = (f"{row[n]:.2f} ms ({row[n] / base[n]:.1f}x)" for n in sizes)
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def seq_run(model: nn.Module, x: torch.Tensor, step_loop: bool) -> Callable[[], None]:
    def run() -> None:
        model.zero_grad(set_to_none=True)
        if step_loop:
            y, _ = model.forward_sequence(x, model.initial_state(x.shape[0]))
        else:
            y, _ = model(x)
        y.pow(2).mean().backward()
    return run


def rnn_table(sizes: list[int], T: int, batch: int, reps: int) -> list[str]:
    header = "| n | loop dense ms | loop spectral (W once) | nn.RNN dense ms | nn.RNN spectral |"
    rows = [header, "|---|---|---|---|---|"]
    for n in sizes:
        x = torch.randn(batch, T, n)
        runs = [seq_run(c, x, True) for c in (RNNCell(n, n), SpectralRNNCell(n, n))]
        runs += [seq_run(m, x, False) for m in (nn.RNN(n, n, batch_first=True), spectral(
            nn.RNN(n, n, batch_first=True), "weight_hh_l0"))]
        times = timeit_all(runs, reps)
        loop, fused = times[:2], times[2:]
        rows.append(f"| {n} | {loop[0]:.1f} | {loop[1]:.1f} ms ({loop[1] / loop[0]:.2f}x) | "
                    f"{fused[0]:.1f} | {fused[1]:.1f} ms ({fused[1] / fused[0]:.2f}x) |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--T", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, "
          f"best of up to {args.reps} interleaved runs")
    print("\nBuilding W (forward + backward), ms and ratio to a dense n x n matmul:\n")
    print("\n".join(build_table(args.sizes, args.reps)))
    print(f"\ntanh RNN, T={args.T}, batch={args.batch}, forward + backward:\n")
    print("\n".join(rnn_table(args.sizes, args.T, args.batch, args.reps)))


if __name__ == "__main__":
    main()
