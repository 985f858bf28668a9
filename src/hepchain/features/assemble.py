"""Pieces every study's ``build_feature_table`` shares: sample order, input checks, weights, bookkeeping columns.

The four training tables of the recoil, ditau, jets and electrons studies are
built the same way per sample: compute the spec's features, refuse NaN or
infinite inputs with their count, weight each row by ``genWeight`` times the
sample's factor, and add the ``sample`` index, the ``event`` number and the
``fold`` (:func:`~hepchain.features.vh.assign_folds`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import HepchainError
from .vh import assign_folds


def sample_names(skims: Mapping[str, object]) -> list[str]:
    """Sample names in table order (sorted): the ``sample`` column indexes this list."""
    return sorted(skims)


def check_finite_features(arrays: Mapping[str, np.ndarray], sample: str, unit: str, *, per_row: bool = True) -> None:
    """Raise one line naming the first float feature with NaN or infinite values, their count and the sample.

    ``per_row`` counts rows with at least one bad value (sets and images
    count once per row); otherwise every bad value counts.  ``unit`` names
    what is counted ("event(s)", "row(s)", "value(s)").  Boolean masks are
    not checked.
    """
    for name, values in arrays.items():
        if values.dtype.kind != "f" or values.size == 0:
            continue
        bad_values = ~np.isfinite(values)
        bad = int(bad_values.reshape(len(values), -1).any(axis=1).sum() if per_row else bad_values.sum())
        if bad:
            raise HepchainError(f"feature '{name}' is NaN or infinite in {bad} {unit} of sample '{sample}'")


def sample_weight(table: Mapping[str, np.ndarray], n: int, factor: float, sample: str, unit: str) -> np.ndarray:
    """``genWeight`` (1 where the skim has none) times ``factor``; NaN or infinite weights raise with their count."""
    gen_weight = np.asarray(table["genWeight"], dtype=np.float64) if "genWeight" in table else np.ones(n)
    weight = gen_weight * factor
    bad = int((~np.isfinite(weight)).sum())
    if bad:
        raise HepchainError(f"weight is NaN or infinite in {bad} {unit} of sample '{sample}' (factor {factor!r})")
    return weight


def bookkeeping(event: np.ndarray, weight: np.ndarray, index: int, sample: str, n_folds: int, seed: int) -> dict[str, np.ndarray]:
    """The ``weight``, ``sample`` (int32 index), ``event`` (uint64) and ``fold`` columns of one sample."""
    event = np.asarray(event)
    return {
        "weight": weight,
        "sample": np.full(len(event), index, dtype=np.int32),
        "event": event.astype(np.uint64),
        "fold": assign_folds(event, sample, n_folds, seed),
    }
