"""Event generation with Pythia 8 (``pythia8mc``), one chunk per job.

A chunk is generated with ``Pythia.nextBatch`` in sub-batches (with a progress
bar) and reduced to what the detector simulation and the ntuples need:

``particles``
    final-state visible particles (neutrinos removed) with |eta| < 5:
    pt, eta, phi, mass, pdgId, charge, and for electrons and muons their
    ``origin`` (1 prompt from a boson, 15 from a tau, 5 from a b hadron,
    4 from a c hadron, 3 other), and ``tau``: the index in the event's
    ``genvistau`` of the hadronic tau the particle descends from, else -1.
``heavy``
    b and c hadrons with pT > 5 GeV (for jet hadron flavour).
``genpart``
    a pruned truth record (top, W, Z, H, tau, hard-process partons, prompt
    leptons and neutrinos) with mother indices and NanoAOD status flags.
    ``isLastCopy`` means no daughter is a copy of the particle (a tau that
    radiates a photon is not its last copy).
``genvistau``
    one entry per hadronically decaying tau (last copy), sorted by visible pT:
    visible 4-vector (all final-state non-neutrino descendants), charge, the
    NanoAOD decay mode as ``status`` (0 h, 1 h pi0, 2 h 2pi0, 10 3h, 11 3h pi0,
    15 other) and ``genPartIdxMother``, the tau's index in ``genpart``.
event level
    ``event``, ``genWeight``, ``genmet_px``, ``genmet_py``.

Cross sections: Pythia's ``sigmaGen`` already folds in the branching
fractions of resonance decays switched off with ``onMode`` (checked: forcing
H -> WW multiplies it by 0.216 and W -> e nu, mu nu on both W by a further
0.047) and the efficiency of process-level filters.  Decays of particles that
are not resonances (the tau) are not folded in; ``br_correction`` multiplies
the cross section by the open branching fraction of each such particle to
the power of its multiplicity per event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ..errors import ConfigError
from ..io import write_json_atomic, write_parquet_atomic
from .seeds import derive_seed

MB_TO_PB = 1e9

#: NanoAOD GenPart statusFlags bits used here.
FLAG_PROMPT = 1 << 0
FLAG_TAU_DECAY_PRODUCT = 1 << 2
FLAG_HARD_PROCESS = 1 << 7
FLAG_FROM_HARD_PROCESS = 1 << 8
FLAG_LAST_COPY = 1 << 13

_NEUTRINOS = (12, 14, 16)
_BOSONS = (6, 23, 24, 25)


@dataclass(frozen=True)
class GenerationSpec:
    """What one sample's ``generate:`` block asks for (see the config schema)."""

    processes: list[str]
    decays: list[str] = field(default_factory=list)
    phase_space: dict[str, float] = field(default_factory=dict)
    settings: list[str] = field(default_factory=list)
    filter: str | None = None
    br_correction: dict[int, int] = field(default_factory=dict)
    events: int = 1000
    chunk_size: int = 1000
    pileup_mu: float = 0.0
    ecm: float = 13000.0

    @classmethod
    def from_config(cls, block: Mapping[str, Any], where: str) -> GenerationSpec:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(known))})")
        if "processes" not in block or not block["processes"]:
            raise ConfigError(f"{where}.processes: at least one Pythia process setting is required")
        data = dict(block)
        data["br_correction"] = {int(k): int(v) for k, v in (block.get("br_correction") or {}).items()}
        return cls(**data)

    @property
    def n_chunks(self) -> int:
        return max(1, math.ceil(self.events / self.chunk_size))

    def chunk_events(self, chunk: int) -> int:
        if not 0 <= chunk < self.n_chunks:
            raise ConfigError(f"chunk {chunk} out of range: the sample has {self.n_chunks} chunks")
        return min(self.chunk_size, self.events - chunk * self.chunk_size)

    def pythia_settings(self, seed: int) -> list[str]:
        lines = [
            f"Beams:eCM = {self.ecm}",
            "Print:quiet = on",
            "Next:numberCount = 0",
            "Random:setSeed = on",
            f"Random:seed = {seed}",
            "25:m0 = 125.0",
        ]
        lines += list(self.processes)
        lines += [f"PhaseSpace:{k} = {v}" for k, v in self.phase_space.items()]
        lines += list(self.decays)
        lines += list(self.settings)
        return lines


def _make_pythia(lines: list[str], user_filter: str | None = None) -> tuple[Any, Any]:
    """Return an initialised Pythia and its filter hook (keep the hook referenced while generating)."""
    import pythia8mc

    pythia = pythia8mc.Pythia("", False)
    for line in lines:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting '{line}'")
    hook = None
    if user_filter is not None:
        from .filters import make_filter

        hook = make_filter(user_filter)
        pythia.setUserHooksPtr(hook)
    if not pythia.init():
        raise ConfigError(f"Pythia failed to initialise with settings {lines}")
    return pythia, hook


def open_branching_fraction(pythia: Any, pdg_id: int) -> float:
    """Sum of branching ratios of the channels left on for ``pdg_id`` after the settings."""
    entry = pythia.particleData.particleDataEntryPtr(pdg_id)
    total = 0.0
    for k in range(entry.sizeChannels()):
        channel = entry.channel(k)
        if channel.onMode() > 0:
            total += channel.bRatio()
    return total


# --------------------------------------------------------------------------- reduction


def _walk_same_id(mother: np.ndarray, pid: np.ndarray, idx: np.ndarray, steps: int = 60) -> np.ndarray:
    """Move global indices ``idx`` up the mother chain while the mother is a copy with the same |id|.

    ``mother`` holds global mother indices (-1 for none).
    """
    idx = idx.copy()
    own = np.abs(pid[idx])
    for _ in range(steps):
        mom = mother[idx]
        same = (mom >= 0) & (np.abs(pid[np.maximum(mom, 0)]) == own)
        if not same.any():
            break
        idx = np.where(same, mom, idx)
    return idx


def _is_heavy_hadron(abs_id: np.ndarray, quark: int) -> np.ndarray:
    """True for hadrons containing quark ``quark`` as heaviest quark (PDG numbering)."""
    meson = (abs_id // 100) % 10 == quark
    baryon = (abs_id // 1000) % 10 == quark
    return (abs_id > 100) & (abs_id < 1_000_000) & (meson | baryon)


def _origin_code(parent_abs_id: np.ndarray) -> np.ndarray:
    out = np.full(parent_abs_id.shape, 3, dtype=np.int8)
    out[np.isin(parent_abs_id, (22, 23, 24, 25, 6))] = 1
    out[parent_abs_id == 15] = 15
    out[_is_heavy_hadron(parent_abs_id, 4)] = 4
    out[_is_heavy_hadron(parent_abs_id, 5)] = 5
    return out


def _daughters(node: np.ndarray, d1: np.ndarray, d2: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Daughters of the global indices ``node``: (position in ``node`` of the parent, global daughter index).

    Pythia's daughter convention: d1 <= d2 > 0 a contiguous range, d1 > 0 = d2 one
    daughter, d1 > d2 > 0 two separate daughters.
    """
    a, b = d1[node], d2[node]
    has = a > 0
    ranged = has & (b >= a)
    n_first = np.where(ranged, b - a + 1, has.astype(np.int64))
    parent = np.repeat(np.arange(len(node)), n_first)
    child = np.repeat(base[node] + a, n_first) + (np.arange(int(n_first.sum())) - np.repeat(np.cumsum(n_first) - n_first, n_first))
    second = np.flatnonzero(has & (b > 0) & (b < a))
    return np.concatenate([parent, second]), np.concatenate([child, base[node[second]] + b[second]])


def _tau_decays(
    pid: np.ndarray,
    status: np.ndarray,
    charge: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    base: np.ndarray,
    last_copy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decays of the last-copy taus, followed down the record level by level (vectorised over the batch).

    Returns (tau, hadronic, decay_mode, owner, descendant): the global index of
    each decayed last-copy tau, whether it decays hadronically (no e or mu among
    its direct daughters), its NanoAOD GenVisTau decay mode, and the pairs
    (row in ``tau``, global index) of all its final-state descendants.  Photons
    radiated by the tau before it decays are not descendants: their mother is an
    earlier copy of the tau, not the last one.

    Decay mode as CMS ``JetMCTagUtils::genTauDecayMode`` (prongs = charged
    hadrons; a neutral kaon or other neutral hadron makes it "other", as K0S is
    stable in CMS generation), with pi0s counted as pi0 descendants rather than
    photon pairs (a Dalitz pi0 stays a pi0): 0 h, 1 h pi0, 2 h 2pi0, 10 3h,
    11 3h pi0, 15 other (NanoAOD GenVisTau_status).
    """
    abs_id = np.abs(pid)
    tau = np.flatnonzero((abs_id == 15) & last_copy & (d1 > 0))
    n_tau = len(tau)
    owners, found = [], []
    leptonic = np.zeros(n_tau, dtype=bool)
    n_pi0 = np.zeros(n_tau, dtype=np.int64)
    n_neutral_hadron = np.zeros(n_tau, dtype=np.int64)
    owner, node = np.arange(n_tau), tau
    for level in range(20):  # tau -> K0S -> pi0 -> gamma is the deepest common chain
        parent, child = _daughters(node, d1, d2, base)
        owner = owner[parent]
        child_id = abs_id[child]
        if level == 0:
            leptonic = np.bincount(owner, weights=(child_id == 11) | (child_id == 13), minlength=n_tau) > 0
        n_pi0 += np.bincount(owner, weights=child_id == 111, minlength=n_tau).astype(np.int64)
        final = status[child] > 0
        neutral_hadron = np.isin(child_id, (130, 310, 311)) | (
            final & (charge[child] == 0) & (child_id > 100)
        )
        n_neutral_hadron += np.bincount(owner, weights=neutral_hadron, minlength=n_tau).astype(np.int64)
        owners.append(owner[final])
        found.append(child[final])
        owner, node = owner[~final], child[~final]
        if len(node) == 0:
            break
    owner = np.concatenate(owners)
    descendant = np.concatenate(found)
    desc_id = abs_id[descendant]
    prong = (charge[descendant] != 0) & (desc_id != 11) & (desc_id != 13)
    n_prong = np.bincount(owner, weights=prong, minlength=n_tau).astype(np.int64)
    mode = np.full(n_tau, 15, dtype=np.int32)
    clean = n_neutral_hadron == 0
    one, three = clean & (n_prong == 1), clean & (n_prong == 3)
    mode[one & (n_pi0 <= 2)] = n_pi0[one & (n_pi0 <= 2)]
    mode[three & (n_pi0 <= 1)] = 10 + n_pi0[three & (n_pi0 <= 1)]
    return tau, ~leptonic, mode, owner, descendant


def _charge_table(pythia: Any, ids: np.ndarray) -> np.ndarray:
    """Charge per particle, looked up once per distinct id (not per particle)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    charges = np.array([pythia.particleData.charge(int(i)) for i in unique], dtype=np.float32)
    return np.rint(charges[inverse]).astype(np.int8) if len(ids) else np.zeros(0, np.int8)


def _flat(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array))


def reduce_batch(batch: ak.Array, pythia: Any, first_event: int, min_pt: float = 0.0) -> ak.Array:
    """Reduce a ``nextBatch`` result to the generation record described in the module doc.

    The event records are flattened once into numpy columns with global
    indices, so that the mother-chain walks are vectorised over the batch.
    """
    prt = batch.prt
    n = len(prt)
    counts = ak.to_numpy(ak.num(prt.id))
    base = np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    evt = np.repeat(np.arange(n), counts)
    local = np.arange(len(base)) - base
    pid = _flat(prt.id).astype(np.int64)
    abs_id = np.abs(pid)
    status = _flat(prt.status)
    m1, d1, d2 = _flat(prt.mother1), _flat(prt.daughter1), _flat(prt.daughter2)
    mother = np.where(m1 > 0, m1 + base, -1)  # global index; entry 0 of each event is the system
    px, py, pz, e = (_flat(prt.p[c]) for c in ("px", "py", "pz", "e"))
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    mass = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))

    final = status > 0
    is_nu = (abs_id == 12) | (abs_id == 14) | (abs_id == 16)
    visible = final & ~is_nu & (np.abs(eta) < 5.0) & (pt > min_pt)

    # origin of final-state leptons and neutrinos: the parent of their first copy
    origin = np.zeros(len(pid), dtype=np.int8)
    lep_or_nu = np.flatnonzero(final & (((abs_id >= 11) & (abs_id <= 14)) | (abs_id == 16)))
    first = _walk_same_id(mother, pid, lep_or_nu)
    parent = np.abs(pid[np.maximum(mother[first], 0)])
    parent = np.where(mother[first] >= 0, parent, 0)
    origin[lep_or_nu] = _origin_code(parent)
    is_lep = final & ((abs_id == 11) | (abs_id == 13))
    prompt_final = final & (abs_id >= 11) & (abs_id <= 16) & ((origin == 1) | (origin == 15))
    origin = np.where(is_lep, origin, 0).astype(np.int8)

    def jagged(mask: np.ndarray, columns: dict[str, np.ndarray]) -> ak.Array:
        return ak.unflatten(ak.zip({k: v[mask] for k, v in columns.items()}), np.bincount(evt[mask], minlength=n))

    charge = _charge_table(pythia, pid) if len(pid) else np.zeros(0, np.int8)
    # last copy: no daughter is a copy of the particle (a tau radiating a photon has daughters (tau, gamma))
    d1g = np.where(d1 > 0, d1 + base, 0)
    d2g = np.where(d2 > 0, d2 + base, 0)
    last_copy = ~(((d1 > 0) & (pid[d1g] == pid)) | ((d2 > 0) & (pid[d2g] == pid)))

    # hadronic taus: visible 4-vector of the final-state non-neutrino descendants, decay mode
    tau_all, hadronic, tau_mode, owner, descendant = _tau_decays(pid, status, charge, d1, d2, base, last_copy)
    vis = ~is_nu[descendant]
    owner_vis, desc_vis = owner[vis], descendant[vis]
    vis_p = [np.bincount(owner_vis, weights=c[desc_vis], minlength=len(tau_all)) for c in (px, py, pz, e)]
    had = np.flatnonzero(hadronic)
    vpx, vpy, vpz, ve = (c[had] for c in vis_p)
    vis_pt = np.hypot(vpx, vpy)
    tau_evt = evt[tau_all[had]]
    tau_order = np.lexsort((-vis_pt, tau_evt))  # by event, then decreasing visible pT
    tau_rank = np.empty(len(had), dtype=np.int64)
    tau_rank[tau_order] = np.arange(len(had))
    tau_starts = np.concatenate([[0], np.cumsum(np.bincount(tau_evt, minlength=n))[:-1]])
    tau_local = np.full(len(tau_all), -1, dtype=np.int16)  # index in the event's GenVisTau, per tau row
    tau_local[had] = tau_rank - tau_starts[tau_evt]
    tau_of = np.full(len(pid), -1, dtype=np.int16)
    tau_of[descendant] = tau_local[owner]

    particles = jagged(
        visible,
        {
            "pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32),
            "mass": mass.astype(np.float32), "pdgId": pid.astype(np.int32),
            "charge": charge, "origin": origin, "tau": tau_of,
        },
    )

    # b and c hadrons for jet flavour
    flavour = np.where(_is_heavy_hadron(abs_id, 5), 5, np.where(_is_heavy_hadron(abs_id, 4), 4, 0)).astype(np.int32)
    heavy = jagged(
        (flavour > 0) & (pt > 5.0),
        {"pt": pt.astype(np.float32), "eta": eta.astype(np.float32), "phi": phi.astype(np.float32), "flavour": flavour},
    )

    # pruned GenPart: hard process, last copies of t/W/Z/H/tau, prompt leptons and neutrinos
    abs_status = np.abs(status)
    hard = (abs_status >= 21) & (abs_status <= 23)
    boson = (abs_id == 6) | (abs_id == 23) | (abs_id == 24) | (abs_id == 25)
    tau = abs_id == 15
    keep = (hard | ((boson | tau) & last_copy) | prompt_final) & (local > 2)
    kept_before = np.repeat(np.concatenate([[0], np.cumsum(np.bincount(evt[keep], minlength=n))[:-1]]), counts)
    new_index = np.cumsum(keep) - 1 - kept_before  # index among the kept particles of the event
    kept = np.flatnonzero(keep)
    m = mother[kept]
    for _ in range(200):
        needs = (m >= 0) & (local[np.maximum(m, 0)] > 2) & ~keep[np.maximum(m, 0)]
        if not needs.any():
            break
        m = np.where(needs, mother[np.maximum(m, 0)], m)
    valid = (m >= 0) & (local[np.maximum(m, 0)] > 2)
    mother_new = np.full(len(pid), -1, dtype=np.int32)
    mother_new[kept] = np.where(valid, new_index[np.maximum(m, 0)], -1)
    flags = (
        np.where(prompt_final | boson | hard | tau, FLAG_PROMPT, 0)
        | np.where(origin == 15, FLAG_TAU_DECAY_PRODUCT, 0)
        | np.where(hard, FLAG_HARD_PROCESS, 0)
        | np.where(hard | boson | prompt_final, FLAG_FROM_HARD_PROCESS, 0)
        | np.where(last_copy, FLAG_LAST_COPY, 0)
    )
    genpart = jagged(
        keep,
        {
            "pt": pt.astype(np.float32), "eta": np.where(pt > 1e-6, eta, 0.0).astype(np.float32),
            "phi": phi.astype(np.float32), "mass": mass.astype(np.float32), "pdgId": pid.astype(np.int32),
            "status": np.where(final, 1, abs_status).astype(np.int32), "statusFlags": flags.astype(np.int32),
            "genPartIdxMother": mother_new,
        },
    )

    # GenVisTau: one entry per hadronically decaying last-copy tau, sorted by visible pT within the event
    o = tau_order
    vis_p2 = vpx[o] ** 2 + vpy[o] ** 2
    vis_eta = np.arcsinh(vpz[o] / np.maximum(np.sqrt(vis_p2), 1e-9))
    genvistau = ak.unflatten(
        ak.zip(
            {
                "pt": np.sqrt(vis_p2).astype(np.float32),
                "eta": vis_eta.astype(np.float32),
                "phi": np.arctan2(vpy[o], vpx[o]).astype(np.float32),
                "mass": np.sqrt(np.maximum(ve[o] ** 2 - vis_p2 - vpz[o] ** 2, 0.0)).astype(np.float32),
                "charge": charge[tau_all[had][o]].astype(np.int32),
                "status": tau_mode[had][o].astype(np.int32),
                "genPartIdxMother": new_index[tau_all[had][o]].astype(np.int32),
            }
        ),
        np.bincount(tau_evt, minlength=n),
    )

    nu_final = final & is_nu
    genmet_px = np.bincount(evt[nu_final], weights=px[nu_final], minlength=n)
    genmet_py = np.bincount(evt[nu_final], weights=py[nu_final], minlength=n)
    gen_weight = ak.to_numpy(ak.fill_none(ak.firsts(batch.info.weights, axis=1), 1.0))
    return ak.zip(
        {
            "event": np.arange(first_event, first_event + n, dtype=np.uint64),
            "genWeight": gen_weight.astype(np.float32),
            "genmet_px": genmet_px.astype(np.float32),
            "genmet_py": genmet_py.astype(np.float32),
            "particles": particles,
            "heavy": heavy,
            "genpart": genpart,
            "genvistau": genvistau,
        },
        depth_limit=1,
    )


# --------------------------------------------------------------------------- driver


def generate_chunk(
    spec: GenerationSpec,
    *,
    sample: str,
    chunk: int,
    global_seed: int,
    out_parquet: Path,
    out_meta: Path,
    batch_size: int = 250,
    progress: bool = True,
    min_pt: float = 0.0,
) -> dict[str, Any]:
    """Generate one chunk and write it (atomically) as parquet plus a metadata JSON."""
    from tqdm import tqdm

    n_events = spec.chunk_events(chunk)
    seed = derive_seed(global_seed, "generate", sample, chunk)
    pythia, _hook = _make_pythia(spec.pythia_settings(seed), spec.filter)
    first_event = chunk * spec.chunk_size + 1
    pieces = []
    done = 0
    with tqdm(total=n_events, desc=f"generate {sample}[{chunk}]", unit="ev", disable=not progress, mininterval=2.0) as bar:
        while done < n_events:
            n = min(batch_size, n_events - done)
            batch = pythia.nextBatch(n)
            if len(batch) != n:
                raise RuntimeError(f"Pythia returned {len(batch)} events instead of {n} for {sample}[{chunk}]")
            pieces.append(reduce_batch(batch, pythia, first_event + done, min_pt=min_pt))
            done += n
            bar.update(n)
    record = ak.concatenate(pieces)
    info = pythia.infoPython()
    br = 1.0
    for pdg_id, power in spec.br_correction.items():
        br *= open_branching_fraction(pythia, pdg_id) ** power
    meta = {
        "sample": sample,
        "chunk": chunk,
        "seed": seed,
        "events": n_events,
        "first_event": first_event,
        "sigma_gen_pb": info.sigmaGen() * MB_TO_PB,
        "sigma_gen_err_pb": info.sigmaErr() * MB_TO_PB,
        "br_correction": br,
        "sigma_pb": info.sigmaGen() * MB_TO_PB * br,
        "sum_gen_weight": float(ak.sum(record.genWeight)),
        "pileup_mu": spec.pileup_mu,
        "accepted": int(info.nAccepted()),
    }
    write_parquet_atomic(record, out_parquet)
    write_json_atomic(meta, out_meta)
    return meta


def combine_chunk_metadata(metas: list[dict[str, Any]]) -> dict[str, Any]:
    """Cross section of a sample from its chunks: event-weighted mean, error in quadrature."""
    if not metas:
        raise ConfigError("no chunk metadata to combine")
    n = np.array([m["events"] for m in metas], dtype=float)
    sigma = np.array([m["sigma_pb"] for m in metas], dtype=float)
    err = np.array([m["sigma_gen_err_pb"] * m["br_correction"] for m in metas], dtype=float)
    w = n / n.sum()
    return {
        "sample": metas[0]["sample"],
        "chunks": len(metas),
        "events": int(n.sum()),
        "sigma_pb": float(np.sum(w * sigma)),
        "sigma_err_pb": float(np.sqrt(np.sum((w * err) ** 2))),
        "sum_gen_weight": float(sum(m["sum_gen_weight"] for m in metas)),
        "br_correction": metas[0]["br_correction"],
    }
