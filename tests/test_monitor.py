"""stablernn.monitor.Monitor: records equal the diagnostics called directly, measuring leaves
training untouched, writers, the warning band, diverged models and argument checks."""
import csv
import json
import math
import sys
import warnings
from unittest import mock

import pytest
import torch
from _support import raises_cleanly

from stablernn import DeepRNN
from stablernn.monitor import JSONLWriter, Monitor, MonitorWarning, TensorBoardWriter
from stablernn.stability import gradient_flow, lyapunov_exponents, radii, vaa

NAN = float("nan")


def tiny(cell="gru", layers=2, **kw):
    torch.manual_seed(0)
    return DeepRNN.build(cell, 2, 6, layers, **kw)


def probe(B=3, T=8, D=2):
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(1))


def same(a, b):
    """Equal floats, NaN equal to NaN (JSON writes NaN as null)."""
    a = NAN if a is None else float(a)
    b = NAN if b is None else float(b)
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6, abs=1e-9)


def test_records_equal_the_diagnostics_called_directly():
    model = tiny()
    x = probe(B=5, T=12)
    mon = Monitor(model, x, every=1, measures=("radii", "flow", "lyapunov", "vaa"),
                  probe_batch=4, probe_steps=10, lyapunov_k=3, vaa_time_steps=30, seed=2)
    rec = mon.step(0)
    assert torch.equal(mon.probe, x[:4, :10])
    assert mon.time_steps == [4, 9]  # 2 evenly spaced steps, the last one included
    ref = radii(model, x[:4, :10], estimator="krylov", kinds=["time", "depth", "input"],
                time_steps=mon.time_steps, seed=2, k=mon.k)
    expected = {f"radius/{kind}/layer{layer}": ref.mean(kind, layer)
                for kind, per_layer in ref.values.items() for layer in per_layer}
    assert sorted(expected) == sorted(["radius/time/layer0", "radius/time/layer1",
                                       "radius/depth/layer1", "radius/input/layer0"])
    flow = gradient_flow(model, x[:4, :10])
    expected |= {"flow/time_growth": flow.time_growth, "flow/depth_growth": flow.depth_growth,
                 **{f"flow/time_rate/layer{i}": float(r) for i, r in enumerate(flow.time_rate)}}
    spec = lyapunov_exponents(model, x[:4, :10], k=3, seed=2)
    expected |= {f"lyapunov/{i}": float(e) for i, e in enumerate(spec.exponents)}
    multi = vaa(model, x[:4, :10], time_steps=30, seed=2)
    expected |= {"vaa/vaa": multi.vaa, "vaa/attractors": multi.attractors}
    assert set(rec) == set(expected) | {"step", "monitor/seconds"}
    for key, value in expected.items():
        assert same(rec[key], value), (key, rec[key], value)
    assert rec["step"] == 0 and rec["monitor/seconds"] > 0 and mon.history == [rec]


def test_torch_lstm_time_major():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(2, 5, num_layers=2)  # batch_first=False: (T, B, D)
    x = torch.randn(9, 4, 2)
    mon = Monitor(lstm, x, every=5, probe_batch=3, probe_steps=6, lyapunov_k=2)
    rec = mon.step(5)
    assert torch.equal(mon.probe, x[:6, :3].transpose(0, 1))
    ref = radii(lstm, x[:6, :3], estimator="krylov", kinds=["time", "depth", "input"],
                time_steps=mon.time_steps, k=mon.k)
    for layer in (0, 1):
        assert same(rec[f"radius/time/layer{layer}"], ref.mean("time", layer))
    spec = lyapunov_exponents(lstm, x[:6, :3], k=2)
    assert [rec["lyapunov/0"], rec["lyapunov/1"]] == pytest.approx(spec.exponents.tolist())
    assert lstm.training  # restored


def test_measures_only_every_n_steps():
    mon = Monitor(tiny(), probe(), every=3, measures=["lyapunov"], lyapunov_k=1)
    returned = [mon.step(s) for s in range(10)]
    assert [r["step"] for r in mon.history] == [0, 3, 6, 9]
    assert [s for s, r in enumerate(returned) if r is not None] == [0, 3, 6, 9]
    mon.measure(10)  # whatever every says
    assert [r["step"] for r in mon.history] == [0, 3, 6, 9, 10]
    assert mon.seconds >= sum(r["monitor/seconds"] for r in mon.history)
    assert mon.overhead(2 * mon.seconds) == pytest.approx(0.5)


def test_measuring_leaves_training_untouched():
    model = tiny("lstm", dropout=0.3, readout=3)
    model.train()
    model.readout.eval()  # mixed modes are restored module by module
    model.cells[0].bias_hh.requires_grad_(False)  # a frozen parameter stays frozen
    model(probe())[0].sum().backward()
    model.cells[1].weight_hh.grad = None  # and a missing .grad stays missing
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: (p.grad, None if p.grad is None else p.grad.clone())
             for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    modes_seen = []

    def loss(y):
        modes_seen.append(model.training)
        return y[:, -1].sum()

    mon = Monitor(model, probe(), every=1, measures=("radii", "flow", "lyapunov", "vaa"),
                  kinds=("time", "depth", "input", "readout"), vaa_time_steps=10, loss=loss)
    assert "radius/readout/layer2" in mon.step(0)
    assert modes_seen == [False]  # eval mode while measuring
    assert torch.equal(torch.get_rng_state(), rng)
    assert [m.training for m in model.modules()] == modes
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params[n]), n
        assert p.requires_grad == flags[n], n
        obj, value = grads[n]
        assert p.grad is obj, n
        assert value is None or torch.equal(p.grad, value), n


def test_training_is_the_same_with_or_without_the_monitor():
    """Dropout draws from torch's RNG: a monitor that moved it would change the run."""
    def train(monitor: bool) -> list[torch.Tensor]:
        model = tiny(dropout=0.5, readout=1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        mon = Monitor(model, probe(), every=2, lyapunov_k=2) if monitor else None
        torch.manual_seed(5)
        for step in range(5):
            opt.zero_grad()
            model(torch.randn(4, 8, 2))[0].pow(2).mean().backward()
            opt.step()
            if mon is not None:
                mon.step(step)
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(train(False), train(True), strict=True):
        assert torch.equal(a, b)


def test_jsonl_csv_and_callable_writers_match_history(tmp_path):
    seen = []
    jsonl, table = tmp_path / "out" / "mon.jsonl", tmp_path / "mon.csv"
    mon = Monitor(tiny(), probe(), every=2, lyapunov_k=2,
                  writer=[str(jsonl), table, lambda step, rec: seen.append((step, rec))])
    for step in range(5):
        mon.step(step)
    mon.close()
    assert [s for s, _ in seen] == [0, 2, 4] and [r for _, r in seen] == mon.history
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == len(mon.history) == 3
    for rec, line, row in zip(mon.history, lines, rows, strict=True):
        assert list(line) == list(row) == list(rec)
        assert all(same(line[k], v) and same(row[k], v) for k, v in rec.items())
    again = JSONLWriter(jsonl, append=True)  # resuming keeps the earlier lines
    again(6, {"step": 6, "lyapunov/0": NAN})
    assert jsonl.read_text().splitlines()[-1] == '{"step": 6, "lyapunov/0": null}'


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    theirs = SummaryWriter(log_dir=str(tmp_path / "theirs"))
    with Monitor(tiny(), probe(), every=2, measures=["radii"],
                 writer=[tmp_path / "ours", theirs]) as mon:
        for step in range(4):
            mon.step(step)
    theirs.close()
    for folder in ("ours", "theirs"):
        events = EventAccumulator(str(tmp_path / folder))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert {"radius/time/layer0", "radius/depth/layer1", "monitor/seconds"} <= set(tags)
        scalars = events.Scalars("radius/time/layer0")
        assert [s.step for s in scalars] == [0, 2]
        assert [s.value for s in scalars] == pytest.approx(
            [r["radius/time/layer0"] for r in mon.history], rel=1e-6)


def test_band_warns_once_per_layer_and_kind():
    mon = Monitor(tiny(), probe(), every=1, measures=["radii"], band=(10.0, 20.0))
    with pytest.warns(MonitorWarning) as caught:
        mon.step(0)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 4  # time 0, time 1, depth 1, input 0
    assert all("[10, 20]" in m and m.startswith("step 0: ") for m in messages)
    assert any("the depth radius of layer 1 is " in m for m in messages)
    assert caught[0].filename == __file__  # points at the user's monitor.step line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.step(1)  # still out of band: no second warning


def test_band_per_kind():
    mon = Monitor(tiny(), probe(), every=1, measures=["radii"], band={"time": (0.0, 1e-3)})
    with pytest.warns(MonitorWarning, match="time radius") as caught:
        mon.step(0)
    assert len(caught) == 2


def test_nan_weights_warn_once_and_record_nan():
    model = tiny(readout=1)
    mon = Monitor(model, probe(), every=1, measures=("radii", "flow", "lyapunov", "vaa"),
                  kinds=("time", "depth", "input", "readout"), lyapunov_k=2, vaa_time_steps=5)
    healthy = mon.step(0)
    with torch.no_grad():
        model.cells[1].weight_hh.fill_(NAN)
    with pytest.warns(MonitorWarning, match="not finite.*diverged") as caught:
        rec = mon.step(1)
    assert len(caught) == 1 and "NaN/Inf" in str(caught[0].message)
    assert list(rec) == list(healthy)  # the same columns, for CSV and plots
    assert all(math.isnan(v) for k, v in rec.items() if k not in ("step", "monitor/seconds"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(mon.step(2)["lyapunov/0"])  # no second warning


def test_overflowing_dynamics_record_nan():
    model = tiny("rnn_relu")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e12)
    mon = Monitor(model, probe() * 1e12, every=1, lyapunov_k=2)
    with pytest.warns(MonitorWarning, match="overflow"):
        rec = mon.step(0)
    assert math.isnan(rec["radius/time/layer0"]) and math.isnan(rec["lyapunov/0"])


def test_plot():
    pytest.importorskip("matplotlib")
    mon = Monitor(tiny(), probe(), every=1, lyapunov_k=2, band=(0.0, 5.0))
    with pytest.raises(ValueError, match="no measurement yet"):
        mon.plot()
    for step in range(2):
        mon.step(step)
    fig = mon.plot()
    assert [ax.get_title() for ax in fig.axes] == ["time", "depth", "input", "lyapunov", "flow"]


@pytest.mark.parametrize("kw", [
    {"every": 0}, {"every": 2.5}, {"kinds": ["spatial"]}, {"kinds": []},
    {"measures": ["radii", "entropy"]}, {"band": (1.5, 0.5)}, {"band": (0.5,)},
    {"band": (NAN, 1.0)}, {"band": "wide"}, {"band": {"readout": (0.5, 1.5)}},
    {"writer": "stability.txt"}, {"writer": 42}, {"probe_steps": 0}, {"probe_batch": -1},
    {"lyapunov_k": 0}, {"estimator": "magic"}, {"k": 0}, {"loss": 3}, {"seed": -1},
    {"probe_steps": 1},  # the flow's growth rates need two steps
])
def test_bad_arguments(kw):
    model = tiny()
    message = raises_cleanly(lambda: Monitor(model, probe(), **kw), model)
    assert any(name in message for name in (*kw, "kind", "measure", "estimator",
                                            "writer", "step"))


@pytest.mark.parametrize("x", [torch.randn(8, 2), torch.randn(3, 8, 5), torch.zeros(0, 8, 2),
                               torch.full((3, 8, 2), NAN), torch.randn(3, 8, 2).double()])
def test_bad_probe(x):
    message = raises_cleanly(lambda: Monitor(tiny(), x))
    assert "probe_inputs" in message


def test_bad_model_step_and_missing_tensorboard(tmp_path):
    raises_cleanly(lambda: Monitor(torch.nn.Linear(2, 2), probe()))
    mon = Monitor(tiny(), probe())
    for bad in (-1, 1.0, None):
        raises_cleanly(lambda bad=bad: mon.step(bad))
    raises_cleanly(lambda: mon.overhead(0.0))
    with mock.patch.dict(sys.modules, {"torch.utils.tensorboard": None}), \
            pytest.raises(ImportError, match=r"pip install 'stablernn\[tensorboard\]'"):
        TensorBoardWriter(tmp_path / "logs")
    assert not (tmp_path / "logs").exists()
