"""Command line: bad inputs give one clear line, exit status 2, and destroy nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import uproot

from .helpers import ROOT, real_nanoaod


def hepchain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HEPCHAIN_PROGRESS="0", PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "hepchain", *args], capture_output=True, text=True, cwd=cwd, env=env, check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("hepchain ")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_skim_missing_file(tmp_path: Path) -> None:
    out = tmp_path / "skim.parquet"
    out.write_text("earlier result")
    r = hepchain("skim-vh", "--sample", "s", "--files", str(tmp_path / "nope.root"), "--out", str(out), "--cutflow", str(tmp_path / "c.json"))
    line = _one_error_line(r)
    assert "nope.root" in line and "does not exist" in line
    assert out.read_text() == "earlier result"


def test_skim_root_file_that_is_not_nanoaod(tmp_path: Path) -> None:
    bad = tmp_path / "other.root"
    with uproot.recreate(bad) as f:
        f["Other"] = {"x": np.arange(3.0)}
    r = hepchain("skim-vh", "--sample", "s", "--files", str(bad), "--out", str(tmp_path / "t.parquet"), "--cutflow", str(tmp_path / "c.json"))
    line = _one_error_line(r)
    assert "other.root" in line and "Events" in line
    assert not (tmp_path / "t.parquet").exists()


def test_skim_runs_on_real_nanoaod(tmp_path: Path) -> None:
    path = real_nanoaod()
    r = hepchain("skim-vh", "--sample", "ttbar", "--files", str(path), "--out", str(tmp_path / "t.parquet"), "--cutflow", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    cutflow = json.loads((tmp_path / "c.json").read_text())
    assert cutflow["cuts"][0]["raw"] == 200
    raws = [c["raw"] for c in cutflow["cuts"]]
    assert raws == sorted(raws, reverse=True)


def test_features_empty_selection_keeps_earlier_output(tmp_path: Path) -> None:
    skim, cutflow = tmp_path / "empty.parquet", tmp_path / "c.json"
    r = hepchain("skim-vh", "--sample", "a", "--files", str(real_nanoaod()), "--selection", json.dumps({"lead_lepton_pt_min": 1e5}),
                 "--out", str(skim), "--cutflow", str(cutflow))
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(skim)) == 0
    out = tmp_path / "features.parquet"
    out.write_text("earlier result")
    cfg = {
        "vh": {"samples": ["a", "b"], "classes": ["A", "B"], "n_folds": 3},
        "samples": {"a": {"class": "A", "xsec_pb": 1.0}, "b": {"class": "B", "xsec_pb": 1.0}},
        "luminosity_fb": 139.0,
        "seed": 1,
    }
    r = hepchain("features-vh", "--skims", str(skim), str(skim), "--cutflows", str(cutflow), str(cutflow),
                 "--xsecs", "config", "config", "--config", json.dumps(cfg), "--out", str(out))
    line = _one_error_line(r)
    assert "'a'" in line or "a, b" in line or "['a', 'b']" in line, line
    assert out.read_text() == "earlier result"


def test_generate_rejects_bad_pythia_setting(tmp_path: Path) -> None:
    r = hepchain("generate", "--sample", "s", "--chunk", "0", "--seed", "1", "--config", json.dumps({"processes": ["NoSuch:thing = on"], "events": 5}),
                 "--out", str(tmp_path / "g.parquet"), "--meta", str(tmp_path / "g.json"))
    line = _one_error_line(r)
    assert "NoSuch:thing" in line


def test_bad_json_config(tmp_path: Path) -> None:
    r = hepchain("simulate", "--gen", "x", "--sample", "s", "--chunk", "0", "--seed", "1", "--config", "{not json", "--out", str(tmp_path / "o.root"))
    assert "--config is not valid JSON" in _one_error_line(r)
