"""Config validation: defaults, unknown keys named, cross-references."""

from __future__ import annotations

import copy

import pytest
import yaml

from hepchain.config import config_hash, load_config, validate_config
from hepchain.errors import ConfigError

from .helpers import ROOT

DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_defaults_are_filled() -> None:
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["luminosity_fb"] == 139.0
    assert cfg["vh"]["training"]["threads"] == 1  # default filled in
    assert cfg["samples"]["ggf"]["generate"]["ecm"] == 13000.0
    assert cfg["samples"]["ggf"]["generate"]["filter"] is None


def test_luminosity_defaults_to_139() -> None:
    raw = copy.deepcopy(DEFAULT)
    del raw["luminosity_fb"]
    assert validate_config(raw)["luminosity_fb"] == 139.0


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["samples"]["vh"]["generate"].__setitem__("evnts", 5), "samples.vh.generate.evnts"),
        (lambda c: c.__setitem__("lumi", 3), "lumi"),
        (lambda c: c["vh"]["training"].__setitem__("learning_rate", 0.1), "vh.training.learning_rate"),
        (lambda c: c["vh"]["binning"].__setitem__("min_sig", 3), "vh.binning.min_sig"),
    ],
)
def test_unknown_key_is_named(mutate, key: str) -> None:
    raw = copy.deepcopy(DEFAULT)
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    message = str(err.value)
    assert f"'{key}'" in message and "unknown key" in message
    assert "\n" not in message


def test_sample_needs_generate_or_files_with_xsec() -> None:
    raw = copy.deepcopy(DEFAULT)
    raw["samples"]["vh"]["files"] = ["a.root"]
    with pytest.raises(ConfigError, match="either 'generate:' or 'files:'"):
        validate_config(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["samples"]["vh"] = {"class": "VH", "files": ["a.root"], "xsec_pb": 0.01}
    assert validate_config(raw)["samples"]["vh"]["files"] == ["a.root"]


def test_bad_values_and_cross_references() -> None:
    raw = copy.deepcopy(DEFAULT)
    raw["vh"]["training"]["lr"] = -1
    with pytest.raises(ConfigError, match=r"vh\.training\.lr"):
        validate_config(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["vh"]["samples"].append("nosuch")
    with pytest.raises(ConfigError, match="sample 'nosuch'"):
        validate_config(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["samples"]["ww"]["class"] = "Diboson"
    with pytest.raises(ConfigError, match=r"samples\.ww\.class"):
        validate_config(raw)


def test_config_hash_is_stable_and_sensitive() -> None:
    a = validate_config(copy.deepcopy(DEFAULT))
    b = validate_config(copy.deepcopy(DEFAULT))
    assert config_hash(a) == config_hash(b)
    b["seed"] += 1
    assert config_hash(a) != config_hash(b)


def test_study_sections_reference_samples_and_known_selection_keys() -> None:
    cfg = validate_config(copy.deepcopy(DEFAULT))
    for study in ("recoil", "ditau", "jets", "electrons"):
        assert cfg[study]["n_folds"] == 5 and cfg[study]["selection"] == {}
    raw = copy.deepcopy(DEFAULT)
    raw["jets"]["samples"] = ["dijets"]
    with pytest.raises(ConfigError, match=r"config key 'jets\.samples': sample 'dijets' is not defined"):
        validate_config(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["recoil"]["selection"] = {"muon_pt_minimum": 20.0}
    with pytest.raises(ConfigError, match=r"config key 'recoil\.selection': .*'muon_pt_minimum'"):
        validate_config(raw)
    raw = copy.deepcopy(DEFAULT)
    raw["executor"]["name"] = "spark"
    with pytest.raises(ConfigError, match=r"executor\.name"):
        validate_config(raw)
