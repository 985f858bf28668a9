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

from ..detector.particles import index_within_group
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
    flat_fields,
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



def _selected_jets(events: Any, s: DijetSelection) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The selected jets of a chunk as flat numpy arrays, and the number of them per event.

    Grouped by event and pT-ordered within it (stable: equal pT keep their input
    order): float64 ``pt``, ``eta``, ``phi``; ``flat`` (index into the chunk's
    flattened ``Jet`` collection), ``idx`` (position in the event's ``Jet`` list,
    which ``JetPFCands_jetIdx`` refers to), ``evt`` (event in the chunk) and
    ``rank`` (0 = leading).
    """
    counts, j = flat_fields(events.Jet, ("pt", "eta", "phi", "jetId"))
    evt = np.repeat(np.arange(counts.size), counts)
    pt, eta, phi = (j[f].astype(np.float64) for f in ("pt", "eta", "phi"))
    jet_id = j["jetId"].astype(np.int64)
    keep = (pt > s.jet_pt_min) & (np.abs(eta) < s.jet_abs_eta_max) & ((jet_id & s.jet_id_mask) == s.jet_id_mask)
    flat = np.flatnonzero(keep)
    flat = flat[np.lexsort((-pt[flat], evt[flat]))]
    sel_evt = evt[flat]
    n_sel = np.bincount(sel_evt, minlength=counts.size)
    jets = {
        "pt": pt[flat],
        "eta": eta[flat],
        "phi": phi[flat],
        "flat": flat,
        "idx": flat - (np.cumsum(counts) - counts)[sel_evt],
        "evt": sel_evt,
        "rank": index_within_group(n_sel),
    }
    return jets, n_sel


def _nth(jets: dict[str, np.ndarray], field: str, n: int, rank: int) -> np.ndarray:
    """``field`` of each event's selected jet of pT rank ``rank`` as float64, NaN where there is none."""
    out = np.full(n, np.nan)
    pick = jets["rank"] == rank
    out[jets["evt"][pick]] = jets[field][pick]
    return out


def _gather_truth(events: Any, rows_evt: np.ndarray, gen_idx: np.ndarray) -> dict[str, np.ndarray]:
    """GenJet pt, eta, phi, mass of the rows' ``genJetIdx`` (NaN where -1 or out of range) and ``matched``.

    ``rows_evt`` is the event (in the chunk) of each row, ``gen_idx`` its jet's ``genJetIdx``.
    """
    n_rows = gen_idx.size
    fields = ("pt", "eta", "phi", "mass")
    if "GenJet" not in events.fields:
        return {"matched": np.zeros(n_rows, dtype=bool), **{f: np.full(n_rows, np.nan) for f in fields}}
    gen_counts, gen = flat_fields(events.GenJet, fields)
    counts = gen_counts[rows_evt]
    matched = (gen_idx >= 0) & (gen_idx < counts)
    flat_index = np.where(matched, (np.cumsum(gen_counts) - gen_counts)[rows_evt] + gen_idx, 0)
    out: dict[str, np.ndarray] = {"matched": matched}
    for f in fields:
        flat = gen[f].astype(np.float64)
        values = flat[flat_index] if flat.size else np.zeros(n_rows)
        out[f] = np.where(matched, values, np.nan)
    return out


def _row_pt_key(row: np.ndarray, pt: np.ndarray) -> np.ndarray:
    """uint64 sort key ordering by increasing ``row`` (< 2**32), then decreasing float32 ``pt`` (-0 equal to +0).

    The row fills the upper 32 bits, the lower 32 are the float's bits mapped to
    an unsigned integer of the reverse order; a stable argsort of the key is
    ``np.lexsort((-pt, row))``, several times faster on these nearly sorted rows.
    """
    bits = (pt + np.float32(0.0)).view(np.uint32)
    ascending = np.where(bits >= np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return (row.astype(np.uint64) << np.uint64(32)) | (~ascending).astype(np.uint64)


def _constituents(events: Any, row_of_event: np.ndarray, lead_idx: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The K highest-pT PF constituents of each leading jet, as ``(rows, K)`` arrays plus the mask.

    ``row_of_event`` is, per event of the chunk, its position among the selected
    events (-1 where not selected); ``lead_idx`` is ``(selected events, 2)``: the
    position of the two leading jets in the event's ``Jet`` list, which
    ``JetPFCands_jetIdx`` refers to.  The join is done on flat arrays: the valid
    links (``pFCandsIdx`` within the event's PF candidates) of the leading jets
    of selected events get their row (2 per event, rank 0 then 1), are sorted by
    (row, decreasing candidate pT; stable, so equal pT keep the link order) and
    the first K of each row are scattered into the padded arrays.
    """
    n_rows = 2 * lead_idx.shape[0]
    link_counts, links = flat_fields(events.JetPFCands, ("jetIdx", "pFCandsIdx"))
    pf_counts, pf = flat_fields(events.PFCands, [f for f, _ in PF_FIELDS])
    link_evt = np.repeat(np.arange(link_counts.size), link_counts)
    cand = links["pFCandsIdx"].astype(np.int64)
    row = row_of_event[link_evt]
    use = np.flatnonzero((row >= 0) & (cand >= 0) & (cand < pf_counts[link_evt]))
    row, jet_idx = row[use], links["jetIdx"][use].astype(np.int64)
    first = jet_idx == lead_idx[row, 0]
    second = jet_idx == lead_idx[row, 1]
    mine = first | second
    use, row = use[mine], 2 * row[mine] + second[mine]
    cand_flat = (np.cumsum(pf_counts) - pf_counts)[link_evt[use]] + cand[use]
    cand_pt = pf["pt"][cand_flat]
    if cand_pt.dtype == np.float32:  # NanoAOD's type: one stable argsort of a packed key
        order = np.argsort(_row_pt_key(row, cand_pt), kind="stable")
    else:
        order = np.lexsort((-cand_pt, row))
    row, cand_flat = row[order], cand_flat[order]
    per_row = np.bincount(row, minlength=n_rows)
    slot = index_within_group(per_row)
    kept = slot < k
    target, cand_flat = row[kept] * k + slot[kept], cand_flat[kept]  # flat position in the (rows, K) arrays
    out: dict[str, np.ndarray] = {}
    for f, dtype in PF_FIELDS:
        values = np.zeros((n_rows, k), dtype=dtype)
        values.reshape(-1)[target] = pf[f][cand_flat]
        out[f"constituents_{f}"] = values
    out["constituents_mask"] = np.arange(k)[None, :] < np.minimum(per_row, k)[:, None]
    return out


class DijetProcessor(ProcessorABC):
    """coffea processor of the dijet skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: DijetSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or DijetSelection()
        self.cutflow_only = bool(cutflow_only)
        self.cutflow = Cutflow(CUTS)
        self.columns = columns(self.selection.n_constituents)

    def select_jets(self, events: Any) -> ak.Array:
        """Selected jets (float64 kinematics, ``idx`` = position in the input collection), pT-ordered."""
        jets, n_sel = _selected_jets(events, self.selection)
        return ak.unflatten(ak.zip({f: jets[f] for f in ("pt", "eta", "phi", "idx")}), n_sel)

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the rows (two per passing event) of the passing events.

        Works on flat numpy arrays of the chunk (see :func:`_selected_jets`), a
        few reads per collection instead of one awkward operation per step.
        """
        s, n = self.selection, len(events)
        weights = event_weights(events)
        jets, n_jets = _selected_jets(events, s)
        pt1, pt2, pt3 = (_nth(jets, "pt", n, i) for i in range(3))
        pt3 = np.nan_to_num(pt3, nan=0.0)
        two = n_jets >= 2
        with np.errstate(invalid="ignore"):
            dphi = delta_phi(_nth(jets, "phi", n, 0), _nth(jets, "phi", n, 1))
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
            chunk = chunk_columns(events, self._columns(events, jets, n_jets, pt3, weights, passed))
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def _columns(
        self,
        events: Any,
        jets: dict[str, np.ndarray],
        n_jets: np.ndarray,
        pt3: np.ndarray,
        weights: np.ndarray,
        passed: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The output rows of the ``passed`` events of the chunk (each with at least two selected ``jets``).

        ``jets`` and ``n_jets`` are those of :func:`_selected_jets`, ``pt3`` the
        third jet pT per event (0 without one).
        """
        s, k = self.selection, self.selection.n_constituents
        selected = np.flatnonzero(passed)
        n = selected.size
        row_of_event = np.full(passed.size, -1, dtype=np.int64)
        row_of_event[selected] = np.arange(n)
        # the two leading jets of the passing events, already in row order (event, then rank 0, 1)
        top = (jets["rank"] < 2) & passed[jets["evt"]]
        lead_flat = jets["flat"][top]  # rows' jets in the chunk's flattened Jet collection
        lead_idx = jets["idx"][top].reshape(n, 2)  # positions in the event's Jet list
        pt, eta, phi = (jets[f][top].reshape(n, 2) for f in ("pt", "eta", "phi"))
        event = ak.to_numpy(events.event).astype(np.uint64)[passed]
        pt_avg = 0.5 * (pt[:, 0] + pt[:, 1])
        # probe = leading jet where the event hash is 0, subleading where 1
        probe_rank = assign_folds(event, PROBE_SALT, 2, s.probe_seed)
        pt_probe = np.take_along_axis(pt, probe_rank[:, None], axis=1)[:, 0]
        pt_ref = np.take_along_axis(pt, 1 - probe_rank[:, None], axis=1)[:, 0]
        abs_eta = np.abs(eta)
        jet_in_region = (abs_eta >= s.probe_abs_eta_min) & (abs_eta < s.probe_abs_eta_max)

        def per_event(values: np.ndarray) -> np.ndarray:
            return np.repeat(values, 2)

        out: dict[str, np.ndarray] = {
            "event": per_event(event),
            "genWeight": per_event(weights[passed]),
            "jet_rank": np.tile(np.array([0, 1], dtype=np.int32), n),
            "is_probe": (np.arange(2)[None, :] == probe_rank[:, None]).reshape(-1),
            "pt_avg": per_event(pt_avg),
            "asymmetry": per_event(dijet_asymmetry(pt_probe, pt_ref)),
            "dphi_jj": per_event(delta_phi(phi[:, 0], phi[:, 1])),
            "pt3": per_event(pt3[passed]),
            "njets": per_event(n_jets[passed].astype(np.int32)),
            "in_probe_region": per_event(jet_in_region.all(axis=1)),
            "jet_in_probe_region": jet_in_region.reshape(-1),
            "rho": per_event(ak.to_numpy(events.fixedGridRhoFastjetCentralNeutral).astype(np.float64)[passed]),
            "npvs": per_event(ak.to_numpy(events.PV.npvs).astype(np.int32)[passed]),
            "jet_pt": pt.reshape(-1),
            "jet_eta": eta.reshape(-1),
            "jet_phi": phi.reshape(-1),
        }
        names = [name for name, _ in (*JET_QUANTITIES, *JET_EXTENSIONS)]
        has_truth = "genJetIdx" in events.Jet.fields
        _, jet_fields = flat_fields(events.Jet, [*names, "genJetIdx"] if has_truth else names)
        for name, dtype in (*JET_QUANTITIES, *JET_EXTENSIONS):
            out[f"jet_{name}"] = jet_fields[name][lead_flat].astype(dtype)
        if has_truth:
            gen_idx = jet_fields["genJetIdx"][lead_flat].astype(np.int64)
        else:
            gen_idx = np.full(2 * n, -1, dtype=np.int64)
        truth = _gather_truth(events, per_event(selected), gen_idx)
        out["matched"] = truth["matched"]
        for f in ("pt", "eta", "phi", "mass"):
            out[f"gen_{f}"] = truth[f]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["calib_factor"] = np.where(truth["matched"], truth["pt"] / out["jet_pt"], np.nan)
        out.update(_constituents(events, row_of_event, lead_idx, k))
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
