"""The dijet skim of the jet-calibration study (seed 002): one row per leading jet.

The seed (Boggia, "Simultaneous jet calibration with ML including in situ JER
measurement") trains a Deep Sets network on the two leading jets of QCD dijet
events to predict a per-jet (mu, sigma) of the calibration, and adds the width
of the dijet asymmetry to the loss as an in-situ JER term.  Its event
selection is the ATLAS dijet-balance topology (ATLAS JES/JER at 13 TeV,
EPJC 81 (2021) 689, arXiv:2007.02645), translated to CMS NanoAOD branches; the
defaults are those of :class:`DijetSelection`:

* jets: pT > 25 GeV, |eta| < 4.7 (the whole NanoAOD jet acceptance, so that
  forward radiation enters the third-jet veto), tight jet ID (``jetId & 2``);
  ordered by pT; "leading" and "third" refer to this list;
* pT_avg = (pT1 + pT2) / 2 of the two leading jets.

Event cuts, in order, each one a named bit of a ``PackedSelection``:

==================  ========================================================================
``two_jets``        at least two selected jets
``back_to_back``    |delta phi(j1, j2)| > 2.7 (seed: delta phi_12 > 2.7 rad)
``third_jet_veto``  pT3 < max(25 GeV, 0.25 pT_avg), pT3 = 0 without a third jet (seed)
``pt_avg_window``   800 < pT_avg < 2800 GeV (seed: "pT between 800 and 2800 GeV", JZ7)
==================  ========================================================================

All inequalities are strict.  The seed's central region 0.2 <= |eta| < 0.7
is *not* a cut, so that the calibration regression keeps every jet: it is the
event flag ``in_probe_region`` (both leading jets in the region, the
condition under which sigma(pT)/pT = sigma_A / sqrt(2) holds, both jets then
having the same resolution) and the jet flag ``jet_in_probe_region``.

The dijet asymmetry (seed; ATLAS EPJC 81 (2021) 689) is
A = (pT_ref - pT_probe) / pT_avg, where reference and probe are assigned at
random to the two leading jets.  The draw is a hash of the event number
(:func:`hepchain.features.vh.assign_folds` with the salt ``"dijet-probe"``
and ``DijetSelection.probe_seed``), so it is reproducible and independent of
chunking and file order; ``is_probe`` marks the probe jet.

Rows: one per leading jet of each selected event (``jet_rank`` 0 then 1,
events in file-then-entry order), with the event quantities repeated
(``event``, ``genWeight``, ``pt_avg``, ``asymmetry``, ``dphi_jj``, ``pt3``,
``njets``, ``in_probe_region``, ``rho`` = ``fixedGridRhoFastjetCentralNeutral``,
``npvs`` = ``PV_npvs``), the jet quantities ``jet_*`` (kinematics, area,
rawFactor, PF energy fractions, counts and the hepchain GSC-like extensions
nTracks, trackWidth, emFrac), the truth match through ``Jet_genJetIdx``
(``gen_pt`` ... and ``calib_factor`` = pT_true / pT_reco, the seed's target,
NaN and ``matched`` False where there is no GenJet) and the K (default 64)
highest-pT constituents from ``JetPFCands`` -> ``PFCands`` as padded
``constituents_*`` columns with ``constituents_mask``.  See :func:`columns`.

Branches: :data:`BRANCHES` (the selection; standard NanoAOD, so a
``cutflow_only`` run works on any NanoAOD file), :data:`COLUMN_BRANCHES`
(standard NanoAOD jet quantities, rho, PV), :data:`EXTENDED_BRANCHES`
(hepchain jet extensions and PF candidates: simulate with
``store_pfcands: true``).  ``genWeight``, ``Jet_genJetIdx`` and ``GenJet_*``
are optional (collision data: weight 1, no truth match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np
from coffea.processor import ProcessorABC

from ..errors import ConfigError
from ..features.jets import dijet_asymmetry, third_jet_veto
from ..features.vh import assign_folds, delta_phi
from .common import (
    ColumnSpec,
    Cutflow,
    SelectionConfig,
    chunk_columns,
    columns_to_arrays,
    event_weights,
    padded,
    run_processor,
)

__all__ = [
    "BRANCHES",
    "COLUMNS",
    "COLUMN_BRANCHES",
    "CUTS",
    "DEFAULT_N_CONSTITUENTS",
    "EXTENDED_BRANCHES",
    "PROBE_SALT",
    "STAGE",
    "DijetProcessor",
    "DijetSelection",
    "columns",
    "dijet_asymmetry",
    "run_jets_skim",
    "third_jet_veto",
]

STAGE = "jets skim"

#: Branches the selection reads (standard NanoAOD); genWeight is optional.
BRANCHES: tuple[str, ...] = ("Jet_pt", "Jet_eta", "Jet_phi", "Jet_jetId", "event")

#: Jet quantities copied to the output (standard NanoAOD names).
JET_QUANTITIES: tuple[tuple[str, str], ...] = (
    ("mass", "float64"),
    ("area", "float64"),
    ("rawFactor", "float64"),
    ("chHEF", "float64"),
    ("neHEF", "float64"),
    ("chEmEF", "float64"),
    ("neEmEF", "float64"),
    ("muEF", "float64"),
    ("nConstituents", "int32"),
    ("nElectrons", "int32"),
    ("nMuons", "int32"),
)

#: hepchain jet extensions (see hepchain.nanoaod.CONTRACT["Jet"]).
JET_EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("nTracks", "int32"),
    ("trackWidth", "float64"),
    ("emFrac", "float64"),
)

#: PF-candidate fields of the constituents and their skim dtype.
PF_FIELDS: tuple[tuple[str, str], ...] = (
    ("pt", "float32"),
    ("eta", "float32"),
    ("phi", "float32"),
    ("charge", "int32"),
    ("pdgId", "int32"),
    ("fromPV", "int32"),
    ("d0", "float32"),
    ("dz", "float32"),
)

#: Standard NanoAOD branches the output columns read (checked unless cutflow_only).
COLUMN_BRANCHES: tuple[str, ...] = (
    *(f"Jet_{f}" for f, _ in JET_QUANTITIES),
    "fixedGridRhoFastjetCentralNeutral",
    "PV_npvs",
    # coffea's NanoAODSchema builds PV as a vertex, which needs x, y and z to read PV_npvs
    "PV_x",
    "PV_y",
    "PV_z",
)

#: hepchain-extended branches the output columns need (PF candidates: ``store_pfcands: true``).
EXTENDED_BRANCHES: tuple[str, ...] = (
    *(f"Jet_{f}" for f, _ in JET_EXTENSIONS),
    "nPFCands",
    *(f"PFCands_{f}" for f, _ in PF_FIELDS),
    "nJetPFCands",
    "JetPFCands_jetIdx",
    "JetPFCands_pFCandsIdx",
)

#: Optional truth branches (absent in collision data: no match, calib_factor NaN).
TRUTH_BRANCHES: tuple[str, ...] = ("Jet_genJetIdx", "GenJet_pt", "GenJet_eta", "GenJet_phi", "GenJet_mass")

#: The event cuts, in cutflow order.
CUTS: tuple[str, ...] = ("two_jets", "back_to_back", "third_jet_veto", "pt_avg_window")

#: Default number of constituents kept per jet (highest pT first).
DEFAULT_N_CONSTITUENTS = 64

#: Salt of the hash that assigns the probe jet (see the module docstring).
PROBE_SALT = "dijet-probe"

HINT = (
    "the jets skim needs the extended hepchain ntuples: the Jet_nTracks/trackWidth/emFrac extensions and "
    "the PF candidates (PFCands, JetPFCands): simulate with store_pfcands: true; "
    "--cutflow-only runs the selection alone on standard NanoAOD"
)


def columns(n_constituents: int = DEFAULT_N_CONSTITUENTS) -> ColumnSpec:
    """Output columns of the skim, name -> (dtype, row shape), for K = ``n_constituents``."""
    k = (int(n_constituents),)
    spec: dict[str, tuple[str, tuple[int, ...]]] = {
        "event": ("uint64", ()),
        "genWeight": ("float64", ()),
        "jet_rank": ("int32", ()),
        "is_probe": ("bool", ()),
        "pt_avg": ("float64", ()),
        "asymmetry": ("float64", ()),
        "dphi_jj": ("float64", ()),
        "pt3": ("float64", ()),
        "njets": ("int32", ()),
        "in_probe_region": ("bool", ()),
        "jet_in_probe_region": ("bool", ()),
        "rho": ("float64", ()),
        "npvs": ("int32", ()),
        "jet_pt": ("float64", ()),
        "jet_eta": ("float64", ()),
        "jet_phi": ("float64", ()),
    }
    for name, dtype in (*JET_QUANTITIES, *JET_EXTENSIONS):
        spec[f"jet_{name}"] = (dtype, ())
    spec.update(
        {
            "matched": ("bool", ()),
            "gen_pt": ("float64", ()),
            "gen_eta": ("float64", ()),
            "gen_phi": ("float64", ()),
            "gen_mass": ("float64", ()),
            "calib_factor": ("float64", ()),
        }
    )
    for name, dtype in PF_FIELDS:
        spec[f"constituents_{name}"] = (dtype, k)
    spec["constituents_mask"] = ("bool", k)
    return spec


#: Output columns with the default K = 64 constituents.
COLUMNS: ColumnSpec = columns()


@dataclass(frozen=True)
class DijetSelection(SelectionConfig):
    """Thresholds of the dijet selection (GeV, rad; strict inequalities, probe region half-open).

    ``probe_abs_eta_min <= |eta| < probe_abs_eta_max`` defines the seed's central
    probe region (a flag, not a cut); ``n_constituents`` is K, the constituents
    kept per jet; ``probe_seed`` seeds the random ref/probe assignment.
    """

    label: ClassVar[str] = "dijet"

    jet_pt_min: float = 25.0
    jet_abs_eta_max: float = 4.7
    jet_id_mask: int = 2
    dphi_min: float = 2.7
    third_jet_pt_floor: float = 25.0
    third_jet_fraction: float = 0.25
    pt_avg_min: float = 800.0
    pt_avg_max: float = 2800.0
    probe_abs_eta_min: float = 0.2
    probe_abs_eta_max: float = 0.7
    n_constituents: int = DEFAULT_N_CONSTITUENTS
    probe_seed: int = 0

    def __post_init__(self) -> None:
        self.check_numbers()
        if self.n_constituents < 1:
            raise ConfigError(f"selection key 'n_constituents' must be at least 1, got {self.n_constituents}")
        if self.jet_id_mask < 0:
            raise ConfigError(f"selection key 'jet_id_mask' must be a non-negative bit mask, got {self.jet_id_mask}")
        for low, high in (("pt_avg_min", "pt_avg_max"), ("probe_abs_eta_min", "probe_abs_eta_max")):
            if getattr(self, low) >= getattr(self, high):
                raise ConfigError(
                    f"selection: {low} ({getattr(self, low)}) must be below {high} ({getattr(self, high)})"
                )



def _f64(x: Any) -> ak.Array:
    return ak.values_astype(x, np.float64)


def _nth(array: ak.Array, n: int, fill: float = np.nan) -> np.ndarray:
    """The n-th entry of each event's list as float64 numpy, ``fill`` where there is none."""
    return padded(array, n + 1, fill, np.float64)[:, n]


def _rows(values: Any, dtype: Any, fill: float = 0.0) -> np.ndarray:
    """The two leading entries of each event's list, flattened to rows (event 0 jet 0, event 0 jet 1, ...)."""
    return padded(values, 2, fill, dtype).reshape(-1)


def _gather_truth(events: Any, lead_gen_idx: np.ndarray) -> dict[str, np.ndarray]:
    """GenJet pt, eta, phi, mass of the rows' ``genJetIdx`` (NaN where -1 or out of range) and ``matched``."""
    n_rows = lead_gen_idx.size
    fields = ("pt", "eta", "phi", "mass")
    if "GenJet" not in events.fields:
        return {"matched": np.zeros(n_rows, dtype=bool), **{f: np.full(n_rows, np.nan) for f in fields}}
    genjets = events.GenJet
    counts = np.repeat(ak.to_numpy(ak.num(genjets.pt, axis=1)).astype(np.int64), 2)
    starts = np.repeat(np.cumsum(ak.to_numpy(ak.num(genjets.pt, axis=1)).astype(np.int64)), 2) - counts
    matched = (lead_gen_idx >= 0) & (lead_gen_idx < counts)
    flat_index = np.where(matched, starts + lead_gen_idx, 0)
    out: dict[str, np.ndarray] = {"matched": matched}
    for f in fields:
        flat = ak.to_numpy(ak.flatten(genjets[f], axis=1)).astype(np.float64)
        values = flat[flat_index] if flat.size else np.zeros(n_rows)
        out[f] = np.where(matched, values, np.nan)
    return out


def _constituents(events: Any, lead_index: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The K highest-pT PF constituents of each leading jet, as ``(rows, K)`` arrays plus the mask.

    ``lead_index`` is ``(events, 2)``: the position of the two leading jets in the
    input ``Jet`` collection, which ``JetPFCands_jetIdx`` refers to.  The join is
    vectorised: each link gathers its candidate by local index (jagged integer
    indexing), and the links of jet r are those with ``jetIdx == lead_index[:, r]``.
    """
    links = events.JetPFCands
    pf = ak.zip({f: events.PFCands[f] for f, _ in PF_FIELDS})
    cand_idx = ak.values_astype(links.pFCandsIdx, np.int64)
    jet_idx = ak.values_astype(links.jetIdx, np.int64)
    n_pf = ak.num(pf, axis=1)
    valid = (cand_idx >= 0) & (cand_idx < n_pf)
    cand_idx, jet_idx = cand_idx[valid], jet_idx[valid]
    candidates = pf[cand_idx]
    per_rank: list[dict[str, np.ndarray]] = []
    for rank in (0, 1):  # the two leading jets; everything inside is vectorised over events
        mine = candidates[jet_idx == lead_index[:, rank]]
        mine = mine[ak.argsort(mine.pt, axis=1, ascending=False, stable=True)]
        n = np.minimum(ak.to_numpy(ak.num(mine, axis=1)), k)
        arrays = {f"constituents_{f}": padded(mine[f], k, 0, dtype) for f, dtype in PF_FIELDS}
        arrays["constituents_mask"] = np.arange(k)[None, :] < n[:, None]
        per_rank.append(arrays)
    return {name: np.stack([per_rank[0][name], per_rank[1][name]], axis=1).reshape(-1, k) for name in per_rank[0]}


class DijetProcessor(ProcessorABC):
    """coffea processor of the dijet skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: DijetSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or DijetSelection()
        self.cutflow_only = bool(cutflow_only)
        self.cutflow = Cutflow(CUTS)
        self.columns = columns(self.selection.n_constituents)

    def select_jets(self, events: Any) -> ak.Array:
        """Selected jets (float64 kinematics, ``idx`` = position in the input collection), pT-ordered."""
        s, j = self.selection, events.Jet
        jets = ak.zip(
            {
                "pt": _f64(j.pt),
                "eta": _f64(j.eta),
                "phi": _f64(j.phi),
                "idx": ak.local_index(j.pt, axis=1),
            }
        )
        jet_id = ak.values_astype(j.jetId, np.int64)
        mask = (
            (jets.pt > s.jet_pt_min) & (abs(jets.eta) < s.jet_abs_eta_max) & ((jet_id & s.jet_id_mask) == s.jet_id_mask)
        )
        jets = jets[mask]
        return jets[ak.argsort(jets.pt, axis=1, ascending=False, stable=True)]

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the rows (two per passing event) of the passing events."""
        s = self.selection
        weights = event_weights(events)
        jets = self.select_jets(events)
        n_jets = ak.to_numpy(ak.num(jets, axis=1))
        pt1, pt2, pt3 = (_nth(jets.pt, i) for i in range(3))
        pt3 = np.nan_to_num(pt3, nan=0.0)
        two = n_jets >= 2
        with np.errstate(invalid="ignore"):
            dphi = delta_phi(_nth(jets.phi, 0), _nth(jets.phi, 1))
            pt_avg = 0.5 * (pt1 + pt2)
            masks = {
                "two_jets": two,
                "back_to_back": two & (dphi > s.dphi_min),
                "third_jet_veto": two & third_jet_veto(pt3, pt_avg, s.third_jet_pt_floor, s.third_jet_fraction),
                "pt_avg_window": two & (pt_avg > s.pt_avg_min) & (pt_avg < s.pt_avg_max),
            }
        selection = self.cutflow.selection(masks)
        key_cutflow = self.cutflow.fill(selection, weights)
        if self.cutflow_only:
            chunk = chunk_columns(events, {})
        else:
            passed = np.asarray(selection.all(*CUTS), dtype=bool)
            chunk = chunk_columns(events, self._columns(events[passed], jets[passed], weights[passed]))
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def _columns(self, events: Any, jets: ak.Array, weights: np.ndarray) -> dict[str, np.ndarray]:
        """The output rows of the selected ``events`` (each with at least two selected ``jets``)."""
        s, k = self.selection, self.selection.n_constituents
        n = len(events)
        event = ak.to_numpy(events.event).astype(np.uint64)
        lead_index = padded(jets.idx, 2, 0, np.int64)  # (n, 2) positions in the input Jet collection
        pt = padded(jets.pt, 2, np.nan, np.float64)
        eta = padded(jets.eta, 2, np.nan, np.float64)
        phi = padded(jets.phi, 2, np.nan, np.float64)
        pt_avg = 0.5 * (pt[:, 0] + pt[:, 1])
        # probe = leading jet where the event hash is 0, subleading where 1
        probe_rank = assign_folds(event, PROBE_SALT, 2, s.probe_seed)
        pt_probe = np.take_along_axis(pt, probe_rank[:, None], axis=1)[:, 0]
        pt_ref = np.take_along_axis(pt, 1 - probe_rank[:, None], axis=1)[:, 0]
        abs_eta = np.abs(eta)
        jet_in_region = (abs_eta >= s.probe_abs_eta_min) & (abs_eta < s.probe_abs_eta_max)

        def per_event(values: np.ndarray) -> np.ndarray:
            return np.repeat(values, 2)

        # the input Jet collection re-ordered to (selected, pT-ordered) jets: jet r of row is Jet[lead_index[:, r]]
        lead = ak.from_regular(ak.Array(lead_index), axis=1)

        def jet_rows(field: str, dtype: str) -> np.ndarray:
            return _rows(events.Jet[field][lead], dtype)

        out: dict[str, np.ndarray] = {
            "event": per_event(event),
            "genWeight": per_event(weights),
            "jet_rank": np.tile(np.array([0, 1], dtype=np.int32), n),
            "is_probe": (np.arange(2)[None, :] == probe_rank[:, None]).reshape(-1),
            "pt_avg": per_event(pt_avg),
            "asymmetry": per_event(dijet_asymmetry(pt_probe, pt_ref)),
            "dphi_jj": per_event(delta_phi(phi[:, 0], phi[:, 1])),
            "pt3": per_event(np.nan_to_num(_nth(jets.pt, 2), nan=0.0)),
            "njets": per_event(ak.to_numpy(ak.num(jets, axis=1)).astype(np.int32)),
            "in_probe_region": per_event(jet_in_region.all(axis=1)),
            "jet_in_probe_region": jet_in_region.reshape(-1),
            "rho": per_event(ak.to_numpy(events.fixedGridRhoFastjetCentralNeutral).astype(np.float64)),
            "npvs": per_event(ak.to_numpy(events.PV.npvs).astype(np.int32)),
            "jet_pt": pt.reshape(-1),
            "jet_eta": eta.reshape(-1),
            "jet_phi": phi.reshape(-1),
        }
        for name, dtype in (*JET_QUANTITIES, *JET_EXTENSIONS):
            out[f"jet_{name}"] = jet_rows(name, dtype)
        if "genJetIdx" in events.Jet.fields:
            gen_idx = jet_rows("genJetIdx", "int64")
        else:
            gen_idx = np.full(2 * n, -1, dtype=np.int64)
        truth = _gather_truth(events, gen_idx)
        out["matched"] = truth["matched"]
        for f in ("pt", "eta", "phi", "mass"):
            out[f"gen_{f}"] = truth[f]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["calib_factor"] = np.where(truth["matched"], truth["pt"] / out["jet_pt"], np.nan)
        out.update(_constituents(events, lead_index, k))
        return {name: out[name] for name in self.columns}

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_jets_skim`."""
        return accumulator


def run_jets_skim(
    files: Sequence[str],
    *,
    selection: DijetSelection | None = None,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    scheduler: str | None = None,
    cutflow_only: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the dijet skim over ``files``; return the skim table (dict of arrays) and the cutflow dict.

    The table has the columns of :func:`columns` (two rows per event passing every
    cut, in input file then entry order; no rows with ``cutflow_only``); the cutflow is
    ``{"cuts": [{"name", "raw", "weighted"}, ...], "sumw", "n_events", "selection"}``
    with the cuts of :data:`CUTS` after ``all``.  ``cutflow_only`` reads only
    :data:`BRANCHES`, so it runs on standard NanoAOD without PF candidates.
    ``executor``, ``workers``, ``scheduler`` and ``chunksize`` go to
    :func:`~hepchain.skim.common.run_processor`.
    """
    files = [str(f) for f in files]
    processor = DijetProcessor(selection, cutflow_only=cutflow_only)
    branches = BRANCHES if cutflow_only else (*BRANCHES, *COLUMN_BRANCHES, *EXTENDED_BRANCHES)
    out = run_processor(
        files,
        processor,
        branches=branches,
        stage=STAGE,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        scheduler=scheduler,
        hint=HINT,
    )
    table = columns_to_arrays(out["columns"], files, processor.columns)
    cutflow = processor.cutflow.finalize(out["cutflow"])
    cutflow["selection"] = processor.selection.to_dict()
    return table, cutflow
