"""Detector tunes: every number of the fast simulation, with its source.

``nominal`` is the simulation the networks train on.  ``pseudodata`` stands in
for collision data: shifted energy scales, worse resolutions and more upstream
material, so that data/MC steps have a "data" that differs in known ways.

Sources (see shared/PHYSICS.md):
- EM calorimeter sigma/E = 10.1%/sqrt(E) (+) 0.17% (Delphes ATLAS card, ECAL);
  electrons are measured by the cell simulation (:mod:`.calo_images`).
- Hadronic calorimeter sigma = sqrt((0.050 E)^2 + 1.50^2 E) GeV (Delphes CMS
  card, HCAL, with its 0.087 x 0.087 towers as ours), with event-by-event
  fluctuations of the EM fraction of hadron showers on top; per-tower
  electronic noise (see :mod:`.calorimeter`).  The Delphes ATLAS numbers
  (52%/sqrt(E) (+) 3%) are ATLAS's design resolution for a compensated
  jet measurement: with them our PF jets came out twice as well measured as
  published at every pT (2.3% at 1 TeV against ~5%).
- Track pT resolution sqrt(a^2 + (b pT)^2) with a multiple-scattering term a
  and a sagitta term b (MadAnalysis5 SFS CMS card style).
- b-tagging: DeepJet-like working points 0.0490 / 0.2783 / 0.7100 with light
  mistag 10% / 1% / 0.1% and b efficiency 87% / 73% / 58% (CMS BTV UL
  recommendations); c mistag 35% / 13% / 3%.
- Non-compensation: hadronic response R = 1 - (1 - h/e)(1 - F_em),
  F_em = 1 - (E / E0)^(k - 1) with E0 = 1 GeV, k = 0.82 (Groom's
  parametrisation of the EM fraction of hadron showers), h/e = 0.7.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Tune:
    name: str = "nominal"
    # tracking
    track_eta_max: float = 2.5
    track_pt_min: float = 0.5  # GeV: below this, charged particles curl up before the calorimeter
    track_eff_high: float = 0.97  # pT > 1 GeV
    track_eff_low: float = 0.90  # 0.5 < pT < 1 GeV
    track_eff_endcap_factor: float = 0.96  # |eta| > 1.5
    track_res_ms: float = 0.006  # multiple-scattering term
    track_res_sagitta: float = 1.5e-4  # 1/GeV
    track_res_endcap_factor: float = 1.8
    vertex_merge_dz: float = 0.1  # cm: pile-up tracks this close to the PV are associated to it
    beamspot_sigma_z: float = 3.5  # cm
    vertex_eff: float = 0.7  # reconstruction efficiency of a pile-up vertex
    # electromagnetic calorimeter
    em_stochastic: float = 0.101
    em_constant: float = 0.0017
    em_noise: float = 0.2  # GeV per deposit
    em_stochastic_forward: float = 0.30  # |eta| > 3.2
    em_scale: float = 1.0
    em_material_loss: float = 0.01  # mean fractional loss upstream, corrected on average in the reconstruction
    # hadronic calorimeter
    had_stochastic: float = 1.50  # Delphes CMS card HCAL (0.087 towers, as ours)
    had_constant: float = 0.050
    had_stochastic_forward: float = 2.70
    had_h_over_e: float = 0.70
    had_k: float = 0.82
    had_scale: float = 1.0
    calo_eta_max: float = 4.9
    neutral_energy_min: float = 1.0  # GeV: PF neutral hadron threshold
    photon_energy_min: float = 0.5  # GeV: PF photon threshold
    # muons
    muon_eta_max: float = 2.4
    muon_eff: float = 0.98
    muon_tight_eff: float = 0.97
    muon_res_ms: float = 0.01
    muon_res_sagitta: float = 1.0e-4
    # electrons
    electron_eta_max: float = 2.47
    electron_reco_eff: float = 0.97
    electron_tight_eff_plateau: float = 0.85
    electron_tight_eff_turnon: float = 12.0  # GeV scale of the ID turn-on
    nonprompt_id_factor: float = 0.5  # ID efficiency multiplier for non-prompt electrons
    # jets
    jet_radius: float = 0.4
    jet_pt_min: float = 15.0
    genjet_pt_min: float = 10.0
    jet_eta_max: float = 4.7
    # b-tagging: (score thresholds, survival fractions for b, c, light)
    btag_thresholds: tuple[float, float, float] = (0.0490, 0.2783, 0.7100)
    btag_eff_b: tuple[float, float, float] = (0.87, 0.73, 0.58)
    btag_eff_c: tuple[float, float, float] = (0.35, 0.13, 0.03)
    btag_eff_light: tuple[float, float, float] = (0.10, 0.01, 0.001)
    # MET covariance (CMS MET-significance construction, JINST 14 (2019) P07004; numbers fitted to our simulation)
    met_jet_pt_min: float = 15.0  # GeV: jets above enter with their resolution, the rest is unclustered
    # jet resolution sqrt(N^2/pT^2 + S^2/pT + C^2) fitted to our truth JER (|eta| < 1.3, mu = 20):
    # 16.6% at 25 GeV, 9.6% at 75, 5.6% at 325, 4.1% at 1100 GeV
    met_jer_n: float = 2.0  # GeV: noise term
    met_jer_s: float = 0.8  # sqrt(GeV): stochastic term
    met_jer_c: float = 0.035  # constant term
    met_jet_scale: float = 1.0  # scale factor on the jet resolution (CMS fits these to data; here to our simulation)
    met_jet_phi_res: float = 0.02  # rad: jet azimuthal resolution
    # unclustered term and jet scale fitted to the core width of the pulls of (MET - GenMET) along the covariance's
    # principal axes and to the mean of chi^2 = r^T V^-1 r (events with every prompt lepton in |eta| < 2.4), on
    # 6000 ttbar at mu = 20 and 4000 W -> mu nu at mu = 2 simulated apart from the validation samples:
    # pull widths 1.01 / 0.96, chi^2 means 2.09 / 1.99 (expected 2)
    met_uncl_sigma0: float = 0.5  # GeV: per-component floor of the unclustered term
    met_uncl_sigma_u: float = 0.54  # sqrt(GeV): unclustered sigma^2 = sigma0^2 + sigma_u^2 * sum pT(unclustered)
    # --- calorimeter towers, particle flow, jets (section owned by detector/pflow.py, jets.py) ---
    # towers (calorimeter.py): per |eta| region (low, high, eta rings, phi towers); CMS HCAL-like 0.087 x 0.087 barrel
    tower_regions: tuple[tuple[float, float, int, int], ...] = ((0.0, 1.74, 20, 72), (1.74, 3.0, 7, 36), (3.0, 5.0, 11, 36))
    tower_noise_em: float = 0.10  # GeV: electronic noise per tower, EM section
    tower_noise_had: float = 0.25  # GeV: per tower, hadronic section
    tower_noise_forward_factor: float = 2.0  # noise multiplier for |eta| > 3 (HF-like)
    tower_threshold_nsigma: float = 3.0  # zero suppression per section, in noise sigmas
    # hadron showers (calorimeter.py): F_em fluctuations (Groom, NIM A 572 (2007) 633), section split, material
    had_fem_sigma: float = 0.15  # sigma(F_em) at <F_em> = 0.5 (Beta distribution; 0.1-0.2 measured, Wigmans ch. 4)
    had_em_start_prob: float = 0.6  # P(shower starts in the EM section): ~1 lambda_I of EM calorimeter, 1 - e^-1
    had_em_share: float = 0.35  # mean share of the signal in the EM section when the shower starts there
    had_mip_em: float = 0.3  # GeV: EM-section signal of a charged hadron that does not shower there
    had_material_loss: float = 0.02  # mean fractional loss of hadrons upstream (dead material)
    had_lateral_sigma: float = 0.04  # lateral spread (eta-phi) of the HAD-section signal: ~0.4 lambda_I at r ~ 1.9 m
    had_lateral_fluct: float = 0.4  # shower-to-shower spread of that width (log-normal sigma)
    had_lateral_min: float = 1.0  # GeV: HAD-section signals below this stay in one tower (cost)
    # charged-particle impact on the calorimeter (CMS: 3.8 T, ECAL front at r = 1.29 m, endcap z = 3.15 m, HF 11.15 m)
    calo_bfield: float = 3.8  # T
    calo_radius: float = 1.29  # m
    calo_z_endcap: float = 3.15  # m
    calo_z_forward: float = 11.15  # m
    # particle flow on towers (pflow.py, CMS PF arXiv:1706.04965 section 6)
    pf_excess_nsigma: float = 1.0  # a tower excess over the tracks' expected signal above this many sigmas is neutral
    # tracking in dense jet cores (ATLAS arXiv:1704.07983): tracks sharing an innermost-pixel cluster
    pixel_radius: float = 3.3  # cm: innermost pixel layer (ATLAS IBL)
    pixel_pitch_rphi: float = 0.005  # cm (50 um)
    pixel_pitch_z: float = 0.025  # cm (250 um)
    track_merge_loss: float = 0.08  # P(lose a particle of a merged cluster): 0.061-0.093 measured (ATLAS)
    # impact-parameter resolution (tracker.py): sigma = a (+) b / (pT sin^p theta), pT in GeV
    ip_d0_a: float = 10e-4  # cm (10 um)
    ip_d0_b: float = 80e-4  # cm GeV (80 um at 1 GeV, theta = 90 deg)
    ip_z0_a: float = 30e-4  # cm
    ip_z0_b: float = 100e-4  # cm GeV
    # jet energy correction (jets.py): mean response R(pT_gen) after the rho * area offset, per |eta| bin,
    # piecewise linear in log(pT); derived from the nominal simulation (numerical inversion, ATL-PHYS-PUB-2018-013)
    jec_eta_edges: tuple[float, ...] = (0.0, 1.3, 2.5, 3.0, 4.7)
    jec_pt_knots: tuple[float, ...] = (15.0, 20.0, 30.0, 50.0, 80.0, 120.0, 200.0, 350.0, 600.0, 1000.0, 1600.0, 2500.0)
    jec_response: tuple[tuple[float, ...], ...] = (  # derived at mu = 20 (QCD pTHat 20-1000 GeV and ttbar samples)
        (0.869, 0.924, 0.957, 0.976, 0.985, 0.986, 0.991, 0.990, 0.994, 0.995, 0.997, 1.000),
        (0.912, 0.958, 0.974, 0.986, 0.989, 0.988, 0.991, 0.994, 0.990, 0.997, 0.997, 0.997),
        (1.028, 1.026, 1.009, 0.995, 0.996, 0.982, 0.975, 0.980, 0.980, 0.980, 0.980, 0.980),
        (1.011, 1.034, 1.004, 1.012, 1.008, 0.996, 0.984, 0.984, 0.984, 0.984, 0.984, 0.984),
    )
    # --- hadronic taus (section owned by detector/taus.py) ---
    # HPS reconstruction (CMS JINST 11 (2016) P01019 [Run 1]; JINST 13 (2018) P10005 [Run 2]; recalled numbers marked)
    tau_seed_jet_pt_min: float = 18.0  # GeV: jets seeding a tau candidate (NanoAOD keeps taus with pT > 18 GeV)
    tau_eta_max: float = 2.3  # seed jets and taus
    tau_pt_min: float = 18.0  # GeV: NanoAOD Tau preselection
    tau_track_pt_min: float = 0.5  # GeV: HPS quality cut on signal and isolation charged candidates
    tau_prong_dr: float = 0.1  # charged candidates within this of the leading one are prong candidates
    tau_signal_cone: tuple[float, float, float] = (3.0, 0.05, 0.1)  # R_sig = 3.0 GeV / pT clipped to [0.05, 0.1]
    tau_gamma_pt_min: float = 0.5  # GeV: PF photons entering strips (HPS)
    tau_strip_pt_min: float = 2.5  # GeV: strips used as pi0 candidates (HPS)
    # Run-2 dynamic strip window: f(pT_gamma) + f(pT_strip), f = a pT^b clipped to [lo, hi] (CMSSW RecoTauPiZeroProducer)
    tau_strip_eta: tuple[float, float, float, float] = (0.197077, -0.658701, 0.05, 0.15)
    tau_strip_phi: tuple[float, float, float, float] = (0.352476, -0.707716, 0.05, 0.30)
    tau_strip_mass: float = 0.136  # GeV: strips take the pi0 mass (RecoTauPiZeroProducer massHypothesis)
    tau_strip_rounds: int = 6  # strips built per candidate (greedy, highest-pT photon seeds)
    tau_mass_dm1: tuple[float, float, float, float] = (0.3, 1.3, 1.3, 4.2)  # m in [0.3, 1.3 sqrt(pT/100)], upper in [1.3, 4.2] GeV
    tau_mass_dm2: tuple[float, float, float, float] = (0.4, 1.2, 1.2, 4.0)  # h 2pi0 window, same form
    tau_mass_dm10: tuple[float, float] = (0.8, 1.5)  # GeV, 3 prongs
    tau_mass_dm11: tuple[float, float] = (0.9, 1.6)  # GeV, 3 prongs + strip
    tau_iso_cone: float = 0.5  # HPS isolation cone
    tau_pu_cone: float = 0.8  # cone of the pile-up charged sum of the delta-beta correction
    tau_delta_beta: float = 0.2  # HPS Run-2 delta-beta factor
    tau_match_dr: float = 0.3  # NanoAOD tau MC matching (MCMatcher maxDeltaR 0.3, maxDPtRel 1)
    tau_energy_scale: float = 1.0  # residual scale on the reconstructed tau 4-vector
    tau_id_eff_scale: float = 1.0  # data/MC factor on the genuine-tau survival of every VSjet working point
    # DeepTau 2017v2p1 (CMS TAU-20-001, arXiv:2201.08458): WP thresholds from CMSSW runTauIdMVA.py; WP efficiencies for
    # genuine tau_h are the paper's WP definitions (recalled); fake rates per reconstructed candidate read off its
    # ROC curves as orders of magnitude (jets: ~1% at Medium for pT ~ 30 GeV, falling with pT)
    deeptau_vsjet_wp: tuple[float, ...] = (0.2599605, 0.4249705, 0.5983682, 0.7848675, 0.8834768, 0.9308689, 0.9573137, 0.9733927)
    deeptau_vsjet_eff: tuple[float, ...] = (0.98, 0.95, 0.90, 0.80, 0.70, 0.60, 0.50, 0.40)
    deeptau_vsjet_fake: tuple[float, ...] = (0.25, 0.14, 0.06, 0.022, 0.009, 0.0045, 0.0025, 0.0013)  # at pT = 30 GeV
    deeptau_fake_pt: tuple[float, float, float, float] = (30.0, -0.5, 20.0, 300.0)  # fake ∝ (pT/30)^-0.5, pT clipped to [20, 300]
    # fakes x w, w = exp(-2 (I_rel - 0.45)) in [0.1, 5], I_rel = rawIso / pT: I0 set so that mean w = 1.0 over QCD-jet
    # fakes (pTHat > 25 GeV, no pile-up; measured here); busier ttbar jets get about half
    deeptau_fake_iso: tuple[float, float, float, float] = (0.45, 2.0, 0.1, 5.0)
    deeptau_genuine_iso: tuple[float, float] = (0.3, 2.0)  # genuine: eff^h, h = max(1, exp(2 (I_rel - 0.3)))
    deeptau_vse_wp: tuple[float, ...] = (0.0630386, 0.1686942, 0.3628130, 0.6815435, 0.8847544, 0.9675541, 0.9859251, 0.9928449)
    deeptau_vse_eff: tuple[float, ...] = (0.995, 0.99, 0.98, 0.95, 0.90, 0.80, 0.70, 0.60)
    deeptau_vse_fake: tuple[float, ...] = (0.20, 0.10, 0.045, 0.015, 0.005, 0.0015, 0.0007, 0.0003)
    deeptau_vsmu_wp: tuple[float, ...] = (0.1058354, 0.2158633, 0.5551894, 0.8754835)
    deeptau_vsmu_eff: tuple[float, ...] = (0.998, 0.995, 0.99, 0.98)
    deeptau_vsmu_fake: tuple[float, ...] = (0.008, 0.004, 0.002, 0.001)
    # --- electron cell images (section owned by detector/calo_images.py) ---
    # ATLAS LAr EM geometry (JINST 3 (2008) S08003 ch. 5; PHYSICS.md): cell size in eta, cells in 2 pi, window per layer
    # (presampler, strips, middle, back); the grid is global (edges at multiples of the cell size).  Never shift these in
    # a tune: they fix the shape of the images.
    cells_deta: tuple[float, float, float, float] = (0.025, 0.003125, 0.025, 0.05)
    cells_nphi: tuple[int, int, int, int] = (64, 64, 256, 256)  # dphi = 0.098, 0.098, 0.0245, 0.0245
    cells_window_eta: tuple[int, int, int, int] = (7, 56, 7, 4)  # 0.175, 0.175, 0.175, 0.2 in eta
    cells_window_phi: tuple[int, int, int, int] = (3, 3, 11, 11)  # 0.295, 0.295, 0.270, 0.270 in phi
    cells_bfield: float = 2.0  # T (ATLAS solenoid)
    cells_radius: tuple[float, float, float, float] = (1.44, 1.54, 1.71, 1.91)  # m: mid-depth radius per layer, barrel
    cells_z_endcap: tuple[float, float, float, float] = (3.62, 3.72, 3.90, 4.15)  # m: mid-depth |z| per layer, endcap
    cells_ps_eta_max: float = 1.8  # presampler coverage
    # Pb/LAr accordion as one effective medium (1.53 mm Pb + 0.4 mm steel, 4.2 mm LAr; GFlash ComputeZAX0EFFetc rules)
    cells_z_eff: float = 61.1
    cells_critical_energy: float = 0.00977  # GeV: E_c = 2.66 (X0 Z / A)^1.1 MeV with X0 = 8.11 g/cm2, Z/A = 61.1/152
    cells_moliere_cm: float = 4.1  # cm: R_M = 21.2 MeV X0 / E_c, X0 = 1.885 cm
    cells_fs: float = 3.07  # F_S = X0_eff / (d_active + d_passive)
    cells_ehat: float = 0.69  # e/mip = 1 / (1 + 0.007 (Z_passive - Z_active))
    # depths along the particle in X0 at eta = 0 (presampler slab, strips, middle, back); the middle and back layers
    # grow as min(cosh eta, cells_depth_scale_max) (22 X0 at eta = 0 to ~33 X0 at |eta| ~ 1.3 in all), the strips stay
    # ~4.3 X0 (the lead thickness drops at |eta| = 0.8); slices per layer for the depth dependence of the lateral profile
    cells_depth_x0: tuple[float, float, float, float] = (0.4, 4.3, 16.0, 2.0)
    cells_ps_gap_x0: float = 0.3  # dead material between presampler and strips
    cells_depth_grows: tuple[bool, bool, bool, bool] = (False, False, True, True)
    cells_depth_scale_max: float = 1.5
    cells_depth_slices: tuple[int, int, int, int] = (1, 2, 4, 1)
    # material in front of the presampler (X0 vs |eta|, piecewise linear; approximate reading of the ATLAS material
    # figures, JINST 3 (2008) S08003 fig. 1.3 / 5.x, recalled), scaled by cells_material_scale (pseudo-data: more)
    cells_material_eta: tuple[float, ...] = (0.0, 0.6, 1.0, 1.37, 1.45, 1.52, 1.8, 2.5)
    cells_material_x0: tuple[float, ...] = (1.8, 2.1, 2.6, 3.6, 6.0, 3.6, 3.2, 2.6)
    cells_material_scale: float = 1.0
    # energy lost in dead material (and seen by the presampler) per unit of Grindhammer-Peters profile fraction:
    # ionisation per X0 per shower particle scales with the critical energy, E_c(Al, Ar) / E_c(Pb/LAr) ~ 3-4
    cells_upstream_k: float = 1.5
    cells_photon_conversion_x0: float = 9.0 / 7.0  # mean conversion depth of a photon
    # sampling fluctuations (Gamma-distributed, variance s^2 E per slice; GFlash ApplySampling), presampler, constant
    cells_sampling_term: float = 0.077  # GeV^1/2: with the GP and upstream fluctuations the cluster gets ~10.5%/sqrt(E)
    cells_ps_sampling_term: float = 0.10  # GeV^1/2
    cells_constant_term: float = 0.0017
    # lateral spots (stratified over the GP radial profile) per source and slice: minimum + per GeV, capped; below the minimum source
    # energy nothing is deposited
    cells_spots_per_gev: float = 20.0
    cells_spots_min: int = 16
    cells_spots_max: int = 160
    cells_min_energy: float = 0.05  # GeV
    # hadrons in the window: MIP signal until they interact (lambda_I in X0 of the accordion), then an EM-like early
    # shower carrying a uniform fraction in [0, 2 cells_had_em_frac] of the energy, laterally wider
    cells_mip_per_x0: float = 0.011  # GeV (EM scale): ~0.25 GeV over the 22 X0 at eta = 0
    cells_had_lambda_x0: float = 25.0
    cells_had_em_frac: float = 0.3
    cells_had_lateral: float = 2.5
    # noise per cell (GeV): electronic, and out-of-time pile-up at mu_ref growing as sqrt(mu / mu_ref)
    # (ATLAS LAr, JINST 3 (2008) S08003 ch. 5 and Run-1 performance, recalled)
    cells_noise: tuple[float, float, float, float] = (0.030, 0.010, 0.025, 0.020)
    cells_pu_noise: tuple[float, float, float, float] = (0.040, 0.008, 0.040, 0.015)
    cells_pu_noise_mu_ref: float = 20.0
    # cell time (ns): resolution sqrt((a/E)^2 + c^2), E in GeV; luminous-region time spread; cap for noise cells
    cells_time_a: float = 1.5
    cells_time_c: float = 0.25
    cells_time_max: float = 12.5
    cells_vertex_time: float = 0.18
    # cluster calibration: E = (E_acc + w_ps E_ps) / R(E), per |eta| bin, R piecewise linear in log E (numerical
    # inversion); derived from the NOMINAL simulation, derive_calibration(NOMINAL, n_per_point=2500, seed=2024); applied
    # to every tune
    cells_calib_eta_edges: tuple[float, ...] = (0.0, 0.4, 0.8, 1.2, 1.37, 1.52, 1.8, 2.1, 2.5)
    cells_calib_e_knots: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 1000.0)
    cells_calib_ps_weight: tuple[float, ...] = (3.077, 3.403, 4.137, 5.135, 8.822, 5.144, 0.0, 0.0)
    cells_calib_response: tuple[tuple[float, ...], ...] = (
        (0.9341, 0.9475, 0.95, 0.9503, 0.9503, 0.948, 0.9456, 0.9378),
        (0.9335, 0.9476, 0.9524, 0.9535, 0.9532, 0.9516, 0.9499, 0.9447),
        (0.9368, 0.9515, 0.9579, 0.9605, 0.9598, 0.9571, 0.9541, 0.949),
        (0.9404, 0.9622, 0.9737, 0.9787, 0.976, 0.9714, 0.9659, 0.9563),
        (0.9789, 1.037, 1.0706, 1.0791, 1.0759, 1.063, 1.0488, 1.0187),
        (0.919, 0.9523, 0.9624, 0.9672, 0.9658, 0.9622, 0.9563, 0.9468),
        (0.6288, 0.7066, 0.7656, 0.8096, 0.8419, 0.8645, 0.8779, 0.8894),
        (0.6342, 0.7033, 0.7495, 0.7904, 0.8145, 0.8283, 0.8388, 0.8444),
    )
    # tracks near electrons: cone, count, n_tracks definition; electron-track bremsstrahlung (Bethe-Heitler with
    # t = cells_track_brem_scale x inner-detector X0) and hit counts (ATLAS ID: 4 pixel layers with IBL, 4 SCT double
    # layers, TRT straws vs |eta|)
    cells_track_cone: float = 0.4
    cells_track_max: int = 10
    cells_ntrk_cone: float = 0.1
    cells_ntrk_pt_min: float = 1.0
    cells_id_material_eta: tuple[float, ...] = (0.0, 0.6, 1.0, 1.5, 2.0, 2.5)
    cells_id_material_x0: tuple[float, ...] = (0.35, 0.45, 0.6, 1.0, 1.2, 1.0)
    cells_track_brem_scale: float = 0.3
    cells_pixel_layers: int = 4
    cells_sct_hits: int = 8
    cells_hit_overlap_prob: float = 0.15  # extra hit from module overlaps, per layer
    cells_hit_ineff: float = 0.02
    cells_trt_eta: tuple[float, ...] = (0.0, 0.6, 0.9, 1.1, 1.5, 1.9, 2.05, 2.5)
    cells_trt_hits: tuple[float, ...] = (33.0, 33.0, 22.0, 26.0, 36.0, 30.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NOMINAL = Tune()

#: Pseudo-data: 4% higher EM scale (about +2% net of the extra material), 3% lower hadronic scale, 20% worse
#: stochastic terms, more upstream material, slightly lower tracking efficiency.
_PSEUDO_BASE: dict[str, Any] = {
    "em_scale": 1.04,
    "had_scale": 0.97,
    "em_stochastic": 0.101 * 1.2,
    "had_stochastic": 1.50 * 1.2,
    "em_material_loss": 0.03,
    "track_eff_high": 0.955,
    "track_res_ms": 0.007,
}
# pseudo-data shifts of the particle-flow / jets section
_PSEUDO_JETS: dict[str, Any] = {
    "had_fem_sigma": 0.18,  # larger F_em fluctuations: worse hadron (and jet) resolution than the nominal model
    "tower_noise_had": 0.30,  # noisier hadronic towers
}
# pseudo-data shifts of the taus section
_PSEUDO_TAUS: dict[str, Any] = {"tau_energy_scale": 0.98, "tau_id_eff_scale": 0.95}
# pseudo-data shifts of the cell-image section
_PSEUDO_CELLS: dict[str, Any] = {
    "cells_material_scale": 1.10,  # 10% more material in front of the calorimeter
    "cells_sampling_term": 0.077 * 1.2,
    "cells_noise": (0.033, 0.011, 0.0275, 0.022),  # 10% more electronic noise
}

PSEUDODATA = replace(NOMINAL, name="pseudodata", **_PSEUDO_BASE, **_PSEUDO_JETS, **_PSEUDO_TAUS, **_PSEUDO_CELLS)

TUNES = {"nominal": NOMINAL, "pseudodata": PSEUDODATA}


def get_tune(name: str) -> Tune:
    try:
        return TUNES[name]
    except KeyError:
        raise ConfigError(f"detector.tune: unknown tune '{name}' (known: {', '.join(TUNES)})") from None
