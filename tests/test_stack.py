"""DeepRNN and from_torch against torch.nn.LSTM/GRU/RNN (outputs and gradients, float64)."""

import pytest
import torch
from _support import (
    NAN,
    raises_cleanly,
)
from torch import nn

from stablernn import DeepRNN, GRUCell, LSTMCell, RNNCell, from_torch

D, H, L, B, T = 3, 6, 3, 4, 7
MODULES = [
    (nn.LSTM, {}),
    (nn.GRU, {}),
    (nn.RNN, {"nonlinearity": "tanh"}),
    (nn.RNN, {"nonlinearity": "relu"}),
]


def _hidden(ref, batch):
    h = torch.randn(L, batch, H, dtype=torch.float64)
    return (h, torch.randn_like(h)) if isinstance(ref, nn.LSTM) else h


def _our_state(ref, hx):
    if isinstance(ref, nn.LSTM):
        return [LSTMCell.State(hx[0][i], hx[1][i]) for i in range(L)]
    return [GRUCell.State(hx[i]) for i in range(L)]


@pytest.mark.parametrize("cls,kw", MODULES)
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_from_torch_matches_module(cls, kw, batch_first, fused):
    ref = cls(D, H, num_layers=L, batch_first=batch_first, **kw).double()
    model = from_torch(ref)
    model.fused = fused
    x = torch.randn(B, T, D, dtype=torch.float64)
    hx = _hidden(ref, B)
    y_ref, hn_ref = ref(x if batch_first else x.transpose(0, 1), hx)
    y_ref = y_ref if batch_first else y_ref.transpose(0, 1)
    y, states = model(x, _our_state(ref, hx))
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    hn_ref = hn_ref if isinstance(hn_ref, tuple) else (hn_ref,)
    for i, s in enumerate(states):
        for got, want in zip(s, hn_ref):
            torch.testing.assert_close(got, want[i], rtol=0, atol=1e-10)
    # gradients reach the very same Parameters, with the same values
    g_ref = torch.autograd.grad(y_ref.square().sum(), list(ref.parameters()))
    g = torch.autograd.grad(y.square().sum(), list(ref.parameters()))
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn", "rnn_relu"])
def test_fused_and_loop_paths_agree(name):
    model = DeepRNN.build(name, D, H, L, readout=2).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    y_fused, s_fused = model(x)
    model.fused = False
    y_loop, s_loop = model(x)
    torch.testing.assert_close(y_fused, y_loop)
    for a, b in zip(s_fused, s_loop):
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v)


def test_step_path_equals_forward():
    model = DeepRNN.build("lstm", D, H, L).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    y, _ = model(x)
    states = model.initial_state(B)
    for t in range(T):
        h, states = model.step(x[:, t], states)
        torch.testing.assert_close(h, y[:, t])


def test_adapter_shares_parameters_both_ways():
    gru = nn.GRU(D, H, num_layers=2, batch_first=True)
    model = from_torch(gru)
    assert {id(p) for p in model.parameters()} == {id(p) for p in gru.parameters()}
    x = torch.randn(B, T, D)
    opt = torch.optim.SGD(gru.parameters(), lr=0.5)
    gru(x)[0].sum().backward()
    opt.step()
    torch.testing.assert_close(model(x)[0], gru(x)[0])
    with torch.no_grad():  # a change made through the adapter is seen by the user's module
        model.cells[1].weight_hh.mul_(0.5)
    torch.testing.assert_close(model(x)[0], gru(x)[0])


def test_mixed_stack_and_readout_modes():
    cells = [LSTMCell(D, H), GRUCell(H, H), RNNCell(H, 4, nonlinearity="sigmoid")]
    model = DeepRNN(cells, readout=2, readout_mode="last", dropout=0.2)
    y, states = model(torch.randn(B, T, D))
    assert y.shape == (B, 2) and len(states) == 3 and states[2].h.shape == (B, 4)
    model.eval()
    x = torch.randn(B, T, D)
    torch.testing.assert_close(model(x)[0], model(x)[0])


def test_dropout_between_layers_only_in_training():
    model = DeepRNN.build("gru", D, H, 2, dropout=0.5)
    x = torch.randn(B, T, D)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])


def test_bad_inputs_raise_clear_errors():
    model = DeepRNN.build("gru", D, H, 2)
    with pytest.raises(ValueError, match=r"rank 3.*\(7, 3\).*unsqueeze"):
        model(torch.randn(T, D))
    with pytest.raises(ValueError, match="5 features.*input_size=3"):
        model(torch.randn(B, T, 5))
    bad = torch.randn(B, T, D)
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(bad)
    bad[0, 2, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(bad)
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(B, T, D, dtype=torch.long))
    with pytest.raises(ValueError, match="layer 1 expects input_size=4"):
        DeepRNN([GRUCell(D, H), GRUCell(4, H)])
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        DeepRNN.build("gru", D, H, 0)
    with pytest.raises(ValueError, match="readout_mode"):
        DeepRNN.build("gru", D, H, readout_mode="first")
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM or GRU"):
        from_torch(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch(nn.GRU(3, 3, bidirectional=True))


def test_deeprnn_forward_checks_dtype_length_and_states():
    model = DeepRNN.build("lstm", 3, 4, 2)
    x = torch.randn(2, 5, 3)
    raises_cleanly(lambda: model(x.double()))
    raises_cleanly(lambda: model(torch.randn(2, 0, 3)))
    good = model.initial_state(2)
    y, _ = model(x, good)
    bad_batch = [type(s)(*(t[:1] for t in s)) for s in good]
    assert "shape (2, 4)" in raises_cleanly(lambda: model(x, bad_batch))
    raises_cleanly(lambda: model(x, good[:1]))
    raises_cleanly(lambda: model(x, [good[0], (good[1].h,)]))
    raises_cleanly(lambda: model(x, "state"))
    nan_state = [good[0], type(good[1])(good[1].h, torch.full((2, 4), NAN))]
    assert "NaN" in raises_cleanly(lambda: model(x, nan_state))
    plain = [tuple(s) for s in good]  # plain tuples of the right shapes are accepted
    torch.testing.assert_close(model(x, plain)[0], y)
    gru = DeepRNN.build("mgu", 3, 4, 2)  # the loop path (no fused kernel)
    torch.testing.assert_close(gru(x, [tuple(s) for s in gru.initial_state(2)])[0], gru(x)[0])
