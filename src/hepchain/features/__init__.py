"""Feature specifications: the network inputs of each study, shared by training and inference.

:mod:`hepchain.features.spec` defines :class:`~hepchain.features.spec.Feature` and
:class:`~hepchain.features.spec.FeatureSpec`; :mod:`hepchain.features.vh` the
17 inputs of the VH(->WW) study (``VH_SPEC``), fold assignment and the training table.
"""

from __future__ import annotations

from .spec import Feature, FeatureSpec

__all__ = ["Feature", "FeatureSpec"]
