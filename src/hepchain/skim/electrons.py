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
from .common import ColumnSpec, Cutflow, SelectionConfig, chunk_columns, columns_to_arrays, event_weights, run_processor

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


def _flat(x: Any, dtype: Any) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(x, axis=1)), dtype=dtype)


def _filename(events: Any) -> str:
    meta = getattr(events, "metadata", None) or {}
    return str(meta.get("filename", "input file"))


class ZeeProcessor(ProcessorABC):
    """coffea processor of the Z->ee tag-and-probe skim; ``process`` returns ``{"cutflow", "columns"}`` per chunk."""

    def __init__(self, selection: ZeeSelection | None = None, cutflow_only: bool = False) -> None:
        self.selection = selection or ZeeSelection()
        self.cutflow_only = cutflow_only
        self.cutflow = Cutflow(CUTS)
        self.columns = column_spec(self.selection.n_tracks)

    def electron_mask(self, electrons: Any) -> ak.Array:
        """Electrons passing the object selection (pT, |eta|, optional crack veto, loose ID)."""
        s = self.selection
        abs_eta = abs(electrons.eta)
        mask = (
            (electrons.pt > s.electron_pt_min)
            & (abs_eta < s.electron_abs_eta_max)
            & (electrons.cutBased >= s.electron_cut_based_min)
        )
        if s.crack_veto:
            mask = mask & ~((abs_eta > s.crack_min) & (abs_eta < s.crack_max))
        return mask

    def is_tag(self, electrons: Any) -> ak.Array:
        """Selected electrons that may tag the other one (tighter ID and pT)."""
        s = self.selection
        return (electrons.cutBased >= s.tag_cut_based_min) & (electrons.pt > s.tag_pt_min)

    def process(self, events: Any) -> dict[str, Any]:
        """Select one chunk: its cutflow entry and the columns of the probes of the events passing every cut."""
        s = self.selection
        weights = event_weights(events)
        ele = events.Electron
        index = ak.local_index(ele.pt, axis=1)
        sel = self.electron_mask(ele)
        n_sel = _np(ak.sum(sel, axis=1), np.int64)
        two = n_sel == 2
        # the two selected electrons of events with exactly two (dummy zeros elsewhere)
        idx = ak.to_numpy(ak.fill_none(ak.pad_none(index[sel], 2, axis=1, clip=True), 0)).astype(np.int64)
        n_ele = _np(ak.num(ele.pt, axis=1), np.int64)
        offsets = np.cumsum(n_ele) - n_ele
        gidx = offsets[:, None] + idx  # flat electron index of the pair
        flat = {f: _flat(ele[f], np.float64) for f in ("pt", "eta", "phi", "mass")}
        flat_charge = _flat(ele.charge, np.int64)
        flat_tag = _flat(self.is_tag(ele), bool)
        if flat_charge.size:
            pair = {f: np.where(two[:, None], v[np.where(two[:, None], gidx, 0)], 0.0) for f, v in flat.items()}
            charge = np.where(two[:, None], flat_charge[np.where(two[:, None], gidx, 0)], 0)
            tag = two[:, None] & flat_tag[np.where(two[:, None], gidx, 0)]
        else:  # a chunk without any electron
            pair = {f: np.zeros((len(n_ele), 2)) for f in flat}
            charge = np.zeros((len(n_ele), 2), dtype=np.int64)
            tag = np.zeros((len(n_ele), 2), dtype=bool)
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
            columns = self._columns(events, weights, row_evt, probe_g, tag_g, n_ele, m_ee)
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
        row_evt: np.ndarray,
        probe_g: np.ndarray,
        tag_g: np.ndarray,
        n_ele: np.ndarray,
        m_ee: np.ndarray,
    ) -> dict[str, np.ndarray]:
        s = self.selection
        ele = events.Electron
        offsets = np.cumsum(n_ele) - n_ele
        probe_idx = probe_g - offsets[row_evt]
        columns: dict[str, np.ndarray] = {
            "event": _np(events.event, np.uint64)[row_evt],
            "genWeight": weights[row_evt],
            "m_ee": m_ee[row_evt],
            "label_window": (m_ee[row_evt] > s.label_m_ee_min) & (m_ee[row_evt] < s.label_m_ee_max),
            "probe_idx": probe_idx.astype(np.int32),
            "tag_idx": (tag_g - offsets[row_evt]).astype(np.int32),
        }
        for f in ("pt", "eta", "phi"):
            values = _flat(ele[f], np.float64)
            columns[f"tag_{f}"] = values[tag_g]
            columns[f"probe_{f}"] = values[probe_g]
        columns["probe_charge"] = _flat(ele.charge, np.int32)[probe_g]
        columns["probe_cutBased"] = _flat(ele.cutBased, np.int32)[probe_g]
        for f in CLUSTER_FIELDS:
            columns[f"probe_{f}"] = _flat(ele[f], np.float64)[probe_g]
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
        columns.update(self._cells(events, row_evt, probe_idx, probe_g, n_ele))
        columns.update(self._tracks(events, probe_g, n_ele))
        return columns

    @staticmethod
    def _truth_energy(events: Any, row_evt: np.ndarray, probe_g: np.ndarray) -> np.ndarray:
        """Energy of the GenPart matched to each probe (``Electron_genPartIdx``); NaN if unmatched or no GenPart."""
        out = np.full(len(row_evt), np.nan)
        ele = events.Electron
        if "genPartIdx" not in ele.fields or "GenPart" not in events.fields:
            return out
        gen = events.GenPart
        gen_idx = _flat(ele.genPartIdx, np.int64)[probe_g]
        n_gen = _np(ak.num(gen.pt, axis=1), np.int64)
        gen_offsets = np.cumsum(n_gen) - n_gen
        ok = (gen_idx >= 0) & (gen_idx < n_gen[row_evt])
        g = np.where(ok, gen_offsets[row_evt] + gen_idx, 0)
        if ok.any():
            energy = truth_energy(
                _flat(gen.pt, np.float64)[g], _flat(gen.eta, np.float64)[g], _flat(gen.mass, np.float64)[g]
            )
            out = np.where(ok, energy, np.nan)
        return out

    @staticmethod
    def _group(collection: Any, n_ele: np.ndarray, source: str, name: str) -> tuple[np.ndarray, ...]:
        """Group a per-electron collection by electron (vectorised).

        Returns ``(order, key, rank, n_per)``: the stable permutation that sorts
        the flat entries by electron, the flat electron index (``key``, Electron
        offset of the event + ``electronIdx``) and the rank within the electron
        of each sorted entry, and the number of entries of every electron.
        """
        offsets = np.cumsum(n_ele) - n_ele
        n_total = int(n_ele.sum())
        counts = _np(ak.num(collection.electronIdx, axis=1), np.int64)
        evt = np.repeat(np.arange(len(counts)), counts)
        local = _flat(collection.electronIdx, np.int64)
        n_local = n_ele[evt]
        bad = (local < 0) | (local >= n_local)
        if bad.any():
            first = int(np.argmax(bad))
            raise InputFileError(
                f"{source}: {name}_electronIdx = {int(local[first])} in entry {int(evt[first])} of the chunk does not "
                f"point to an electron of the event ({int(n_local[first])} electrons)"
            )
        key = offsets[evt] + local
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        n_per = np.bincount(key, minlength=n_total)
        starts = np.concatenate([[0], np.cumsum(n_per)[:-1]])
        rank = np.arange(len(key)) - starts[sorted_key]
        return order, sorted_key, rank, n_per

    def _cells(
        self, events: Any, row_evt: np.ndarray, probe_idx: np.ndarray, probe_g: np.ndarray, n_ele: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The probes' 310-cell images (energy, time), checked against the documented layout."""
        source = _filename(events)
        n_rows = len(probe_g)
        cells = events.EleCell
        order, key, rank, n_per = self._group(cells, n_ele, source, "EleCell")
        count = n_per[probe_g]
        wrong = count != N_CELLS
        if wrong.any():
            r = int(np.argmax(wrong))
            raise InputFileError(
                f"{source}: electron {int(probe_idx[r])} of event {int(_np(events.event, np.uint64)[row_evt[r]])} has "
                f"{int(count[r])} EleCell cells, expected {N_CELLS} (presampler 7x3, strips 56x3, middle 7x11, "
                "back 4x11; hepchain.detector.calo_images)"
            )
        row_of = np.full(int(n_ele.sum()), -1, dtype=np.int64)
        row_of[probe_g] = np.arange(n_rows)
        r = row_of[key]
        keep = r >= 0
        dest = (r[keep], rank[keep])
        src = order[keep]
        out: dict[str, np.ndarray] = {}
        for f, dtype in (
            ("e", np.float32),
            ("t", np.float32),
            ("layer", np.int64),
            ("ieta", np.int64),
            ("iphi", np.int64),
        ):
            dense = np.zeros((n_rows, N_CELLS), dtype=dtype)
            dense[dest] = _flat(cells[f], dtype)[src]
            out[f] = dense
        self._check_order(out["layer"], out["ieta"], out["iphi"], events, row_evt, probe_idx, source)
        return {"cell_e": out["e"], "cell_t": out["t"]}

    @staticmethod
    def _check_order(
        layer: np.ndarray,
        ieta: np.ndarray,
        iphi: np.ndarray,
        events: Any,
        row_evt: np.ndarray,
        probe_idx: np.ndarray,
        source: str,
    ) -> None:
        """Raise unless every row's cells follow LAYOUT: layer-major, then eta, then phi (phi wraps around)."""
        if not len(layer):
            return
        first = LAYOUT.offsets[:-1][LAYOUT.layer]  # first cell of each cell's layer
        ok = layer == LAYOUT.layer[None, :]
        ok &= (ieta - ieta[:, first]) == LAYOUT.local_eta[None, :]
        nphi = _NPHI[LAYOUT.layer][None, :]
        ok &= np.mod(iphi - iphi[:, first], nphi) == LAYOUT.local_phi[None, :]
        if not ok.all():
            r, c = (int(v) for v in np.argwhere(~ok)[0])
            raise InputFileError(
                f"{source}: EleCell cells of electron {int(probe_idx[r])} of event "
                f"{int(_np(events.event, np.uint64)[row_evt[r]])} are not in the documented order (layer, then ieta, "
                f"then iphi; presampler 7x3, strips 56x3, middle 7x11, back 4x11): cell {c} has layer {int(layer[r, c])}, "
                f"ieta {int(ieta[r, c])}, iphi {int(iphi[r, c])}, expected layer {int(LAYOUT.layer[c])} at local "
                f"(eta, phi) ({int(LAYOUT.local_eta[c])}, {int(LAYOUT.local_phi[c])})"
            )

    def _tracks(self, events: Any, probe_g: np.ndarray, n_ele: np.ndarray) -> dict[str, np.ndarray]:
        """The first K EleTrack entries of each probe (own track first, then by dR, as stored) and the mask."""
        k = self.selection.n_tracks
        n_rows = len(probe_g)
        tracks = events.EleTrack
        order, key, rank, _ = self._group(tracks, n_ele, _filename(events), "EleTrack")
        row_of = np.full(int(n_ele.sum()), -1, dtype=np.int64)
        row_of[probe_g] = np.arange(n_rows)
        r = row_of[key]
        keep = (r >= 0) & (rank < k)
        dest = (r[keep], rank[keep])
        src = order[keep]
        out: dict[str, np.ndarray] = {}
        for f, dtype in _TRACK_DTYPES.items():
            dense = np.zeros((n_rows, k), dtype=dtype)
            dense[dest] = _flat(tracks[f], dtype)[src]
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
