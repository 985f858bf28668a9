"""Event generation with Pythia 8 (``pythia8mc``), one chunk per job.

A chunk is generated with ``Pythia.nextBatch`` in sub-batches (with a progress
bar) and reduced to what the detector simulation and the ntuples need:

``particles``
    final-state visible particles (neutrinos removed) with |eta| < 5:
    pt, eta, phi, mass, pdgId, charge, and for electrons and muons their
    ``origin`` (1 prompt from a boson, 15 from a tau, 5 from a b hadron,
    4 from a c hadron, 3 other).
``heavy``
    b and c hadrons with pT > 5 GeV (for jet hadron flavour).
``genpart``
    a pruned truth record (top, W, Z, H, tau, hard-process partons, prompt
    leptons and neutrinos) with mother indices and NanoAOD status flags.
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


def _walk_same_id(mother: ak.Array, pid: ak.Array, idx: ak.Array, steps: int = 40) -> ak.Array:
    """Move ``idx`` up the mother chain while the mother is a copy with the same |id|."""
    own = abs(pid[idx])
    for _ in range(steps):
        mom = mother[idx]
        same = (mom > 0) & (abs(pid[mom]) == own)
        if not ak.any(same):
            break
        idx = ak.where(same, mom, idx)
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


def _charge_table(pythia: Any, ids: np.ndarray) -> np.ndarray:
    """Charge per particle, looked up once per distinct id (not per particle)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    charges = np.array([pythia.particleData.charge(int(i)) for i in unique], dtype=np.float32)
    return np.rint(charges[inverse]).astype(np.int8) if len(ids) else np.zeros(0, np.int8)


def _kinematics(p: ak.Array) -> tuple[ak.Array, ak.Array, ak.Array, ak.Array]:
    px, py, pz, e = p.px, p.py, p.pz, p.e
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    phi = np.arctan2(py, px)
    m2 = e * e - px * px - py * py - pz * pz
    mass = np.sqrt(np.maximum(m2, 0.0))
    return pt, eta, phi, mass


def reduce_batch(batch: ak.Array, pythia: Any, first_event: int, min_pt: float = 0.0) -> ak.Array:
    """Reduce a ``nextBatch`` result to the generation record described in the module doc."""
    prt = batch.prt
    pid = prt.id
    status = prt.status
    mother = prt.mother1
    d1, d2 = prt.daughter1, prt.daughter2
    pt, eta, phi, mass = _kinematics(prt.p)
    local = ak.local_index(pid, axis=1)

    final = status > 0
    abs_id = abs(pid)
    is_nu = (abs_id == 12) | (abs_id == 14) | (abs_id == 16)
    visible = final & ~is_nu & (abs(eta) < 5.0) & (pt > min_pt)

    # lepton origin: parent of the first copy of each final-state e/mu
    is_lep = final & ((abs_id == 11) | (abs_id == 13))
    first = _walk_same_id(mother, pid, local)
    parent_id = abs(pid[mother[first]])
    origin_flat = _origin_code(ak.to_numpy(ak.flatten(parent_id)).astype(np.int64))
    origin = ak.unflatten(origin_flat, ak.num(pid))
    origin = ak.where(is_lep, origin, np.int8(0))

    vis_ids = ak.flatten(pid[visible]).to_numpy()
    charge = ak.unflatten(_charge_table(pythia, vis_ids), ak.num(pid[visible]))
    particles = ak.zip(
        {
            "pt": ak.values_astype(pt[visible], np.float32),
            "eta": ak.values_astype(eta[visible], np.float32),
            "phi": ak.values_astype(phi[visible], np.float32),
            "mass": ak.values_astype(mass[visible], np.float32),
            "pdgId": ak.values_astype(pid[visible], np.int32),
            "charge": charge,
            "origin": ak.values_astype(origin[visible], np.int8),
        }
    )

    # b and c hadrons for jet flavour
    flat_abs = ak.to_numpy(ak.flatten(abs_id)).astype(np.int64)
    heavy_flavour = np.where(_is_heavy_hadron(flat_abs, 5), 5, np.where(_is_heavy_hadron(flat_abs, 4), 4, 0))
    heavy_flavour = ak.unflatten(heavy_flavour, ak.num(pid))
    is_heavy = (heavy_flavour > 0) & (pt > 5.0)
    heavy = ak.zip(
        {
            "pt": ak.values_astype(pt[is_heavy], np.float32),
            "eta": ak.values_astype(eta[is_heavy], np.float32),
            "phi": ak.values_astype(phi[is_heavy], np.float32),
            "flavour": ak.values_astype(heavy_flavour[is_heavy], np.int32),
        }
    )

    # pruned GenPart
    abs_status = abs(status)
    copy_next = (d1 > 0) & (d1 == d2) & (pid[ak.where(d1 > 0, d1, 0)] == pid)
    last_copy = ~copy_next
    hard = (abs_status >= 21) & (abs_status <= 23)
    boson = (abs_id == 6) | (abs_id == 23) | (abs_id == 24) | (abs_id == 25)
    tau = abs_id == 15
    prompt_final = final & ((abs_id >= 11) & (abs_id <= 16)) & ((origin == 1) | (origin == 15))
    nu_origin_parent = abs(pid[mother[_walk_same_id(mother, pid, local)]])
    prompt_nu = final & is_nu & ((nu_origin_parent == 24) | (nu_origin_parent == 23) | (nu_origin_parent == 15))
    keep = hard | ((boson | tau) & last_copy) | prompt_final | prompt_nu
    keep = keep & (local > 2)
    counts = ak.to_numpy(ak.num(pid))
    kept_flat = ak.to_numpy(ak.flatten(keep)).astype(np.int64)
    kept_before = np.repeat(np.concatenate([[0], np.cumsum(ak.to_numpy(ak.sum(keep, axis=1)))[:-1]]), counts)
    new_index = ak.unflatten(np.cumsum(kept_flat) - 1 - kept_before, counts)  # index among kept, per event

    m = mother
    for _ in range(60):
        needs = (m > 2) & ~keep[ak.where(m > 0, m, 0)]
        if not ak.any(needs):
            break
        m = ak.where(needs, mother[ak.where(m > 0, m, 0)], m)
    mother_new = ak.where(m > 2, new_index[ak.where(m > 0, m, 0)], -1)

    flags = (
        ak.where(prompt_final | boson | hard | (tau & (origin == 0)), FLAG_PROMPT, 0)
        | ak.where(origin == 15, FLAG_TAU_DECAY_PRODUCT, 0)
        | ak.where(hard, FLAG_HARD_PROCESS, 0)
        | ak.where(hard | boson | prompt_final | prompt_nu, FLAG_FROM_HARD_PROCESS, 0)
        | ak.where(last_copy, FLAG_LAST_COPY, 0)
    )
    genpart = ak.zip(
        {
            "pt": ak.values_astype(pt[keep], np.float32),
            "eta": ak.values_astype(ak.where(pt > 1e-6, eta, 0.0)[keep], np.float32),
            "phi": ak.values_astype(phi[keep], np.float32),
            "mass": ak.values_astype(mass[keep], np.float32),
            "pdgId": ak.values_astype(pid[keep], np.int32),
            "status": ak.values_astype(ak.where(final, 1, abs_status)[keep], np.int32),
            "statusFlags": ak.values_astype(flags[keep], np.int32),
            "genPartIdxMother": ak.values_astype(mother_new[keep], np.int32),
        }
    )

    nu_final = final & is_nu
    p = prt.p
    genmet_px = ak.sum(ak.where(nu_final, p.px, 0.0), axis=1)
    genmet_py = ak.sum(ak.where(nu_final, p.py, 0.0), axis=1)
    weights = batch.info.weights
    gen_weight = ak.fill_none(ak.firsts(weights, axis=1), 1.0)
    n = len(prt)
    return ak.zip(
        {
            "event": np.arange(first_event, first_event + n, dtype=np.uint64),
            "genWeight": ak.values_astype(gen_weight, np.float32),
            "genmet_px": ak.values_astype(genmet_px, np.float32),
            "genmet_py": ak.values_astype(genmet_py, np.float32),
            "particles": particles,
            "heavy": heavy,
            "genpart": genpart,
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
