"""Pile-up overlay from a minimum-bias library generated once.

Each event receives Poisson(mu) pile-up interactions drawn with replacement
from the library, each at its own vertex z (Gaussian beam spot) and rotated
by a random azimuth, which decorrelates repeated uses of one library event.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

from ..errors import InputFileError
from .particles import Table, from_jagged, index_within_group

FIELDS = ["pt", "eta", "phi", "mass", "pdgId", "charge", "origin"]


class PileupLibrary:
    """Flat particles of the minimum-bias library, with per-event offsets."""

    def __init__(self, table: Table, counts: np.ndarray) -> None:
        self.table = table
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    @classmethod
    def load(cls, path: str | Path, min_pt: float = 0.3) -> PileupLibrary:
        path = Path(path)
        if not path.exists():
            raise InputFileError(f"{path}: pile-up library does not exist (run the minbias rule first)")
        particles = ak.from_parquet(path, columns=["particles"]).particles
        particles = particles[particles.pt > min_pt]
        table = from_jagged(particles, FIELDS)
        counts = ak.to_numpy(ak.num(particles))
        if len(counts) == 0:
            raise InputFileError(f"{path}: pile-up library holds no events")
        return cls(table, counts)

    def __len__(self) -> int:
        return len(self.counts)

    def overlay(self, n_events: int, mu: float, rng: np.random.Generator, sigma_z: float) -> tuple[Table, np.ndarray, np.ndarray]:
        """Pile-up particles for ``n_events`` events.

        Returns the particle table (with ``evt``, ``vz`` and ``pu`` = 1), the
        number of interactions per event and the vertex z of each interaction.
        """
        n_pu = rng.poisson(mu, n_events) if mu > 0 else np.zeros(n_events, dtype=np.int64)
        total = int(n_pu.sum())
        chosen = rng.integers(0, len(self), total)
        vertex_z = rng.normal(0.0, sigma_z, total)
        rotation = rng.uniform(-np.pi, np.pi, total)
        counts = self.counts[chosen]
        index = np.repeat(self.starts[chosen], counts) + index_within_group(counts)
        out = self.table.take(index)
        vertex_of_particle = np.repeat(np.arange(total), counts)
        out["evt"] = np.repeat(np.repeat(np.arange(n_events), n_pu), counts)
        out["vz"] = vertex_z[vertex_of_particle].astype(np.float32)
        phi = out["phi"] + rotation[vertex_of_particle]
        out["phi"] = ((phi + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)
        out["pu"] = np.ones(len(index), dtype=bool)
        return out, n_pu, vertex_z
