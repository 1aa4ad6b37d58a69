"""Long memory with the spectral RNN: copy after T blanks, against an LSTM of the same size.

Run: python examples/spectral_copy.py   (1-2 minutes on a laptop CPU: T = 100, 600 updates)

The set-up of docs/spectral.md ("Long memory: copy at T = 1000"): a spectral RNN with modReLU
and the Henaff init, RMSprop with the reflectors and sigma at a tenth of the learning rate.
Recall accuracy is on the 10 symbols after the delimiter (chance 1/8). The headline run,
T = 1000 on a 2-core CPU in minutes, is ``benchmarks/copy1000.py``.
"""
import os

import torch

from stablernn import DeepRNN, LSTMCell, spectral_param_groups
from stablernn.cells import SpectralRNNCell
from stablernn.tasks import make_task

SMOKE = bool(os.environ.get("STABLERNN_SMOKE"))
T, UPDATES, BATCH = (20, 30, 16) if SMOKE else (100, 600, 32)
task = make_task("copy", T=T, seed=0, n_train=BATCH * UPDATES, n_valid=256, n_test=1)
cells = {
    "spectral RNN (modReLU, Henaff), H = 64":
        lambda: SpectralRNNCell(10, 64, nonlinearity="modrelu", init="henaff"),
    "LSTM, H = 32 (as many parameters)": lambda: LSTMCell(10, 32),
}
x_valid, y_valid = task.split("valid")
print(f"copy, T = {T}: recall accuracy after {UPDATES} updates (chance 0.125)")
for name, make in cells.items():
    torch.manual_seed(0)
    model = DeepRNN([make()], readout=9)
    groups = spectral_param_groups(model, 0.0, spectral_lr=2e-4)  # one group for the LSTM
    opt = torch.optim.RMSprop(groups, lr=2e-3)
    for x, y in task.batches("train", BATCH, shuffle=False):
        loss = task.loss(model(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = task.metric(model(x_valid)[0], y_valid)
    print(f"  {name}: {acc:.3f}")
