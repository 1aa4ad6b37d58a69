"""Cells against independent references: torch.nn modules, gradcheck, closed forms."""

import pytest
import torch
from _support import HYPOTHESIS, INF, NAN, bad_floats, bad_ints, raises_cleanly
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import stablernn
from stablernn import DeepRNN, GRUCell, LSTMCell, RNNCell, make_cell
from stablernn.cells import (
    CELLS,
    ALIFCell,
    BRCCell,
    LRUCell,
    MGUCell,
    NBRCCell,
    flatten_state,
    unflatten_state,
)
from stablernn.cells.alif import spike_fn, surrogate, surrogate_primitive

D, H, B = 3, 5, 4


@pytest.mark.parametrize("torch_cls,our_cls,kw", [
    (nn.RNNCell, RNNCell, {"nonlinearity": "tanh"}),
    (nn.RNNCell, RNNCell, {"nonlinearity": "relu"}),
    (nn.LSTMCell, LSTMCell, {}),
    (nn.GRUCell, GRUCell, {}),
])
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_cell(torch_cls, our_cls, kw, bias):
    ref = torch_cls(D, H, bias=bias, **kw).double()
    ours = our_cls(D, H, bias=bias, **kw).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, D, dtype=torch.float64)
    state = ours.initial_state(B)
    state = type(state)(*(torch.randn_like(s) for s in state))
    h, new = ours(x, state)
    expected = ref(x, tuple(state) if len(state) > 1 else state[0])
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(new, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, expected[0], rtol=0, atol=1e-12)


def _double_inputs(cell):
    cell = cell.double()
    x = torch.randn(B, cell.input_size, dtype=torch.float64, requires_grad=True)
    state = cell.initial_state(B)
    state = type(state)(*(0.5 * torch.randn_like(s) for s in state))
    return cell, x, state


@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_indrnn_is_an_elman_rnn_with_a_diagonal_matrix(nonlinearity, bias):
    """Reference: torch.nn.RNNCell with weight_hh = diag(u) computes the IndRNN step."""
    ours = make_cell("indrnn", D, H, nonlinearity=nonlinearity, bias=bias).double()
    ref = nn.RNNCell(D, H, bias=bias, nonlinearity=nonlinearity).double()
    with torch.no_grad():
        ours.weight_hh.uniform_(-1.5, 1.5)
        if bias:
            ours.bias_ih.normal_()
            ours.bias_hh.normal_()
            ref.bias_ih.copy_(ours.bias_ih)
            ref.bias_hh.copy_(ours.bias_hh)
        ref.weight_ih.copy_(ours.weight_ih)
        ref.weight_hh.copy_(torch.diag(ours.weight_hh))
    x, h = torch.randn(B, D, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    torch.testing.assert_close(ours(x, ours.State(h))[0], ref(x, h), rtol=0, atol=1e-12)


def test_indrnn_capabilities_reach_every_method():
    """What the cell declares is what the methods use: identity init sets u = 1, LSC's
    rescaling scales u, and a gate-block init refuses it by name."""
    model = stablernn.DeepRNN.build("indrnn", D, H, 2)
    stablernn.init_(model, "identity")
    assert torch.equal(model.cells[1].weight_hh.detach(), torch.ones(H))
    with pytest.raises(ValueError, match="IndRNNCell has no gated weight_hh"):
        stablernn.init_(model, "orthogonal")
    assert model.cells[0].recurrent_weights == ("weight_hh",)


@pytest.mark.parametrize("name", ["rnn_sigmoid", "mgu", "brc", "nbrc", "lru", "indrnn"])
def test_gradcheck_custom_cells(name):
    cell, x, state = _double_inputs(make_cell(name, D, H))
    params = tuple(cell.parameters())

    def f(x, *flat_and_params):
        s = unflatten_state(flat_and_params[0], cell)
        h, new = cell(x, s)
        return h, flatten_state(new)

    flat = flatten_state(state).requires_grad_()
    assert torch.autograd.gradcheck(f, (x, flat))
    # parameter gradients too
    out = sum(o.pow(2).sum() for o in f(x, flat))
    grads = torch.autograd.grad(out, params)
    assert all(torch.isfinite(g).all() for g in grads)


def test_gradcheck_parameters_mgu():
    cell, x, state = _double_inputs(MGUCell(D, H))
    w = cell.weight_hh.detach().clone().requires_grad_()

    def f(w):
        return torch.func.functional_call(cell, {"weight_hh": w}, (x.detach(), state))[0]

    assert torch.autograd.gradcheck(f, (w,))


def test_alif_gradcheck_with_smooth_primitive():
    """The ALIF cell is smooth once the spike is replaced by its surrogate primitive
    (Note [surrogate]), so gradcheck validates everything around the spike."""
    cell, x, state = _double_inputs(ALIFCell(D, H, spike=surrogate_primitive))
    state = state._replace(z=torch.rand(B, H, dtype=torch.float64))
    flat = flatten_state(state).requires_grad_()

    def f(x, flat):
        h, new = cell(x, unflatten_state(flat, cell))
        return flatten_state(new)

    assert torch.autograd.gradcheck(f, (x, flat))
    tau = cell.log_tau.detach().clone().requires_grad_()
    g = lambda tau: torch.func.functional_call(cell, {"log_tau": tau}, (x.detach(), state))[1].v
    assert torch.autograd.gradcheck(g, (tau,))


def test_spike_surrogate_backward_jvp_vmap():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    assert torch.equal(spike_fn(x), (x > 0).double())
    # backward and forward mode equal the derivative of the smooth primitive
    ref = torch.func.vmap(torch.func.grad(surrogate_primitive))(x)
    got_bwd = torch.func.vmap(torch.func.grad(spike_fn))(x)
    _, got_fwd = torch.func.jvp(spike_fn, (x,), (torch.ones_like(x),))
    torch.testing.assert_close(got_bwd, ref)
    torch.testing.assert_close(got_fwd, ref)
    torch.testing.assert_close(ref, surrogate(x))
    jac = torch.func.jacrev(spike_fn)(x)
    torch.testing.assert_close(jac, torch.diag(surrogate(x)))


def test_alif_spikes_and_resets():
    cell = ALIFCell(1, 1, tau=5.0, b0=1.0, beta=0.0)
    with torch.no_grad():
        cell.weight_ih.fill_(1.0)
        cell.weight_hh.zero_()
    state, spikes = cell.initial_state(1), []
    for _ in range(40):
        z, state = cell(torch.full((1, 1), 3.0), state)
        spikes.append(z.item())
        assert state.v.item() < 3.0
    assert 0 < sum(spikes) < 40  # integrates, fires, resets by subtraction


@pytest.mark.parametrize("name", sorted(CELLS))
def test_state_flatten_roundtrip(name):
    cell = make_cell(name, D, H)
    state = cell.initial_state(B)
    state = type(state)(*(torch.randn_like(s) for s in state))
    flat = flatten_state(state)
    assert flat.shape == (B, cell.state_size)
    back = unflatten_state(flat, cell)
    assert type(back) is type(state)
    for a, b in zip(back, state):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="expects"):
        unflatten_state(flat[:, 1:], cell)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_forward_sequence_equals_stepping(name):
    cell = make_cell(name, D, H).double()
    x = torch.randn(B, 6, D, dtype=torch.float64)
    state = cell.initial_state(B)
    ys, last = cell.forward_sequence(x, state)
    s = state
    for t in range(6):
        h, s = cell(x[:, t], s)
        torch.testing.assert_close(ys[:, t], h)
    for a, b in zip(last, s):
        torch.testing.assert_close(a, b)


def test_brc_bistable_under_constant_input():
    """A BRC neuron with a > 1 has two stable fixed points: iteration from +h and -h lands on
    two different attractors, and each is stable (|d h'/d h| < 1 there)."""
    cell = BRCCell(1, 1).double()
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # a = 1 + tanh(1 + h) > 1 near h = +-1
    x = torch.zeros(2, 1, dtype=torch.float64)
    h = torch.tensor([[0.9], [-0.9]], dtype=torch.float64)
    for _ in range(500):
        h = cell(x, cell.State(h))[0]
    assert h[0].item() > 0.5 and h[1].item() < -0.5
    for h_star in h:
        slope = torch.func.jacrev(lambda v: cell(x[:1], cell.State(v))[0])(h_star[None])
        assert abs(slope.item()) < 1
        torch.testing.assert_close(cell(x[:1], cell.State(h_star[None]))[0], h_star[None])


def test_monostable_brc_single_fixed_point():
    cell = BRCCell(1, 1).double()
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.bias.copy_(torch.tensor([-3.0, 0.0, 0.0]))  # a ~ 0: contraction
        cell.weight_a.zero_()
    x = torch.zeros(2, 1, dtype=torch.float64)
    h = torch.tensor([[0.9], [-0.9]], dtype=torch.float64)
    for _ in range(500):
        h = cell(x, cell.State(h))[0]
    torch.testing.assert_close(h[0], h[1])


def test_nbrc_uses_full_matrices():
    cell = NBRCCell(D, H)
    assert cell.weight_hh.shape == (2 * H, H)


def test_lru_ring_init_and_time_radius():
    cell = LRUCell(D, 64, r_min=0.4, r_max=0.99, max_phase=3.14).double()
    mag = cell.magnitude()
    assert bool(((mag >= 0.4 - 1e-12) & (mag <= 0.99 + 1e-12)).all())
    phase = torch.exp(cell.theta_log)
    assert bool(((phase >= 0) & (phase <= 3.14)).all())
    # the exact time Jacobian of the real (re, im) state has spectral radius max |lambda|
    s = cell.initial_state(1)
    p = cell.project(torch.zeros(1, D, dtype=torch.float64))
    J = torch.func.jacrev(lambda f: flatten_state(cell.recur(p, unflatten_state(f, cell))))(
        flatten_state(s))[0, :, 0]
    radius = torch.linalg.eigvals(J).abs().max()
    torch.testing.assert_close(radius, mag.max())


def test_lru_matches_complex_reference():
    cell = LRUCell(D, H, state_size=7).double()
    x = torch.randn(B, 5, D, dtype=torch.float64)
    lam = torch.exp(torch.complex(-torch.exp(cell.nu_log), torch.exp(cell.theta_log)))
    gamma = torch.sqrt(1 - lam.abs() ** 2)
    Bc, Cc = torch.complex(cell.B_re, cell.B_im), torch.complex(cell.C_re, cell.C_im)
    s = torch.zeros(B, 7, dtype=torch.complex128)
    ys, _ = cell.forward_sequence(x, cell.initial_state(B))
    for t in range(5):
        s = lam * s + gamma * (x[:, t].to(Bc.dtype) @ Bc.T)
        y = (s @ Cc.T).real + x[:, t] @ cell.D.T
        torch.testing.assert_close(ys[:, t], y)


def test_bad_cell_arguments():
    with pytest.raises(ValueError, match="valid cells: .*gru"):
        make_cell("grux", 3, 4)
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got 0"):
        make_cell("gru", 3, 0)
    with pytest.raises(TypeError, match="hidden_size must be an int"):
        make_cell("lstm", 3, 4.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="r_min"):
        LRUCell(3, 4, r_min=0.9, r_max=0.5)


def test_public_api_exports():
    for name in stablernn.__all__:
        assert hasattr(stablernn, name)


# ----- case 9: cells and DeepRNN -----
@pytest.mark.parametrize("call, kind, text", [
    (lambda: DeepRNN.build("gru", 3, 8, 2, foo=1), ValueError,
     "cell 'gru' has no option foo; valid options: bias"),
    (lambda: make_cell("lstm", 3, 8, nonlinearity="x"), ValueError,
     "cell 'lstm' has no option nonlinearity; valid options: bias"),
    (lambda: make_cell("rnn", 3, 8, nonlinearity="x"), ValueError,
     "unknown nonlinearity 'x'; valid: 'tanh', 'relu', 'sigmoid'"),
    (lambda: make_cell("rnn", 3, 8, nonlinearity=["tanh"]), ValueError, "nonlinearity"),
    (lambda: make_cell("gru", 3, 8, bias="no"), TypeError, "bias must be True or False"),
    (lambda: make_cell("alif", 3, 8, tau=NAN), ValueError, "tau must be finite, got nan"),
    (lambda: make_cell("alif", 3, 8, tau_adapt=-1.0), ValueError, "tau_adapt must be > 0"),
    (lambda: make_cell("alif", 3, 8, b0=INF), ValueError, "b0 must be finite"),
    (lambda: make_cell("alif", 3, 8, spike=1), TypeError, "spike must be a function"),
    (lambda: make_cell("lru", 3, 8, r_min=NAN), ValueError, "r_min must be finite"),
    (lambda: make_cell("lru", 3, 8, r_max=1.5), ValueError, "r_max must be <= 1"),
    (lambda: make_cell("lru", 3, 8, max_phase=0.0), ValueError, "max_phase must be > 0"),
    (lambda: make_cell("lru", 3, 8, state_size=0), ValueError, "state_size"),
    (lambda: make_cell("spectral", 3, 8, r=NAN), ValueError, "r must be finite"),
    (lambda: make_cell("spectral", 3, 8, k=-1), ValueError, "k must be"),
    (lambda: make_cell("double", 3, 8, half="gru", foo=2), ValueError, "no option foo"),
    (lambda: make_cell("double", 3, 8, half=None), TypeError, "half"),
    (lambda: make_cell(None, 3, 8), TypeError, "cell name must be a str"),
    (lambda: DeepRNN.build("gru", 3, 8, dropout=NAN), ValueError, "dropout must be finite"),
    (lambda: DeepRNN.build("gru", 3, 8, dropout="0.1"), TypeError, "dropout must be a number"),
    (lambda: DeepRNN.build("gru", 3, 8, readout="x"), TypeError, "readout must be None"),
    (lambda: DeepRNN.build("gru", 3, 8, fused="yes"), TypeError, "fused must be True"),
    (lambda: DeepRNN([nn.GRU(3, 8)]), TypeError, "from_torch"),
    (lambda: DeepRNN([]), ValueError, "non-empty"),
])
def test_bad_cell_options_name_the_option(call, kind, text):
    with pytest.raises(kind) as info:
        call()
    assert text in str(info.value)


CELL_TARGETS = {
    ("gru", "hidden_size"): bad_ints(1), ("lstm", "input_size"): bad_ints(1),
    ("gru", "num_layers"): bad_ints(1), ("gru", "dropout"): st.one_of(
        bad_floats(0.0, inclusive=True), st.floats(min_value=1.0)),
    ("alif", "tau"): bad_floats(0.0), ("alif", "tau_adapt"): bad_floats(0.0),
    ("alif", "beta"): bad_floats(), ("lru", "r_min"): st.one_of(
        bad_floats(0.0, inclusive=True), st.floats(min_value=1.0)),
    ("lru", "max_phase"): bad_floats(0.0), ("lru", "state_size"): bad_ints(1, none=False),
    ("spectral", "r"): bad_floats(0.0), ("spectral", "k"): st.one_of(
        bad_ints(1, none=False), st.integers(min_value=7)),
}


@HYPOTHESIS
@given(data=st.data(), target=st.sampled_from(sorted(CELL_TARGETS)))
def test_cells_refuse_bad_numbers(data, target):
    cell, key = target
    value = data.draw(CELL_TARGETS[target], label="value")
    args = {"input_size": 3, "hidden_size": 6, "num_layers": 2, key: value}
    sizes = [args.pop(k) for k in ("input_size", "hidden_size", "num_layers")]
    assert key in raises_cleanly(lambda: DeepRNN.build(cell, *sizes, **args))
    if key != "num_layers" and key != "dropout":
        assert key in raises_cleanly(lambda: make_cell(cell, *sizes[:2], **args))
