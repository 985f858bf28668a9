"""Declarative feature specifications shared by training and inference.

A study's inputs are a :class:`FeatureSpec`: an ordered list of :class:`Feature`
objects, each a name, a unit, a description and a vectorised function of the
skim table.  Training, inference and the documentation all call the same
:meth:`FeatureSpec.compute` / :meth:`FeatureSpec.compute_arrays` /
:meth:`FeatureSpec.to_dict`, so the network never sees inputs computed
differently from those it was trained on.

Every feature belongs to a ``group``, the input tensor it goes into:

- ``"event"`` features have one value per row (shape ``()``) and stack into an
  ``(N, F)`` matrix;
- a set group (``"constituents"``, ``"tracks"``, ``"pfos"``...) holds features of
  shape ``(K,)`` (K objects per row, zero-padded) that stack into ``(N, K, F)``;
  its ``<group>_mask`` feature (boolean, ``(K,)``) marks the real objects;
- an image group (``"cells"``) holds features of shape ``(C,)`` (C cells in a
  fixed order documented by the study) that stack into ``(N, C, F)``.

:meth:`FeatureSpec.tensors` does that stacking with numpy only (no Python loop
over rows), which is the layout the training engine loads onto the device.
A skim table can be a pandas DataFrame (scalars only) or a mapping of numpy
arrays (see :mod:`hepchain.features.table`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import HepchainError

Table = pd.DataFrame | Mapping[str, np.ndarray]
FeatureFunction = Callable[[Table], np.ndarray]


def n_rows(table: Table) -> int:
    """Rows of a DataFrame or of a mapping of arrays (the first array's first dimension)."""
    if isinstance(table, pd.DataFrame):
        return len(table)
    for values in table.values():
        return int(np.shape(values)[0])
    return 0


@dataclass(frozen=True)
class Feature:
    """One input variable.

    Attributes:
        name: column name in the feature table.
        unit: physical unit ("GeV", "rad", "" for dimensionless).
        description: one sentence for the documentation.
        function: vectorised function of the skim table returning one value per row.
        inputs: skim-table columns the function reads (checked before computing).
        per: what one value describes: "event", or the object of a set or image
            ("object", "constituent", "track", "pfo", "cell").
        shape: shape of one row's value: () for a scalar, (K,) for a set of K
            objects or an image of K cells.
        group: the input tensor the feature belongs to ("event", or the set or
            image name); all features of a group share ``shape``.
        dtype: numpy dtype of the computed values ("float32" or "bool" for masks).
    """

    name: str
    unit: str
    description: str
    function: FeatureFunction = field(repr=False, compare=False)
    inputs: tuple[str, ...] = ()
    per: str = "event"
    shape: tuple[int, ...] = ()
    group: str = "event"
    dtype: str = "float64"

    def compute(self, table: Table) -> np.ndarray:
        """Evaluate on ``table``: an array of shape ``(rows, *shape)`` and the feature's dtype."""
        n = n_rows(table)
        values = np.asarray(self.function(table), dtype=self.dtype)
        if values.shape != (n, *self.shape):
            raise HepchainError(f"feature '{self.name}' returned shape {values.shape}, expected {(n, *self.shape)}")
        return values

    def to_dict(self) -> dict[str, Any]:
        """Documentation record (everything but the function)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "inputs": list(self.inputs),
            "per": self.per,
            "shape": list(self.shape),
            "group": self.group,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class FeatureSpec:
    """The ordered inputs of one study."""

    study: str
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature spec '{self.study}' repeats names {duplicates}")
        shapes: dict[str, tuple[int, ...]] = {}
        for f in self.features:
            if shapes.setdefault(f.group, f.shape) != f.shape:
                raise ValueError(
                    f"feature spec '{self.study}': feature '{f.name}' has shape {f.shape} but group '{f.group}' "
                    f"has {shapes[f.group]}"
                )
            if f.group == "event" and f.shape != ():
                raise ValueError(f"feature spec '{self.study}': event feature '{f.name}' must be a scalar")

    @property
    def groups(self) -> list[str]:
        """Input groups in first-use order."""
        return list(dict.fromkeys(f.group for f in self.features))

    def group_names(self, group: str) -> list[str]:
        """Feature names of one group, in input order (masks included)."""
        return [f.name for f in self.features if f.group == group]

    @property
    def names(self) -> list[str]:
        """Feature names in input order."""
        return [f.name for f in self.features]

    @property
    def inputs(self) -> list[str]:
        """Skim-table columns needed by any feature, in first-use order."""
        seen: dict[str, None] = {}
        for f in self.features:
            for column in f.inputs:
                seen.setdefault(column, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"feature spec '{self.study}' has no feature '{name}'")

    def check_table(self, table: Table, source: str = "skim table") -> None:
        """Raise naming the first feature whose input column ``table`` lacks."""
        present = set(table.columns) if isinstance(table, pd.DataFrame) else set(table)
        for f in self.features:
            for column in f.inputs:
                if column not in present:
                    raise HepchainError(
                        f"{source}: column '{column}' needed by feature '{f.name}' of study '{self.study}' is missing"
                    )

    def compute(self, table: pd.DataFrame, source: str = "skim table") -> pd.DataFrame:
        """All (scalar) features of ``table`` as a DataFrame, columns in spec order, same index."""
        if any(f.shape for f in self.features):
            raise HepchainError(f"feature spec '{self.study}' has set or image features: use compute_arrays")
        self.check_table(table, source)
        data = {f.name: f.compute(table) for f in self.features}
        return pd.DataFrame(data, index=table.index, columns=self.names)

    def compute_arrays(self, table: Table, source: str = "skim table") -> dict[str, np.ndarray]:
        """All features of ``table`` as arrays ``(rows, *shape)``, in spec order."""
        self.check_table(table, source)
        return {f.name: f.compute(table) for f in self.features}

    def tensors(self, arrays: Mapping[str, np.ndarray], dtype: Any = np.float32) -> dict[str, np.ndarray]:
        """Stack computed features per group: ``(N, F)`` for "event", ``(N, K, F)`` for a set or image.

        Masks (bool features named ``<group>_mask``) are returned apart as
        ``{"<group>_mask": (N, K) bool}`` and not stacked with the values.
        """
        out: dict[str, np.ndarray] = {}
        for group in self.groups:
            mask_name = f"{group}_mask"
            names = [n for n in self.group_names(group) if n != mask_name]
            if names:
                out[group] = np.stack([np.asarray(arrays[n], dtype=dtype) for n in names], axis=-1)
            if mask_name in self.group_names(group):
                out[mask_name] = np.asarray(arrays[mask_name], dtype=bool)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Documentation record: the study and its features in order."""
        return {"study": self.study, "features": [f.to_dict() for f in self.features]}

    def subset(self, names: Sequence[str]) -> FeatureSpec:
        """A spec with only ``names`` (in the given order), e.g. for ablations."""
        return FeatureSpec(self.study, tuple(self[n] for n in names))
