"""Detector tunes: every number of the fast simulation, with its source.

``nominal`` is the simulation the networks train on.  ``pseudodata`` stands in
for collision data: shifted energy scales, worse resolutions and more upstream
material, so that data/MC steps have a "data" that differs in known ways.

Sources (see shared/PHYSICS.md):
- EM calorimeter sigma/E = 10.1%/sqrt(E) (+) 0.17% (Delphes ATLAS card, ECAL).
- Hadronic calorimeter sigma = sqrt((0.0302 E)^2 + 0.5205^2 E) GeV (Delphes
  ATLAS card, HCAL; its 1.59 GeV noise term is per cluster and is applied
  per jet-sized deposit, not per particle, see :mod:`.calorimeter`).
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
    had_stochastic: float = 0.5205
    had_constant: float = 0.0302
    had_stochastic_forward: float = 1.0
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
    met_jer_n: float = 4.0  # GeV: noise term of the jet resolution used in the covariance
    met_jer_s: float = 1.0  # sqrt(GeV): stochastic term
    met_jer_c: float = 0.05  # constant term
    met_jet_scale: float = 1.0  # scale factor on the jet resolution (CMS fits these to data)
    met_jet_phi_res: float = 0.02  # rad: jet azimuthal resolution
    met_uncl_sigma0: float = 2.0  # GeV: per-component floor of the unclustered term
    met_uncl_sigma_u: float = 0.6  # sqrt(GeV): unclustered sigma^2 = sigma0^2 + sigma_u^2 * sum pT(unclustered)
    # --- calorimeter towers, particle flow, jets (section owned by detector/pflow.py, jets.py) ---
    # --- hadronic taus (section owned by detector/taus.py) ---
    # --- electron cell images (section owned by detector/calo_images.py) ---

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NOMINAL = Tune()

#: Pseudo-data: 4% higher EM scale (about +2% net of the extra material), 3% lower hadronic scale, 20% worse
#: stochastic terms, more upstream material, slightly lower tracking efficiency.
_PSEUDO_BASE: dict[str, Any] = {
    "em_scale": 1.04,
    "had_scale": 0.97,
    "em_stochastic": 0.101 * 1.2,
    "had_stochastic": 0.5205 * 1.2,
    "em_material_loss": 0.03,
    "track_eff_high": 0.955,
    "track_res_ms": 0.007,
}
# pseudo-data shifts of the particle-flow / jets section
_PSEUDO_JETS: dict[str, Any] = {}
# pseudo-data shifts of the taus section
_PSEUDO_TAUS: dict[str, Any] = {}
# pseudo-data shifts of the cell-image section
_PSEUDO_CELLS: dict[str, Any] = {}

PSEUDODATA = replace(NOMINAL, name="pseudodata", **_PSEUDO_BASE, **_PSEUDO_JETS, **_PSEUDO_TAUS, **_PSEUDO_CELLS)

TUNES = {"nominal": NOMINAL, "pseudodata": PSEUDODATA}


def get_tune(name: str) -> Tune:
    try:
        return TUNES[name]
    except KeyError:
        raise ConfigError(f"detector.tune: unknown tune '{name}' (known: {', '.join(TUNES)})") from None
