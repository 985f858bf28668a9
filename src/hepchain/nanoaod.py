"""The ntuple contract: NanoAOD branch names, types and the writer.

Generated ntuples follow CMS NanoAOD naming (``Events`` tree, ``nX`` counters,
``X_pt``-style branches) so that :class:`coffea.nanoevents.NanoAODSchema` reads
them and so that a real NanoAOD file runs through the same skims.

The collections written by :mod:`hepchain.detector` are listed in
:data:`CONTRACT`, one place for every branch with its meaning and unit.  What
NanoAOD has no name for is kept out of the standard names:

``EleCell``
    calorimeter cells around each electron (4 LAr layers: presampler 7x3,
    strips 56x3, middle 7x11, back 4x11 cells in eta x phi = 310 per electron),
    in a fixed order per electron (layer, then ieta, then iphi), so that
    ``EleCell_e`` reshapes to ``(n_electrons, 310)`` without loops; written only
    when ``detector.store_cells`` (or the sample's ``simulate.store_cells``) is on.
``EleTrack``
    up to 10 tracks within dR < 0.4 of each electron (its own first).
``Electron_energyCluster`` ... ``Electron_ptTrack``
    the cluster energy and the scalars of seed 004 (hepchain extensions).
``Jet_nTracks``, ``Jet_trackWidth``, ``Jet_emFrac``
    the seed-002 jet quantities NanoAOD has no name for.

``PFCands``/``JetPFCands`` (PFNano style) are optional as well
(``store_pfcands``): about 1100 candidates per event at mu = 20.

Reproducibility: ROOT files carry creation timestamps and UUIDs.  The writer
pins both (timestamp from ``SOURCE_DATE_EPOCH`` or 2026-01-01, UUIDs derived
from the file's content seed) so that the same config gives the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from .detector.calo_images import CELL_NANOAOD, ELECTRON_NANOAOD, TRACK_NANOAOD
from .errors import InputFileError, MissingBranchError

#: Every collection and scalar branch the simulation writes: name -> {field: (dtype, doc)}.
#: Scalars use the field name "" (the branch is the collection name itself).
CONTRACT: dict[str, dict[str, tuple[str, str]]] = {
    "Electron": {
        "pt": ("float32", "transverse momentum after energy smearing [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "charge": ("int32", "electric charge"),
        "pdgId": ("int32", "PDG id (+-11)"),
        "pfRelIso03_all": ("float32", "PF relative isolation, dR < 0.3"),
        "cutBased": ("int32", "cut-based ID: 0 fail, 1 veto, 2 loose, 3 medium, 4 tight"),
        "dxy": ("float32", "transverse impact parameter [cm]"),
        "dz": ("float32", "longitudinal impact parameter [cm]"),
        "genPartIdx": ("int32", "index of matched GenPart (-1 if none)"),
        "genPartFlav": ("uint8", "1 prompt, 15 from tau, 5 from b, 4 from c, 3 light/unknown, 0 unmatched"),
        # calorimeter cluster and seed-004 scalars (hepchain.detector.calo_images)
        **{name: (dtype, doc) for name, (_, dtype, doc) in ELECTRON_NANOAOD.items()},
    },
    "Muon": {
        "pt": ("float32", "transverse momentum after track smearing [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "charge": ("int32", "electric charge"),
        "pdgId": ("int32", "PDG id (+-13)"),
        "pfRelIso03_all": ("float32", "PF relative isolation, dR < 0.3"),
        "pfRelIso04_all": ("float32", "PF relative isolation, dR < 0.4"),
        "tightId": ("bool", "tight muon ID"),
        "mediumId": ("bool", "medium muon ID"),
        "dxy": ("float32", "transverse impact parameter [cm]"),
        "dz": ("float32", "longitudinal impact parameter [cm]"),
        "genPartIdx": ("int32", "index of matched GenPart (-1 if none)"),
        "genPartFlav": ("uint8", "1 prompt, 15 from tau, 5 from b, 4 from c, 3 light/unknown, 0 unmatched"),
    },
    "Jet": {
        "pt": ("float32", "calibrated transverse momentum [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "area": ("float32", "jet catchment area (pi R^2 approximation)"),
        "btagDeepFlavB": ("float32", "b-tag score, DeepJet-like working points"),
        "jetId": ("int32", "jet ID bits (2 tight, 6 tight+lepton veto)"),
        "puId": ("int32", "pile-up ID bits (7 = passes tight)"),
        "hadronFlavour": ("int32", "truth hadron flavour: 5 b, 4 c, 0 light"),
        "genJetIdx": ("int32", "index of matched GenJet (-1 if none)"),
        "nConstituents": ("int32", "number of PF constituents"),
        "rawFactor": ("float32", "1 - raw pt / pt"),
        "chHEF": ("float32", "charged-hadron energy fraction of the raw jet energy"),
        "neHEF": ("float32", "neutral-hadron energy fraction"),
        "chEmEF": ("float32", "electron energy fraction"),
        "neEmEF": ("float32", "photon energy fraction"),
        "muEF": ("float32", "muon energy fraction"),
        "nElectrons": ("int32", "PF electrons in the jet"),
        "nMuons": ("int32", "PF muons in the jet"),
        "nTracks": ("int32", "hepchain: PV tracks with pT > 1 GeV in the jet (ATLAS N_track)"),
        "trackWidth": ("float32", "hepchain: pT-weighted mean dR of those tracks to the jet axis, -1 if none (ATLAS W_track)"),
        "emFrac": ("float32", "hepchain: EM-section share of the signal of the jet's calorimeter towers, -1 if none"),
    },
    "GenJet": {
        "pt": ("float32", "transverse momentum [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "hadronFlavour": ("int32", "truth hadron flavour"),
    },
    "GenPart": {
        "pt": ("float32", "transverse momentum [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "pdgId": ("int32", "PDG id"),
        "status": ("int32", "Pythia status code (1 final state)"),
        "statusFlags": ("int32", "NanoAOD status bits: 0 isPrompt, 2 isTauDecayProduct, 7 isHardProcess, 8 fromHardProcess, 13 isLastCopy"),
        "genPartIdxMother": ("int32", "index of the mother in GenPart (-1 if none kept)"),
    },
    "EleCell": {k: (dtype, doc) for k, (dtype, doc) in CELL_NANOAOD.items()},
    "EleTrack": {k: (dtype, doc) for k, (dtype, doc) in TRACK_NANOAOD.items()},
    "Tau": {
        "pt": ("float32", "visible transverse momentum: HPS signal prongs + pi0 strips [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "visible mass [GeV]"),
        "charge": ("int32", "sum of signal prong charges (+-1)"),
        "decayMode": ("int32", "HPS decay mode: 0 h, 1 h pi0, 2 h 2pi0, 10 3h, 11 3h pi0"),
        "idDecayModeNewDMs": ("bool", "decay-mode finding (new DMs); always true for stored taus"),
        "idDecayModeOldDMs": ("bool", "decay mode is 0, 1, 2 or 10"),
        "leadTkPtOverTauPt": ("float32", "leading track pT / tau pT"),
        "leadTkDeltaEta": ("float32", "leading track eta - tau eta"),
        "leadTkDeltaPhi": ("float32", "leading track phi - tau phi"),
        "chargedIso": ("float32", "PV charged PF pT in dR < 0.5, signal excluded [GeV]"),
        "neutralIso": ("float32", "photon pT in dR < 0.5, signal excluded [GeV]"),
        "puCorr": ("float32", "pile-up charged PF pT in dR < 0.8 [GeV]"),
        "rawIso": ("float32", "chargedIso + max(0, neutralIso - 0.2 puCorr) [GeV]"),
        "photonsOutsideSignalCone": ("float32", "pT of strip photons outside the signal cone [GeV]"),
        "dxy": ("float32", "transverse impact parameter of the leading track [cm]"),
        "dz": ("float32", "longitudinal impact parameter of the leading track [cm]"),
        "jetIdx": ("int32", "index of the seed Jet"),
        "genPartIdx": ("int32", "GenVisTau index if genPartFlav = 5, GenPart index if 1-4, else -1 (as NanoAOD)"),
        "genPartFlav": ("uint8", "1 prompt e, 2 prompt mu, 3 e from tau, 4 mu from tau, 5 hadronic tau, 0 unmatched"),
        "rawDeepTau2017v2p1VSjet": ("float32", "DeepTau-like score against jets [0, 1]"),
        "rawDeepTau2017v2p1VSe": ("float32", "DeepTau-like score against electrons [0, 1]"),
        "rawDeepTau2017v2p1VSmu": ("float32", "DeepTau-like score against muons [0, 1]"),
        "idDeepTau2017v2p1VSjet": ("uint8", "cumulative WP bits vs jets: 1 VVVLoose ... 16 Medium ... 128 VVTight"),
        "idDeepTau2017v2p1VSe": ("uint8", "cumulative WP bits vs electrons: 1 VVVLoose ... 128 VVTight"),
        "idDeepTau2017v2p1VSmu": ("uint8", "cumulative WP bits vs muons: 1 VLoose, 2 Loose, 4 Medium, 8 Tight"),
    },
    "GenVisTau": {
        "pt": ("float32", "visible transverse momentum of a hadronic tau decay (non-neutrino products) [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "visible mass [GeV]"),
        "charge": ("int32", "tau charge"),
        "status": ("int32", "decay mode: 0 h, 1 h pi0, 2 h 2pi0, 10 3h, 11 3h pi0, 15 other"),
        "genPartIdxMother": ("int32", "index of the tau (last copy) in GenPart"),
    },
    "PFCands": {
        "pt": ("float32", "transverse momentum [GeV]"),
        "eta": ("float32", "pseudorapidity"),
        "phi": ("float32", "azimuth"),
        "mass": ("float32", "mass [GeV]"),
        "charge": ("int32", "electric charge"),
        "pdgId": ("int32", "PF type: 211 charged hadron, 130 neutral hadron, 22 photon, 11 electron, 13 muon"),
        "fromPV": ("int32", "vertex association: 3 primary vertex, 0 pile-up vertex or neutral"),
        "d0": ("float32", "transverse impact parameter [cm] (0 for neutrals)"),
        "dz": ("float32", "longitudinal impact parameter [cm] (0 for neutrals)"),
        "d0Err": ("float32", "uncertainty of d0 [cm]"),
        "dzErr": ("float32", "uncertainty of dz [cm]"),
    },
    "JetPFCands": {
        "jetIdx": ("int32", "index of the jet"),
        "pFCandsIdx": ("int32", "index of the PF candidate"),
    },
    "MET": {
        "pt": ("float32", "PF missing transverse momentum [GeV]"),
        "phi": ("float32", "azimuth"),
        "sumEt": ("float32", "scalar sum of PF candidate ET [GeV]"),
        "covXX": ("float32", "MET covariance xx [GeV^2]"),
        "covXY": ("float32", "MET covariance xy [GeV^2]"),
        "covYY": ("float32", "MET covariance yy [GeV^2]"),
        "significance": ("float32", "MET^T cov^-1 MET (log-likelihood-ratio significance)"),
    },
    "TkMET": {
        "pt": ("float32", "track MET from PV charged PF candidates [GeV]"),
        "phi": ("float32", "azimuth"),
        "sumEt": ("float32", "scalar sum of PV track pT [GeV]"),
    },
    "GenMET": {
        "pt": ("float32", "vector sum of neutrinos (and invisible particles) [GeV]"),
        "phi": ("float32", "azimuth"),
    },
    "PV": {
        "x": ("float32", "primary vertex x [cm]"),
        "y": ("float32", "primary vertex y [cm]"),
        "z": ("float32", "primary vertex z [cm]"),
        "npvs": ("int32", "number of reconstructed vertices"),
        "npvsGood": ("int32", "number of good reconstructed vertices"),
    },
    "Pileup": {
        "nTrueInt": ("float32", "mean number of interactions (mu)"),
        "nPU": ("int32", "number of overlaid pile-up interactions"),
    },
    "SoftActivityJetHT": {"": ("float32", "scalar pT sum of soft track jets (pT > 1 GeV) away from leptons and jets [GeV]")},
    "genWeight": {"": ("float32", "generator weight")},
    "fixedGridRhoFastjetCentralNeutral": {
        "": ("float32", "median pT density of neutral PF candidates on an eta-phi grid in |eta| < 2.5 [GeV per unit area]")
    },
}


def conform(arrays: dict[str, Any]) -> dict[str, Any]:
    """Cast every collection of :data:`CONTRACT` present in ``arrays`` to the contract's dtypes."""
    out = dict(arrays)
    for name, fields in CONTRACT.items():
        if name not in out:
            continue
        value = out[name]
        if "" in fields:
            out[name] = ak.values_astype(value, np.dtype(fields[""][0])) if isinstance(value, ak.Array) else np.asarray(value, dtype=fields[""][0])
            continue
        missing = [f for f in fields if f not in value.fields]
        if missing:
            raise ValueError(f"collection {name}: field '{missing[0]}' of the ntuple contract is not filled")
        out[name] = ak.zip({f: ak.values_astype(value[f], np.dtype(dt)) for f, (dt, _) in fields.items()}, depth_limit=value.ndim)
    return out


def _fixed_now() -> _dt.datetime:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "1767225600"))  # 2026-01-01T00:00:00Z
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.timezone.utc).replace(tzinfo=None)


@contextlib.contextmanager
def _pinned_uproot_clock() -> Iterator[None]:
    """Make uproot's writers stamp a fixed time, so that files are bit-reproducible."""
    import uproot.writing._cascade as cascade
    import uproot.writing._cascadentuple as cascadentuple
    import uproot.writing._cascadetree as cascadetree
    import uproot.writing.writable as writable

    class _FixedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> _dt.datetime:
            return _fixed_now()

    shim = types.SimpleNamespace(datetime=_FixedDatetime, timezone=_dt.timezone, timedelta=_dt.timedelta)
    modules = (cascade, cascadetree, cascadentuple, writable)
    saved = [m.datetime for m in modules]
    try:
        for m in modules:
            m.datetime = shim  # type: ignore[assignment]
        yield
    finally:
        for m, s in zip(modules, saved, strict=True):
            m.datetime = s  # type: ignore[assignment]


def _uuid_factory(seed: str) -> Any:
    counter = iter(range(1 << 30))

    def make() -> uuid.UUID:
        digest = hashlib.sha256(f"{seed}:{next(counter)}".encode()).digest()
        return uuid.UUID(bytes=digest[:16], version=4)

    return make


def _types_of(arrays: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in arrays.items():
        out[name] = value.type if isinstance(value, ak.Array) else np.asarray(value).dtype
    return out


class NanoAODWriter:
    """Stream blocks of events into a NanoAOD-schema ``Events`` tree, atomically.

    Each block maps a collection name to a record array (``ak.zip`` of
    per-object fields, jagged; or flat for per-event records such as ``MET``)
    or a branch name to a flat array.  ``run``, ``luminosityBlock`` and
    ``event`` are required (NanoAODSchema needs them).  The file appears under
    its final name only when the writer closes without error.
    """

    def __init__(self, path: str | Path, *, seed: str = "hepchain") -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.seed = seed
        self._stack: contextlib.ExitStack | None = None
        self._file: Any = None
        self._tree: Any = None
        self.n_events = 0

    def __enter__(self) -> NanoAODWriter:
        import uproot

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(_pinned_uproot_clock())
        self._file = self._stack.enter_context(
            uproot.recreate(self.tmp, uuid_function=_uuid_factory(self.seed), compression=uproot.ZLIB(4))
        )
        return self

    def extend(self, arrays: Mapping[str, Any]) -> None:
        for required in ("run", "luminosityBlock", "event"):
            if required not in arrays:
                raise ValueError(f"NanoAODWriter({self.path}): branch '{required}' is required by NanoAODSchema")
        if self._tree is None:
            self._tree = self._file.mktree(
                "Events",
                _types_of(arrays),
                counter_name=lambda counter: "n" + counter,
                field_name=lambda outer, inner: f"{outer}_{inner}",
            )
        self._tree.extend(dict(arrays))
        self.n_events += len(arrays["event"])

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._stack is not None
        self._stack.close()
        if exc_type is None and self._tree is not None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_nanoaod(path: str | Path, arrays: Mapping[str, Any], *, seed: str = "hepchain", basket_events: int = 50_000) -> None:
    """Write ``arrays`` (see :class:`NanoAODWriter`) in one go, atomically."""
    n = len(arrays["event"]) if "event" in arrays else 0
    with NanoAODWriter(path, seed=seed) as writer:
        for start in range(0, max(n, 1), basket_events):
            writer.extend({k: v[start : start + basket_events] for k, v in arrays.items()})


def open_events(path: str, stage: str) -> Any:
    """Open the ``Events`` tree of a NanoAOD file with uproot, with one-line errors."""
    import uproot

    if "://" not in path and not Path(path).exists():
        raise InputFileError(f"{path}: input file does not exist (needed by {stage})")
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises several types for corrupt files
        reason = " ".join(str(exc).split())  # uproot's messages span lines; ours is one line
        raise InputFileError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {reason})") from exc
    if "Events" not in f:
        keys = ", ".join(k.split(";")[0] for k in f.keys(recursive=False)) or "nothing"
        raise InputFileError(f"{path}: no 'Events' tree, so not NanoAOD (file holds {keys}); {stage} needs a NanoAOD file")
    return f["Events"]


def require_branches(
    path: str, tree: Any, branches: list[str], stage: str, hint: str | Callable[[str], str] = ""
) -> None:
    """Raise :class:`MissingBranchError` naming the first branch of ``branches`` absent from ``tree``.

    ``hint`` is appended to the message; a callable gets the missing branch and
    returns the hint (so that, say, a missing extended branch gets its own advice).
    """
    present = set(tree.keys())
    for branch in branches:
        if branch not in present:
            raise MissingBranchError(path, branch, stage, hint(branch) if callable(hint) else hint)
