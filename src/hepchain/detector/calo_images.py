"""Per-electron calorimeter cell images in the four ATLAS LAr EM layers, cluster scalars and nearby tracks (seed 004).

Inputs for the electron energy regression of seed 004 (ATLAS, CNN on LAr cell
images with FiLM from scalars and a track branch; slides "The input
variables"): the cell energies and times in the four layers, the scalars of
the seed's table, and the (up to) 10 nearest tracks.

Geometry (ATLAS LAr EM barrel, JINST 3 (2008) S08003 ch. 5; PHYSICS.md):
cells of 0.025 x 2pi/64 (presampler), 0.003125 x 2pi/64 (strips),
0.025 x 2pi/256 (middle), 0.05 x 2pi/256 (back) on a *global* grid (edges at
multiples of the cell size; phi cells counted from -pi), so the electron's
position inside its cell varies event by event.  The same granularity is
used out to |eta| = 2.5 (the EMEC's strips are coarser: not modelled); the
presampler covers |eta| < 1.8.  Positions per layer are taken at the layer's
mid-depth, transverse radius R = min(r_L, z_L / |sinh eta|) (1.44 - 1.91 m in
the barrel): eta in the detector frame from the particle's vertex z,
eta_det = asinh((z_vtx + R sinh eta) / R); charged particles bend in the 2 T
solenoid, phi(R) = phi - q asin(0.3 B R / (2 pT)) (R in m, pT in GeV: 13 mrad
at pT = 40 GeV at the middle layer, R = 1.71 m); those that cannot reach the middle layer
(pT < 0.51 GeV) leave nothing.  A transverse displacement d of a shower spot
is d/R in both eta and phi.

Window (fixed, same eta-phi area in every layer; the order of ``cells``):
layer-major (presampler, strips, middle, back), then eta, then phi:
presampler 7 x 3, strips 56 x 3, middle 7 x 11, back 4 x 11 (eta x phi), 310
cells per electron, covering 0.175 (0.2 in the back) x 0.27-0.30.  The window
is centred on the hottest middle cell among the 3 x 3 around the track
extrapolated to the middle layer (ATLAS's rectangular egamma clusters are
centred on the layer-2 maximum); in each other layer it starts at the cell
whose index rounds (eta_c - n de/2)/de, so that a reader can do
``e.reshape(n_electrons, 310)`` and slice the layers with :func:`cell_layout`:
the middle-layer block reshaped to (7, 11) has the hottest cell at [3, 5].

Cell signal: visible energy of every shower and MIP track in the window
(:mod:`.showers`: electrons, photons incl. FSR, pi0 and pile-up photons,
hadrons; the overlaid pile-up particles are in ``particles``), plus Gaussian
electronic noise and out-of-time pile-up noise growing as sqrt(mu), per cell.
Cell time: energy-weighted time of the deposits (hard scatter and each
pile-up vertex at their own time in the luminous region, sigma 0.18 ns),
measured with sigma_t = sqrt((a/E)^2 + c^2), capped at 12.5 ns (noise cells
get a random time).

Cluster (the "standard" reconstruction the regression competes with): cells
whose centre lies inside the 3 x 7 middle-cell box (0.075 x 0.172) around the
hottest middle cell, in every layer (ATLAS 3x7 barrel electron clusters);
E = (E_acc + w_ps E_ps) / R(|eta|, E), E_acc = E1 + E2 + E3, with the
presampler weight w_ps and the response R derived once from the NOMINAL
simulation (:func:`derive_calibration`) and stored in the tune: applied to
every tune, so pseudo-data keeps its miscalibration.

Measured on single electrons, |eta| < 0.75, nominal tune (tests/test_calo_images.py):
sigma/E = 10-11%/sqrt(E) (+) 0.7% (+) 0.29 GeV/E (eIQR widths; the sampling
term of 7.7% plus the Grindhammer-Peters longitudinal fluctuations seen as
upstream loss and lateral leakage); calibrated response 1 within 0.4% from 10
to 320 GeV; 3x7 containment of the middle layer 93% at 50 GeV; visible
fractions at 50 GeV: presampler 1.4%, strips 32%, middle 63%, back 0.2%, with
3.3% lost upstream.  Pseudo-data (EM scale x1.04, 10% more material, 20% more
sampling term, 10% more noise): cluster scale +3.3% at 10 GeV, +3.8% at 40 GeV,
+4.0% at 160 GeV.  Cost about 0.6 ms per electron, 0.7 ms per event (Z->ee and
ttbar at mu = 20, ~1800 particles per event, 2-core machine).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .particles import Table, delta_phi, energy, index_within_group, pairs_within_event
from .showers import N_LAYERS, make_sources, make_spots
from .tracker import d0_resolution, track_pt_resolution, z0_resolution
from .tune import NOMINAL, Tune

SCALAR_FIELDS = (
    "energy", "eta_cluster", "phi_cluster", "e_acc", "e_ps", "e1", "e2", "e3", "f0", "r12", "deta2", "dphi2",
    "eta_mod_calo", "poscs2", "dphi_th3", "eta_index", "n_tracks", "pt_track",
)  # fmt: skip
TRACK_FIELDS = (
    "pt", "charge", "eta", "phi", "dr", "d0", "d0sig", "z0", "vertex", "nPixel", "nSCT", "nTRT", "isElectronTrack",
)  # fmt: skip
CELL_FIELDS = ("electronIdx", "layer", "ieta", "iphi", "e", "t")
#: NanoAOD-style branches (for nanoaod.CONTRACT): extra Electron fields -> (scalar column, dtype, doc)
ELECTRON_NANOAOD: dict[str, tuple[str, str, str]] = {
    "energyCluster": ("energy", "float32", "calibrated 3x7 LAr cluster energy (E_acc + w_ps E_ps)/R, nominal calibration [GeV]"),
    "etaCluster": ("eta_cluster", "float32", "cluster eta: layer-2 3x3 barycentre, detector frame"),
    "phiCluster": ("phi_cluster", "float32", "cluster phi: layer-2 3x3 barycentre"),
    "eAcc": ("e_acc", "float32", "E_acc: 3x7 cluster energy in layers 1-3, EM scale [GeV]"),
    "ePS": ("e_ps", "float32", "3x7 cluster energy in the presampler, EM scale (0 for |eta| > 1.8) [GeV]"),
    "e1": ("e1", "float32", "3x7 cluster energy in the strips (layer 1) [GeV]"),
    "e2": ("e2", "float32", "3x7 cluster energy in the middle layer (layer 2) [GeV]"),
    "e3": ("e3", "float32", "3x7 cluster energy in the back layer (layer 3) [GeV]"),
    "f0": ("f0", "float32", "presampler / E_acc (|eta| < 1.8, else 0)"),
    "r12": ("r12", "float32", "R12: layer-1 / layer-2 cluster energy"),
    "deltaEta2": ("deta2", "float32", "track eta extrapolated to layer 2 minus cluster eta"),
    "deltaPhi2": ("dphi2", "float32", "track phi extrapolated to layer 2 with the cluster energy as momentum, minus cluster phi"),
    "etaModCalo": ("eta_mod_calo", "float32", "fmod(|eta_cluster|, 0.025): position w.r.t. the layer-2 cell edge"),
    "poscs2": ("poscs2", "float32", "2 (eta_cluster - eta of the hottest layer-2 cell centre)/0.025 - 1 (seed 004 formula)"),
    "dPhiTH3": ("dphi_th3", "float32", "mod(2 pi + phi_cluster, pi/32) - pi/32"),
    "etaIndex": ("eta_index", "int32", "global layer-2 eta index of the hottest cell: its centre is (etaIndex + 0.5) 0.025"),
    "nTracks": ("n_tracks", "int32", "own track + tracks with pT > 1 GeV within dR < 0.1"),
    "ptTrack": ("pt_track", "float32", "pT of the electron's track (bremsstrahlung in the inner detector, smeared) [GeV]"),
}
CELL_NANOAOD: dict[str, tuple[str, str]] = {
    "electronIdx": ("int32", "index of the Electron in the event"),
    "layer": ("uint8", "0 presampler, 1 strips, 2 middle, 3 back"),
    "ieta": ("int16", "global eta index: cell centre eta = (ieta + 0.5) x (0.025, 0.003125, 0.025, 0.05)[layer]"),
    "iphi": ("int16", "global phi index: centre phi = (iphi + 0.5) 2pi/(64, 64, 256, 256)[layer] - pi"),
    "e": ("float32", "cell energy incl. noise, EM scale [GeV]"),
    "t": ("float32", "cell time [ns]"),
}
TRACK_NANOAOD: dict[str, tuple[str, str]] = {
    "electronIdx": ("int32", "index of the Electron in the event"),
    "pt": ("float32", "transverse momentum [GeV]"),
    "charge": ("int32", "electric charge"),
    "eta": ("float32", "pseudorapidity"),
    "phi": ("float32", "azimuth"),
    "dr": ("float32", "dR to the electron (track directions at the vertex)"),
    "d0": ("float32", "transverse impact parameter [cm]"),
    "d0sig": ("float32", "d0 / sigma(d0)"),
    "z0": ("float32", "z of closest approach minus the electron track's [cm]"),
    "vertex": ("int32", "0 primary vertex, 1 pile-up"),
    "nPixel": ("int32", "pixel hits"),
    "nSCT": ("int32", "SCT hits"),
    "nTRT": ("int32", "TRT hits"),
    "isElectronTrack": ("bool", "the electron's own track (first of its electron)"),
}
_PRESELECT_DETA = 0.3  # window half-size plus shower width and vertex-z spread (eta), layer-2 frame
_PRESELECT_DPHI = 0.35


@dataclass(frozen=True)
class CellLayout:
    """The fixed cell order of one electron's window: per cell its layer and local (eta, phi) index."""

    layer: np.ndarray
    local_eta: np.ndarray
    local_phi: np.ndarray
    offsets: np.ndarray  # first cell of each layer, and the total at the end

    @property
    def n_cells(self) -> int:
        return int(self.offsets[-1])

    def block(self, layer: int) -> slice:
        return slice(int(self.offsets[layer]), int(self.offsets[layer + 1]))


def cell_layout(tune: Tune = NOMINAL) -> CellLayout:
    """Layer-major, then eta, then phi: ``e.reshape(n, n_cells)[:, layout.block(2)].reshape(n, 7, 11)``."""
    layers, etas, phis = [], [], []
    for layer in range(N_LAYERS):
        ne, nphi = tune.cells_window_eta[layer], tune.cells_window_phi[layer]
        layers.append(np.full(ne * nphi, layer))
        etas.append(np.repeat(np.arange(ne), nphi))
        phis.append(np.tile(np.arange(nphi), ne))
    sizes = [ne * nphi for ne, nphi in zip(tune.cells_window_eta, tune.cells_window_phi, strict=True)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return CellLayout(np.concatenate(layers), np.concatenate(etas), np.concatenate(phis), offsets)


@dataclass
class ElectronCalo:
    """Outputs of :func:`build_electron_calo`; rows of ``scalars`` follow the input electrons."""

    scalars: Table
    cells: Table
    tracks: Table
    layout: CellLayout
    # diagnostics (not for the ntuple): visible energy without noise of every source paired with each electron,
    # whole layers and inside the window (n_ele, 4); energy of the electron's own shower lost upstream / leaking
    visible: np.ndarray = field(default_factory=lambda: np.zeros((0, N_LAYERS)))
    in_window: np.ndarray = field(default_factory=lambda: np.zeros((0, N_LAYERS)))
    lost_upstream: np.ndarray = field(default_factory=lambda: np.zeros(0))
    leakage: np.ndarray = field(default_factory=lambda: np.zeros(0))


def layer_positions(
    eta: np.ndarray, phi: np.ndarray, vz_cm: np.ndarray, pt: np.ndarray, charge: np.ndarray, tune: Tune
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Detector-frame eta, phi and transverse radius [cm] at each layer's mid-depth, (n, 4) each; and reaches (n,).

    R = min(r_L, z_L / |sinh eta|); eta_det = asinh((z_vtx + R sinh eta)/R);
    phi = phi0 - q asin(0.3 B R / (2 pT)); a charged particle reaches the
    calorimeter if it reaches the middle layer.
    """
    eta = np.asarray(eta, dtype=np.float64)[:, None]
    sinh = np.sinh(eta)
    r_layer = np.asarray(tune.cells_radius)[None, :]
    z_layer = np.asarray(tune.cells_z_endcap)[None, :]
    radius = np.minimum(r_layer, z_layer / np.maximum(np.abs(sinh), 1e-9))
    eta_det = np.arcsinh((np.asarray(vz_cm, dtype=np.float64)[:, None] * 0.01 + radius * sinh) / radius)
    q = np.asarray(charge, dtype=np.float64)[:, None]
    arg = 0.3 * tune.cells_bfield * radius / (2.0 * np.maximum(np.asarray(pt, dtype=np.float64)[:, None], 1e-6))
    bend = np.where(q != 0, np.sign(q) * np.arcsin(np.minimum(arg, 1.0)), 0.0)
    phi_l = (np.asarray(phi, dtype=np.float64)[:, None] - bend + np.pi) % (2 * np.pi) - np.pi
    reaches = (q[:, 0] == 0) | (arg[:, 2] < 1.0)
    return eta_det, phi_l, radius * 100.0, reaches


def _dphi_cell(tune: Tune) -> np.ndarray:
    return 2 * np.pi / np.asarray(tune.cells_nphi, dtype=np.float64)


def calibrated_energy(e_acc: np.ndarray, e_ps: np.ndarray, abs_eta: np.ndarray, tune: Tune) -> np.ndarray:
    """E = (E_acc + w_ps E_ps) / R(|eta|, E): presampler weight and numerical-inversion response of the tune's table.

    R is piecewise linear in log E between ``cells_calib_e_knots`` (constant
    outside) and evaluated at the corrected energy (two fixed-point steps).
    """
    edges = np.asarray(tune.cells_calib_eta_edges)
    b = np.clip(np.searchsorted(edges, abs_eta, side="right") - 1, 0, len(edges) - 2)
    raw = e_acc + np.asarray(tune.cells_calib_ps_weight)[b] * e_ps
    knots = np.log(np.asarray(tune.cells_calib_e_knots))
    table = np.asarray(tune.cells_calib_response)
    est = np.maximum(raw, 1e-3)
    for _ in range(3):
        x = np.clip(np.log(np.maximum(est, 1e-3)), knots[0], knots[-1])
        j = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
        w = (x - knots[j]) / (knots[j + 1] - knots[j])
        resp = table[b, j] * (1 - w) + table[b, j + 1] * w
        est = np.maximum(raw, 1e-3) / resp
    return np.where(raw > 0, raw / resp, raw)


def _vertex_times(
    evt: np.ndarray, vz: np.ndarray, pu: np.ndarray, n_events: int, tune: Tune, rng: np.random.Generator
) -> np.ndarray:
    """Time [ns] of each particle's interaction: one per event for the hard scatter, one per pile-up vertex (evt, vz)."""
    t_hard = rng.normal(0.0, tune.cells_vertex_time, n_events)
    out = t_hard[evt]
    if np.any(pu):
        key = np.stack([evt[pu].astype(np.float64), vz[pu].astype(np.float64)], axis=1)
        _, group = np.unique(key, axis=0, return_inverse=True)
        t_pu = rng.normal(0.0, tune.cells_vertex_time, int(group.max()) + 1)
        out = out.copy()
        out[pu] = t_pu[group.ravel()]
    return out


def _hits(eta: np.ndarray, tune: Tune, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plausible ATLAS inner-detector hit counts (pixel, SCT, TRT) for tracks at ``eta``.

    One hit per pixel layer (4 with the IBL) and per SCT side (8), each lost
    with ``cells_hit_ineff`` and doubled by module overlaps with
    ``cells_hit_overlap_prob``; TRT straws crossed: Poisson around a mean that
    follows |eta| (about 33 in the barrel, a dip in the barrel/endcap
    transition near 0.9, 0 beyond |eta| = 2.0).
    """
    n = len(eta)
    u = rng.random((2, n, tune.cells_pixel_layers + tune.cells_sct_hits))
    hit = (u[0] > tune.cells_hit_ineff).astype(np.int32) + (u[1] < tune.cells_hit_overlap_prob)
    n_pix = hit[:, : tune.cells_pixel_layers].sum(axis=1)
    n_sct = hit[:, tune.cells_pixel_layers :].sum(axis=1)
    n_trt = rng.poisson(np.interp(np.abs(eta), tune.cells_trt_eta, tune.cells_trt_hits))
    return n_pix.astype(np.int32), n_sct.astype(np.int32), n_trt.astype(np.int32)


def electron_track_pt(
    pt_true: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator
) -> np.ndarray:
    """Measured pT of the electron's track: Bethe-Heitler bremsstrahlung in the inner detector, then tracker smearing.

    The fraction z of momentum kept after t X0 follows
    f(z) = (-ln z)^(c-1) / Gamma(c), c = t/ln 2 (Bethe and Heitler, 1934), i.e.
    -ln z ~ Gamma(c); t = ``cells_track_brem_scale`` x the inner-detector
    material (the fit sees the momentum somewhere along the track).  Then the
    tracker's resolution, smeared in curvature (:mod:`.tracker`).
    """
    t = tune.cells_track_brem_scale * np.interp(np.abs(eta), tune.cells_id_material_eta, tune.cells_id_material_x0)
    draws = rng.standard_gamma(np.maximum(t / np.log(2.0), 1e-6))
    kept = np.exp(-draws)
    pt = np.maximum(pt_true * kept, 1e-3)
    rel = track_pt_resolution(pt, eta, tune)
    curvature = (1.0 + rel * rng.standard_normal(len(pt))) / pt
    return 1.0 / np.maximum(curvature, 1e-4)


def _empty(tune: Tune) -> ElectronCalo:
    layout = cell_layout(tune)
    scalars = Table({"evt": np.zeros(0, np.int64), **{k: np.zeros(0, np.float32) for k in SCALAR_FIELDS}})
    cells = Table({"evt": np.zeros(0, np.int64), **{k: np.zeros(0, np.float32) for k in CELL_FIELDS}})
    tracks = Table({"evt": np.zeros(0, np.int64), "electronIdx": np.zeros(0, np.int32),
                    **{k: np.zeros(0, np.float32) for k in TRACK_FIELDS}})
    return ElectronCalo(scalars, _typed_cells(cells), _typed_tracks(tracks), layout)


def _typed_cells(cells: Table) -> Table:
    c = cells.columns
    return Table({
        "evt": c["evt"].astype(np.int64), "electronIdx": c["electronIdx"].astype(np.int32),
        "layer": c["layer"].astype(np.uint8), "ieta": c["ieta"].astype(np.int16), "iphi": c["iphi"].astype(np.int16),
        "e": c["e"].astype(np.float32), "t": c["t"].astype(np.float32),
    })  # fmt: skip


def _typed_tracks(tracks: Table) -> Table:
    c = tracks.columns
    out = {"evt": c["evt"].astype(np.int64), "electronIdx": c["electronIdx"].astype(np.int32)}
    for k in TRACK_FIELDS:
        if k in ("charge", "vertex", "nPixel", "nSCT", "nTRT"):
            out[k] = c[k].astype(np.int32)
        elif k == "isElectronTrack":
            out[k] = c[k].astype(bool)
        else:
            out[k] = c[k].astype(np.float32)
    return Table(out)


def build_electron_calo(
    electrons: Table,
    particles: Table,
    tracks: Table,
    n_events: int,
    tune: Tune,
    rng: np.random.Generator,
    mu: float,
    store_cells: bool,
) -> ElectronCalo:
    """Cell images, cluster scalars and nearby tracks of every electron of a sub-chunk (all tables sorted by evt).

    electrons: evt, pt, eta, phi (track at the vertex), charge, truth (flat
    index into ``particles``, -1 if none), optionally dxy.  particles: evt,
    pt, eta, phi, mass, pdgId, charge, pu, vz [cm].  tracks: charged PF
    candidates with evt, pt, eta, phi, charge, pdgId, fromPV, dxy, dz and
    optionally d0err, dzerr, truth.  ``cells`` is empty unless ``store_cells``.
    """
    n_ele = len(electrons)
    if n_ele == 0:
        return _empty(tune)
    s_shower, s_spot, s_noise, s_time, s_track = rng.spawn(5)
    layout = cell_layout(tune)
    n_cells = layout.n_cells
    evt_e = electrons["evt"].astype(np.int64)
    e_eta = electrons["eta"].astype(np.float64)
    e_phi = electrons["phi"].astype(np.float64)
    e_pt = electrons["pt"].astype(np.float64)
    e_q = electrons["charge"].astype(np.int64)
    truth = electrons["truth"].astype(np.int64) if "truth" in electrons.columns else np.full(n_ele, -1, np.int64)
    has_truth = truth >= 0
    ti = np.maximum(truth, 0)
    p_eta = particles["eta"].astype(np.float64)
    p_phi = particles["phi"].astype(np.float64)
    p_pt = particles["pt"].astype(np.float64)
    p_vz = particles["vz"].astype(np.float64)
    p_q = particles["charge"].astype(np.int64)
    vz_e = np.where(has_truth, p_vz[ti] if len(particles) else 0.0, 0.0)

    # --- particles around each electron: preselection in the layer-2 frame around the true electron's impact
    ref_eta0 = np.where(has_truth, p_eta[ti] if len(particles) else e_eta, e_eta)
    ref_phi0 = np.where(has_truth, p_phi[ti] if len(particles) else e_phi, e_phi)
    ref_pt = np.where(has_truth, p_pt[ti] if len(particles) else e_pt, e_pt)
    ref_q = np.where(has_truth, p_q[ti] if len(particles) else e_q, e_q)
    ref_eta, ref_phi, _, _ = layer_positions(ref_eta0, ref_phi0, vz_e, ref_pt, ref_q, tune)
    ia, ip = pairs_within_event(evt_e, particles["evt"], n_events)
    e_part = energy(p_pt[ip], p_eta[ip], particles["mass"][ip].astype(np.float64))
    keep = (np.abs(p_eta[ip] - ref_eta0[ia]) < _PRESELECT_DETA + 0.15) & (e_part > tune.cells_min_energy)
    ia, ip = ia[keep], ip[keep]
    uniq, inv = np.unique(ip, return_inverse=True)
    u_eta, u_phi, u_radius, u_reach = layer_positions(p_eta[uniq], p_phi[uniq], p_vz[uniq], p_pt[uniq], p_q[uniq], tune)
    near = (
        u_reach[inv]
        & (np.abs(u_eta[inv, 2] - ref_eta[ia, 2]) < _PRESELECT_DETA)
        & (np.abs(delta_phi(u_phi[inv, 2], ref_phi[ia, 2])) < _PRESELECT_DPHI)
    )
    ia, ip = ia[near], ip[near]
    kept, inv = np.unique(inv[near], return_inverse=True)
    uniq, u_eta, u_phi, u_radius = uniq[kept], u_eta[kept], u_phi[kept], u_radius[kept]
    u_time = _vertex_times(
        particles["evt"][uniq].astype(np.int64), p_vz[uniq], particles["pu"][uniq].astype(bool), n_events, tune, s_time
    )

    # --- showers and spots of those particles
    u_energy = energy(p_pt[uniq], p_eta[uniq], particles["mass"][uniq].astype(np.float64))
    src = make_sources(u_energy, p_eta[uniq], particles["pdgId"][uniq], p_q[uniq], tune, s_shower)
    spots = make_spots(src, p_eta[uniq][src.part], tune, s_spot)
    su = src.part[spots.src]
    radius = u_radius[su, spots.layer]
    s_eta = u_eta[su, spots.layer] + spots.radius_cm * np.cos(spots.angle) / radius
    s_phi = u_phi[su, spots.layer] + spots.radius_cm * np.sin(spots.angle) / radius
    s_e = spots.energy
    s_t = u_time[su]
    s_layer = spots.layer
    n_u = len(uniq)
    count_u = np.bincount(su, minlength=n_u)  # spots are grouped by particle (sources are sorted by particle)
    start_u = np.concatenate([[0], np.cumsum(count_u)[:-1]])
    n_sp = count_u[inv]
    row = np.repeat(start_u[inv], n_sp) + index_within_group(n_sp)
    ele = np.repeat(ia, n_sp)
    r_eta, r_phi, r_e, r_t, r_layer = s_eta[row], s_phi[row], s_e[row], s_t[row], s_layer[row]

    # --- window centre: hottest middle cell among the 3x3 around the track extrapolated to the middle layer
    deta = np.asarray(tune.cells_deta)
    dphi = _dphi_cell(tune)
    nphi = np.asarray(tune.cells_nphi, dtype=np.int64)
    trk_eta, trk_phi, trk_radius, _ = layer_positions(e_eta, e_phi, vz_e, e_pt, e_q, tune)
    seed_ie = np.floor(trk_eta[:, 2] / deta[2]).astype(np.int64)
    seed_ip = np.floor((trk_phi[:, 2] + np.pi) / dphi[2]).astype(np.int64) % nphi[2]
    mid = r_layer == 2
    de = np.floor(r_eta[mid] / deta[2]).astype(np.int64) - seed_ie[ele[mid]]
    dp = (np.floor((r_phi[mid] + np.pi) / dphi[2]).astype(np.int64) - seed_ip[ele[mid]] + 1) % nphi[2] - 1
    in3 = (np.abs(de) <= 1) & (dp >= -1) & (dp <= 1)
    grid = np.bincount(ele[mid][in3] * 9 + (de[in3] + 1) * 3 + (dp[in3] + 1), weights=r_e[mid][in3], minlength=9 * n_ele)
    grid = grid.reshape(n_ele, 9)
    best = np.where(grid.max(axis=1) > 0, np.argmax(grid, axis=1), 4)
    centre_ie = seed_ie + best // 3 - 1
    centre_ip = (seed_ip + best % 3 - 1) % nphi[2]
    eta_c = (centre_ie + 0.5) * deta[2]
    phi_c = (centre_ip + 0.5) * dphi[2] - np.pi

    # --- window of each layer (global index of its first cell) and the cells
    ne_w = np.asarray(tune.cells_window_eta, dtype=np.int64)
    np_w = np.asarray(tune.cells_window_phi, dtype=np.int64)
    start_ie = np.floor(eta_c[:, None] / deta[None, :] - ne_w[None, :] / 2 + 0.5).astype(np.int64)
    start_ip = np.floor((phi_c[:, None] + np.pi) / dphi[None, :] - np_w[None, :] / 2 + 0.5).astype(np.int64)
    start_ip %= nphi[None, :]
    le = np.floor(r_eta / deta[r_layer]).astype(np.int64) - start_ie[ele, r_layer]
    lp = (np.floor((r_phi + np.pi) / dphi[r_layer]).astype(np.int64) - start_ip[ele, r_layer]) % nphi[r_layer]
    inside = (le >= 0) & (le < ne_w[r_layer]) & (lp < np_w[r_layer])
    flat = layout.offsets[r_layer] + le * np_w[r_layer] + lp
    idx = ele[inside] * n_cells + flat[inside]
    dense_e = np.bincount(idx, weights=r_e[inside], minlength=n_ele * n_cells).reshape(n_ele, n_cells)
    dense_et = np.bincount(idx, weights=(r_e * r_t)[inside], minlength=n_ele * n_cells).reshape(n_ele, n_cells)
    visible = np.bincount(ele * N_LAYERS + r_layer, weights=r_e, minlength=n_ele * N_LAYERS).reshape(n_ele, N_LAYERS)

    cl = layout.layer
    ieta = start_ie[:, cl] + layout.local_eta[None, :]
    iphi = (start_ip[:, cl] + layout.local_phi[None, :]) % nphi[cl][None, :]
    cell_eta = (ieta + 0.5) * deta[cl][None, :]
    cell_phi = (iphi + 0.5) * dphi[cl][None, :] - np.pi
    active = (cl[None, :] != 0) | (np.abs(cell_eta) < tune.cells_ps_eta_max)
    in_window = np.add.reduceat(dense_e * active, layout.offsets[:-1], axis=1)

    noise = np.sqrt(np.asarray(tune.cells_noise) ** 2 + np.asarray(tune.cells_pu_noise) ** 2 * max(mu, 0.0) / tune.cells_pu_noise_mu_ref)
    e_cell = np.where(active, dense_e + noise[cl][None, :] * s_noise.standard_normal((n_ele, n_cells)), 0.0)
    t_true = np.where(dense_e > 0, dense_et / np.where(dense_e > 0, dense_e, 1.0), 0.0)
    sigma_t = np.minimum(np.hypot(tune.cells_time_a / np.maximum(np.abs(e_cell), 1e-6), tune.cells_time_c), tune.cells_time_max)
    t_cell = np.where(active, t_true + sigma_t * s_time.standard_normal((n_ele, n_cells)), 0.0)

    # --- cluster: cells whose centre is inside the 3x7 middle-cell box around the hottest middle cell
    box = (np.abs(cell_eta - eta_c[:, None]) < 1.5 * deta[2] + 1e-9) & (
        np.abs(delta_phi(cell_phi, phi_c[:, None])) < 3.5 * dphi[2] + 1e-9
    )
    e_layer = np.add.reduceat(e_cell * box, layout.offsets[:-1], axis=1)
    e_ps = np.where(np.abs(eta_c) < tune.cells_ps_eta_max, e_layer[:, 0], 0.0)
    e_acc = e_layer[:, 1:].sum(axis=1)
    mid_block = layout.block(2)
    core = box[:, mid_block] & (np.abs(cell_eta[:, mid_block] - eta_c[:, None]) < 1.5 * deta[2]) & (
        np.abs(delta_phi(cell_phi[:, mid_block], phi_c[:, None])) < 1.5 * dphi[2]
    )
    w = np.where(core, np.maximum(e_cell[:, mid_block], 0.0), 0.0)
    wsum = np.maximum(w.sum(axis=1), 1e-9)
    eta_cluster = np.where(w.sum(axis=1) > 0, (w * cell_eta[:, mid_block]).sum(axis=1) / wsum, eta_c)
    phi_cluster = phi_c + (w * delta_phi(cell_phi[:, mid_block], phi_c[:, None])).sum(axis=1) / wsum
    phi_cluster = (phi_cluster + np.pi) % (2 * np.pi) - np.pi
    e_cal = calibrated_energy(e_acc, e_ps, np.abs(eta_cluster), tune)
    safe_acc = np.where(np.abs(e_acc) > 1e-9, e_acc, 1e-9)
    f0 = np.where(np.abs(eta_cluster) < tune.cells_ps_eta_max, e_ps / safe_acc, 0.0)
    r12 = e_layer[:, 1] / np.where(np.abs(e_layer[:, 2]) > 1e-9, e_layer[:, 2], 1e-9)
    # track extrapolated to the middle layer with the cluster energy as momentum (seed's Delta phi_2 "rescaled")
    pt_cluster = np.maximum(e_cal, 1e-3) / np.cosh(e_eta)
    arg = 0.3 * tune.cells_bfield * trk_radius[:, 2] / 100.0 / (2.0 * pt_cluster)
    phi2_rescaled = e_phi - np.sign(e_q) * np.arcsin(np.minimum(arg, 1.0))

    # --- tracks near each electron
    pt_true = np.where(has_truth, p_pt[ti] if len(particles) else e_pt, e_pt)
    pt_track = electron_track_pt(pt_true, e_eta, tune, s_track)
    trk = _near_tracks(electrons, tracks, particles, truth, vz_e, pt_track, n_events, tune, s_track)
    n_tracks = 1 + np.bincount(
        trk["ele"][~trk["own"] & (trk["dr"] < tune.cells_ntrk_cone) & (trk["pt"] > tune.cells_ntrk_pt_min)],
        minlength=n_ele,
    )

    local = index_within_group(np.bincount(evt_e, minlength=n_events)).astype(np.int32)
    scalars = Table({
        "evt": evt_e,
        "energy": e_cal, "eta_cluster": eta_cluster, "phi_cluster": phi_cluster, "e_acc": e_acc, "e_ps": e_ps,
        "e1": e_layer[:, 1], "e2": e_layer[:, 2], "e3": e_layer[:, 3], "f0": f0, "r12": r12,
        "deta2": trk_eta[:, 2] - eta_cluster, "dphi2": delta_phi(phi2_rescaled, phi_cluster),
        "eta_mod_calo": np.fmod(np.abs(eta_cluster), deta[2]),
        "poscs2": 2.0 * (eta_cluster - eta_c) / deta[2] - 1.0,
        "dphi_th3": np.mod(2 * np.pi + phi_cluster, np.pi / 32) - np.pi / 32,
        "eta_index": centre_ie, "n_tracks": n_tracks, "pt_track": pt_track,
    })  # fmt: skip
    for k in SCALAR_FIELDS:
        scalars[k] = scalars[k].astype(np.int32 if k in ("eta_index", "n_tracks") else np.float32)

    if store_cells:
        cells = Table({
            "evt": np.repeat(evt_e, n_cells), "electronIdx": np.repeat(local, n_cells),
            "layer": np.tile(cl, n_ele), "ieta": ieta.ravel(), "iphi": iphi.ravel(),
            "e": e_cell.ravel(), "t": t_cell.ravel(),
        })  # fmt: skip
    else:
        cells = Table({"evt": np.zeros(0, np.int64), **{k: np.zeros(0) for k in CELL_FIELDS}})
    trk_table = Table({"evt": evt_e[trk["ele"]], "electronIdx": local[trk["ele"]],
                       **{k: trk[k] for k in TRACK_FIELDS}})

    # the electron's own shower(s): the sources of its truth particle
    match = has_truth[ia] & (ip == ti[ia])
    owner_of_u = np.full(n_u, -1, dtype=np.int64)
    owner_of_u[inv[match]] = ia[match]
    owner = owner_of_u[src.part]
    has_owner = owner >= 0
    lost = np.bincount(owner[has_owner], weights=src.lost_upstream[has_owner] * tune.em_scale, minlength=n_ele)
    leak = np.bincount(owner[has_owner], weights=src.leakage[has_owner] * tune.em_scale, minlength=n_ele)
    return ElectronCalo(
        scalars=scalars, cells=_typed_cells(cells), tracks=_typed_tracks(trk_table), layout=layout,
        visible=visible, in_window=in_window, lost_upstream=lost, leakage=leak,
    )  # fmt: skip


def _near_tracks(
    electrons: Table,
    tracks: Table,
    particles: Table,
    truth: np.ndarray,
    vz_e: np.ndarray,
    pt_track: np.ndarray,
    n_events: int,
    tune: Tune,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Up to ``cells_track_max`` tracks nearest to each electron within ``cells_track_cone``, its own track first.

    The electron's own track is built from the electron (its direction, the
    measured ``pt_track``) and any track matched to it (same truth particle,
    or an electron track of the same charge within dR < 0.02) is dropped.
    d0 = dxy [cm], d0sig = d0 / sigma(d0); z0 [cm] = z of the track's point of
    closest approach minus the electron track's (from the particles' vertex
    z when ``tracks`` has ``truth``, plus the resolution; else dz - dz_e);
    vertex = 0 for tracks of the primary vertex (fromPV == 3), 1 otherwise.
    """
    n_ele = len(electrons)
    e_eta = electrons["eta"].astype(np.float64)
    e_phi = electrons["phi"].astype(np.float64)
    ia, it = pairs_within_event(electrons["evt"], tracks["evt"], n_events) if len(tracks) else (np.zeros(0, np.int64),) * 2
    t_eta = tracks["eta"].astype(np.float64) if len(tracks) else np.zeros(0)
    t_phi = tracks["phi"].astype(np.float64) if len(tracks) else np.zeros(0)
    dr = np.sqrt((t_eta[it] - e_eta[ia]) ** 2 + delta_phi(t_phi[it], e_phi[ia]) ** 2)
    keep = dr < tune.cells_track_cone
    if "truth" in tracks.columns and len(tracks):
        is_own = (tracks["truth"][it] == truth[ia]) & (truth[ia] >= 0)
    else:
        is_own = np.zeros(len(ia), dtype=bool)
    if len(tracks):
        is_own |= (np.abs(tracks["pdgId"][it]) == 11) & (tracks["charge"][it] == electrons["charge"][ia]) & (dr < 0.02)
    keep &= ~is_own
    ia, it, dr = ia[keep], it[keep], dr[keep]
    order = np.lexsort((dr, ia))
    ia, it, dr = ia[order], it[order], dr[order]
    rank = index_within_group(np.bincount(ia, minlength=n_ele))
    sel = rank < tune.cells_track_max - 1
    ia, it, dr = ia[sel], it[sel], dr[sel]

    n_o = len(ia)
    pt_o = tracks["pt"][it].astype(np.float64) if n_o else np.zeros(0)
    eta_o = t_eta[it]
    d0 = tracks["dxy"][it].astype(np.float64) if n_o else np.zeros(0)
    d0err = (tracks["d0err"][it].astype(np.float64) if "d0err" in tracks.columns else d0_resolution(pt_o, eta_o, tune)) if n_o else np.zeros(0)
    dz_res = rng.standard_normal(n_o)
    if "truth" in tracks.columns and len(particles) and n_o:
        t_truth = np.maximum(tracks["truth"][it].astype(np.int64), 0)
        dzerr = tracks["dzerr"][it].astype(np.float64) if "dzerr" in tracks.columns else z0_resolution(pt_o, eta_o, tune)
        z0 = particles["vz"][t_truth].astype(np.float64) - vz_e[ia] + dzerr * dz_res
    else:
        dz_e = electrons["dz"].astype(np.float64) if "dz" in electrons.columns else np.zeros(n_ele)
        z0 = (tracks["dz"][it].astype(np.float64) if n_o else np.zeros(0)) - dz_e[ia]
    vertex = np.where(tracks["fromPV"][it] == 3, 0, 1) if n_o else np.zeros(0, np.int64)

    e_d0err = d0_resolution(pt_track, e_eta, tune)
    e_d0 = electrons["dxy"].astype(np.float64) if "dxy" in electrons.columns else e_d0err * rng.standard_normal(n_ele)
    pu_e = (particles["pu"][np.maximum(truth, 0)] & (truth >= 0)) if len(particles) else np.zeros(n_ele, bool)
    ele = np.concatenate([np.arange(n_ele), ia])
    cols = {
        "ele": ele,
        "own": np.concatenate([np.ones(n_ele, bool), np.zeros(n_o, bool)]),
        "pt": np.concatenate([pt_track, pt_o]),
        "charge": np.concatenate([electrons["charge"].astype(np.int64), tracks["charge"][it].astype(np.int64) if n_o else np.zeros(0, np.int64)]),
        "eta": np.concatenate([e_eta, eta_o]),
        "phi": np.concatenate([e_phi, t_phi[it]]),
        "dr": np.concatenate([np.zeros(n_ele), dr]),
        "d0": np.concatenate([e_d0, d0]),
        "d0sig": np.concatenate([e_d0 / e_d0err, d0 / np.maximum(d0err, 1e-6)]),
        "z0": np.concatenate([np.zeros(n_ele), z0]),
        "vertex": np.concatenate([pu_e.astype(np.int64), vertex]),
    }
    n_pix, n_sct, n_trt = _hits(cols["eta"], tune, rng)
    cols.update(nPixel=n_pix, nSCT=n_sct, nTRT=n_trt)
    cols["isElectronTrack"] = cols["own"]
    order = np.lexsort((cols["dr"], ~cols["own"], cols["ele"]))
    return {k: v[order] for k, v in cols.items()}


def gun_tables(
    energy_gev: np.ndarray, eta: np.ndarray, phi: np.ndarray, charge: np.ndarray, vz_cm: np.ndarray
) -> tuple[Table, Table, Table]:
    """Hand-made tables of one electron per event (no other particle, no tracks): electrons, particles, tracks.

    The electron's reconstructed direction is its true one and its pT the
    true pT (the cluster does not use it except for the seed extrapolation).
    """
    n = len(energy_gev)
    mass = 0.000511
    pt = np.sqrt(np.maximum(np.asarray(energy_gev, dtype=np.float64) ** 2 - mass**2, 0.0)) / np.cosh(eta)
    evt = np.arange(n, dtype=np.int64)
    charge = np.asarray(charge, dtype=np.int32)
    particles = Table({
        "evt": evt, "pt": pt.astype(np.float32), "eta": np.asarray(eta, np.float32), "phi": np.asarray(phi, np.float32),
        "mass": np.full(n, mass, np.float32), "pdgId": (-11 * charge).astype(np.int32), "charge": charge,
        "pu": np.zeros(n, bool), "vz": np.asarray(vz_cm, np.float32),
    })  # fmt: skip
    electrons = Table({
        "evt": evt, "pt": pt.astype(np.float32), "eta": np.asarray(eta, np.float32), "phi": np.asarray(phi, np.float32),
        "charge": charge, "truth": evt.copy(),
    })  # fmt: skip
    tracks = Table({
        "evt": np.zeros(0, np.int64), "pt": np.zeros(0, np.float32), "eta": np.zeros(0, np.float32),
        "phi": np.zeros(0, np.float32), "charge": np.zeros(0, np.int32), "pdgId": np.zeros(0, np.int32),
        "fromPV": np.zeros(0, np.int32), "dxy": np.zeros(0, np.float32), "dz": np.zeros(0, np.float32),
    })  # fmt: skip
    return electrons, particles, tracks


def fire_electrons(
    energy_gev: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator, *, mu: float = 0.0,
    store_cells: bool = True, vz_sigma_cm: float = 0.0,
) -> ElectronCalo:
    """Single electrons of the given energies and eta (random phi, charge and vertex z) through the cell simulation."""
    n = len(energy_gev)
    gun = np.random.default_rng(rng.integers(2**63))
    phi = gun.uniform(-np.pi, np.pi, n)
    charge = np.where(gun.random(n) < 0.5, -1, 1)
    vz = gun.normal(0.0, vz_sigma_cm, n) if vz_sigma_cm > 0 else np.zeros(n)
    electrons, particles, tracks = gun_tables(np.asarray(energy_gev), np.asarray(eta), phi, charge, vz)
    return build_electron_calo(electrons, particles, tracks, n, tune, rng, mu, store_cells)


def cluster_noise(energy_gev: np.ndarray, eta: np.ndarray, tune: Tune, rng: np.random.Generator, **kwargs: Any) -> float:
    """Noise of the calibrated cluster energy [GeV]: its spread for electrons that deposit nothing.

    The same electrons as :func:`fire_electrons` (``kwargs`` are passed on) with
    every cell deposit suppressed, so only electronic (and, with ``mu``,
    pile-up) noise remains in the window; E_acc + w_ps E_ps divided by the
    calibration's ~0.95 response in this energy range.
    """
    dark = fire_electrons(energy_gev, eta, replace(tune, cells_min_energy=1e9), rng, store_cells=False, **kwargs)
    w_ps = tune.cells_calib_ps_weight[0]
    return float(np.std(dark.scalars["e_acc"] + w_ps * dark.scalars["e_ps"])) / 0.95


def derive_calibration(tune: Tune = NOMINAL, n_per_point: int = 1500, seed: int = 2024) -> dict[str, tuple]:
    """Derive the cluster calibration of the tune's table from single electrons of the NOMINAL simulation.

    Per |eta| bin of ``cells_calib_eta_edges``: electrons of each energy of
    ``cells_calib_e_knots`` (uniform |eta| in the bin, random sign, phi,
    charge, vertex z ~ N(0, beam spot)), no pile-up.  The presampler weight
    minimises sum((s (E_acc + w E_ps) - E)/E)^2 (linear least squares, |eta| <
    1.8); the response R(E) = <(E_acc + w E_ps)/E> at each knot is then
    inverted numerically (ATL-PHYS-PUB-2018-013 style) by
    :func:`calibrated_energy`.  Returns the tune fields to paste into tune.py.
    """
    rng = np.random.default_rng(seed)
    edges = np.asarray(tune.cells_calib_eta_edges)
    knots = np.asarray(tune.cells_calib_e_knots)
    weights, responses = [], []
    for lo, hi in itertools.pairwise(edges):
        n = n_per_point * len(knots)
        e_true = np.repeat(knots, n_per_point)
        eta = rng.uniform(lo, hi, n) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
        out = fire_electrons(e_true, eta, tune, rng, store_cells=False, vz_sigma_cm=tune.beamspot_sigma_z)
        e_acc = out.scalars["e_acc"].astype(np.float64)
        e_ps = out.scalars["e_ps"].astype(np.float64)
        if lo < tune.cells_ps_eta_max:
            x = np.stack([e_acc / e_true, e_ps / e_true], axis=1)
            coef, *_ = np.linalg.lstsq(x, np.ones(n), rcond=None)
            w = float(coef[1] / coef[0])
        else:
            w = 0.0
        raw = e_acc + w * e_ps
        resp = [float(np.mean((raw / e_true)[e_true == k])) for k in knots]
        weights.append(round(w, 3))
        responses.append(tuple(round(r, 4) for r in resp))
    return {"cells_calib_ps_weight": tuple(weights), "cells_calib_response": tuple(responses)}


def fit_resolution(
    e_true: np.ndarray, e_reco: np.ndarray, noise_gev: float | None = None
) -> tuple[float, float, float, np.ndarray]:
    """Fit (sigma/E)^2 = a^2/E + b^2 + c^2/E^2 to the per-energy widths of E_reco/E_true; returns (a, b, c, widths).

    Widths are the effective interquartile range (P75 - P25)/1.349 of the
    ratio (eIQR, robust to the low tail); the fit is linear least squares in
    (a^2, b^2[, c^2]) weighted by 1/width^2, negative squares clipped to 0.
    ``noise_gev`` fixes c (0 for a noiseless simulation); None fits it.
    """
    energies = np.unique(e_true)
    ratio = e_reco / e_true
    rel = np.array([np.subtract(*np.percentile(ratio[e_true == e], [75, 25])) / 1.349 for e in energies])
    columns = [1.0 / energies, np.ones_like(energies)]
    target = rel**2
    if noise_gev is None:
        columns.append(1.0 / energies**2)
    else:
        target = target - (noise_gev / energies) ** 2
    x = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(x / rel[:, None] ** 2, target / rel**2, rcond=None)
    a2, b2 = max(float(coef[0]), 0.0), max(float(coef[1]), 0.0)
    c = np.sqrt(max(float(coef[2]), 0.0)) if noise_gev is None else noise_gev
    return float(np.sqrt(a2)), float(np.sqrt(b2)), float(c), rel


def nanoaod_arrays(
    calo: ElectronCalo, n_events: int, store_cells: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """NanoAOD pieces: extra Electron columns (flat, electron order) and the ``EleCell`` / ``EleTrack`` collections.

    The Electron columns go into the Electron table before it is made jagged;
    the collections are jagged record arrays (events x rows); ``EleCell`` is
    present exactly when the cells are stored (empty blocks included, so that
    every block of a file has the same branches).
    """
    electron = {name: calo.scalars[col].astype(dtype) for name, (col, dtype, _) in ELECTRON_NANOAOD.items()}
    collections: dict[str, Any] = {"EleTrack": calo.tracks.to_jagged(n_events, {k: k for k in TRACK_NANOAOD})}
    if store_cells:
        collections["EleCell"] = calo.cells.to_jagged(n_events, {k: k for k in CELL_NANOAOD})
    return electron, collections
