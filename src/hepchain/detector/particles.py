"""Flat particle tables and the helpers every detector step shares.

The simulation works on flat numpy columns with an event index ``evt`` (sorted),
so every step is a vectorised numpy operation over all particles of a
sub-chunk.  ``counts`` turns a flat column back into a jagged awkward array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np


@dataclass
class Table:
    """A flat table of objects: equal-length numpy columns plus the event index ``evt``."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key]

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self.columns[key] = value

    def __len__(self) -> int:
        return len(self.columns["evt"]) if "evt" in self.columns else 0

    def select(self, mask: np.ndarray) -> Table:
        return Table({k: v[mask] for k, v in self.columns.items()})

    def take(self, index: np.ndarray) -> Table:
        return Table({k: v[index] for k, v in self.columns.items()})

    @staticmethod
    def concat(tables: list[Table]) -> Table:
        keys = tables[0].columns.keys()
        return Table({k: np.concatenate([t.columns[k] for t in tables]) for k in keys})

    def sorted_by_event(self, secondary: np.ndarray | None = None) -> Table:
        order = np.lexsort((secondary, self["evt"])) if secondary is not None else np.argsort(self["evt"], kind="stable")
        return self.take(order)

    def counts(self, n_events: int) -> np.ndarray:
        return np.bincount(self["evt"], minlength=n_events)

    def to_jagged(self, n_events: int, fields: dict[str, str]) -> ak.Array:
        """Jagged record array (events x objects); ``fields`` maps output name -> column name.

        The table must be sorted by ``evt``.
        """
        counts = self.counts(n_events)
        return ak.unflatten(ak.zip({out: self.columns[col] for out, col in fields.items()}), counts)


def from_jagged(array: ak.Array, fields: list[str]) -> Table:
    """Flatten a jagged record array into a :class:`Table` with the event index."""
    counts = ak.to_numpy(ak.num(array, axis=1))
    cols = {f: ak.to_numpy(ak.flatten(array[f])) for f in fields}
    cols["evt"] = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return Table(cols)


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def delta_r2(eta1: np.ndarray, phi1: np.ndarray, eta2: np.ndarray, phi2: np.ndarray) -> np.ndarray:
    return (eta1 - eta2) ** 2 + delta_phi(phi1, phi2) ** 2


def energy(pt: np.ndarray, eta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    p = pt * np.cosh(eta)
    return np.sqrt(p * p + mass * mass)


def index_within_group(counts: np.ndarray) -> np.ndarray:
    """For consecutive groups of sizes ``counts``, each element's position within its group."""
    return np.arange(int(np.sum(counts))) - np.repeat(np.cumsum(counts) - counts, counts)


def pairs_within_event(evt_a: np.ndarray, evt_b_sorted: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with evt_a[i] == evt_b[j]; ``evt_b_sorted`` must be sorted.

    Returns index arrays into a and b.  Cost is the number of pairs, so use it
    with a small ``a`` (leptons, jets) against a large ``b`` (PF candidates).
    """
    counts_b = np.bincount(evt_b_sorted, minlength=n_events)
    starts_b = np.concatenate([[0], np.cumsum(counts_b)[:-1]])
    n_per_a = counts_b[evt_a]
    ia = np.repeat(np.arange(len(evt_a)), n_per_a)
    first = np.repeat(starts_b[evt_a], n_per_a)
    within = index_within_group(n_per_a)
    return ia, first + within


def nearest_within(a: Table, b: Table, n_events: int, max_dr: float, max_rel_pt: float | None = None) -> np.ndarray:
    """Flat index into ``b`` of the object nearest in dR to each ``a`` object in its event within ``max_dr``, else -1.

    With ``max_rel_pt``, only pairs with |pT_a / pT_b - 1| < max_rel_pt are candidates (NanoAOD truth matching).
    """
    out = np.full(len(a), -1, dtype=np.int64)
    if len(a) == 0 or len(b) == 0:
        return out
    ia, ib = pairs_within_event(a["evt"], b["evt"], n_events)
    dr2 = delta_r2(a["eta"][ia], a["phi"][ia], b["eta"][ib], b["phi"][ib])
    ok = dr2 < max_dr**2
    if max_rel_pt is not None:
        ok &= np.abs(a["pt"][ia] / np.maximum(b["pt"][ib], 1e-9) - 1.0) < max_rel_pt
    ia, ib, dr2 = ia[ok], ib[ok], dr2[ok]
    order = np.lexsort((dr2, ia))
    ia, ib = ia[order], ib[order]
    first = np.concatenate([[True], ia[1:] != ia[:-1]]) if len(ia) else np.zeros(0, bool)
    out[ia[first]] = ib[first]
    return out


def local_index(flat: np.ndarray, table: Table, n_events: int) -> np.ndarray:
    """Turn flat indices into ``table`` (-1 for none) into indices within each event."""
    starts = np.concatenate([[0], np.cumsum(table.counts(n_events))[:-1]])
    evt = table["evt"][np.maximum(flat, 0)] if len(table) else np.zeros(len(flat), dtype=np.int64)
    return np.where(flat >= 0, flat - starts[evt], -1).astype(np.int32)


def charge_of(pdg_id: np.ndarray) -> np.ndarray:
    """Charge of the stable particles Pythia leaves (e, mu, pi, K, p and their antiparticles)."""
    a = np.abs(pdg_id)
    sign = np.sign(pdg_id)
    charged_positive_for_positive_id = np.isin(a, (211, 321, 2212))
    leptons = np.isin(a, (11, 13))
    return np.where(charged_positive_for_positive_id, sign, np.where(leptons, -sign, 0)).astype(np.int32)
