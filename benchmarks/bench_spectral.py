"""Speed of the spectral parametrisation (docs/algorithms.md section 5), measured side by side.

Table 1: forward + backward time of building one n x n weight ``U diag(sigma) V^T`` by
  - our compact WY form (k = n, and the paper's k = n/4),
  - ``torch.linalg.householder_product`` for U and V (LAPACK orgqr, k = n),
  - ``torch.matrix_exp`` of skew matrices (expRNN / geotorch style),
and a dense ``n x n @ n x n`` matmul as the baseline (ratios are to that baseline).
Table 2: forward + backward of a tanh RNN over T steps, W built once per batch vs a dense W,
  in our step loop (RNNCell vs SpectralRNNCell) and in ``torch.nn.RNN`` (fused kernel).

Usage: python benchmarks/bench_spectral.py [--sizes 128 256 512] [--T 64] [--batch 32]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from stablernn.cells import RNNCell
from stablernn.cells.spectral_rnn import SpectralRNNCell
from stablernn.spectral import Spectral, reflector_matrix, spectral


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


def build_householder(n: int) -> Callable[[], None]:
    A_u, A_v, s = param(n, n), param(n, n), param(n)

    def build() -> torch.Tensor:
        U, V = (torch.linalg.householder_product(Y, 2 / (Y * Y).sum(0))
                for Y in (reflector_matrix(A_u), reflector_matrix(A_v)))
        return (U * (1 + 0.02 * (torch.sigmoid(s) - 0.5))) @ V.T
    return fwd_bwd(build, [A_u, A_v, s])


def build_expm(n: int) -> Callable[[], None]:
    A_u, A_v, s = param(n, n), param(n, n), param(n)

    def build() -> torch.Tensor:
        U, V = (torch.matrix_exp(A - A.T) for A in (A_u, A_v))
        return (U * (1 + 0.02 * (torch.sigmoid(s) - 0.5))) @ V.T
    return fwd_bwd(build, [A_u, A_v, s])


def dense_matmul(n: int) -> Callable[[], None]:
    W, X = param(n, n), torch.randn(n, n)
    return fwd_bwd(lambda: W @ X, [W])


def build_table(sizes: list[int], reps: int) -> list[str]:
    rows = ["| n | dense matmul ms | WY k=n | WY k=n/4 | householder_product | matrix_exp |",
            "|---|---|---|---|---|---|"]
    for n in sizes:
        base, *others = timeit_all([dense_matmul(n), build_wy(n, n), build_wy(n, max(1, n // 4)),
                                    build_householder(n), build_expm(n)], reps)
        cells = " | ".join(f"{t:.2f} ms ({t / base:.1f}x)" for t in others)
        rows.append(f"| {n} | {base:.2f} | {cells} |")
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
    print("\nBuilding W (forward + backward), ratio to a dense n x n matmul:\n")
    print("\n".join(build_table(args.sizes, args.reps)))
    print(f"\ntanh RNN, T={args.T}, batch={args.batch}, forward + backward:\n")
    print("\n".join(rnn_table(args.sizes, args.T, args.batch, args.reps)))


if __name__ == "__main__":
    main()
