"""Transactional changes to a user's module: all or nothing.

Every method that changes a user's module in place (``init_``, ``spectral``, and the
pre-training methods ``lsc_pretrain`` and ``warmup`` through their one harness,
:mod:`stablernn.stability.harness`) validates its arguments first, then runs inside
:func:`transaction`, so an error part-way (a NaN update, a layer the scheme cannot handle)
leaves the module exactly as it was: the same Parameter objects holding the same values, the
same ``requires_grad`` flags.
See docs/robustness.md.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class Snapshot:
    """The parameters and buffers of a module tree (objects, values, ``requires_grad``)."""

    def __init__(self, module: nn.Module) -> None:
        self.entries = []
        for mod in module.modules():
            params = dict(mod._parameters)
            buffers = dict(mod._buffers)
            values = {("p", k): p.detach().clone() for k, p in params.items() if p is not None}
            values.update({("b", k): b.detach().clone() for k, b in buffers.items()
                           if b is not None})
            grads = {k: p.requires_grad for k, p in params.items() if p is not None}
            self.entries.append((mod, params, buffers, values, grads))

    @torch.no_grad()
    def restore(self) -> None:
        """Put back every Parameter / buffer object and its saved value."""
        for mod, params, buffers, values, grads in self.entries:
            for k in list(mod._parameters):
                if k not in params:
                    del mod._parameters[k]
            mod._parameters.update(params)
            for k in list(mod._buffers):
                if k not in buffers:
                    del mod._buffers[k]
            mod._buffers.update(buffers)
            for (kind, k), v in values.items():
                t = params[k] if kind == "p" else buffers[k]
                assert t is not None  # values holds only the non-None entries
                if t.shape != v.shape:
                    t.data = v.clone()
                else:
                    t.copy_(v)
            for k, flag in grads.items():
                param = params[k]
                assert param is not None  # grads holds only the non-None parameters
                param.requires_grad_(flag)


@contextmanager
def transaction(module: nn.Module) -> Iterator[Snapshot]:
    """Restore ``module``'s parameters and buffers if the body raises (or is interrupted).

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> before = lin.weight.detach().clone()
        >>> try:
        ...     with transaction(lin):
        ...         _ = lin.weight.data.fill_(float("nan"))
        ...         raise RuntimeError("diverged")
        ... except RuntimeError:
        ...     pass
        >>> bool(torch.equal(lin.weight, before))
        True
    """
    snapshot = Snapshot(module)
    try:
        yield snapshot
    except BaseException:
        snapshot.restore()
        raise
