"""Electrons and muons: identification, isolation and truth matching."""

from __future__ import annotations

import numpy as np

from .particles import Table, delta_r2, nearest_within, pairs_within_event
from .pflow import PF_ELECTRON, PF_MUON, PF_NEUTRAL, PF_PHOTON, electron_tight_efficiency
from .tune import Tune

PROMPT_ORIGINS = (1, 15)


def isolation(leptons: Table, pf: Table, n_events: int, cone: float) -> np.ndarray:
    """Delta-beta corrected PF relative isolation in a cone of ``cone`` around each lepton.

    iso = sum pT(charged from PV) + max(0, sum pT(photons + neutral hadrons) - 0.5 sum pT(charged PU)),
    excluding the lepton's own PF candidate.
    """
    if len(leptons) == 0:
        return np.zeros(0, dtype=np.float32)
    il, ip = pairs_within_event(leptons["evt"], pf["evt"], n_events)
    in_cone = delta_r2(leptons["eta"][il], leptons["phi"][il], pf["eta"][ip], pf["phi"][ip]) < cone * cone
    in_cone &= ip != leptons["pf_index"][il]
    il, ip = il[in_cone], ip[in_cone]
    pt = pf["pt"][ip].astype(np.float64)
    charged = pf["charge"][ip] != 0
    pv = pf["fromPV"][ip] > 0
    neutral = np.isin(pf["pdgId"][ip], (PF_PHOTON, PF_NEUTRAL))
    n = len(leptons)
    ch = np.bincount(il, weights=np.where(charged & pv, pt, 0.0), minlength=n)
    ch_pu = np.bincount(il, weights=np.where(charged & ~pv, pt, 0.0), minlength=n)
    neu = np.bincount(il, weights=np.where(neutral, pt, 0.0), minlength=n)
    iso = ch + np.maximum(0.0, neu - 0.5 * ch_pu)
    return (iso / leptons["pt"]).astype(np.float32)


def match_to_genpart(leptons: Table, gen: Table, n_events: int, abs_id: int) -> np.ndarray:
    """Index (within the event) of the nearest final-state GenPart of the same flavour within dR < 0.1, else -1.

    Only status-1 particles are candidates, as in NanoAOD: the hard-process copy of
    a lepton (status 23) lies before its final-state radiation.
    """
    cand = gen.select((np.abs(gen["pdgId"]) == abs_id) & (gen["status"] == 1))
    flat = nearest_within(leptons, cand, n_events, 0.1)
    return np.where(flat >= 0, cand["local"][np.maximum(flat, 0)] if len(cand) else -1, -1).astype(np.int32)


def build_leptons(pf: Table, gen: Table, n_events: int, tune: Tune, rng: np.random.Generator) -> tuple[Table, Table]:
    """Electron and Muon collections from PF leptons, with ID, isolation and truth matching."""
    pf_index = np.arange(len(pf))
    out = []
    for kind in (PF_ELECTRON, PF_MUON):
        sel = np.abs(pf["pdgId"]) == kind
        lep = pf.select(sel)
        lep["pf_index"] = pf_index[sel]
        prompt = np.isin(lep["origin"], PROMPT_ORIGINS)
        u = rng.random(len(lep))
        cols = {
            "evt": lep["evt"],
            "pt": lep["pt"],
            "eta": lep["eta"],
            "phi": lep["phi"],
            "mass": lep["mass"],
            "charge": lep["charge"],
            "pdgId": lep["pdgId"],
            "pfRelIso03_all": isolation(lep, pf, n_events, 0.3),
            "dxy": lep["dxy"],
            "dz": lep["dz"],
            "genPartIdx": match_to_genpart(lep, gen, n_events, kind),
            "truth": lep["truth"],  # flat index of the generated particle (not written)
            "genPartFlav": np.where(np.isin(lep["origin"], (1, 15, 5, 4)), lep["origin"], 3).astype(np.uint8),
        }
        if kind == PF_ELECTRON:
            tight = electron_tight_efficiency(lep["pt"], tune) * np.where(prompt, 1.0, tune.nonprompt_id_factor)
            # cumulative ID levels: tight < medium < loose < veto (looser levels accept more)
            levels = np.stack([np.minimum(1.0, tight + d) for d in (0.0, 0.05, 0.09, 0.12)])
            cols["cutBased"] = (u[None, :] < levels).sum(axis=0).astype(np.int32)
        else:
            cols["pfRelIso04_all"] = isolation(lep, pf, n_events, 0.4)
            cols["tightId"] = u < tune.muon_tight_eff
            cols["mediumId"] = u < min(1.0, tune.muon_tight_eff + 0.02)
        out.append(Table(cols))
    return out[0], out[1]
