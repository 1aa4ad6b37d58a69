"""Critical initialisation of a torch.nn.LSTM: the calculator's predictions vs measurement.

Applies ``critical_init(lstm, seq_len=T)``, prints ``explain`` (q*, m, chi, xi per layer), then
simulates the first layer driven by N(0, 1) inputs and prints the measured ``tr(J J^T)/N`` and
correlation time next to the predictions. A few seconds on a laptop CPU.

Run: python examples/critical_init.py
"""
import os

import torch

from stablernn.init import critical_init, explain, recurrent_layers
from stablernn.init.simulate import measure_m, measure_xi

SMOKE = bool(os.environ.get("STABLERNN_SMOKE"))
WIDTH, SEQ_LEN = (64, 10) if SMOKE else (1024, 50)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    lstm = torch.nn.LSTM(WIDTH, WIDTH, num_layers=2, batch_first=True)
    print("before (PyTorch default init):")
    print(explain(lstm, SEQ_LEN))
    report = critical_init(lstm, seq_len=SEQ_LEN)
    print(f"\nafter critical_init(lstm, seq_len={SEQ_LEN}):")
    print(explain(lstm, SEQ_LEN))
    pred = report.predictions[0]
    gates = report.hyper[0]["gates"]
    print("\nlayer 0 hyperparameters: " + ", ".join(
        f"{k}: sigma={g['sigma']:.3g} mu={g['mu']:.3g}" for k, g in gates.items()))
    cell = recurrent_layers(lstm)[0]
    burn = int(5 * pred["xi"]) + 30
    m = measure_m(cell, burn=burn, batch_size=8, probes=2)
    xi = measure_xi(cell, time_steps=int(8 * pred["xi"]) + 10, burn=burn, pairs=8)
    print(f"\nlayer 0, width {WIDTH}:   predicted     measured")
    print(f"  m = tr(J J^T)/N      {pred['m']:8.4f}   {m:10.4f}")
    print(f"  xi (steps)           {pred['xi']:8.2f}   {xi:10.2f}")


if __name__ == "__main__":
    main()
