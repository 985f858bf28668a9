"""Declarative feature specifications shared by training and inference.

A study's inputs are a :class:`FeatureSpec`: an ordered list of :class:`Feature`
objects, each a name, a unit, a description and a vectorised function of the
skim table.  Training, inference and the documentation all call the same
:meth:`FeatureSpec.compute` / :meth:`FeatureSpec.to_dict`, so the network never
sees inputs computed differently from those it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import HepchainError

FeatureFunction = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One input variable.

    Attributes:
        name: column name in the feature table.
        unit: physical unit ("GeV", "rad", "" for dimensionless).
        description: one sentence for the documentation.
        function: vectorised function of the skim table returning one value per row.
        inputs: skim-table columns the function reads (checked before computing).
        per: what one value describes; only "event" is used so far.
    """

    name: str
    unit: str
    description: str
    function: FeatureFunction = field(repr=False, compare=False)
    inputs: tuple[str, ...] = ()
    per: str = "event"

    def compute(self, table: pd.DataFrame) -> np.ndarray:
        """Evaluate on ``table``: a float64 array with one value per row."""
        values = np.asarray(self.function(table), dtype=np.float64)
        if values.shape != (len(table),):
            raise HepchainError(f"feature '{self.name}' returned shape {values.shape}, expected ({len(table)},)")
        return values

    def to_dict(self) -> dict[str, Any]:
        """Documentation record (everything but the function)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "inputs": list(self.inputs),
            "per": self.per,
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

    def check_table(self, table: pd.DataFrame, source: str = "skim table") -> None:
        """Raise naming the first feature whose input column ``table`` lacks."""
        present = set(table.columns)
        for f in self.features:
            for column in f.inputs:
                if column not in present:
                    raise HepchainError(
                        f"{source}: column '{column}' needed by feature '{f.name}' of study '{self.study}' is missing"
                    )

    def compute(self, table: pd.DataFrame, source: str = "skim table") -> pd.DataFrame:
        """All features of ``table`` as a float64 DataFrame, columns in spec order, same index."""
        self.check_table(table, source)
        data = {f.name: f.compute(table) for f in self.features}
        return pd.DataFrame(data, index=table.index, columns=self.names)

    def to_dict(self) -> dict[str, Any]:
        """Documentation record: the study and its features in order."""
        return {"study": self.study, "features": [f.to_dict() for f in self.features]}

    def subset(self, names: Sequence[str]) -> FeatureSpec:
        """A spec with only ``names`` (in the given order), e.g. for ablations."""
        return FeatureSpec(self.study, tuple(self[n] for n in names))
