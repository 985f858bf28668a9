"""Jets: anti-kt R=0.4 with fastjet from PF candidates (CHS) and from truth particles.

Reco jets are clustered from charged-hadron-subtracted PF candidates (charged
pile-up removed by vertex association), corrected for the remaining neutral
pile-up with the jet-area method (rho from the grid median of the neutral PF
pT density, fastjet's GridMedianBackgroundEstimator idea), matched to truth
jets, given a hadron flavour from b/c hadrons within dR < 0.4 and a b-tag
score drawn from flavour-dependent distributions whose working points match
a real tagger (see :mod:`.tune`).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .particles import Table, delta_r2, energy, local_index, nearest_within, pairs_within_event
from .pflow import PF_ELECTRON, PF_MUON, PF_NEUTRAL, PF_PHOTON
from .tune import Tune

_GRID_ETA = np.linspace(-2.5, 2.5, 11)
_GRID_PHI = np.linspace(-np.pi, np.pi, 11)
_CELL_AREA = (_GRID_ETA[1] - _GRID_ETA[0]) * (_GRID_PHI[1] - _GRID_PHI[0])


def cluster(objects: Table, n_events: int, radius: float, pt_min: float) -> tuple[Table, Table]:
    """Anti-kt jets of ``objects`` (sorted by event) and the constituent links.

    Returns (jets, links): jets with evt, pt, eta, phi, mass, sorted by pT within
    each event; links with evt, jet (index within event) and obj (index into
    ``objects``).
    """
    import fastjet
    import vector

    vector.register_awkward()
    pt = objects["pt"].astype(np.float64)
    eta = objects["eta"].astype(np.float64)
    phi = objects["phi"].astype(np.float64)
    mass = objects["mass"].astype(np.float64)
    counts = objects.counts(n_events)
    flat = ak.zip(
        {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": energy(pt, eta, mass)},
        with_name="Momentum4D",
    )
    events = ak.unflatten(flat, counts)
    seq = fastjet.ClusterSequence(events, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    jets = seq.inclusive_jets(min_pt=pt_min)
    constituents = seq.constituent_index(min_pt=pt_min)

    jpx, jpy, jpz, je = (ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E"))
    jcounts = ak.to_numpy(ak.num(jets))
    jevt = np.repeat(np.arange(n_events), jcounts)
    jpt = np.hypot(jpx, jpy)
    jeta = np.arcsinh(jpz / np.maximum(jpt, 1e-9))
    jphi = np.arctan2(jpy, jpx)
    jmass = np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0))

    # constituent links: index into the flat objects table
    n_const = ak.to_numpy(ak.flatten(ak.num(constituents, axis=2)))
    local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    link_jet_flat = np.repeat(np.arange(len(jpt)), n_const)
    link_obj = starts[jevt[link_jet_flat]] + local

    # order jets by decreasing pT within each event
    order = np.lexsort((-jpt, jevt))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    jets_table = Table(
        {
            "evt": jevt[order],
            "pt": jpt[order],
            "eta": jeta[order],
            "phi": jphi[order],
            "mass": jmass[order],
            "n_const": n_const[order],
        }
    )
    link_sorted_jet = rank[link_jet_flat]  # position of each link's jet in the sorted table
    link_evt = jevt[link_jet_flat]
    jet_starts = np.concatenate([[0], np.cumsum(jcounts)[:-1]])
    links = Table(
        {
            "evt": link_evt,
            "jet": (link_sorted_jet - jet_starts[link_evt]).astype(np.int32),
            "jet_flat": link_sorted_jet,
            "obj": link_obj,
        }
    )
    links = links.take(np.lexsort((links["jet"], links["evt"])))
    return jets_table, links


def grid_rho(pf: Table, n_events: int) -> np.ndarray:
    """Median neutral pT density [GeV per unit area] over an eta-phi grid in |eta| < 2.5."""
    neutral = np.isin(pf["pdgId"], (PF_PHOTON, PF_NEUTRAL)) & (np.abs(pf["eta"]) < 2.5)
    ieta = np.clip(np.digitize(pf["eta"][neutral], _GRID_ETA) - 1, 0, len(_GRID_ETA) - 2)
    iphi = np.clip(np.digitize(pf["phi"][neutral], _GRID_PHI) - 1, 0, len(_GRID_PHI) - 2)
    n_cells = (len(_GRID_ETA) - 1) * (len(_GRID_PHI) - 1)
    cell = pf["evt"][neutral] * n_cells + ieta * (len(_GRID_PHI) - 1) + iphi
    density = np.bincount(cell, weights=pf["pt"][neutral], minlength=n_events * n_cells) / _CELL_AREA
    return np.median(density.reshape(n_events, n_cells), axis=1)


def hadron_flavour(jets: Table, heavy: Table, n_events: int, radius: float) -> np.ndarray:
    """5 if a b hadron lies within ``radius`` of the jet axis, else 4 for a c hadron, else 0."""
    out = np.zeros(len(jets), dtype=np.int32)
    if len(jets) == 0 or len(heavy) == 0:
        return out
    ij, ih = pairs_within_event(jets["evt"], heavy["evt"], n_events)
    close = delta_r2(jets["eta"][ij], jets["phi"][ij], heavy["eta"][ih], heavy["phi"][ih]) < radius**2
    flav = np.where(close, heavy["flavour"][ih], 0)
    np.maximum.at(out, ij, flav)
    return out


def btag_score(flavour: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> np.ndarray:
    """Draw a b-tag score whose survival fractions at the tune's working points match its efficiencies."""
    knots = np.array([0.0, *tune.btag_thresholds, 1.0])
    u = rng.random(len(flavour))
    score = np.empty(len(flavour), dtype=np.float64)
    for flav, eff in ((5, tune.btag_eff_b), (4, tune.btag_eff_c), (0, tune.btag_eff_light)):
        survival = np.array([1.0, *eff, 0.0])
        sel = (flavour == flav) if flav else (flavour != 5) & (flavour != 4)
        if flav:
            sel &= np.abs(eta) < tune.track_eta_max
        else:
            sel |= np.abs(eta) >= tune.track_eta_max
        # survival decreases with score: invert S(score) = u on each linear piece
        score[sel] = np.interp(u[sel], survival[::-1], knots[::-1])
    return score.astype(np.float32)


def build_jets(
    pf: Table, truth: Table, heavy: Table, n_events: int, tune: Tune, rng: np.random.Generator
) -> tuple[Table, Table, Table, np.ndarray]:
    """Return (Jet, GenJet, JetPFCands links, rho)."""
    chs_mask = ((pf["fromPV"] > 0) | (pf["charge"] == 0)) & (np.abs(pf["eta"]) < tune.jet_eta_max)
    chs_index = np.flatnonzero(chs_mask)
    chs = pf.select(chs_mask)
    raw, links = cluster(chs, n_events, tune.jet_radius, pt_min=5.0)
    links["pf"] = chs_index[links["obj"]]

    rho = grid_rho(pf, n_events)
    area = np.pi * tune.jet_radius**2
    scale = np.maximum(raw["pt"] - rho[raw["evt"]] * area, 0.0) / np.maximum(raw["pt"], 1e-9)
    jets = raw
    jets["raw_pt"] = raw["pt"]
    jets["pt"] = raw["pt"] * scale
    jets["mass"] = raw["mass"] * scale

    # lepton energy fractions for the jet ID (lepton veto)
    lep = np.isin(np.abs(pf["pdgId"][links["pf"]]), (PF_ELECTRON, PF_MUON))
    lep_pt = np.bincount(links["jet_flat"], weights=np.where(lep, pf["pt"][links["pf"]], 0.0), minlength=len(jets))
    lep_frac = lep_pt / np.maximum(jets["raw_pt"], 1e-9)

    keep = jets["pt"] > tune.jet_pt_min
    new_index = np.cumsum(keep) - 1
    links = links.select(keep[links["jet_flat"]])
    links["jet_flat"] = new_index[links["jet_flat"]]
    jets = jets.select(keep)
    lep_frac = lep_frac[keep]
    # re-sort after the pile-up correction, and renumber the links
    order = np.lexsort((-jets["pt"], jets["evt"]))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    jets = jets.take(order)
    lep_frac = lep_frac[order]
    links["jet_flat"] = rank[links["jet_flat"]]
    jet_starts = np.concatenate([[0], np.cumsum(jets.counts(n_events))[:-1]])
    links["jet"] = (links["jet_flat"] - jet_starts[links["evt"]]).astype(np.int32)
    links = links.take(np.lexsort((links["jet"], links["evt"])))

    # truth jets from visible hard-scatter particles
    gen_raw, _ = cluster(truth, n_events, tune.jet_radius, pt_min=tune.genjet_pt_min)
    genjets = gen_raw

    jets["genJetIdx"] = local_index(nearest_within(jets, genjets, n_events, tune.jet_radius / 2), genjets, n_events)
    jets["hadronFlavour"] = hadron_flavour(jets, heavy, n_events, tune.jet_radius)
    genjets["hadronFlavour"] = hadron_flavour(genjets, heavy, n_events, tune.jet_radius)
    jets["btagDeepFlavB"] = btag_score(jets["hadronFlavour"], jets["eta"], tune, rng)
    jets["jetId"] = np.where(lep_frac > 0.8, 2, 6).astype(np.int32)
    matched = jets["genJetIdx"] >= 0
    pu_pass = matched | (rng.random(len(jets)) < 0.1) | (jets["pt"] > 50.0)
    jets["puId"] = np.where(pu_pass, 7, 0).astype(np.int32)
    jets["nConstituents"] = np.bincount(links["jet_flat"], minlength=len(jets)).astype(np.int32)
    jets["area"] = np.full(len(jets), area, dtype=np.float32)
    jets["rawFactor"] = (1.0 - jets["raw_pt"] / np.maximum(jets["pt"], 1e-9)).astype(np.float32)
    return jets, genjets, links, rho
