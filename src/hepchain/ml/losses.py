"""Weighted categorical cross-entropy and class-balanced event weights."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from hepchain.errors import EmptySelectionError, HepchainError


def weighted_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Return ``sum_i w_i CE_i / sum_i w_i`` for logits ``[N, C]`` and labels ``[N]``.

    ``CE_i = -log softmax(logits_i)[target_i]``.  The gradient with respect to
    the logits of row ``i`` is ``(softmax_i - onehot_i) * w_i / sum_j w_j``.
    """
    ce = F.cross_entropy(logits, target, reduction="none")
    return (weight * ce).sum() / weight.sum()


def class_balanced_weights(
    weight: np.ndarray, label: np.ndarray, n_classes: int
) -> np.ndarray:
    """Rescale event weights so that every class has the same total weight.

    Returns ``w_i / sum_{j in class(i)} w_j * N / n_classes`` (float64): each
    class sums to ``N / n_classes`` and the mean weight is 1.  Individual
    negative weights are kept; a class without rows or with a non-positive
    total weight raises :class:`EmptySelectionError`.
    """
    w = np.asarray(weight, dtype=np.float64)
    y = np.asarray(label)
    if w.ndim != 1 or y.shape != w.shape:
        raise ValueError(
            f"weight {w.shape} and label {y.shape} must be 1-d arrays of equal length"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise HepchainError(f"column 'label' must hold integers, got dtype {y.dtype}")
    if not np.all(np.isfinite(w)):
        raise HepchainError(
            f"{int((~np.isfinite(w)).sum())} NaN/inf values in column 'weight'"
        )
    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        raise HepchainError(
            f"column 'label' has {int(outside.sum())} values outside 0..{n_classes - 1} "
            f"(e.g. {int(y[outside][0])})"
        )
    counts = np.bincount(y, minlength=n_classes)
    totals = np.bincount(y, weights=w, minlength=n_classes)
    for cls in range(n_classes):
        if counts[cls] == 0:
            raise EmptySelectionError(f"class {cls} has no rows")
        if not totals[cls] > 0:
            raise EmptySelectionError(
                f"class {cls} has non-positive total weight {totals[cls]:g}"
            )
    return w / totals[y] * (len(w) / n_classes)
