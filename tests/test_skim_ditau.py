"""Tests of the four-channel di-tau skim (hepchain.skim.ditau).

Hand-made NanoAOD events put one event on each side of every threshold; each
event carries the first cut it must fail (or None) and the channel it must end
in, from which the survivors, the cutflow and the per-channel counts follow.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from hepchain.errors import ConfigError, MissingBranchError
from hepchain.nanoaod import write_nanoaod
from hepchain.skim.ditau import (
    BRANCHES,
    CHANNELS,
    COLUMN_BRANCHES,
    COLUMNS,
    CUTS,
    EXTENDED_BRANCHES,
    PRIORITY,
    DitauSelection,
    run_ditau_skim,
)
from tests.helpers import real_nanoaod

pytestmark = [
    pytest.mark.filterwarnings("ignore:Missing cross-reference index:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch Photon_:RuntimeWarning"),
]

F4, I4, U1, B = np.float32, np.int32, np.uint8, np.bool_
FIELDS: dict[str, dict[str, Any]] = {
    "Electron": {
        "pt": F4,
        "eta": F4,
        "phi": F4,
        "mass": F4,
        "charge": I4,
        "pdgId": I4,
        "pfRelIso03_all": F4,
        "cutBased": I4,
        "dxy": F4,
        "dz": F4,
        "genPartFlav": U1,
        "genPartIdx": I4,
    },
    "Muon": {
        "pt": F4,
        "eta": F4,
        "phi": F4,
        "mass": F4,
        "charge": I4,
        "pdgId": I4,
        "pfRelIso04_all": F4,
        "mediumId": B,
        "dxy": F4,
        "dz": F4,
        "genPartFlav": U1,
        "genPartIdx": I4,
    },
    "Tau": {
        "pt": F4,
        "eta": F4,
        "phi": F4,
        "mass": F4,
        "charge": I4,
        "decayMode": I4,
        "idDecayModeNewDMs": B,
        "dz": F4,
        "idDeepTau2017v2p1VSjet": U1,
        "idDeepTau2017v2p1VSe": U1,
        "idDeepTau2017v2p1VSmu": U1,
        "genPartFlav": U1,
        "genPartIdx": I4,
    },
    "Jet": {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "jetId": I4},
    "GenPart": {
        "pt": F4,
        "eta": F4,
        "phi": F4,
        "mass": F4,
        "pdgId": I4,
        "status": I4,
        "statusFlags": I4,
        "genPartIdxMother": I4,
    },
    "GenVisTau": {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4, "status": I4, "genPartIdxMother": I4},
}
KEYS = {"Electron": "e", "Muon": "mu", "Tau": "tau", "Jet": "jets", "GenPart": "gen", "GenVisTau": "vis"}
LAST = 1 << 13


def ele(**kw: Any) -> dict[str, Any]:
    """A selected electron (e-) unless overridden."""
    base = {
        "pt": 35.0,
        "eta": -0.8,
        "phi": 0.5,
        "mass": 0.000511,
        "charge": -1,
        "pdgId": 11,
        "pfRelIso03_all": 0.05,
        "cutBased": 4,
        "dxy": 0.001,
        "dz": 0.01,
        "genPartFlav": 0,
        "genPartIdx": -1,
    }
    return base | kw


def mu(**kw: Any) -> dict[str, Any]:
    """A selected muon (mu-) unless overridden."""
    base = {
        "pt": 30.0,
        "eta": 0.5,
        "phi": 0.0,
        "mass": 0.1057,
        "charge": -1,
        "pdgId": 13,
        "pfRelIso04_all": 0.05,
        "mediumId": True,
        "dxy": 0.001,
        "dz": 0.01,
        "genPartFlav": 0,
        "genPartIdx": -1,
    }
    return base | kw


def tau(**kw: Any) -> dict[str, Any]:
    """A tau_h (tau+) passing every channel's ID unless overridden (VSjet up to Medium, VSe up to Tight)."""
    base = {
        "pt": 45.0,
        "eta": -0.5,
        "phi": 2.5,
        "mass": 0.9,
        "charge": 1,
        "decayMode": 1,
        "idDecayModeNewDMs": True,
        "dz": 0.01,
        "idDeepTau2017v2p1VSjet": 31,
        "idDeepTau2017v2p1VSe": 63,
        "idDeepTau2017v2p1VSmu": 15,
        "genPartFlav": 0,
        "genPartIdx": -1,
    }
    return base | kw


def jet(**kw: Any) -> dict[str, Any]:
    return {"pt": 60.0, "eta": 1.0, "phi": -1.0, "mass": 8.0, "jetId": 6} | kw


def gen(**kw: Any) -> dict[str, Any]:
    return {
        "pt": 10.0,
        "eta": 0.0,
        "phi": 0.0,
        "mass": 91.2,
        "pdgId": 23,
        "status": 62,
        "statusFlags": LAST,
        "genPartIdxMother": -1,
    } | kw


def mt(**kw: Any) -> dict[str, Any]:
    """The mu tau_h base event; ``mu_kw`` / ``tau_kw`` modify its legs, other keys add collections."""
    ev = {"mu": [mu(**kw.pop("mu_kw", {}))], "tau": [tau(**kw.pop("tau_kw", {}))]}
    return ev | kw


def et(**kw: Any) -> dict[str, Any]:
    ev = {"e": [ele(**kw.pop("e_kw", {}))], "tau": [tau(**kw.pop("tau_kw", {}))]}
    return ev | kw


def tt(**kw: Any) -> dict[str, Any]:
    """Two taus: leading (50 GeV, tau-) and subleading (45 GeV, tau+, modified by ``tau2_kw``)."""
    t1 = tau(pt=50.0, eta=0.3, phi=0.0, charge=-1) | kw.pop("tau1_kw", {})
    ev = {"tau": [t1, tau(**kw.pop("tau2_kw", {}))]}
    return ev | kw


def em(**kw: Any) -> dict[str, Any]:
    """e- 30 GeV + mu+ 18 GeV (too soft for mu tau_h)."""
    ev = {"e": [ele(pt=30.0) | kw.pop("e_kw", {})], "mu": [mu(pt=18.0, charge=1, pdgId=-13) | kw.pop("mu_kw", {})]}
    return ev | kw


# (label, first cut failed or None, channel name of a survivor, event, genWeight); weights exact in float32
CASES: list[tuple[str, str | None, str | None, dict[str, Any], float]] = [
    ("mt_base", None, "mt", mt(), 1.5),
    ("et_base", None, "et", et(), 2.0),
    ("tt_base", None, "tt", tt(), 0.75),
    ("em_base", None, "em", em(), 1.25),
    # two_legs: candidate objects
    ("empty", "two_legs", None, {}, 3.0),
    ("single_tau", "two_legs", None, {"tau": [tau()]}, 0.5),
    ("mu_pt_9p9", "two_legs", None, mt(mu_kw={"pt": 9.9}), 0.25),
    ("mu_pt_10p1", "leg_pt", None, mt(mu_kw={"pt": 10.1}), 1.0),
    ("mu_eta_2p45", "two_legs", None, mt(mu_kw={"eta": 2.45}), 1.0),
    ("mu_eta_2p35", "leg_pt", None, mt(mu_kw={"eta": 2.35}), 1.0),
    ("mu_dxy_0p046", "two_legs", None, mt(mu_kw={"dxy": -0.046}), 2.5),
    ("mu_dxy_0p044", None, "mt", mt(mu_kw={"dxy": -0.044}), 1.0),
    ("mu_dz_0p21", "two_legs", None, mt(mu_kw={"dz": 0.21}), 1.0),
    ("mu_dz_0p19", None, "mt", mt(mu_kw={"dz": 0.19}), 1.0),
    ("e_pt_9p9", "two_legs", None, et(e_kw={"pt": 9.9}), 1.0),
    ("e_pt_10p1", "leg_pt", None, et(e_kw={"pt": 10.1}), 1.0),
    ("e_eta_2p55", "two_legs", None, et(e_kw={"eta": -2.55}), 1.0),
    ("e_eta_2p45", "leg_pt", None, et(e_kw={"eta": -2.45}), 1.0),
    ("e_dz_0p21", "two_legs", None, et(e_kw={"dz": -0.21}), 1.0),
    ("tau_pt_19p9", "two_legs", None, mt(tau_kw={"pt": 19.9}), 1.0),
    ("tau_pt_20p1", "leg_pt", None, mt(tau_kw={"pt": 20.1}), 1.0),
    ("tau_eta_2p35", "two_legs", None, mt(tau_kw={"eta": -2.35}), 1.0),
    ("tau_eta_2p25", None, "mt", mt(tau_kw={"eta": -2.25}), 1.0),
    ("tau_dz_0p21", "two_legs", None, mt(tau_kw={"dz": 0.21}), 1.0),
    ("tau_dz_0p19", None, "mt", mt(tau_kw={"dz": 0.19}), 1.0),
    ("tau_dm_5", "two_legs", None, mt(tau_kw={"decayMode": 5}), 1.0),
    ("tau_dm_2", "two_legs", None, mt(tau_kw={"decayMode": 2}), 1.0),
    ("tau_dm_11", None, "mt", mt(tau_kw={"decayMode": 11}), 1.0),
    ("tau_dm_0", None, "mt", mt(tau_kw={"decayMode": 0}), 1.0),
    ("tau_no_dm_finding", "two_legs", None, mt(tau_kw={"idDecayModeNewDMs": False}), 1.0),
    ("tau_charge_3", "two_legs", None, mt(tau_kw={"charge": 3}), 1.0),
    # leg_pt
    ("mt_mu_pt_20p1", None, "mt", mt(mu_kw={"pt": 20.1}), 1.0),
    ("mt_mu_pt_19p9", "leg_pt", None, mt(mu_kw={"pt": 19.9}), 0.125),
    ("mt_mu_eta_2p05", None, "mt", mt(mu_kw={"eta": 2.05}), 1.0),
    ("mt_mu_eta_2p15", "leg_pt", None, mt(mu_kw={"eta": 2.15}), 1.0),
    ("mt_tau_pt_30p1", None, "mt", mt(tau_kw={"pt": 30.1}), 1.0),
    ("mt_tau_pt_29p9", "leg_pt", None, mt(tau_kw={"pt": 29.9}), 1.0),
    ("et_e_pt_25p1", None, "et", et(e_kw={"pt": 25.1}), 1.0),
    ("et_e_pt_24p9", "leg_pt", None, et(e_kw={"pt": 24.9}), 1.0),
    ("et_e_eta_2p05", None, "et", et(e_kw={"eta": 2.05}), 1.0),
    ("et_e_eta_2p15", "leg_pt", None, et(e_kw={"eta": 2.15}), 1.0),
    ("et_tau_pt_29p9", "leg_pt", None, et(tau_kw={"pt": 29.9}), 1.0),
    ("tt_tau2_pt_40p1", None, "tt", tt(tau2_kw={"pt": 40.1}), 1.0),
    ("tt_tau2_pt_39p9", "leg_pt", None, tt(tau2_kw={"pt": 39.9}), 1.75),
    ("tt_tau2_eta_2p05", None, "tt", tt(tau2_kw={"eta": -2.05}), 1.0),
    ("tt_tau2_eta_2p15", "leg_pt", None, tt(tau2_kw={"eta": -2.15}), 1.0),
    ("em_e_pt_15p1", None, "em", em(e_kw={"pt": 15.1}, mu_kw={"pt": 30.0}), 1.0),
    ("em_e_pt_14p9", "leg_pt", None, em(e_kw={"pt": 14.9}, mu_kw={"pt": 30.0}), 1.0),
    ("em_mu_pt_15p1", None, "em", em(mu_kw={"pt": 15.1}), 1.0),
    ("em_mu_pt_14p9", "leg_pt", None, em(mu_kw={"pt": 14.9}), 1.0),
    ("em_e_eta_2p35", None, "em", em(e_kw={"eta": 2.35}), 1.0),
    ("em_e_eta_2p45", "leg_pt", None, em(e_kw={"eta": 2.45}), 1.0),
    ("em_mu_eta_2p35", None, "em", em(mu_kw={"eta": -2.35}), 1.0),
    # lepton_id
    ("mt_mu_not_medium", "lepton_id", None, mt(mu_kw={"mediumId": False}), -1.0),
    ("et_e_cutbased_2", "lepton_id", None, et(e_kw={"cutBased": 2}), 1.0),
    ("et_e_cutbased_3", None, "et", et(e_kw={"cutBased": 3}), 1.0),
    ("em_e_cutbased_2", "lepton_id", None, em(e_kw={"cutBased": 2}), 1.0),
    # tau_id (bits: VSjet 16 Medium, VSe 2 VVLoose / 32 Tight, VSmu 1 VLoose / 8 Tight)
    ("mt_vsjet_15", "tau_id", None, mt(tau_kw={"idDeepTau2017v2p1VSjet": 15}), 2.25),
    ("mt_vsjet_16", None, "mt", mt(tau_kw={"idDeepTau2017v2p1VSjet": 16}), 1.0),
    ("mt_vse_1", "tau_id", None, mt(tau_kw={"idDeepTau2017v2p1VSe": 1}), 1.0),
    ("mt_vse_3", None, "mt", mt(tau_kw={"idDeepTau2017v2p1VSe": 3}), 1.0),
    ("mt_vsmu_7", "tau_id", None, mt(tau_kw={"idDeepTau2017v2p1VSmu": 7}), 1.0),
    ("et_vse_31", "tau_id", None, et(tau_kw={"idDeepTau2017v2p1VSe": 31}), 1.0),
    ("et_vsmu_0", "tau_id", None, et(tau_kw={"idDeepTau2017v2p1VSmu": 0}), 1.0),
    ("et_vsmu_1", None, "et", et(tau_kw={"idDeepTau2017v2p1VSmu": 1}), 1.0),
    ("tt_vse_1", "tau_id", None, tt(tau2_kw={"idDeepTau2017v2p1VSe": 1}), 1.0),
    ("tt_vse_3", None, "tt", tt(tau2_kw={"idDeepTau2017v2p1VSe": 3}), 1.0),
    ("tt_vsmu_0", "tau_id", None, tt(tau1_kw={"idDeepTau2017v2p1VSmu": 0}), 1.0),
    ("tt_vsmu_1", None, "tt", tt(tau1_kw={"idDeepTau2017v2p1VSmu": 1}), 1.0),
    ("tt_vsjet_15", "tau_id", None, tt(tau1_kw={"idDeepTau2017v2p1VSjet": 15}), 1.0),
    # isolation
    ("mt_mu_iso_0p16", "isolation", None, mt(mu_kw={"pfRelIso04_all": 0.16}), 1.0),
    ("mt_mu_iso_0p14", None, "mt", mt(mu_kw={"pfRelIso04_all": 0.14}), 1.0),
    ("et_e_iso_0p16", "isolation", None, et(e_kw={"pfRelIso03_all": 0.16}), 1.0),
    ("et_e_iso_0p14", None, "et", et(e_kw={"pfRelIso03_all": 0.14}), 1.0),
    ("em_e_iso_0p16", "isolation", None, em(e_kw={"pfRelIso03_all": 0.16}), 1.0),
    ("em_e_iso_0p14", None, "em", em(e_kw={"pfRelIso03_all": 0.14}), 1.0),
    ("em_mu_iso_0p21", "isolation", None, em(mu_kw={"pfRelIso04_all": 0.21}), 1.0),
    ("em_mu_iso_0p19", None, "em", em(mu_kw={"pfRelIso04_all": 0.19}), 1.0),
    # pair: dR between the legs (same eta, so dR = dphi) and the e mu leading pT
    ("mt_dr_0p45", "pair", None, mt(tau_kw={"eta": 0.5, "phi": 0.45}), 1.0),
    ("mt_dr_0p55", None, "mt", mt(tau_kw={"eta": 0.5, "phi": 0.55}), 1.0),
    ("tt_dr_0p45", "pair", None, tt(tau2_kw={"eta": 0.3, "phi": -0.45}), 1.0),
    ("tt_dr_0p55", None, "tt", tt(tau2_kw={"eta": 0.3, "phi": -0.55}), 1.0),
    ("em_dr_0p25", "pair", None, em(mu_kw={"eta": -0.8, "phi": 0.75}), 1.0),
    ("em_dr_0p35", None, "em", em(mu_kw={"eta": -0.8, "phi": 0.85}), 1.0),
    ("em_lead_23p9", "pair", None, em(e_kw={"pt": 23.9}), 1.0),
    ("em_lead_24p1", None, "em", em(e_kw={"pt": 24.1}), 1.0),
    ("em_lead_mu_24p1", None, "em", em(e_kw={"pt": 16.0}, mu_kw={"pt": 24.1}), 1.0),
    (
        "mt_pair_choice",
        None,
        "mt",
        {"mu": [mu()], "tau": [tau(pt=60.0, eta=0.5, phi=0.3), tau(pt=40.0)]},
        1.0,
    ),
    # opposite_sign
    ("mt_same_sign", "opposite_sign", None, mt(tau_kw={"charge": -1}), -0.5),
    ("tt_same_sign", "opposite_sign", None, tt(tau2_kw={"charge": -1}), 1.0),
    ("em_same_sign", "opposite_sign", None, em(mu_kw={"charge": -1, "pdgId": 13}), 1.0),
    # third_lepton_veto: loose e (pT > 10, |eta| < 2.5, cutBased >= 1, iso < 0.3), loose mu (pT > 10, |eta| < 2.4,
    # mediumId, iso < 0.3); the extra electrons are too soft for e tau_h / e mu, so mu tau_h decides
    (
        "mt_extra_e_10p1",
        "third_lepton_veto",
        None,
        mt(e=[ele(pt=10.1, cutBased=1, pfRelIso03_all=0.29, phi=-2.0)]),
        2.75,
    ),
    ("mt_extra_e_9p9", None, "mt", mt(e=[ele(pt=9.9, cutBased=1, phi=-2.0)]), 1.0),
    ("mt_extra_e_iso_0p31", None, "mt", mt(e=[ele(pt=12.0, pfRelIso03_all=0.31, phi=-2.0)]), 1.0),
    ("mt_extra_e_id_0", None, "mt", mt(e=[ele(pt=12.0, cutBased=0, phi=-2.0)]), 1.0),
    ("mt_extra_e_eta_2p45", "third_lepton_veto", None, mt(e=[ele(pt=12.0, eta=2.45, phi=-2.0)]), 1.0),
    ("mt_extra_e_eta_2p55", None, "mt", mt(e=[ele(pt=12.0, eta=2.55, phi=-2.0)]), 1.0),
    (
        "mt_extra_mu_10p1",
        "third_lepton_veto",
        None,
        mt(mu=[mu(), mu(pt=10.1, eta=-1.5, phi=-2.0, charge=1, pdgId=-13, pfRelIso04_all=0.29)]),
        1.0,
    ),
    ("mt_extra_mu_9p9", None, "mt", mt(mu=[mu(), mu(pt=9.9, eta=-1.5, phi=-2.0, charge=1)]), 1.0),
    (
        "mt_extra_mu_iso_0p31",
        None,
        "mt",
        mt(mu=[mu(), mu(pt=12.0, eta=-1.5, phi=-2.0, charge=1, pfRelIso04_all=0.31)]),
        1.0,
    ),
    ("mt_extra_mu_not_medium", None, "mt", mt(mu=[mu(), mu(pt=12.0, eta=-1.5, phi=-2.0, mediumId=False)]), 1.0),
    ("mt_extra_mu_eta_2p35", "third_lepton_veto", None, mt(mu=[mu(), mu(pt=12.0, eta=-2.35, phi=-2.0)]), 1.0),
    ("mt_extra_mu_eta_2p45", None, "mt", mt(mu=[mu(), mu(pt=12.0, eta=-2.45, phi=-2.0)]), 1.0),
    ("tt_loose_mu", "third_lepton_veto", None, tt(mu=[mu(pt=15.0, eta=-1.5, phi=-2.0)]), 0.375),
    # a tau_h beside an e mu pair: e tau_h fails the veto (loose muon), mu tau_h the muon pT: e mu
    ("em_with_tau", None, "em", em(tau=[tau(eta=1.5, phi=-2.0)]), 1.0),
]

LABELS = [c[0] for c in CASES]
N_PASS = sum(c[1] is None for c in CASES)


def _collection(events: list[dict[str, Any]], name: str, skip: tuple[str, ...] = ()) -> ak.Array:
    key = KEYS[name]
    counts = np.array([len(ev.get(key, [])) for ev in events], dtype=np.int64)
    return ak.zip(
        {
            f: ak.unflatten(np.array([o[f] for ev in events for o in ev.get(key, [])], dtype=dt), counts)
            for f, dt in FIELDS[name].items()
            if f"{name}_{f}" not in skip
        }
    )


def write_events(
    path: Path, events: list[dict[str, Any]], *, gen_weight: bool = True, skip: tuple[str, ...] = ()
) -> Path:
    """Write ``events`` (dicts of object lists, ``w``, ``event`` and optional ``met``) as NanoAOD."""
    n = len(events)

    def flat(key: str, default: float, dtype: Any) -> np.ndarray:
        return np.array([ev.get(key, default) for ev in events], dtype=dtype)

    met = {
        "pt": flat("met_pt", 25.0, F4),
        "phi": flat("met_phi", -1.0, F4),
        "sumEt": np.full(n, 400.0, dtype=F4),
        "covXX": np.full(n, 100.0, dtype=F4),
        "covXY": np.full(n, 5.0, dtype=F4),
        "covYY": np.full(n, 120.0, dtype=F4),
        "significance": np.full(n, 3.0, dtype=F4),
    }
    arrays: dict[str, Any] = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": np.ones(n, dtype=np.uint32),
        "event": np.array([ev["event"] for ev in events], dtype=np.uint64),
        **{name: _collection(events, name, skip) for name in FIELDS},
        "MET": ak.zip({k: v for k, v in met.items() if f"MET_{k}" not in skip}),
        "PV": ak.zip(
            {
                "x": np.zeros(n, dtype=F4),
                "y": np.zeros(n, dtype=F4),
                "z": np.full(n, 1.5, dtype=F4),
                "npvs": np.full(n, 30, dtype=I4),
                "npvsGood": np.full(n, 28, dtype=I4),
            }
        ),
    }
    if gen_weight:
        arrays["genWeight"] = np.array([ev["w"] for ev in events], dtype=F4)
    write_nanoaod(path, arrays, seed=path.name)
    return path


def _events() -> list[dict[str, Any]]:
    return [dict(ev, event=1000 + i, w=w) for i, (_, _, _, ev, w) in enumerate(CASES)]


def _expected_cutflow(cases: list[tuple]) -> list[tuple[str, int, float]]:
    order = ["all", *CUTS]
    rows = []
    for k, name in enumerate(order):
        kept = [c for c in cases if c[1] is None or order.index(c[1]) > k]
        rows.append((name, len(kept), math.fsum(c[4] for c in kept)))
    return rows


@pytest.fixture(scope="module")
def skim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_events(tmp_path_factory.mktemp("ditau") / "cases.root", _events())


@pytest.fixture(scope="module")
def skim_result(skim_file: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return run_ditau_skim([str(skim_file)], selection=DitauSelection())


def _row(table: dict[str, np.ndarray], label: str) -> dict[str, Any]:
    (i,) = np.flatnonzero(table["event"] == 1000 + LABELS.index(label))
    return {k: v[i] for k, v in table.items()}


def test_case_table_is_consistent() -> None:
    assert len(set(LABELS)) == len(LABELS)
    for label, cut, channel, _, _ in CASES:
        assert (cut is None) == (channel is not None), label
        assert cut is None or cut in CUTS, label


def test_every_cut_is_exercised_on_both_sides() -> None:
    assert {c[1] for c in CASES} == {*CUTS, None}
    assert {c[2] for c in CASES} == {*CHANNELS, None}


def test_survivors_and_channels(skim_result: tuple) -> None:
    table, _ = skim_result
    expected = [(1000 + i, CHANNELS.index(c[2])) for i, c in enumerate(CASES) if c[1] is None]
    assert list(zip(table["event"].tolist(), table["channel"].tolist(), strict=True)) == expected
    assert list(table) == list(COLUMNS)
    for name, (dtype, shape) in COLUMNS.items():
        assert table[name].dtype == np.dtype(dtype) and table[name].shape == (N_PASS, *shape), name


def test_cutflow_counts_raw_and_weighted(skim_result: tuple) -> None:
    _, cutflow = skim_result
    got = [(c["name"], c["raw"], c["weighted"]) for c in cutflow["cuts"]]
    assert [g[0] for g in got] == ["all", *CUTS]
    # from the CASES table: 16 events fail two_legs, 16 leg_pt, 3 lepton_id, 8 tau_id, 4 isolation, 4 pair,
    # 3 opposite_sign, 5 third_lepton_veto; 46 survive
    assert [g[1] for g in got] == [105, 89, 73, 70, 62, 58, 54, 51, 46]
    for (name, raw, weighted), (ename, eraw, eweighted) in zip(got, _expected_cutflow(CASES), strict=True):
        assert (name, raw) == (ename, eraw)
        assert weighted == pytest.approx(eweighted, abs=1e-12), name
    assert cutflow["n_events"] == len(CASES)
    assert cutflow["sumw"] == pytest.approx(math.fsum(c[4] for c in CASES))
    assert cutflow["selection"]["tau_vsjet_wp"] == 16
    json.dumps(cutflow)  # JSON-ready (tuples of the selection as lists)


def test_cutflow_channel_counts(skim_result: tuple) -> None:
    _, cutflow = skim_result
    channels = cutflow["channels"]
    assert list(channels) == list(CHANNELS)
    for code, ch in enumerate(CHANNELS):
        mine = [c for c in CASES if c[2] == ch]
        assert channels[ch]["channel"] == code
        assert channels[ch]["raw"] == len(mine)
        assert channels[ch]["weighted"] == pytest.approx(math.fsum(c[4] for c in mine), abs=1e-12)
    assert [channels[ch]["raw"] for ch in CHANNELS] == [6, 23, 6, 11]
    assert sum(c["raw"] for c in channels.values()) == cutflow["cuts"][-1]["raw"]
    assert channels["mt"]["label"] == "mu tau_h"


def test_leg_order_and_types(skim_result: tuple) -> None:
    table, _ = skim_result
    row = _row(table, "mt_base")
    assert (row["leg1_type"], row["leg2_type"], row["leg1_decay_mode"], row["leg2_decay_mode"]) == (13, 15, -1, 1)
    assert row["leg1_pt"] == pytest.approx(30.0) and row["leg2_pt"] == pytest.approx(45.0)
    assert (row["leg1_charge"], row["leg2_charge"]) == (-1, 1)
    assert row["leg2_mass"] == pytest.approx(0.9, rel=1e-6) and row["leg1_mass"] == pytest.approx(0.1057, rel=1e-6)
    row = _row(table, "et_base")
    assert (row["leg1_type"], row["leg2_type"], row["channel"]) == (11, 15, 2)
    row = _row(table, "tt_base")
    assert (row["leg1_type"], row["leg2_type"]) == (15, 15)
    assert (row["leg1_pt"], row["leg2_pt"]) == (pytest.approx(50.0), pytest.approx(45.0))
    row = _row(table, "em_lead_mu_24p1")  # the electron is leg 1 even when the muon leads
    assert (row["leg1_type"], row["leg2_type"]) == (11, 13)
    assert (row["leg1_pt"], row["leg2_pt"]) == (pytest.approx(16.0), pytest.approx(24.1))
    # the 60 GeV tau overlaps the muon (dR 0.3): the pair takes the 40 GeV one
    row = _row(table, "mt_pair_choice")
    assert row["leg2_pt"] == pytest.approx(40.0)
    row = _row(table, "em_with_tau")
    assert (row["leg1_type"], row["leg2_type"], row["channel"]) == (11, 13, 3)


def test_met_pv_and_missing_truth(skim_result: tuple) -> None:
    table, _ = skim_result
    row = _row(table, "mt_base")
    assert row["met_pt"] == pytest.approx(25.0) and row["met_phi"] == pytest.approx(-1.0)
    assert (row["met_covXX"], row["met_covXY"], row["met_covYY"]) == (100.0, 5.0, 120.0)
    assert row["met_significance"] == pytest.approx(3.0)
    assert (row["npvs"], row["npvs_good"]) == (30, 28)
    assert row["njets"] == 0 and np.isnan(row["jet1_pt"]) and row["aha_px"] == 0.0 and row["aha_njets"] == 0
    # no GenPart entry: NaN targets; genPartFlav 0, genPartIdx -1: no gen pT
    assert np.isnan(row["m_true"]) and np.isnan(row["pt_true"])
    assert row["leg1_gen_flav"] == 0 and np.isnan(row["leg1_gen_pt"])


# ------------------------------------------------------------------ jets and truth of known events

KNOWN_JETS = [
    jet(pt=80.0, eta=1.0, phi=-1.0),
    jet(pt=50.0, eta=-2.0, phi=1.5),
    jet(pt=35.0, eta=3.0, phi=-2.5),
    jet(pt=33.0, eta=-0.5, phi=3.1),  # dR = 0.6 from the tau: kept
    jet(pt=30.1, eta=4.65, phi=0.8),
    jet(pt=29.9, eta=0.0, phi=-2.0),  # too soft
    jet(pt=70.0, eta=4.75, phi=-2.0),  # too forward
    jet(pt=90.0, eta=-1.5, phi=-2.0, jetId=1),  # fails tight ID
    jet(pt=100.0, eta=0.9, phi=0.0),  # dR = 0.4 from the muon: removed
]


def _known_events() -> list[dict[str, Any]]:
    z_hard = gen(pt=14.0, mass=88.0, statusFlags=1 << 7)  # not the last copy
    z_last = gen(pt=15.5, mass=91.25, statusFlags=LAST | (1 << 8), genPartIdxMother=0)
    gen_mu = gen(pt=29.0, mass=0.1057, pdgId=13, status=1, statusFlags=LAST | 4, genPartIdxMother=1)
    higgs = gen(pt=40.0, mass=125.0, pdgId=25)
    vis = {"pt": 41.5, "eta": -0.5, "phi": 2.5, "mass": 0.8, "charge": 1, "status": 1, "genPartIdxMother": 1}
    return [
        dict(
            mt(mu_kw={"genPartFlav": 15, "genPartIdx": 2}, tau_kw={"genPartFlav": 5, "genPartIdx": 0}),
            jets=KNOWN_JETS,
            gen=[z_hard, z_last, gen_mu],
            vis=[vis],
            event=7,
            w=0.5,
        ),
        dict(tt(), gen=[z_last, higgs], event=8, w=1.0),  # H preferred over Z
        dict(et(jets=[jet()]), gen=[z_hard], event=9, w=1.0),  # only a Z that is not the last copy: NaN
    ]


@pytest.fixture(scope="module")
def known_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = write_events(tmp_path_factory.mktemp("ditau_known") / "known.root", _known_events())
    return run_ditau_skim([str(path)])


def test_jets_of_a_known_event(known_result: tuple) -> None:
    table, _ = known_result
    assert table["event"].tolist() == [7, 8, 9]
    row = {k: v[0] for k, v in table.items()}
    assert row["njets"] == 5
    assert (row["jet1_pt"], row["jet1_eta"], row["jet1_phi"]) == (80.0, 1.0, pytest.approx(-1.0))
    assert (row["jet2_pt"], row["jet2_eta"]) == (50.0, -2.0) and row["jet2_mass"] == 8.0
    rest = [(35.0, 3.0, -2.5), (33.0, -0.5, 3.1), (30.1, 4.65, 0.8)]
    px = math.fsum(float(np.float32(p)) * math.cos(float(np.float32(f))) for p, _, f in rest)
    py = math.fsum(float(np.float32(p)) * math.sin(float(np.float32(f))) for p, _, f in rest)
    pz = math.fsum(float(np.float32(p)) * math.sinh(float(np.float32(e))) for p, e, _ in rest)
    assert row["aha_px"] == pytest.approx(px, rel=1e-12)
    assert row["aha_py"] == pytest.approx(py, rel=1e-12)
    assert row["aha_pz"] == pytest.approx(pz, rel=1e-12)
    assert row["aha_njets"] == 3
    assert table["njets"][2] == 1 and table["aha_njets"][2] == 0 and np.isnan(table["jet2_pt"][2])


def test_truth_targets_and_gen_legs(known_result: tuple) -> None:
    table, cutflow = known_result
    assert table["m_true"][0] == pytest.approx(91.25) and table["pt_true"][0] == pytest.approx(15.5)
    assert table["m_true"][1] == pytest.approx(125.0) and table["pt_true"][1] == pytest.approx(40.0)
    assert np.isnan(table["m_true"][2]) and np.isnan(table["pt_true"][2])
    assert (table["leg1_gen_flav"][0], table["leg2_gen_flav"][0]) == (15, 5)
    assert table["leg1_gen_pt"][0] == pytest.approx(29.0)  # GenPart of the muon
    assert table["leg2_gen_pt"][0] == pytest.approx(41.5)  # GenVisTau of the tau_h
    assert table["genWeight"].tolist() == [0.5, 1.0, 1.0]
    assert [cutflow["channels"][c]["raw"] for c in CHANNELS] == [1, 1, 1, 0]


def test_resonance_pdg_ids_key(tmp_path: Path) -> None:
    path = write_events(tmp_path / "k.root", _known_events()[1:2])
    table, _ = run_ditau_skim([str(path)], selection=DitauSelection(resonance_pdg_ids=(23,)))
    assert table["m_true"][0] == pytest.approx(91.25)


# ------------------------------------------------------------------ channel priority

NO_VETO = {"veto_electron_pt_min": 1e9, "veto_muon_pt_min": 1e9}

_MU_PLUS = {"charge": 1, "pdgId": -13, "eta": -1.5, "phi": -2.0}
_TT_FLIPPED = {"tau1_kw": {"charge": 1}, "tau2_kw": {"charge": -1}}  # the leading tau_h is tau+

#: (objects, channel expected without the extra-lepton veto, channel expected with the default veto)
PRIORITY_CASES: list[tuple[dict[str, Any], str, str | None]] = [
    # mt and et pass (e mu is same-sign); the veto kills both
    ({"e": [ele()], "mu": [mu(phi=-2.0)], "tau": [tau()]}, "mt", None),
    # et and em pass; the veto keeps em (a tau_h vetoes nothing)
    ({"e": [ele()], "mu": [mu(pt=18.0, charge=1, pdgId=-13, phi=-2.0)], "tau": [tau()]}, "et", "em"),
    # tt and em pass (e too soft for e tau_h, mu for mu tau_h)
    (tt(e=[ele(pt=24.5, phi=-2.0)], mu=[mu(pt=18.0, charge=1, pdgId=-13, eta=-1.5, phi=-0.5)]), "tt", "em"),
    # et and tt pass; the veto (the electron) kills tt
    (tt(e=[ele(pt=30.0, eta=1.8, phi=-2.0)], **_TT_FLIPPED), "et", "et"),
    # mt and tt pass
    (tt(mu=[mu(**_MU_PLUS)]), "mt", "mt"),
]


def test_priority_order_without_veto(tmp_path: Path) -> None:
    assert PRIORITY == ("mt", "et", "tt", "em")
    events = [dict(ev, event=i, w=1.0) for i, (ev, _, _) in enumerate(PRIORITY_CASES)]
    path = write_events(tmp_path / "priority.root", events)
    table, cutflow = run_ditau_skim([str(path)], selection=DitauSelection.from_config(NO_VETO))
    assert [CHANNELS[c] for c in table["channel"]] == [c for _, c, _ in PRIORITY_CASES]
    assert [cutflow["channels"][c]["raw"] for c in CHANNELS] == [1, 2, 2, 0]
    table, _ = run_ditau_skim([str(path)])
    assert [CHANNELS[c] for c in table["channel"]] == [c for _, _, c in PRIORITY_CASES if c is not None]


# ------------------------------------------------------------------ runner behaviour


def test_chunking_and_file_order(skim_file: Path, skim_result: tuple, tmp_path: Path) -> None:
    table, cutflow = skim_result
    other = tmp_path / "copy.root"
    shutil.copy(skim_file, other)
    table2, cutflow2 = run_ditau_skim([str(skim_file), str(other)], chunksize=40)
    assert table2["event"].tolist() == table["event"].tolist() * 2
    assert [c["raw"] for c in cutflow2["cuts"]] == [2 * c["raw"] for c in cutflow["cuts"]]
    assert [c["weighted"] for c in cutflow2["cuts"]] == pytest.approx([2 * c["weighted"] for c in cutflow["cuts"]])
    assert [cutflow2["channels"][c]["raw"] for c in CHANNELS] == [2 * cutflow["channels"][c]["raw"] for c in CHANNELS]
    for name in COLUMNS:
        np.testing.assert_array_equal(table2[name][: len(table["event"])], table[name])


def test_cutflow_only_gives_the_same_cutflow_and_no_rows(skim_file: Path, skim_result: tuple) -> None:
    _, cutflow = skim_result
    table, cutflow2 = run_ditau_skim([str(skim_file)], cutflow_only=True)
    assert cutflow2 == cutflow
    assert list(table) == list(COLUMNS) and all(len(v) == 0 for v in table.values())


def test_data_without_genweight_or_truth(tmp_path: Path) -> None:
    events = [dict(ev, event=i, w=1.0) for i, ev in enumerate([mt(), tt(), {}])]
    truth = tuple(f"{c}_{f}" for c in ("Electron", "Muon", "Tau") for f in ("genPartFlav", "genPartIdx"))
    path = write_events(tmp_path / "data.root", events, gen_weight=False, skip=truth)
    # no GenPart / GenVisTau collections at all
    table, cutflow = run_ditau_skim([str(path)])
    assert table["genWeight"].tolist() == [1.0, 1.0]
    assert [c["weighted"] for c in cutflow["cuts"]] == [float(c["raw"]) for c in cutflow["cuts"]]
    assert table["leg1_gen_flav"].tolist() == [-1, -1] and np.isnan(table["leg2_gen_pt"]).all()


def test_branch_lists() -> None:
    assert EXTENDED_BRANCHES == ()
    assert "Tau_idDeepTau2017v2p1VSjet" in BRANCHES and "Muon_mediumId" in BRANCHES
    assert {"MET_covXX", "MET_covXY", "MET_covYY", "PV_npvsGood"} <= set(COLUMN_BRANCHES)
    s = DitauSelection.from_config({"tau_vsjet_branch": "idMVAoldDM", "muon_id": ""})
    assert "Tau_idMVAoldDM" in s.branches() and not any(b.startswith("Muon_mediumId") for b in s.branches())


def test_selection_from_config() -> None:
    s = DitauSelection.from_config({"tt_tau_pt_min": 45.0, "tau_decay_modes": [0, 1, 10], "muon_id": "tightId"})
    assert s.tt_tau_pt_min == 45.0 and s.tau_decay_modes == (0, 1, 10) and s.muon_id == "tightId"
    assert s.to_dict()["tau_decay_modes"] == [0, 1, 10]
    assert DitauSelection.from_config(None) == DitauSelection()
    with pytest.raises(ConfigError, match="'tau_pt_mni'") as err:
        DitauSelection.from_config({"tau_pt_mni": 20.0})
    assert "tau_pt_min" in str(err.value)  # known keys listed
    for bad in (
        {"tau_vsjet_wp": 1.5},
        {"tau_vsjet_wp": -1},
        {"tau_vsjet_wp": True},
        {"mt_muon_iso_max": "small"},
        {"mt_muon_iso_max": float("nan")},
        {"tau_decay_modes": "0,1"},
        {"tau_decay_modes": []},
        {"tau_vse_branch": "id AntiEle"},
        {"tau_vse_branch": ""},
    ):
        (key,) = bad
        with pytest.raises(ConfigError, match=key):
            DitauSelection.from_config(bad)


def test_bad_executor(skim_file: Path) -> None:
    with pytest.raises(ConfigError, match="'spark'"):
        run_ditau_skim([str(skim_file)], executor="spark")
    with pytest.raises(ConfigError, match="chunksize"):
        run_ditau_skim([str(skim_file)], chunksize=0)


# ------------------------------------------------------------------ bad inputs


def test_missing_selection_branch(tmp_path: Path, skim_file: Path) -> None:
    path = write_events(tmp_path / "no_iso.root", _events()[:2], skip=("Muon_pfRelIso04_all",))
    for cutflow_only in (True, False):
        with pytest.raises(MissingBranchError) as err:
            run_ditau_skim([str(skim_file), str(path)], cutflow_only=cutflow_only)
        message = str(err.value)
        assert str(path) in message and "'Muon_pfRelIso04_all'" in message and "\n" not in message
        assert err.value.branch == "Muon_pfRelIso04_all" and err.value.path == str(path)
    path = write_events(tmp_path / "no_id.root", _events()[:2], skip=("Muon_mediumId",))
    with pytest.raises(MissingBranchError, match=r"'Muon_mediumId'.*muon_id"):
        run_ditau_skim([str(path)], cutflow_only=True)
    table, _ = run_ditau_skim([str(path)], selection=DitauSelection(muon_id=""))
    assert table["event"].tolist() == [1000, 1001]  # mu tau_h passes without a muon ID


def test_missing_column_branch_only_matters_for_columns(tmp_path: Path) -> None:
    path = write_events(tmp_path / "no_cov.root", _events()[:4], skip=("MET_covXY",))
    with pytest.raises(MissingBranchError) as err:
        run_ditau_skim([str(path)])
    assert err.value.branch == "MET_covXY" and str(path) in str(err.value)
    assert "--cutflow-only" in str(err.value) and "standard NanoAOD" in str(err.value)
    _, cutflow = run_ditau_skim([str(path)], cutflow_only=True)
    assert cutflow["cuts"][-1]["raw"] == 4


# ------------------------------------------------------------------ the real CMS NanoAOD file (2015 tau IDs)

#: The 2015 file's tau IDs and their bits (idMVAoldDM: 1 VLoose, 2 Loose, 4 Medium, 8 Tight ...;
#: idAntiEle: 1 VLoose ... 8 Tight; idAntiMu: 1 Loose, 2 Tight); its muons carry no true ID bit at all.
REAL_2015 = {
    "tau_vsjet_branch": "idMVAoldDM",
    "tau_vse_branch": "idAntiEle",
    "tau_vsmu_branch": "idAntiMu",
    "tau_vsjet_wp": 4,
    "tau_vse_wp_tt": 1,
    "tau_vse_wp_mt": 1,
    "tau_vse_wp_et": 8,
    "tau_vsmu_wp_tt": 1,
    "tau_vsmu_wp_mt": 2,
    "tau_vsmu_wp_et": 1,
    "muon_id": "",
}


def _monotonic(cutflow: dict) -> bool:
    raw = [c["raw"] for c in cutflow["cuts"]]
    return all(a >= b for a, b in itertools.pairwise(raw))


def test_real_file_default_names_the_deeptau_branch() -> None:
    path = str(real_nanoaod())
    for cutflow_only in (True, False):
        with pytest.raises(MissingBranchError) as err:
            run_ditau_skim([path], cutflow_only=cutflow_only)
        message = str(err.value)
        assert "'Tau_idDeepTau2017v2p1VSjet'" in message and "nanoAOD_2015_CMS_Open_Data_ttbar.root" in message
        assert "tau_vsjet_branch" in message and "\n" not in message


#: No tau-ID requirement at all, so that the one mu tau_h-like event of the 200-event ttbar file survives.
NO_TAU_ID = {k: 0 for k in REAL_2015 if k.startswith("tau_") and "_wp" in k}


def test_real_file_cutflow_only_2015_ids() -> None:
    table, cutflow = run_ditau_skim(
        [str(real_nanoaod())], selection=DitauSelection.from_config(REAL_2015), cutflow_only=True
    )
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow) and raw[0] == 200
    # most reco taus of this ttbar file are its electrons and muons (genPartFlav 1, 2), which the anti-lepton
    # discriminators reject; the genuine tau_h do not come with an isolated light lepton here
    assert raw == [200, 58, 38, 36, 0, 0, 0, 0, 0]
    assert cutflow["sumw"] == pytest.approx(33432083.0625)
    assert cutflow["cuts"][1]["weighted"] == pytest.approx(9487483.03125)
    assert [cutflow["channels"][c]["raw"] for c in CHANNELS] == [0, 0, 0, 0]
    assert list(table) == list(COLUMNS) and all(len(v) == 0 for v in table.values())


def test_real_file_full_skim_without_tau_id() -> None:
    selection = DitauSelection.from_config(REAL_2015 | NO_TAU_ID)
    table, cutflow = run_ditau_skim([str(real_nanoaod())], selection=selection)
    raw = [c["raw"] for c in cutflow["cuts"]]
    assert _monotonic(cutflow)
    assert raw == [200, 58, 38, 36, 36, 35, 1, 1, 1]
    assert cutflow["cuts"][-1]["weighted"] == pytest.approx(225892.453125)
    assert cutflow["channels"]["mt"]["raw"] == 1 and cutflow["channels"]["mt"]["weighted"] == pytest.approx(
        225892.453125
    )
    _, cutflow_only = run_ditau_skim([str(real_nanoaod())], selection=selection, cutflow_only=True)
    assert cutflow_only == cutflow
    # the event the VH skim keeps as e mu: here its muon (from a tau decay) and a 49 GeV tau_h candidate
    assert table["event"].tolist() == [227291826] and table["channel"].tolist() == [1]
    row = {k: v[0] for k, v in table.items()}
    assert (row["leg1_type"], row["leg2_type"], row["leg2_decay_mode"]) == (13, 15, 1)
    assert row["leg1_pt"] == pytest.approx(25.2646, abs=1e-4) and row["leg2_pt"] == pytest.approx(49.4434, abs=1e-4)
    assert (row["leg1_gen_flav"], row["leg2_gen_flav"]) == (15, 0)
    assert row["leg1_gen_pt"] == pytest.approx(25.8125) and np.isnan(row["leg2_gen_pt"])
    assert row["met_pt"] == pytest.approx(48.4034, abs=1e-4)
    assert (row["met_covXX"], row["met_covXY"], row["met_covYY"]) == (334.0, -17.125, 282.0)
    assert row["njets"] == 1 and row["jet1_pt"] == pytest.approx(53.40625) and np.isnan(row["jet2_pt"])
    assert (row["npvs"], row["npvs_good"]) == (11, 9)
    assert np.isnan(row["m_true"]) and np.isnan(row["pt_true"])  # ttbar: no H or Z
