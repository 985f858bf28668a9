"""The Z->ee tag-and-probe skim of the electron energy regression (seed 004).

Selection of the seed (slide "The selection", Z->ee column: pT > 9.5 GeV,
Loose ID, Sum Q = 0, N_ee = 1, else the event is dropped) on CMS NanoAOD
branches; defaults are those of :class:`ZeeSelection`, all inequalities strict:

* electrons: pT > 9.5 GeV, |eta| < 2.47 (ATLAS egamma acceptance), ``cutBased
  >= 2`` (loose).  The barrel-endcap crack is *kept* by default, as in the
  seed, which feeds the crack-scintillator energy E_TC3 (1.4 < |eta| < 1.6) to
  the regression rather than dropping those electrons; ``crack_veto: true``
  removes crack_min < |eta| < crack_max (1.37-1.52, track eta: NanoAOD has no
  supercluster eta in every file);
* tag: a selected electron with ``cutBased >= 4`` (tight) and pT > 25 GeV.

Event cuts, in order, each one a named bit of a ``PackedSelection``:

=================  ==============================================================
``two_electrons``  exactly two selected electrons
``opposite_sign``  their charges sum to zero (with ``two_electrons``: the seed's N_ee = 1)
``tag``            at least one of the two passes the tag requirements
``m_ee_window``    m_ee_min < m_ee < m_ee_max (70-110 GeV: around the Z peak, wide
                   enough for the Breit-Wigner x Crystal-Ball fit of the evaluation)
=================  ==============================================================

Tag and probe: each electron of the pair that passes the tag requirements tags
the *other* one as a probe, so an event where both are tags gives two rows (one
per probe), an event with one tag gives one row.  The cutflow counts events
(raw and weighted); the table has one row per probe, ordered by input file,
entry, then the probe's index in the Electron collection.  The seed's
data-label mass window 86 < m_ee < 97 GeV is the boolean column
``label_window`` (not a cut), so that MC training and the Z-peak fit keep the
full window.

Columns (:data:`COLUMNS`; event quantities repeated on each row of the event):
``event``, ``genWeight`` (1 for data), ``m_ee``, ``label_window``,
``probe_idx`` / ``tag_idx`` (indices in the event's Electron collection, to
pair the two rows of an event), the tag's ``pt``, ``eta``, ``phi``, the
probe's kinematics, ID and seed-004 cluster scalars (``probe_<NanoAOD field>``),
``PV_npvs``, ``Pileup_nTrueInt`` (NaN if absent) and ``Pileup_nPU`` (-1 if
absent), the targets ``probe_energy_truth`` (energy of the GenPart matched by
``Electron_genPartIdx``; NaN if unmatched or without GenPart) and
``probe_energy_zlabel`` (:func:`hepchain.features.electrons.z_constraint_energy`
with the tag's E_T = its calibrated pT), the cell image ``cell_e`` / ``cell_t``
(310 cells in the order of :mod:`hepchain.detector.calo_images`) and the
first K = 10 ``EleTrack`` entries of the probe as ``track_<field>`` with
``track_mask``.

The seed's MC-only requirement that the truth energy match the reconstructed
one ("k = 0.6") is left to the training stage, which sees both energies.
The cells of every probe are checked to be the 310 of the documented layout
(layer, then ieta, then iphi, phi indices wrapping); a failing chunk is
reported through the accumulator (key ``"errors"``) and raised by
:func:`run_electrons_skim` as one :class:`~hepchain.errors.InputFileError`
naming the file, event and electron (an exception inside ``process`` would
be retried and wrapped by coffea).

Branches: :data:`BRANCHES` (standard NanoAOD, read by the selection and by
``cutflow_only``), :data:`COLUMN_BRANCHES` (standard NanoAOD, read by the
columns), :data:`EXTENDED_BRANCHES` (hepchain extensions: cells, tracks,
cluster scalars; simulate with ``store_cells: true``).  Optional: ``genWeight``,
``Pileup_nTrueInt``, ``Pileup_nPU``, ``Electron_genPartIdx`` with ``GenPart``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np
from coffea.processor import ProcessorABC

from ..detector.calo_images import CELL_NANOAOD, ELECTRON_NANOAOD, TRACK_NANOAOD, cell_layout
from ..detector.tune import NOMINAL
from ..errors import ConfigError, InputFileError
from ..features.electrons import M_Z, N_CELLS, truth_energy, z_constraint_energy
from ..features.vh import four_momentum, invariant_mass
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

STAGE = "electrons skim"

#: Standard NanoAOD branches the selection reads (all that ``cutflow_only`` needs).
BRANCHES: tuple[str, ...] = (
    "nElectron",
    *(f"Electron_{f}" for f in ("pt", "eta", "phi", "mass", "charge", "cutBased")),
    "event",
)

#: Standard NanoAOD branches the output columns read besides the selection's.
COLUMN_BRANCHES: tuple[str, ...] = ("PV_npvs",)

#: The probe's seed-004 cluster scalars (hepchain extensions of the Electron collection).
CLUSTER_FIELDS: tuple[str, ...] = tuple(ELECTRON_NANOAOD)
#: Fields of the EleCell and EleTrack collections read by the skim.
CELL_FIELDS: tuple[str, ...] = tuple(CELL_NANOAOD)
TRACK_FIELDS: tuple[str, ...] = tuple(f for f in TRACK_NANOAOD if f != "electronIdx")

#: hepchain-extended branches the feature columns need (absent from standard NanoAOD).
EXTENDED_BRANCHES: tuple[str, ...] = (
    *(f"EleCell_{f}" for f in CELL_FIELDS),
    "nEleCell",
    *(f"EleTrack_{f}" for f in TRACK_NANOAOD),
    "nEleTrack",
    *(f"Electron_{f}" for f in CLUSTER_FIELDS),
)

#: The event cuts, in cutflow order.
CUTS: tuple[str, ...] = ("two_electrons", "opposite_sign", "tag", "m_ee_window")

#: Nearby tracks kept per probe (the seed's "(up to) 10 nearest tracks").
N_TRACKS_DEFAULT = 10

#: The cell order of every probe: layer, local eta, local phi of each of the 310 cells.
LAYOUT = cell_layout(NOMINAL)
_NPHI = np.asarray(NOMINAL.cells_nphi, dtype=np.int64)
# LAYOUT per cell in int32 (the order check runs on int32 copies of the int16 / uint8 cell branches)
_FIRST = LAYOUT.offsets[:-1][LAYOUT.layer]  # first cell of each cell's layer
_LAYER = LAYOUT.layer.astype(np.int32)
_LOCAL_ETA = LAYOUT.local_eta.astype(np.int32)
_LOCAL_PHI = LAYOUT.local_phi.astype(np.int32)
_CELL_NPHI = _NPHI[LAYOUT.layer].astype(np.int32)

_INT_CLUSTER = {f for f, (_, dtype, _) in ELECTRON_NANOAOD.items() if dtype.startswith("int")}
_TRACK_DTYPES = {
    f: ("bool" if dtype == "bool" else "int32" if dtype.startswith("int") else "float32")
    for f, (dtype, _) in TRACK_NANOAOD.items()
    if f != "electronIdx"
}


def column_spec(n_tracks: int = N_TRACKS_DEFAULT) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Output columns (name -> (dtype, row shape)) for ``n_tracks`` tracks per probe."""
    spec: dict[str, tuple[str, tuple[int, ...]]] = {
        "event": ("uint64", ()),
        "genWeight": ("float64", ()),
        "m_ee": ("float64", ()),
        "label_window": ("bool", ()),
        "probe_idx": ("int32", ()),
        "tag_idx": ("int32", ()),
        "tag_pt": ("float64", ()),
        "tag_eta": ("float64", ()),
        "tag_phi": ("float64", ()),
        "probe_pt": ("float64", ()),
        "probe_eta": ("float64", ()),
        "probe_phi": ("float64", ()),
        "probe_charge": ("int32", ()),
        "probe_cutBased": ("int32", ()),
    }
    for f in CLUSTER_FIELDS:
        spec[f"probe_{f}"] = ("int32" if f in _INT_CLUSTER else "float32", ())
    spec.update(
        {
            "PV_npvs": ("int32", ()),
            "Pileup_nTrueInt": ("float32", ()),
            "Pileup_nPU": ("int32", ()),
            "probe_energy_truth": ("float64", ()),
            "probe_energy_zlabel": ("float64", ()),
            "cell_e": ("float32", (N_CELLS,)),
            "cell_t": ("float32", (N_CELLS,)),
        }
    )
    for f, dtype in _TRACK_DTYPES.items():
        spec[f"track_{f}"] = (dtype, (n_tracks,))
    spec["track_mask"] = ("bool", (n_tracks,))
    return spec


#: Output columns of the skim table (default K = 10 tracks): name -> (dtype, row shape).
COLUMNS: ColumnSpec = column_spec()


@dataclass(frozen=True)
class ZeeSelection(SelectionConfig):
    """Thresholds of the Z->ee tag-and-probe selection (GeV; strict inequalities) and the track-set size."""

    label: ClassVar[str] = "Z->ee"

    electron_pt_min: float = 9.5
    electron_abs_eta_max: float = 2.47
    electron_cut_based_min: int = 2
    crack_veto: bool = False
    crack_min: float = 1.37
    crack_max: float = 1.52
    tag_pt_min: float = 25.0
    tag_cut_based_min: int = 4
    m_ee_min: float = 70.0
    m_ee_max: float = 110.0
    label_m_ee_min: float = 86.0
    label_m_ee_max: float = 97.0
    m_z: float = M_Z
    n_tracks: int = N_TRACKS_DEFAULT

    def __post_init__(self) -> None:
        self.check_numbers()
        for low, high in (("crack_min", "crack_max"), ("m_ee_min", "m_ee_max"), ("label_m_ee_min", "label_m_ee_max")):
            if getattr(self, low) >= getattr(self, high):
                raise ConfigError(
                    f"selection: {low} ({getattr(self, low)}) must be below {high} ({getattr(self, high)})"
                )
        if self.n_tracks < 1:
            raise ConfigError(f"selection key 'n_tracks' must be at least 1, got {self.n_tracks}")
        if self.m_z <= 0:
            raise ConfigError(f"selection key 'm_z' must be positive, got {self.m_z}")



def _np(x: Any, dtype: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(x), dtype=dtype)


def _filename(events: Any) -> str:
    meta = getattr(events, "metadata", None) or {}
    return str(meta.get("filename", "input file"))


#: Electron fields the selection reads (all in :data:`BRANCHES`).
_SELECTION_FIELDS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "charge", "cutBased")


def _f64(x: Any) -> Any:
    """Flat numpy fields in float64 (awkward compares float32 branches with Python floats in float64)."""
    return x.astype(np.float64) if isinstance(x, np.ndarray) else x


def _exact_int(x: np.ndarray) -> np.ndarray:
    """Integer copy for the order check: int32 for branches of at most 16 bits (differences cannot overflow), else int64."""
    return x.astype(np.int32 if x.dtype.kind in "iub" and x.dtype.itemsize <= 2 else np.int64)


class ZeeProcessor(ProcessorABC):
    """coffea processor of the Z->ee tag-and-probe skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: ZeeSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or ZeeSelection()
        self.cutflow_only = cutflow_only
        self.cutflow = Cutflow(CUTS)
        self.columns = column_spec(self.selection.n_tracks)

    def electron_mask(self, electrons: Any) -> Any:
        """Electrons passing the object selection (pT, |eta|, optional crack veto, loose ID).

        ``electrons``: the Electron collection, or a mapping of its flat numpy fields.
        """
        s = self.selection
        abs_eta = abs(_f64(electrons["eta"]))
        mask = (
            (_f64(electrons["pt"]) > s.electron_pt_min)
            & (abs_eta < s.electron_abs_eta_max)
            & (electrons["cutBased"] >= s.electron_cut_based_min)
        )
        if s.crack_veto:
            mask = mask & ~((abs_eta > s.crack_min) & (abs_eta < s.crack_max))
        return mask

    def is_tag(self, electrons: Any) -> Any:
        """Selected electrons that may tag the other one (tighter ID and pT); same inputs as :meth:`electron_mask`."""
        s = self.selection
        return (electrons["cutBased"] >= s.tag_cut_based_min) & (_f64(electrons["pt"]) > s.tag_pt_min)

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the probes of the events passing every cut."""
        s = self.selection
        n = len(events)
        weights = event_weights(events)
        # flat numpy fields, read once; awkward only to read them
        fields = _SELECTION_FIELDS if self.cutflow_only else (*_SELECTION_FIELDS, *CLUSTER_FIELDS)
        n_ele, ele = flat_fields(events.Electron, fields)
        offsets = np.cumsum(n_ele) - n_ele
        sel_g = np.flatnonzero(self.electron_mask(ele))  # flat indices of the selected electrons
        n_sel = np.bincount(np.repeat(np.arange(n), n_ele)[sel_g], minlength=n)
        two = n_sel == 2
        # flat indices of the two selected electrons of events with exactly two (zeros elsewhere)
        first = (np.cumsum(n_sel) - n_sel)[two]
        gidx = np.zeros((n, 2), dtype=np.int64)
        gidx[two, 0] = sel_g[first]
        gidx[two, 1] = sel_g[first + 1]
        pick = gidx[two]
        pair = {}
        for f in ("pt", "eta", "phi", "mass"):
            v = np.zeros((n, 2))
            v[two] = ele[f][pick]
            pair[f] = v
        charge = np.zeros((n, 2), dtype=np.int64)
        charge[two] = ele["charge"][pick]
        tag = np.zeros((n, 2), dtype=bool)
        tag[two] = self.is_tag(ele)[pick]
        m_ee = invariant_mass(
            four_momentum(pair["pt"][:, 0], pair["eta"][:, 0], pair["phi"][:, 0], pair["mass"][:, 0]),
            four_momentum(pair["pt"][:, 1], pair["eta"][:, 1], pair["phi"][:, 1], pair["mass"][:, 1]),
        )
        masks = {
            "two_electrons": two,
            "opposite_sign": two & (charge.sum(axis=1) == 0),
            "tag": tag.any(axis=1),
            "m_ee_window": two & (m_ee > s.m_ee_min) & (m_ee < s.m_ee_max),
        }
        selection = self.cutflow.selection(masks)
        passed = np.asarray(selection.all(*CUTS), dtype=bool)
        key_cutflow = self.cutflow.fill(selection, weights)
        if self.cutflow_only:
            chunk = chunk_columns(events, {})
            (key,) = chunk
            return {"cutflow": {key: key_cutflow}, "columns": chunk}

        # rows: electron j of the pair is a probe when the other one (1 - j) is a tag
        probe_of_pair = passed[:, None] & tag[:, ::-1]
        row_evt, row_j = np.nonzero(probe_of_pair)  # event-major, then pair position (= Electron index order)
        probe_g = gidx[row_evt, row_j]
        tag_g = gidx[row_evt, 1 - row_j]
        try:
            columns = self._columns(events, weights, ele, row_evt, probe_g, tag_g, n_ele, offsets, m_ee)
        except InputFileError as exc:
            # reported by run_electrons_skim: an exception here would be retried and wrapped by coffea
            chunk = chunk_columns(events, {})
            (key,) = chunk
            return {"cutflow": {key: key_cutflow}, "columns": chunk, "errors": {key: str(exc)}}
        chunk = chunk_columns(events, {c: columns[c] for c in self.columns})
        (key,) = chunk
        return {"cutflow": {key: key_cutflow}, "columns": chunk}

    def _columns(
        self,
        events: Any,
        weights: np.ndarray,
        ele: dict[str, np.ndarray],
        row_evt: np.ndarray,
        probe_g: np.ndarray,
        tag_g: np.ndarray,
        n_ele: np.ndarray,
        offsets: np.ndarray,
        m_ee: np.ndarray,
    ) -> dict[str, np.ndarray]:
        s = self.selection
        event = _np(events.event, np.uint64)
        probe_idx = probe_g - offsets[row_evt]
        columns: dict[str, np.ndarray] = {
            "event": event[row_evt],
            "genWeight": weights[row_evt],
            "m_ee": m_ee[row_evt],
            "label_window": (m_ee[row_evt] > s.label_m_ee_min) & (m_ee[row_evt] < s.label_m_ee_max),
            "probe_idx": probe_idx.astype(np.int32),
            "tag_idx": (tag_g - offsets[row_evt]).astype(np.int32),
        }
        for f in ("pt", "eta", "phi"):
            columns[f"tag_{f}"] = ele[f][tag_g].astype(np.float64)
            columns[f"probe_{f}"] = ele[f][probe_g].astype(np.float64)
        columns["probe_charge"] = ele["charge"][probe_g].astype(np.int32)
        columns["probe_cutBased"] = ele["cutBased"][probe_g].astype(np.int32)
        for f in CLUSTER_FIELDS:
            columns[f"probe_{f}"] = ele[f][probe_g].astype(np.float64)
        columns["PV_npvs"] = _np(events.PV.npvs, np.int32)[row_evt]
        pileup = events.Pileup if "Pileup" in events.fields else None
        has_true = pileup is not None and "nTrueInt" in pileup.fields
        has_npu = pileup is not None and "nPU" in pileup.fields
        columns["Pileup_nTrueInt"] = (
            _np(pileup.nTrueInt, np.float32)[row_evt] if has_true else np.full(len(row_evt), np.nan, np.float32)
        )
        columns["Pileup_nPU"] = _np(pileup.nPU, np.int32)[row_evt] if has_npu else np.full(len(row_evt), -1, np.int32)
        columns["probe_energy_truth"] = self._truth_energy(events, row_evt, probe_g)
        columns["probe_energy_zlabel"] = z_constraint_energy(
            columns["tag_pt"], columns["tag_eta"], columns["tag_phi"], columns["probe_eta"], columns["probe_phi"], s.m_z
        )
        columns.update(self._cells(events, event, row_evt, probe_idx, probe_g, n_ele, offsets))
        columns.update(self._tracks(events, probe_g, n_ele, offsets))
        return columns

    @staticmethod
    def _truth_energy(events: Any, row_evt: np.ndarray, probe_g: np.ndarray) -> np.ndarray:
        """Energy of the GenPart matched to each probe (``Electron_genPartIdx``); NaN if unmatched or no GenPart."""
        out = np.full(len(row_evt), np.nan)
        ele = events.Electron
        if not len(row_evt) or "genPartIdx" not in ele.fields or "GenPart" not in events.fields:
            return out
        _, idx = flat_fields(ele, ("genPartIdx",))
        gen_idx = idx["genPartIdx"][probe_g].astype(np.int64)
        n_gen, gen = flat_fields(events.GenPart, ("pt", "eta", "mass"))
        gen_offsets = np.cumsum(n_gen) - n_gen
        ok = (gen_idx >= 0) & (gen_idx < n_gen[row_evt])
        g = np.where(ok, gen_offsets[row_evt] + gen_idx, 0)
        if ok.any():
            energy = truth_energy(
                gen["pt"][g].astype(np.float64), gen["eta"][g].astype(np.float64), gen["mass"][g].astype(np.float64)
            )
            out = np.where(ok, energy, np.nan)
        return out

    @staticmethod
    def _group(
        counts: np.ndarray,
        local: np.ndarray,
        n_ele: np.ndarray,
        offsets: np.ndarray,
        probe_g: np.ndarray,
        source: str,
        name: str,
    ) -> tuple[np.ndarray, ...]:
        """Group the entries of a per-electron collection that belong to the probes (vectorised).

        ``counts``: entries per event; ``local``: their flat ``electronIdx``
        (checked for every entry); ``probe_g``: the flat Electron index of each
        row (probe).  Returns ``(src, run_row, run_len, n_per)``: the flat
        indices of the probes' entries ordered by row, then flat position; the
        row and length of each run of consecutive ``src`` entries (runs: equal
        ``electronIdx`` within an event, one per electron when the entries are
        grouped, as written, so the per-entry work is a few passes over
        ``local``); the number of entries of every row.
        """
        n_entries = len(local)
        ends = np.cumsum(counts)
        starts = ends - counts
        filled = np.flatnonzero(counts)
        if len(filled):  # per-event extremes: an entry is bad if it lies outside [0, electrons of its event)
            low = np.minimum.reduceat(local, starts[filled])
            high = np.maximum.reduceat(local, starts[filled])
            bad_evt = filled[(low < 0) | (high >= n_ele[filled])]
            if len(bad_evt):
                evt = int(bad_evt[0])
                entries = local[starts[evt] : ends[evt]]
                first = int(np.argmax((entries < 0) | (entries >= n_ele[evt])))
                raise InputFileError(
                    f"{source}: {name}_electronIdx = {int(entries[first])} in entry {evt} of the chunk does not "
                    f"point to an electron of the event ({int(n_ele[evt])} electrons)"
                )
        n_rows = len(probe_g)
        row_of = np.full(int(n_ele.sum()), -1, dtype=np.int64)
        row_of[probe_g] = np.arange(n_rows)
        # runs: maximal stretches of one electronIdx within one event
        brk = np.ones(n_entries, dtype=bool)
        np.not_equal(local[1:], local[:-1], out=brk[1:])
        brk[starts[filled]] = True
        run_start = np.flatnonzero(brk)
        run_len = np.diff(np.append(run_start, n_entries))
        run_evt = np.searchsorted(ends, run_start, side="right")
        run_row = row_of[offsets[run_evt] + local[run_start]]
        runs = np.flatnonzero(run_row >= 0)
        runs = runs[np.argsort(run_row[runs], kind="stable")]  # by row, then flat position
        run_start, run_len, run_row = run_start[runs], run_len[runs], run_row[runs]
        n_per = np.bincount(run_row, weights=run_len, minlength=n_rows).astype(np.int64)
        src = np.repeat(run_start - (np.cumsum(run_len) - run_len), run_len) + np.arange(int(run_len.sum()))
        return src, run_row, run_len, n_per

    def _cells(
        self,
        events: Any,
        event: np.ndarray,
        row_evt: np.ndarray,
        probe_idx: np.ndarray,
        probe_g: np.ndarray,
        n_ele: np.ndarray,
        offsets: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """The probes' 310-cell images (energy, time), checked against the documented layout."""
        source = _filename(events)
        n_rows = len(probe_g)
        counts, cells = flat_fields(events.EleCell, CELL_FIELDS)
        src, _, _, count = self._group(counts, cells["electronIdx"], n_ele, offsets, probe_g, source, "EleCell")
        wrong = count != N_CELLS
        if wrong.any():
            r = int(np.argmax(wrong))
            raise InputFileError(
                f"{source}: electron {int(probe_idx[r])} of event {int(event[row_evt[r]])} has "
                f"{int(count[r])} EleCell cells, expected {N_CELLS} (presampler 7x3, strips 56x3, middle 7x11, "
                "back 4x11; hepchain.detector.calo_images)"
            )
        # every row has exactly N_CELLS entries, sorted by row: a plain reshape
        out = {f: cells[f][src].reshape(n_rows, N_CELLS) for f in CELL_FIELDS if f != "electronIdx"}
        self._check_order(
            *(_exact_int(out[f]) for f in ("layer", "ieta", "iphi")), event, row_evt, probe_idx, source
        )
        return {"cell_e": out["e"].astype(np.float32, copy=False), "cell_t": out["t"].astype(np.float32, copy=False)}

    @staticmethod
    def _check_order(
        layer: np.ndarray,
        ieta: np.ndarray,
        iphi: np.ndarray,
        event: np.ndarray,
        row_evt: np.ndarray,
        probe_idx: np.ndarray,
        source: str,
    ) -> None:
        """Raise unless every row's cells follow LAYOUT: layer-major, then eta, then phi (phi wraps around)."""
        if not len(layer):
            return
        ok = layer == _LAYER
        ok &= (ieta - ieta[:, _FIRST]) == _LOCAL_ETA
        ok &= np.mod(iphi - iphi[:, _FIRST], _CELL_NPHI) == _LOCAL_PHI
        if not ok.all():
            r, c = (int(v) for v in np.argwhere(~ok)[0])
            raise InputFileError(
                f"{source}: EleCell cells of electron {int(probe_idx[r])} of event "
                f"{int(event[row_evt[r]])} are not in the documented order (layer, then ieta, "
                f"then iphi; presampler 7x3, strips 56x3, middle 7x11, back 4x11): cell {c} has layer {int(layer[r, c])}, "
                f"ieta {int(ieta[r, c])}, iphi {int(iphi[r, c])}, expected layer {int(LAYOUT.layer[c])} at local "
                f"(eta, phi) ({int(LAYOUT.local_eta[c])}, {int(LAYOUT.local_phi[c])})"
            )

    def _tracks(self, events: Any, probe_g: np.ndarray, n_ele: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
        """The first K EleTrack entries of each probe (own track first, then by dR, as stored) and the mask."""
        k = self.selection.n_tracks
        n_rows = len(probe_g)
        counts, tracks = flat_fields(events.EleTrack, ("electronIdx", *_TRACK_DTYPES))
        src, run_row, run_len, n_per = self._group(
            counts, tracks["electronIdx"], n_ele, offsets, probe_g, _filename(events), "EleTrack"
        )
        row = np.repeat(run_row, run_len)
        rank = np.arange(len(src)) - (np.cumsum(n_per) - n_per)[row]  # position within the row
        keep = rank < k
        dest = (row[keep], rank[keep])
        src = src[keep]
        out: dict[str, np.ndarray] = {}
        for f, dtype in _TRACK_DTYPES.items():
            dense = np.zeros((n_rows, k), dtype=dtype)
            dense[dest] = tracks[f][src]
            out[f"track_{f}"] = dense
        mask = np.zeros((n_rows, k), dtype=bool)
        mask[dest] = True
        out["track_mask"] = mask
        return out

    def postprocess(self, accumulator: Any) -> Any:
        """Nothing to do: merging is done by :func:`run_electrons_skim`."""
        return accumulator


#: Why a file may lack an extended branch, and what to do.
HINT = (
    "the electrons study needs the extended hepchain ntuples with cell images, nearby tracks and cluster scalars "
    "(EleCell_*, EleTrack_*, Electron_energyCluster ...): simulate with store_cells: true; "
    "--cutflow-only runs the selection alone on standard NanoAOD"
)


def run_electrons_skim(
    files: Sequence[str],
    *,
    selection: ZeeSelection | None = None,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    cutflow_only: bool = False,
    scheduler: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run the Z->ee tag-and-probe skim over ``files``; return the skim table (dict of arrays) and the cutflow.

    The table has the columns of :func:`column_spec` (:data:`COLUMNS` for the
    default 10 tracks), one row per probe electron in input file, entry and
    probe order; with ``cutflow_only`` only :data:`BRANCHES` are read and the
    columns are empty.  A probe whose cells are not the 310 of the documented
    layout raises :class:`~hepchain.errors.InputFileError` naming the file,
    the event and the electron (the first such chunk in file-then-entry order).  The cutflow is ``{"cuts": [{"name", "raw", "weighted"},
    ...], "sumw", "n_events", "selection"}`` with the cuts of :data:`CUTS`
    after ``all`` (events, not probes).  ``scheduler``: the dask scheduler
    address (dask executor only).
    """
    files = [str(f) for f in files]
    processor = ZeeProcessor(selection, cutflow_only=cutflow_only)
    branches = BRANCHES if cutflow_only else (*BRANCHES, *COLUMN_BRANCHES, *EXTENDED_BRANCHES)
    out = run_processor(
        files,
        processor,
        branches=branches,
        stage=STAGE,
        executor=executor,
        workers=workers,
        chunksize=chunksize,
        hint=HINT,
        scheduler=scheduler,
    )
    errors = out.get("errors") or {}
    if errors:
        position = {f: i for i, f in enumerate(files)}
        first = min(errors, key=lambda k: (position.get(k[0], len(position)), k[0], k[1]))
        raise InputFileError(errors[first])
    table = columns_to_arrays(out["columns"], files, processor.columns)
    cutflow = processor.cutflow.finalize(out["cutflow"])
    cutflow["selection"] = processor.selection.to_dict()
    return table, cutflow
