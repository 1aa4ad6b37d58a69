"""Local maps (stability/local_maps.py): Jacobians against torch's own modules, the square
restriction, the order and layers of the maps of a step."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from stablernn import DeepRNN
from stablernn.stability import Kind, local_maps, maps_at, trajectory


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_time_jacobian_matches_torch_module(kind):
    torch.manual_seed(1)
    module = getattr(nn, kind.upper())(3, 5, batch_first=True).double()
    x, h0 = torch.randn(2, 1, 3, dtype=torch.float64), torch.randn(2, 10, dtype=torch.float64)
    m = local_maps(module, x[:, 0], [_state(kind, h0)], kinds=["time"])[0]

    def ref(s: Tensor) -> Tensor:  # torch's fused kernel on one sample, one step
        hc = (s[:5].view(1, 1, 5), s[5:].view(1, 1, 5)) if kind == "lstm" else s.view(1, 1, 5)
        _, out = module(x[:1], hc)
        return torch.cat([o.view(-1) for o in out]) if kind == "lstm" else out.view(-1)

    n = 10 if kind == "lstm" else 5
    expect = torch.autograd.functional.jacobian(ref, h0[0, :n])
    assert torch.allclose(m.jacobian()[0], expect, atol=1e-12)


def _state(kind: str, flat: Tensor):
    from stablernn import GRUCell, LSTMCell

    if kind == "lstm":
        return LSTMCell.State(flat[:, :5], flat[:, 5:])
    return GRUCell.State(flat[:, :5])


def test_square_subset_is_a_submatrix():
    torch.manual_seed(0)
    model = DeepRNN.build("gru", 3, 10, num_layers=2, readout=4).double()
    maps = maps_at(model, torch.randn(4, 6, 3, dtype=torch.float64), 3)
    m = maps[0]  # input map: 3 -> 20
    J, Js = m.jacobian(), m.square(seed=7).jacobian()
    rows = [i for i in range(J.shape[1]) if any(torch.equal(J[:, i], Js[:, j])
                                                for j in range(3))]
    assert Js.shape == (4, 3, 3) and len(rows) == 3
    m = maps[-1]  # readout 10 -> 4: keeps 4 columns
    J, Js = m.jacobian(), m.square(seed=7).jacobian()
    assert Js.shape == (4, 4, 4)
    assert all(any(torch.equal(Js[..., j], J[..., i]) for i in range(10)) for j in range(4))


def test_maps_of_a_step_in_order_with_their_layers_and_widths():
    model = DeepRNN.build("lstm", 3, 8, num_layers=3, readout=2)
    maps = local_maps(model, torch.randn(4, 3), model.initial_state(4))
    got = [(m.kind, m.layer, m.n_in, m.n_out) for m in maps]
    assert got == [("input", 0, 3, 16), ("time", 0, 16, 16), ("time", 1, 16, 16),
                   ("depth", 1, 16, 16), ("time", 2, 16, 16), ("depth", 2, 16, 16),
                   ("readout", 3, 8, 2)]
    assert [m.kind for m in local_maps(model, torch.randn(4, 3), model.initial_state(4),
                                       kinds=Kind.DEPTH)] == ["depth", "depth"]


def test_maps_at_starts_from_the_trajectory():
    torch.manual_seed(1)
    model = DeepRNN.build("gru", 3, 5, num_layers=2)
    x = torch.randn(2, 6, 3)
    states = trajectory(model, x)
    assert len(states) == 7
    m = maps_at(model, x, 4, kinds=["time"])[1]
    assert torch.equal(m.state_in, states[4][1].h)
