"""Jets: anti-kt R=0.4 with fastjet from PF candidates (CHS) and from truth particles.

Reco jets are clustered from charged-hadron-subtracted PF candidates (charged
pile-up removed by vertex association), corrected for the remaining neutral
pile-up with the jet-area method (rho from the grid median of the neutral PF
pT density, fastjet's GridMedianBackgroundEstimator idea), then calibrated
for the mean residual response with a jet energy correction derived from the
*nominal* simulation (numerical inversion of R(pT_gen) per |eta| bin,
ATL-PHYS-PUB-2018-013; the numbers are the Tune's ``jec_*``, taken from the
nominal tune for every tune, so that pseudo-data keeps its residual
miscalibration).  Jets are matched to truth jets, given a hadron flavour from
b/c hadrons within dR < 0.4 and a b-tag score drawn from flavour-dependent
distributions whose working points match a real tagger (see :mod:`.tune`).

Jet columns beyond NanoAOD's standard ones (the jet-calibration variables of
seed 002; ATLAS GSC, ATL-PHYS-PUB-2018-013 Table 1):

- ``chHEF``, ``neHEF``, ``chEmEF``, ``neEmEF``, ``muEF``: energy fractions of
  charged hadrons, neutral hadrons, electrons, photons and muons in the raw
  (uncorrected) jet energy, as NanoAOD defines them;
- ``nElectrons``, ``nMuons``: PF electrons and muons among the constituents;
- ``nTracks``: PV tracks (charged constituents) with pT > 1 GeV (ATLAS N_track);
- ``trackWidth``: pT-weighted mean dR of those tracks to the jet axis (ATLAS
  W_track), -1 without tracks;
- ``emFrac``: EM-section share of the calorimeter signal of the towers the
  jet's constituents point to (ATLAS f_LAr-like), -1 without calorimeter signal.
"""

from __future__ import annotations

import numpy as np

from .particles import Table, delta_r2, local_index, nearest_within, pairs_within_event
from .pflow import PF_CHARGED, PF_ELECTRON, PF_MUON, PF_NEUTRAL, PF_PHOTON, calibration_tune
from .tune import NOMINAL, Tune

_GRID_ETA = np.linspace(-2.5, 2.5, 11)
_GRID_PHI = np.linspace(-np.pi, np.pi, 11)
_CELL_AREA = (_GRID_ETA[1] - _GRID_ETA[0]) * (_GRID_PHI[1] - _GRID_PHI[0])


def _antikt(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, counts: np.ndarray, radius: float,
            pt_min: float, constituents: bool) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None, np.ndarray | None]:
    """fastjet's multi-event anti-kt on flat numpy columns.

    Returns ([jet px, py, pz, E], jets per event, constituents per jet, local
    constituent indices).  Uses the array interface behind
    ``fastjet.ClusterSequence`` directly (no awkward round trip); falls back to
    the public API if that interface is missing.
    """
    import fastjet

    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    stops = np.cumsum(counts).astype(np.int64)
    starts = (stops - counts).astype(np.int64)
    cols = [np.ascontiguousarray(c, dtype=np.float64) for c in (px, py, pz, e)]
    ext = getattr(fastjet, "_ext", None)
    if ext is not None and hasattr(ext, "interfacemulti"):
        result = ext.interfacemulti(*cols, starts, stops, jet_def)
        jpx, jpy, jpz, je, j_off = result.to_numpy(pt_min)
        jcounts = np.diff(j_off).astype(np.int64)
        if not constituents:
            return [jpx, jpy, jpz, je], jcounts, None, None
        c_off, c_idx, _ = result.to_numpy_with_constituents(pt_min)
        n_const = np.diff(c_off).astype(np.int64)
        return [jpx, jpy, jpz, je], jcounts, n_const, np.asarray(c_idx[: c_off[-1]], dtype=np.int64)
    import awkward as ak  # pragma: no cover - public API fallback
    import vector

    vector.register_awkward()
    flat = ak.zip(dict(zip(("px", "py", "pz", "E"), cols, strict=True)), with_name="Momentum4D")
    seq = fastjet.ClusterSequence(ak.unflatten(flat, counts), jet_def)
    jets = seq.inclusive_jets(min_pt=pt_min)
    out = [ak.to_numpy(ak.flatten(jets[f])) for f in ("px", "py", "pz", "E")]
    jcounts = ak.to_numpy(ak.num(jets))
    if not constituents:
        return out, jcounts, None, None
    const = seq.constituent_index(min_pt=pt_min)
    return (out, jcounts, ak.to_numpy(ak.flatten(ak.num(const, axis=2))),
            ak.to_numpy(ak.flatten(const, axis=None)).astype(np.int64))


def cluster(
    objects: Table, n_events: int, radius: float, pt_min: float, constituents: bool = True
) -> tuple[Table, Table | None]:
    """Anti-kt jets of ``objects`` (sorted by event) and the constituent links.

    Returns (jets, links): jets with evt, pt, eta, phi, mass, n_const, sorted by
    pT within each event; links with evt, jet (index within event), jet_flat
    and obj (index into ``objects``), or None with ``constituents=False``.
    """
    pt = objects["pt"].astype(np.float64)
    eta = objects["eta"].astype(np.float64)
    phi = objects["phi"].astype(np.float64)
    mass = objects["mass"].astype(np.float64)
    counts = objects.counts(n_events)
    pz = pt * np.sinh(eta)
    e = np.sqrt(pt * pt + pz * pz + mass * mass)
    (jpx, jpy, jpz, je), jcounts, n_const, local = _antikt(
        pt * np.cos(phi), pt * np.sin(phi), pz, e, counts, radius, pt_min, constituents
    )
    jevt = np.repeat(np.arange(n_events), jcounts)
    jpt = np.hypot(jpx, jpy)
    jeta = np.arcsinh(jpz / np.maximum(jpt, 1e-9))
    jphi = np.arctan2(jpy, jpx)
    jmass = np.sqrt(np.maximum(je**2 - jpx**2 - jpy**2 - jpz**2, 0.0))

    # order jets by decreasing pT within each event
    order = np.lexsort((-jpt, jevt))
    columns = {"evt": jevt[order], "pt": jpt[order], "eta": jeta[order], "phi": jphi[order], "mass": jmass[order]}
    if n_const is None or local is None:
        return Table(columns), None
    columns["n_const"] = n_const[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    link_jet_flat = np.repeat(np.arange(len(jpt)), n_const)
    link_obj = starts[jevt[link_jet_flat]] + local
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
    links = links.take(np.argsort(link_sorted_jet, kind="stable"))  # by event, then jet (sorted jets are)
    return Table(columns), links


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




# ----------------------------------------------------------------------------- jet energy correction


def jet_response(pt_gen: np.ndarray, abs_eta: np.ndarray, tune: Tune = NOMINAL) -> np.ndarray:
    """Mean response R(pT_gen) of offset-corrected jets: the Tune's table, linear in log pT, flat outside."""
    edges = np.asarray(tune.jec_eta_edges)
    knots = np.log(np.asarray(tune.jec_pt_knots))
    table = np.asarray(tune.jec_response, dtype=np.float64)
    ibin = np.clip(np.searchsorted(edges, abs_eta, side="right") - 1, 0, len(table) - 1)
    x = np.log(np.maximum(pt_gen, 1e-3))
    out = np.empty(len(pt_gen), dtype=np.float64)
    for b in range(len(table)):  # a handful of |eta| bins
        sel = ibin == b
        out[sel] = np.interp(x[sel], knots, table[b])
    return out


def jet_energy_correction(pt: np.ndarray, abs_eta: np.ndarray, tune: Tune = NOMINAL) -> np.ndarray:
    """Correction factor by numerical inversion: solve x R(x) = pT for x, return x / pT."""
    x = pt.astype(np.float64).copy()
    for _ in range(10):
        x = pt / np.maximum(jet_response(x, abs_eta, tune), 0.2)
    return x / np.maximum(pt, 1e-9)


def core_mean_width(x: np.ndarray, n_sigma: float = 2.0, iterations: int = 20) -> tuple[float, float]:
    """Gaussian core of a distribution: mean and width from iterative +-2 sigma truncation.

    The width is the truncated standard deviation divided by 0.8796, its value
    for a Gaussian truncated at +-2 sigma, so it estimates the Gaussian sigma.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3:
        return float("nan"), float("nan")
    m = float(np.median(x))
    s = float(np.percentile(x, 84) - np.percentile(x, 16)) / 2.0
    factor = {2.0: 0.8796}.get(n_sigma, 1.0)
    for _ in range(iterations):
        sel = np.abs(x - m) < n_sigma * max(s, 1e-12)
        if sel.sum() < 3:
            break
        m, s = float(x[sel].mean()), float(x[sel].std() / factor)
    return m, s


def response_table(
    reco_pt: np.ndarray, gen_pt: np.ndarray, gen_eta: np.ndarray, tune: Tune = NOMINAL, min_count: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Measure R(pT_gen) on the Tune's (|eta| bin, pT knot) grid from matched jets.

    Each knot's value is the Gaussian-core mean of reco/gen in the log-pT interval
    between the neighbouring knots' midpoints.  Returns (response, counts);
    cells with fewer than ``min_count`` jets are filled from the nearest filled
    knot of the same |eta| bin (1 if none).
    """
    edges = np.asarray(tune.jec_eta_edges)
    knots = np.log(np.asarray(tune.jec_pt_knots))
    mids = np.concatenate([[-np.inf], 0.5 * (knots[1:] + knots[:-1]), [np.inf]])
    ratio = reco_pt / gen_pt
    x = np.log(gen_pt)
    ibin = np.searchsorted(edges, np.abs(gen_eta), side="right") - 1
    resp = np.full((len(edges) - 1, len(knots)), np.nan)
    counts = np.zeros_like(resp, dtype=np.int64)
    for b in range(len(edges) - 1):
        for k in range(len(knots)):
            sel = (ibin == b) & (x >= mids[k]) & (x < mids[k + 1])
            counts[b, k] = int(sel.sum())
            if counts[b, k] >= min_count:
                resp[b, k] = core_mean_width(ratio[sel])[0]
        good = np.flatnonzero(np.isfinite(resp[b]))
        if len(good) == 0:
            resp[b] = 1.0
        else:
            nearest = good[np.argmin(np.abs(np.arange(len(knots))[:, None] - good[None, :]), axis=1)]
            resp[b] = resp[b, nearest]
    return resp, counts


# ----------------------------------------------------------------------------- jet quantities


def _jet_quantities(jets: Table, links: Table, pf: Table) -> dict[str, np.ndarray]:
    """Energy fractions, lepton and track counts, track width and EM fraction of each jet (see module doc)."""
    n = len(jets)
    jf = links["jet_flat"]
    ip = links["pf"]
    pt = pf["pt"][ip].astype(np.float64)
    eta = pf["eta"][ip].astype(np.float64)
    energy = np.sqrt((pt * np.cosh(eta)) ** 2 + pf["mass"][ip].astype(np.float64) ** 2)
    kind = np.abs(pf["pdgId"][ip])
    total = np.maximum(np.bincount(jf, weights=energy, minlength=n), 1e-9)
    out: dict[str, np.ndarray] = {}
    for name, code in (("chHEF", PF_CHARGED), ("neHEF", PF_NEUTRAL), ("chEmEF", PF_ELECTRON), ("neEmEF", PF_PHOTON),
                       ("muEF", PF_MUON)):
        out[name] = (np.bincount(jf, weights=np.where(kind == code, energy, 0.0), minlength=n) / total).astype(np.float32)
    out["nElectrons"] = np.bincount(jf, weights=kind == PF_ELECTRON, minlength=n).astype(np.int32)
    out["nMuons"] = np.bincount(jf, weights=kind == PF_MUON, minlength=n).astype(np.int32)
    track = (pf["charge"][ip] != 0) & (pt > 1.0)
    dr = np.sqrt(delta_r2(eta, pf["phi"][ip].astype(np.float64), jets["eta"][jf], jets["phi"][jf]))
    n_trk = np.bincount(jf, weights=track, minlength=n)
    sum_pt = np.bincount(jf, weights=np.where(track, pt, 0.0), minlength=n)
    sum_ptdr = np.bincount(jf, weights=np.where(track, pt * dr, 0.0), minlength=n)
    out["nTracks"] = n_trk.astype(np.int32)
    out["trackWidth"] = np.where(n_trk > 0, sum_ptdr / np.maximum(sum_pt, 1e-9), -1.0).astype(np.float32)
    return out


def _em_fraction(jets: Table, links: Table, pf: Table) -> np.ndarray:
    """EM-section share of the signal of the towers linked to each jet's constituents (each tower once per jet)."""
    n = len(jets)
    ip = links["pf"]
    tower = pf["tower"][ip]
    has = tower >= 0
    jf = links["jet_flat"][has].astype(np.int64)
    key = jf * (int(tower.max()) + 1 if has.any() else 1) + tower[has]
    _, first = np.unique(key, return_index=True)
    em = pf["tower_em"][ip][has][first].astype(np.float64)
    had = pf["tower_had"][ip][has][first].astype(np.float64)
    sum_em = np.bincount(jf[first], weights=em, minlength=n)
    sum_all = np.bincount(jf[first], weights=em + had, minlength=n)
    return np.where(sum_all > 0, sum_em / np.maximum(sum_all, 1e-9), -1.0).astype(np.float32)


def build_jets(
    pf: Table, truth: Table, heavy: Table, n_events: int, tune: Tune, rng: np.random.Generator
) -> tuple[Table, Table, Table, np.ndarray]:
    """Return (Jet, GenJet, JetPFCands links, rho)."""
    chs_mask = ((pf["fromPV"] > 0) | (pf["charge"] == 0)) & (np.abs(pf["eta"]) < tune.jet_eta_max)
    chs_index = np.flatnonzero(chs_mask)
    chs = Table({k: pf[k][chs_index] for k in ("evt", "pt", "eta", "phi", "mass")})
    # a jet can pass jet_pt_min after the corrections only if raw pT > jet_pt_min * min(R): skip softer ones
    cal = calibration_tune(tune)
    raw_pt_min = max(5.0, tune.jet_pt_min * float(np.min(cal.jec_response)))
    raw, links = cluster(chs, n_events, tune.jet_radius, pt_min=raw_pt_min)
    assert links is not None
    links["pf"] = chs_index[links["obj"]]

    rho = grid_rho(pf, n_events)
    area = np.pi * tune.jet_radius**2
    offset = np.maximum(raw["pt"] - rho[raw["evt"]] * area, 0.0) / np.maximum(raw["pt"], 1e-9)
    pt_offset = raw["pt"] * offset
    jec = jet_energy_correction(pt_offset, np.abs(raw["eta"]), cal)  # pseudo-data: the nominal numbers
    scale = offset * jec
    jets = raw
    jets["raw_pt"] = raw["pt"]
    jets["pt"] = raw["pt"] * scale
    jets["mass"] = raw["mass"] * scale

    quantities = _jet_quantities(jets, links, pf)
    quantities["emFrac"] = _em_fraction(jets, links, pf)
    lep_frac = (quantities["chEmEF"] + quantities["muEF"]).astype(np.float64)

    keep = jets["pt"] > tune.jet_pt_min
    new_index = np.cumsum(keep) - 1
    links = links.select(keep[links["jet_flat"]])
    links["jet_flat"] = new_index[links["jet_flat"]]
    jets = jets.select(keep)
    lep_frac = lep_frac[keep]
    quantities = {k: v[keep] for k, v in quantities.items()}
    # re-sort after the corrections, and renumber the links
    order = np.lexsort((-jets["pt"], jets["evt"]))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    jets = jets.take(order)
    lep_frac = lep_frac[order]
    links["jet_flat"] = rank[links["jet_flat"]]
    jet_starts = np.concatenate([[0], np.cumsum(jets.counts(n_events))[:-1]])
    links["jet"] = (links["jet_flat"] - jet_starts[links["evt"]]).astype(np.int32)
    links = links.take(np.argsort(links["jet_flat"], kind="stable"))
    for k, v in quantities.items():
        jets[k] = v[order]

    # truth jets from visible hard-scatter particles (no constituent links needed)
    genjets, _ = cluster(truth, n_events, tune.jet_radius, pt_min=tune.genjet_pt_min, constituents=False)

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
