"""Statistics: Asimov significance and greedy score-binning optimisation.

See :mod:`hepchain.stats.asimov` (Cowan, Cranmer, Gross, Vitells, EPJC 71
(2011) 1554) and :mod:`hepchain.stats.binning` (VH(->WW) binning
optimisation, Basso, ATLAS, 2020).
"""

from __future__ import annotations

from hepchain.stats.asimov import combined_z0, z0
from hepchain.stats.binning import (
    BinningInputError,
    BinningResult,
    optimise_binning,
    single_bin_z0,
    yields_in_bins,
)

__all__ = [
    "BinningInputError",
    "BinningResult",
    "combined_z0",
    "optimise_binning",
    "single_bin_z0",
    "yields_in_bins",
    "z0",
]
