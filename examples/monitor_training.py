"""Train a 2-layer LSTM on the copy task in a plain PyTorch loop with a stability Monitor; plot
the radii, Lyapunov exponents and gradient-flow growth against the training step into
monitor.png (needs matplotlib), in a new temporary folder or in --out DIR.

    python examples/monitor_training.py                 # ~20 s on a 2-core CPU
    python examples/monitor_training.py --out docs/img  # regenerate the docs image
"""
import os
import time
import warnings

import torch
from _out import out_dir

from stablernn import DeepRNN, make_task
from stablernn.monitor import Monitor

SMOKE = os.environ.get("STABLERNN_SMOKE") == "1"


def main() -> None:
    path = out_dir(__doc__, __file__) / "monitor.png"
    hidden, T, steps, every = (8, 5, 20, 5) if SMOKE else (64, 20, 600, 10)
    torch.manual_seed(0)
    task = make_task("copy", T=T, n_train=2048, n_valid=32, n_test=32)
    model = DeepRNN.build("lstm", task.input_size, hidden, 2, readout=task.output_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe = task.rows("valid", torch.arange(32))[0]
    monitor = Monitor(model, probe, every=every, band={"time": (0.5, 1.5)})
    batches = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # shown below, not raised
        warnings.simplefilter("always")
        for step in range(steps + 1):
            x, y = task.rows("train", torch.randint(0, 2048, (32,), generator=batches))
            opt.zero_grad()
            loss = task.loss(model(x), y)
            loss.backward()
            opt.step()
            monitor.step(step)
            if step % (steps // 4) == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}  "
                      f"lyapunov/0 {monitor.history[-1]['lyapunov/0']:+.3f}")
    total = time.perf_counter() - start
    for w in caught:
        print(f"warning: {w.message}")
    print(f"{len(monitor.history)} measurements, {monitor.seconds:.1f} s of {total:.1f} s "
          f"({100 * monitor.overhead(total):.0f} % of this small loop)")
    monitor.plot().savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
