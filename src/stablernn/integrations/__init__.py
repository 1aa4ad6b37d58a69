"""Integrations with training frameworks, each behind its own extra (docs/monitor.md).

``stablernn.integrations.lightning``: :class:`~stablernn.integrations.lightning.StabilityCallback`
(the ``[lightning]`` extra).
"""
