"""cells/scan.py (hand-written BPTT), the modReLU RNN and the Henaff init, against references:
the autograd step loop, gradcheck, torch.nn.RNN, closed forms."""

import math

import pytest
import torch
from torch import nn

from stablernn import DeepRNN, RNNCell, init_, make_cell
from stablernn.cells.rnn import henaff_matrix
from stablernn.cells.scan import KINDS, elman_scan, modrelu
from stablernn.cells.spectral_rnn import SpectralRNNCell


def _loop(p, W, h0, kind, b):
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
           "modrelu": lambda z: torch.sign(z) * torch.relu(z.abs() + b)}[kind]
    h, hs = h0, []
    for t in range(p.shape[1]):
        h = act(p[:, t] + h @ W.T)
        hs.append(h)
    return torch.stack(hs, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_scan_matches_the_autograd_loop_values_and_gradients(kind):
    torch.manual_seed(0)
    B, T, H = 3, 9, 5
    p = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    W = (torch.randn(H, H, dtype=torch.float64) / H ** 0.5).requires_grad_()
    h0 = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    b = (0.3 * torch.randn(H, dtype=torch.float64)).requires_grad_() if kind == "modrelu" else None
    args = [p, W, h0] + ([b] if b is not None else [])
    w = torch.randn(B, T, H, dtype=torch.float64)
    got = elman_scan(p, W, h0, kind, b)
    want = _loop(p, W, h0, kind, b)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    g_got = torch.autograd.grad((got * w).sum(), args)
    g_want = torch.autograd.grad((want * w).sum(), args)
    for a, e in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["tanh", "modrelu"])
def test_scan_gradcheck(kind):
    torch.manual_seed(1)
    p = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    W = (torch.randn(4, 4, dtype=torch.float64) / 2).requires_grad_()
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    b = torch.full((4,), 0.2, dtype=torch.float64, requires_grad=True) if kind == "modrelu" \
        else None
    assert torch.autograd.gradcheck(lambda *a: elman_scan(*a[:3], kind, *a[3:]),
                                    (p, W, h0) + ((b,) if b is not None else ()))


def test_scan_refuses_a_bad_kind_or_bias():
    p, W, h0 = torch.zeros(1, 2, 3), torch.zeros(3, 3), torch.zeros(1, 3)
    with pytest.raises(ValueError, match="kind must be one of"):
        elman_scan(p, W, h0, "gelu")
    with pytest.raises(ValueError, match="exactly when kind='modrelu'"):
        elman_scan(p, W, h0, "modrelu")
    with pytest.raises(ValueError, match="exactly when kind='modrelu'"):
        elman_scan(p, W, h0, "tanh", torch.zeros(3))


def test_modrelu_closed_form():
    z = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
    b = torch.tensor([-1.0, -1.0, 1.0, 1.0, 0.5])
    torch.testing.assert_close(modrelu(z, b), torch.tensor([-2.0, 0.0, 0.0, 1.5, 3.5]))


def test_modrelu_cell_sequence_equals_its_steps_and_trains_every_parameter():
    """forward_sequence (the scan) against stepping forward; gradients reach modrelu_bias."""
    torch.manual_seed(2)
    cell = RNNCell(3, 6, nonlinearity="modrelu").double()
    assert cell.fused_kernel() is None and cell.modrelu_bias.shape == (6,)
    x = torch.randn(4, 11, 3, dtype=torch.float64)
    y, last = cell.forward_sequence(x, cell.initial_state(4))
    state, steps = cell.initial_state(4), []
    for t in range(11):
        h, state = cell(x[:, t], state)
        steps.append(h)
    torch.testing.assert_close(y, torch.stack(steps, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(last.h, state.h, rtol=0, atol=1e-12)
    y.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())


def test_modrelu_preset_registers_and_bad_names_fail():
    cell = make_cell("rnn_modrelu", 2, 3)
    assert isinstance(cell, RNNCell) and cell.nonlinearity == "modrelu"
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(2, 3, nonlinearity="gelu")


def test_henaff_matrix_is_orthogonal_with_uniform_phases():
    torch.manual_seed(3)
    W = henaff_matrix(400, dtype=torch.float64)
    torch.testing.assert_close(W @ W.T, torch.eye(400, dtype=torch.float64))
    phases = torch.linalg.eigvals(W).angle()
    # uniform on (-pi, pi]: mean |phase| = pi / 2 (the 200 angles and their negatives)
    assert abs(phases.abs().mean().item() - math.pi / 2) < 0.2
    assert henaff_matrix(3)[-1, -1] == 1.0  # odd sizes keep a fixed direction


def test_henaff_init_on_an_rnn_and_refusals():
    torch.manual_seed(4)
    model = DeepRNN.build("rnn_modrelu", 3, 8, 2)
    init_(model, "henaff")
    for cell in model.layers:
        W = cell.weight_hh.detach()
        torch.testing.assert_close(W @ W.T, torch.eye(8), atol=1e-6, rtol=0)
        assert float(cell.bias_ih.detach().abs().sum()) == 0.0
    with pytest.raises(ValueError, match="henaff"):
        init_(DeepRNN.build("gru", 3, 8), "henaff")


def test_spectral_cell_henaff_init_is_exact_and_checks_the_band():
    torch.manual_seed(5)
    cell = SpectralRNNCell(3, 8, init="henaff", nonlinearity="modrelu")
    W = cell.weight_hh.detach()
    # block rotations: zero outside the 2 x 2 diagonal blocks, orthogonal
    mask = torch.block_diag(*[torch.ones(2, 2)] * 4).bool()
    assert float(W[~mask].abs().max()) < 1e-6
    torch.testing.assert_close(W @ W.T, torch.eye(8), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="singular value 1 inside the band"):
        SpectralRNNCell(3, 8, init="henaff", sigma_star=2.0, r=0.5)
    with pytest.raises(ValueError, match="init"):
        SpectralRNNCell(3, 8, init="xavier")


def test_spectral_modrelu_cell_trains_its_reflectors_through_the_scan():
    torch.manual_seed(6)
    model = DeepRNN([SpectralRNNCell(3, 6, nonlinearity="modrelu", init="henaff")])
    y, _ = model(torch.randn(2, 7, 3))
    y.pow(2).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items()
               if "original2" not in n)  # sigma sits at the centre: its gradient may be 0


def test_scan_falls_back_to_the_loop_under_torch_func():
    """jacrev through a modReLU sequence works (the step loop runs inside transforms)."""
    torch.manual_seed(7)
    cell = RNNCell(2, 3, nonlinearity="modrelu").double()
    x = torch.randn(1, 4, 2, dtype=torch.float64)

    def last(x):
        return cell.forward_sequence(x, cell.initial_state(1))[1].h

    jac = torch.func.jacrev(last)(x)
    num = torch.autograd.functional.jacobian(last, x)
    torch.testing.assert_close(jac, num)


def test_fused_relu_equals_scan_relu():
    """The scan's ReLU against torch.nn.RNN's fused kernel (an independent implementation)."""
    torch.manual_seed(8)
    ref = nn.RNN(3, 5, nonlinearity="relu", batch_first=True).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    p = x @ ref.weight_ih_l0.T + ref.bias_ih_l0 + ref.bias_hh_l0
    got = elman_scan(p, ref.weight_hh_l0, torch.zeros(2, 5, dtype=torch.float64), "relu")
    torch.testing.assert_close(got, ref(x)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("scheme", ["henaff", "identity"])
def test_recurrent_inits_write_a_spectral_cell_through_its_projection(scheme):
    """The inits that set an orthogonal weight_hh apply to a spectral cell: the assignment is
    projected onto the band, which holds every singular value 1 exactly."""
    torch.manual_seed(9)
    model = DeepRNN([SpectralRNNCell(3, 8, r=0.05)])
    init_(model, scheme)
    W = model.layers[0].weight_hh.detach()
    torch.testing.assert_close(W @ W.T, torch.eye(8), atol=1e-5, rtol=0)
    if scheme == "identity":
        torch.testing.assert_close(W, torch.eye(8), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="parametrised weights"):
        init_(model, "orthogonal")  # writes gate blocks in place: refused, named
