"""Robust feature scaling as a ``torch.nn`` layer.

The scaler is the first layer of the trained and exported model, so the ONNX
file takes raw feature values.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from hepchain.errors import HepchainError


def _to_numpy(x: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def weighted_quantiles(x: np.ndarray, q: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Column-wise weighted quantiles of ``x`` ``[N, F]``; returns ``[len(q), F]``.

    Uses the midpoint rule: the i-th sorted value sits at cumulative weight
    ``(W_i - w_i / 2) / W``, and quantiles interpolate linearly between values.
    Weights must be non-negative with a positive total.
    """
    out = np.empty((len(q), x.shape[1]), dtype=np.float64)
    total = weight.sum()
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        values = x[order, j]
        cum = np.cumsum(weight[order])
        positions = (cum - 0.5 * weight[order]) / total
        out[:, j] = np.interp(q, positions, values)
    return out


class RobustScaler(nn.Module):
    """``(x - center) / scale`` with ``center`` the median and ``scale`` the IQR.

    ``center`` and ``scale`` are buffers, so they are saved in checkpoints and
    exported to ONNX.  Build a fitted scaler with :meth:`fit`; the constructor
    gives the identity transform (used when loading from a checkpoint).
    """

    center: Tensor
    scale: Tensor

    def __init__(self, n_features: int) -> None:
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        self.register_buffer("center", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    @property
    def n_features(self) -> int:
        """Number of features the scaler expects."""
        return int(self.center.shape[0])

    @classmethod
    def fit(
        cls, x: np.ndarray | Tensor, weight: np.ndarray | Tensor | None = None
    ) -> RobustScaler:
        """Fit median and interquartile range (P75 - P25) per column of ``x``.

        Pass the training rows only.  Without ``weight`` the quantiles are
        unweighted with linear interpolation, as in scikit-learn's
        ``RobustScaler``; with ``weight`` (non-negative) they are weighted
        quantiles (see :func:`weighted_quantiles`).  Columns whose IQR is 0
        get ``scale = 1``.
        """
        data = _to_numpy(x).astype(np.float64, copy=False)
        if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
            raise ValueError(
                f"RobustScaler.fit needs a non-empty [N, F] array, got shape {data.shape}"
            )
        bad = ~np.isfinite(data)
        if bad.any():
            column = int(np.argmax(bad.any(axis=0)))
            raise HepchainError(
                f"{int(bad[:, column].sum())} NaN/inf values in feature column {column}"
            )
        q = np.array([0.25, 0.5, 0.75])
        if weight is None:
            p25, median, p75 = np.quantile(data, q, axis=0)
        else:
            w = _to_numpy(weight).astype(np.float64, copy=False)
            if w.shape != (data.shape[0],):
                raise ValueError(
                    f"weight has shape {w.shape}, expected ({data.shape[0]},)"
                )
            if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
                raise HepchainError(
                    "scaler weights must be finite, non-negative, with a positive sum"
                )
            p25, median, p75 = weighted_quantiles(data, q, w)
        iqr = p75 - p25
        scaler = cls(data.shape[1])
        scaler.center.copy_(torch.as_tensor(median, dtype=torch.float32))
        scaler.scale.copy_(
            torch.as_tensor(np.where(iqr > 0, iqr, 1.0), dtype=torch.float32)
        )
        return scaler

    def forward(self, x: Tensor) -> Tensor:
        """Return the scaled features."""
        return (x - self.center) / self.scale

    def extra_repr(self) -> str:
        """Show the number of features in the module's repr."""
        return f"n_features={self.n_features}"
