"""Plot the mean-field m and xi against the forget (LSTM) / update (GRU) bias mean, with
simulated layers on top; writes init_meanfield.png (needs matplotlib) into a new temporary
folder, or into --out DIR.

Run: python examples/plot_init.py   (about half a minute on a laptop CPU)
     python examples/plot_init.py --out docs/img    # regenerate the docs image
"""
import os

import numpy as np
import torch
from _out import out_dir

from stablernn import GRUCell, LSTMCell
from stablernn.init.critical import apply_hyper
from stablernn.init.meanfield import CRITICAL_BASE, MeanFieldHyper, _fill_m, predict
from stablernn.init.simulate import measure_m, measure_xi

SMOKE = bool(os.environ.get("STABLERNN_SMOKE"))
WIDTH, SIM_MUS = (64, [2.0]) if SMOKE else (512, [1.0, 2.0, 3.0, 4.0])
# label -> (bias mean -> hyperparameters, cell class, colour)
CASES = {
    "LSTM": (lambda mu: MeanFieldHyper("lstm", CRITICAL_BASE["lstm"]).with_gate("f", mu=mu),
             LSTMCell, "C0"),
    "LSTM, sigma_i filling m to 1": (
        lambda mu: _fill_m(MeanFieldHyper("lstm", CRITICAL_BASE["lstm"]).with_gate("f", mu=mu),
                           32.0), LSTMCell, "C2"),
    "GRU": (lambda mu: MeanFieldHyper("gru", CRITICAL_BASE["gru"]).with_gate("z", mu=mu),
            GRUCell, "C3"),
}


def theory(label: str, mus: np.ndarray) -> np.ndarray:
    """(len(mus), 2): predicted m and xi along the bias mean."""
    return np.array([[p.m, p.xi] for p in (predict(CASES[label][0](mu)) for mu in mus)])


def simulated(label: str) -> np.ndarray:
    """(len(SIM_MUS), 2): measured m and xi of random layers of width WIDTH."""
    make, cls, _ = CASES[label]
    out = []
    for mu in SIM_MUS:
        hp = make(mu)
        cell = cls(WIDTH, WIDTH)
        apply_hyper(cell, hp)
        xi = predict(hp).xi
        burn = int(5 * xi) + 30
        out.append([measure_m(cell, burn=burn, probes=2),
                    measure_xi(cell, time_steps=int(8 * xi) + 10, burn=burn, pairs=8)])
    return np.array(out)


def main() -> None:
    path = out_dir(__doc__, __file__) / "init_meanfield.png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit("this example needs matplotlib: pip install 'stablernn[plot]'") from err
    torch.manual_seed(0)
    torch.set_num_threads(1)
    mus = np.linspace(0.0, 3.0 if SMOKE else 7.0, 8 if SMOKE else 36)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, (_, _, color) in CASES.items():
        th, sim = theory(label, mus), simulated(label)
        for j, ax in enumerate(axes):
            ax.plot(mus, th[:, j], color=color, label=f"{label}: mean field")
            ax.plot(SIM_MUS, sim[:, j], "o", color=color, mfc="none",
                    label=f"{label}: simulated, N={WIDTH}")
    axes[0].axhline(1.0, color="k", lw=0.6, ls=":")
    axes[0].set(xlabel="bias mean of f (LSTM) / z (GRU)", ylabel="m = tr(J J^T) / N")
    axes[1].set(xlabel="bias mean of f (LSTM) / z (GRU)", ylabel="xi (steps)", yscale="log")
    axes[0].legend(fontsize=7)
    fig.suptitle("critical-init family (CRITICAL_BASE), inputs N(0, 1)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
