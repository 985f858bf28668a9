"""Hadronic taus: HPS-like reconstruction on PF candidates and jets, DeepTau-like identification, truth matching.

Reconstruction follows the hadrons-plus-strips (HPS) algorithm of CMS
(JINST 11 (2016) P01019; Run-2 update JINST 13 (2018) P10005), one candidate
per seed jet (pT > 18 GeV, |eta| < 2.3):

- prong candidates: charged PF candidates of the jet (hadrons, and electrons
  and muons, which is how leptons fake taus) with pT > 0.5 GeV within
  dR < 0.1 of the leading one, by decreasing pT;
- strips: the jet's PF photons clustered greedily around the highest-pT
  unclustered photon in a window wide in phi (magnetic bending and
  conversions), with the Run-2 dynamic sizes; a strip takes the pi0 mass, and
  strips above 2.5 GeV are pi0 candidates;
- hypotheses, in the order of decreasing visible pT, the first valid one
  kept: 3 prongs + strip (decay mode 11), 3 prongs (10), two prongs (the
  candidate is dropped, as the 2-prong modes are in analyses), 1 prong + 2
  strips (2), 1 prong + strip (1), 1 prong (0).  A hypothesis is valid when
  its mass lies in the HPS window, every prong and strip lies within the
  signal cone R_sig = 3.0 GeV / pT (clipped to 0.05-0.1) of the candidate
  axis, and |charge| = 1;
- the tau 4-vector is the sum of the signal prongs and strips, so the visible
  mass and energy resolutions come from the particle-flow model;
- isolation (dR < 0.5 of the axis, candidates above 0.5 GeV, signal
  constituents excluded): ``chargedIso`` from PV charged candidates,
  ``neutralIso`` from photons, ``puCorr`` the charged pile-up sum in
  dR < 0.8; ``rawIso`` = chargedIso + max(0, neutralIso - 0.2 puCorr).

Identification draws DeepTau 2017v2p1-like scores (CMS TAU-20-001,
arXiv:2201.08458) whose survival fractions at the CMSSW working-point
thresholds reproduce the published efficiencies: for each candidate a
survival function S(t_k) per working point is built from its truth class
(genuine tau, jet, electron, muon), its pT and its relative isolation, and
the score is drawn by inverting S at a uniform number.  Isolated jet fakes
pass more often than non-isolated ones; the mean over a jet population stays
at the published fake rate (see :func:`vsjet_survival`).

Truth matching as NanoAOD (``CandMCMatchTableProducer``, dR < 0.3 and
|pT/pT_gen - 1| < 1): a prompt e/mu or an e/mu from a tau decay in GenPart
gives ``genPartFlav`` 1-4 (``genPartIdx`` into GenPart), else a GenVisTau
gives 5 (``genPartIdx`` into GenVisTau), else 0.
"""

from __future__ import annotations

import numpy as np

from .particles import (
    Table,
    delta_phi,
    delta_r2,
    energy,
    index_within_group,
    local_index,
    nearest_within,
    pairs_within_event,
)
from .tune import Tune

#: Decay-mode hypotheses in the order HPS prefers them (highest visible pT first); -1 marks the rejected 2-prong.
_HYPOTHESES = (11, 10, -1, 2, 1, 0)

_FLAG_PROMPT = 1 << 0
_FLAG_TAU_DECAY_PRODUCT = 1 << 2


def _p4(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """(n, 4) array of px, py, pz, E."""
    pt = pt.astype(np.float64)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), energy(pt, eta.astype(np.float64), mass)], axis=-1)


def _kinematics(p4: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pt, eta, phi, mass of (..., 4) four-vectors."""
    px, py, pz, e = p4[..., 0], p4[..., 1], p4[..., 2], p4[..., 3]
    pt = np.hypot(px, py)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    mass = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0.0))
    return pt, eta, np.arctan2(py, px), mass


def signal_cone(pt: np.ndarray, tune: Tune) -> np.ndarray:
    """HPS shrinking signal cone R_sig = k / pT clipped to [r_min, r_max]."""
    k, r_min, r_max = tune.tau_signal_cone
    return np.clip(k / np.maximum(pt, 1e-9), r_min, r_max)


def mass_window(dm: int, pt: np.ndarray, tune: Tune) -> tuple[np.ndarray, np.ndarray]:
    """HPS visible-mass window (low, high) of decay mode ``dm`` at candidate pT ``pt``."""
    if dm in (1, 2):
        low, slope, up_min, up_max = tune.tau_mass_dm1 if dm == 1 else tune.tau_mass_dm2
        high = np.clip(slope * np.sqrt(np.maximum(pt, 0.0) / 100.0), up_min, up_max)
        return np.full(len(pt), low), high
    low, high = tune.tau_mass_dm10 if dm == 10 else tune.tau_mass_dm11
    return np.full(len(pt), low), np.full(len(pt), high)


def _first_per_group(group_sorted: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run of equal values."""
    out = np.ones(len(group_sorted), dtype=bool)
    out[1:] = group_sorted[1:] != group_sorted[:-1]
    return out


def _strips(
    row: np.ndarray, pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, n_rows: int, tune: Tune
) -> np.ndarray:
    """Greedy HPS strip clustering of photons (sorted by row, then decreasing pT).

    Each round opens one strip per candidate at its highest-pT unclustered
    photon and adds every unclustered photon of the candidate within
    |d_eta| < f(pT_gamma) + f(pT_seed), |d_phi| < g(pT_gamma) + g(pT_seed)
    (f = 0.197 pT^-0.659 clipped to [0.05, 0.15], g = 0.352 pT^-0.708
    clipped to [0.05, 0.30]: the Run-2 HPS dynamic strips of CMSSW's
    RecoTauPiZeroProducer).  Returns the strip number (round) of each photon,
    -1 when left out.
    """
    strip = np.full(len(row), -1, dtype=np.int64)
    a_eta, b_eta, lo_eta, hi_eta = tune.tau_strip_eta
    a_phi, b_phi, lo_phi, hi_phi = tune.tau_strip_phi
    f_eta = np.clip(a_eta * np.maximum(pt, 1e-3) ** b_eta, lo_eta, hi_eta)
    f_phi = np.clip(a_phi * np.maximum(pt, 1e-3) ** b_phi, lo_phi, hi_phi)
    for r in range(tune.tau_strip_rounds):
        free = np.flatnonzero(strip < 0)
        if len(free) == 0:
            break
        seeds = free[_first_per_group(row[free])]
        seed_of_row = np.full(n_rows, -1, dtype=np.int64)
        seed_of_row[row[seeds]] = seeds
        s = seed_of_row[row[free]]
        inside = (np.abs(eta[free] - eta[s]) < f_eta[free] + f_eta[s]) & (
            np.abs(delta_phi(phi[free], phi[s])) < f_phi[free] + f_phi[s]
        )
        strip[free[inside]] = r
    return strip


def survival_to_score(survival: np.ndarray, thresholds: tuple[float, ...], u: np.ndarray) -> np.ndarray:
    """Draw scores in [0, 1] whose survival at ``thresholds`` is ``survival`` (n, K), by inversion at uniforms ``u``.

    The survival function is piecewise linear between the knots
    (0, 1), (t_1, S_1), ..., (t_K, S_K), (1, 0).
    """
    n, k = survival.shape
    knots = np.array([0.0, *thresholds, 1.0])
    s = np.concatenate([np.ones((n, 1)), np.minimum.accumulate(np.clip(survival, 0.0, 1.0), axis=1), np.zeros((n, 1))], axis=1)
    seg = np.clip((u[:, None] < s[:, 1:]).sum(axis=1), 0, k)  # u lies between s[seg] and s[seg + 1]
    rows = np.arange(n)
    s_hi, s_lo = s[rows, seg], s[rows, seg + 1]
    frac = np.where(s_hi > s_lo, (s_hi - u) / np.maximum(s_hi - s_lo, 1e-12), 0.5)
    return (knots[seg] + frac * (knots[seg + 1] - knots[seg])).astype(np.float32)


def wp_bits(score: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """NanoAOD cumulative working-point bitmask (bit k set when the score passes WP k, loosest first)."""
    bits = np.zeros(len(score), dtype=np.uint8)
    for k, t in enumerate(thresholds):
        bits |= np.where(score > t, np.uint8(1 << k), np.uint8(0))
    return bits


def vsjet_survival(pt: np.ndarray, iso_rel: np.ndarray, genuine: np.ndarray, tune: Tune) -> np.ndarray:
    """Probability (n, 8) that a candidate passes each DeepTau VSjet working point.

    Genuine taus (and leptons, which look like isolated taus to the jet
    discriminant): the published WP efficiency eff_k to the power
    h = max(1, exp(b (I - I0))), so that non-isolated taus (in busy events)
    lose efficiency, times the data/MC factor.  Jets: the published fake rate
    at 30 GeV scaled as (pT/30)^a, times w = exp(-b (I - I0)) clipped to
    [w_min, w_max], the same for every working point: an isolated fake (small
    relative isolation I = rawIso / pT) passes more often, a non-isolated one
    less; I0 is set so that the mean of w over QCD-jet fakes is about 1.
    """
    eff = np.asarray(tune.deeptau_vsjet_eff)[None, :]
    fake = np.asarray(tune.deeptau_vsjet_fake)[None, :]
    p_ref, p_exp, p_lo, p_hi = tune.deeptau_fake_pt
    i0, b, w_min, w_max = tune.deeptau_fake_iso
    g0, gb = tune.deeptau_genuine_iso
    iso = np.asarray(iso_rel, dtype=np.float64)
    fake_pt = np.clip(fake * (np.clip(pt, p_lo, p_hi) / p_ref)[:, None] ** p_exp, 0.0, 1.0)
    w_fake = np.clip(np.exp(-b * (iso - i0)), w_min, w_max)[:, None]
    h_gen = np.maximum(1.0, np.exp(gb * (iso - g0)))[:, None]
    genuine_s = np.clip(tune.tau_id_eff_scale * eff ** h_gen, 0.0, 1.0)
    return np.where(np.asarray(genuine)[:, None], genuine_s, np.clip(fake_pt * w_fake, 0.0, 1.0))


def _lepton_match(taus: Table, genpart: Table, n_events: int, max_dr: float) -> tuple[np.ndarray, np.ndarray]:
    """(genPartFlav 1-4 or 0, GenPart index within the event or -1) from prompt or tau-decay e/mu in GenPart."""
    flav = np.zeros(len(taus), dtype=np.uint8)
    idx = np.full(len(taus), -1, dtype=np.int32)
    abs_id = np.abs(genpart["pdgId"])
    flags = genpart["statusFlags"]
    lep = ((abs_id == 11) | (abs_id == 13)) & (genpart["status"] == 1) & ((flags & (_FLAG_PROMPT | _FLAG_TAU_DECAY_PRODUCT)) > 0)
    cand = np.flatnonzero(lep)
    nearest = nearest_within(taus, genpart.take(cand), n_events, max_dr, max_rel_pt=1.0)
    it = np.flatnonzero(nearest >= 0)
    ig = cand[nearest[it]]
    from_tau = (flags[ig] & _FLAG_TAU_DECAY_PRODUCT) > 0
    muon = abs_id[ig] == 13
    flav[it] = np.where(from_tau, np.where(muon, 4, 3), np.where(muon, 2, 1)).astype(np.uint8)
    idx[it] = genpart["local"][ig] if "local" in genpart.columns else -1
    return flav, idx


def _vistau_match(taus: Table, genvistau: Table, n_events: int, max_dr: float) -> np.ndarray:
    """Index within the event's GenVisTau of the nearest one within ``max_dr`` and |pT/pT_gen - 1| < 1, else -1."""
    nearest = nearest_within(taus, genvistau, n_events, max_dr, max_rel_pt=1.0)
    return local_index(nearest, genvistau, n_events)


def build_taus(
    pf: Table,
    jets: Table,
    links: Table,
    genvistau: Table,
    n_events: int,
    tune: Tune,
    rng: np.random.Generator,
    genpart: Table | None = None,
) -> Table:
    """The Tau collection (flat, sorted by event then decreasing pT) with NanoAOD Tau branch names.

    ``jets``/``links`` as returned by :func:`.jets.build_jets`; ``genvistau`` and
    ``genpart`` (optional, with ``local``) as flat tables of the generation
    record.  Without ``genpart`` no lepton truth match is made (genPartFlav is
    5 or 0).
    """
    # ---- seed jets and their constituents
    seed = (jets["pt"] > tune.tau_seed_jet_pt_min) & (np.abs(jets["eta"]) < tune.tau_eta_max)
    lk = links.select(seed[links["jet_flat"]])
    c_jet, c_pf = lk["jet_flat"], lk["pf"]
    c_pt = pf["pt"][c_pf].astype(np.float64)

    # ---- leading charged candidate per jet -> one tau candidate ("row") per jet
    charged = (pf["charge"][c_pf] != 0) & (c_pt > tune.tau_track_pt_min)
    ch_order = np.flatnonzero(charged)[np.lexsort((-c_pt[charged], c_jet[charged]))]
    ch_jet, ch_pf = c_jet[ch_order], c_pf[ch_order]
    is_lead = _first_per_group(ch_jet)
    row_jet = ch_jet[is_lead]  # flat jet index of each candidate
    n_rows = len(row_jet)
    row_of_jet = np.full(len(jets), -1, dtype=np.int64)
    row_of_jet[row_jet] = np.arange(n_rows)
    lead_pf = ch_pf[is_lead]
    lead_eta, lead_phi = pf["eta"][lead_pf].astype(np.float64), pf["phi"][lead_pf].astype(np.float64)

    # ---- prongs: charged candidates near the leading one (already sorted by row, decreasing pT)
    ch_row = row_of_jet[ch_jet]
    near = delta_r2(pf["eta"][ch_pf], pf["phi"][ch_pf], lead_eta[ch_row], lead_phi[ch_row]) < tune.tau_prong_dr**2
    pr_row, pr_pf = ch_row[near], ch_pf[near]
    n_prong = np.bincount(pr_row, minlength=n_rows)
    rank = index_within_group(n_prong)
    prong = np.full((n_rows, 3), -1, dtype=np.int64)
    top = rank < 3
    prong[pr_row[top], rank[top]] = pr_pf[top]

    # ---- strips from the jet's photons
    gamma = (pf["pdgId"][c_pf] == 22) & (c_pt > tune.tau_gamma_pt_min) & (row_of_jet[c_jet] >= 0)
    g_order = np.flatnonzero(gamma)[np.lexsort((-c_pt[gamma], row_of_jet[c_jet[gamma]]))]
    g_pf = c_pf[g_order]
    g_row = row_of_jet[c_jet[g_order]]
    g_strip = _strips(g_row, pf["pt"][g_pf].astype(np.float64), pf["eta"][g_pf].astype(np.float64),
                      pf["phi"][g_pf].astype(np.float64), n_rows, tune)
    rounds = tune.tau_strip_rounds
    g_p4 = _p4(pf["pt"][g_pf], pf["eta"][g_pf], pf["phi"][g_pf], np.zeros(len(g_pf)))
    in_strip = g_strip >= 0
    key = g_row[in_strip] * rounds + g_strip[in_strip]
    strip_p4 = np.stack(
        [np.bincount(key, weights=g_p4[in_strip, c], minlength=n_rows * rounds) for c in range(4)], axis=-1
    ).reshape(n_rows, rounds, 4)
    strip_p4[..., 3] = np.sqrt((strip_p4[..., :3] ** 2).sum(axis=-1) + tune.tau_strip_mass**2)  # pi0 mass hypothesis
    strip_pt = np.hypot(strip_p4[..., 0], strip_p4[..., 1])
    strip_ok = strip_pt > tune.tau_strip_pt_min
    strip_rank = np.argsort(np.where(strip_ok, -strip_pt, np.inf), axis=1, kind="stable")  # round numbers by pT
    n_strip = strip_ok.sum(axis=1)
    rows = np.arange(n_rows)
    s1 = np.where((n_strip >= 1)[:, None], strip_p4[rows, strip_rank[:, 0]], 0.0)  # leading strip (rounds >= 2)
    s2 = np.where((n_strip >= 2)[:, None], strip_p4[rows, strip_rank[:, 1]], 0.0)

    # ---- decay-mode hypotheses
    safe = np.maximum(prong, 0)
    p4_prong = _p4(pf["pt"][safe], pf["eta"][safe], pf["phi"][safe], pf["mass"][safe]) * (prong >= 0)[..., None]
    q_prong = np.where(prong >= 0, pf["charge"][safe], 0)
    lead = p4_prong[:, 0]
    three = p4_prong.sum(axis=1)
    two = p4_prong[:, 0] + p4_prong[:, 1]
    components = {  # 4-vector, prongs used, strips used, extra requirement
        11: (three + s1, 3, 1, (n_prong >= 3) & (n_strip >= 1) & (np.abs(q_prong.sum(axis=1)) == 1)),
        10: (three, 3, 0, (n_prong >= 3) & (np.abs(q_prong.sum(axis=1)) == 1)),
        -1: (two, 2, 0, n_prong == 2),
        2: (lead + s1 + s2, 1, 2, n_strip >= 2),
        1: (lead + s1, 1, 1, n_strip >= 1),
        0: (lead, 1, 0, np.ones(n_rows, dtype=bool)),
    }
    valid = np.zeros((n_rows, len(_HYPOTHESES)), dtype=bool)
    strips_p4 = np.stack([s1, s2], axis=1)
    for h, dm in enumerate(_HYPOTHESES):
        p4, n_pr, n_st, ok = components[dm]
        pt, eta, phi, mass = _kinematics(p4)
        if dm > 0:
            low, high = mass_window(dm, pt, tune)
            ok = ok & (mass > low) & (mass < high)
        r_sig2 = signal_cone(pt, tune) ** 2
        for k in range(n_pr):
            _, keta, kphi, _ = _kinematics(p4_prong[:, k])
            ok = ok & (delta_r2(keta, kphi, eta, phi) < r_sig2)
        for k in range(n_st):
            _, keta, kphi, _ = _kinematics(strips_p4[:, k])
            ok = ok & (delta_r2(keta, kphi, eta, phi) < r_sig2)
        valid[:, h] = ok
    choice = np.argmax(valid, axis=1)  # first valid hypothesis (1 prong is always valid)
    dm_all = np.asarray(_HYPOTHESES)[choice]
    tau_p4 = np.zeros((n_rows, 4))
    for dm in _HYPOTHESES:
        sel = dm_all == dm
        tau_p4[sel] = components[dm][0][sel]
    tau_p4 *= tune.tau_energy_scale
    t_pt, t_eta, t_phi, t_mass = _kinematics(tau_p4)
    keep = (dm_all >= 0) & (t_pt > tune.tau_pt_min) & (np.abs(t_eta) < tune.tau_eta_max)
    n_prong_used = np.where(dm_all >= 10, 3, 1)
    n_strip_used = np.select([dm_all == 2, (dm_all == 1) | (dm_all == 11)], [2, 1], 0)
    charge = np.where(n_prong_used == 3, q_prong.sum(axis=1), q_prong[:, 0])

    # ---- signal constituents (for the isolation veto) and strip photons outside the signal cone
    r_sig = signal_cone(t_pt, tune)
    sig_rows = [np.repeat(rows, n_prong_used)]
    sig_pf = [prong[np.repeat(rows, n_prong_used), index_within_group(n_prong_used)]]
    strip_used_rank = np.full(len(g_pf), 99)
    for k in range(2):
        strip_used_rank = np.where(g_strip == strip_rank[g_row, k], k, strip_used_rank)
    g_signal = in_strip & (strip_used_rank < n_strip_used[g_row])
    sig_rows.append(g_row[g_signal])
    sig_pf.append(g_pf[g_signal])
    g_out = g_signal & (delta_r2(pf["eta"][g_pf], pf["phi"][g_pf], t_eta[g_row], t_phi[g_row]) > r_sig[g_row] ** 2)
    photons_out = np.bincount(g_row[g_out], weights=pf["pt"][g_pf][g_out], minlength=n_rows)
    sig_key = np.unique(np.concatenate(sig_rows) * len(pf) + np.concatenate(sig_pf))

    # ---- isolation
    row_evt = jets["evt"][row_jet]
    iso_sel = np.flatnonzero((pf["pt"] > tune.tau_track_pt_min) & (np.abs(pf["eta"]) < tune.tau_eta_max + tune.tau_pu_cone))
    it, ip = pairs_within_event(row_evt[keep], pf["evt"][iso_sel], n_events)
    it = np.flatnonzero(keep)[it]
    ip = iso_sel[ip]
    dr2 = delta_r2(t_eta[it], t_phi[it], pf["eta"][ip], pf["phi"][ip])
    near = dr2 < tune.tau_pu_cone**2
    it, ip, dr2 = it[near], ip[near], dr2[near]
    not_signal = ~np.isin(it * len(pf) + ip, sig_key)
    in_iso = (dr2 < tune.tau_iso_cone**2) & not_signal
    is_charged = pf["charge"][ip] != 0
    from_pv = pf["fromPV"][ip] > 0
    ptp = pf["pt"][ip].astype(np.float64)
    charged_iso = np.bincount(it, weights=np.where(in_iso & is_charged & from_pv, ptp, 0.0), minlength=n_rows)
    neutral_iso = np.bincount(it, weights=np.where(in_iso & (pf["pdgId"][ip] == 22), ptp, 0.0), minlength=n_rows)
    pu_corr = np.bincount(it, weights=np.where(not_signal & is_charged & ~from_pv, ptp, 0.0), minlength=n_rows)
    raw_iso = charged_iso + np.maximum(0.0, neutral_iso - tune.tau_delta_beta * pu_corr)

    # ---- assemble the kept candidates
    k = np.flatnonzero(keep)
    jet_starts = np.concatenate([[0], np.cumsum(jets.counts(n_events))[:-1]])
    lead_k = lead_pf[k]
    taus = Table(
        {
            "evt": row_evt[k],
            "pt": t_pt[k].astype(np.float32),
            "eta": t_eta[k].astype(np.float32),
            "phi": t_phi[k].astype(np.float32),
            "mass": t_mass[k].astype(np.float32),
            "charge": charge[k].astype(np.int32),
            "decayMode": dm_all[k].astype(np.int32),
            "idDecayModeNewDMs": np.ones(len(k), dtype=bool),
            "idDecayModeOldDMs": dm_all[k] != 11,
            "leadTkPtOverTauPt": (pf["pt"][lead_k] / t_pt[k]).astype(np.float32),
            "leadTkDeltaEta": (pf["eta"][lead_k] - t_eta[k]).astype(np.float32),
            "leadTkDeltaPhi": delta_phi(pf["phi"][lead_k], t_phi[k]).astype(np.float32),
            "chargedIso": charged_iso[k].astype(np.float32),
            "neutralIso": neutral_iso[k].astype(np.float32),
            "puCorr": pu_corr[k].astype(np.float32),
            "rawIso": raw_iso[k].astype(np.float32),
            "photonsOutsideSignalCone": photons_out[k].astype(np.float32),
            "dxy": pf["dxy"][lead_k].astype(np.float32),
            "dz": pf["dz"][lead_k].astype(np.float32),
            "jetIdx": (row_jet[k] - jet_starts[row_evt[k]]).astype(np.int32),
        }
    )

    # ---- truth matching
    lep_flav, lep_idx = (
        _lepton_match(taus, genpart, n_events, tune.tau_match_dr)
        if genpart is not None
        else (np.zeros(len(taus), np.uint8), np.full(len(taus), -1, np.int32))
    )
    vis_idx = _vistau_match(taus, genvistau, n_events, tune.tau_match_dr)
    is_lep = lep_flav > 0
    taus["genPartFlav"] = np.where(is_lep, lep_flav, np.where(vis_idx >= 0, 5, 0)).astype(np.uint8)
    taus["genPartIdx"] = np.where(is_lep, lep_idx, vis_idx).astype(np.int32)

    # ---- DeepTau-like identification
    flav = taus["genPartFlav"]
    electron = (flav == 1) | (flav == 3)
    muon = (flav == 2) | (flav == 4)
    iso_rel = raw_iso[k] / np.maximum(t_pt[k], 1e-9)
    u = rng.random((3, len(taus)))
    s_jet = vsjet_survival(t_pt[k], iso_rel, flav > 0, tune)
    n = len(taus)
    s_e = np.where(electron[:, None], np.asarray(tune.deeptau_vse_fake)[None, :], np.asarray(tune.deeptau_vse_eff)[None, :])
    s_mu = np.where(muon[:, None], np.asarray(tune.deeptau_vsmu_fake)[None, :], np.asarray(tune.deeptau_vsmu_eff)[None, :])
    for name, survival, wps, ui in (
        ("VSjet", s_jet, tune.deeptau_vsjet_wp, u[0]),
        ("VSe", np.broadcast_to(s_e, (n, len(tune.deeptau_vse_wp))), tune.deeptau_vse_wp, u[1]),
        ("VSmu", np.broadcast_to(s_mu, (n, len(tune.deeptau_vsmu_wp))), tune.deeptau_vsmu_wp, u[2]),
    ):
        score = survival_to_score(np.asarray(survival, dtype=np.float64), wps, ui)
        taus[f"rawDeepTau2017v2p1{name}"] = score
        taus[f"idDeepTau2017v2p1{name}"] = wp_bits(score, wps)

    return taus.take(np.lexsort((-taus["pt"], taus["evt"])))
