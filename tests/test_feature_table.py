"""Array tables (scalars, padded sets, images) on disk, and feature specs with set and image groups."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pandas as pd
import pytest

from hepchain.errors import ConfigError, HepchainError, InputFileError
from hepchain.features.spec import Feature, FeatureSpec
from hepchain.features.table import concat_tables, read_table, table_length, write_table
from hepchain.skim.common import padded


def _table(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "event": np.arange(n, dtype=np.uint64),
        "met": rng.normal(size=n),
        "set_pt": rng.random((n, 4)).astype(np.float32),
        "set_mask": rng.random((n, 4)) > 0.5,
        "image": rng.random((n, 2, 3)).astype(np.float32),
    }


def test_round_trip_keeps_shapes_dtypes_values_and_metadata(tmp_path: Path) -> None:
    table = _table()
    path = tmp_path / "t.parquet"
    write_table(path, table, metadata={"study": "x", "cuts": [1, 2]})
    back, meta = read_table(path)
    assert meta == {"study": "x", "cuts": [1, 2]}
    assert list(back) == list(table)
    for name, values in table.items():
        assert back[name].dtype == values.dtype and back[name].shape == values.shape
        np.testing.assert_array_equal(back[name], values)
    sub, _ = read_table(path, ["image", "event"])
    assert list(sub) == ["image", "event"]
    # scalar columns stay plain parquet columns for pandas and other tools
    frame = pd.read_parquet(path, columns=["event", "met"])
    np.testing.assert_array_equal(frame["met"].to_numpy(), table["met"])


def test_empty_table_keeps_row_shapes(tmp_path: Path) -> None:
    table = {k: v[:0] for k, v in _table().items()}
    write_table(tmp_path / "e.parquet", table)
    back, _ = read_table(tmp_path / "e.parquet")
    assert back["image"].shape == (0, 2, 3) and back["set_mask"].shape == (0, 4)


def test_errors_name_the_column_or_file(tmp_path: Path) -> None:
    table = _table()
    table["bad"] = np.zeros(3)
    with pytest.raises(HepchainError, match="column 'bad' has 3 rows but 'event' has 5"):
        write_table(tmp_path / "x.parquet", table)
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "x.parquet.tmp").exists()
    write_table(tmp_path / "ok.parquet", _table())
    with pytest.raises(InputFileError, match="column 'nope' is missing"):
        read_table(tmp_path / "ok.parquet", ["nope"])
    with pytest.raises(InputFileError, match="does not exist"):
        read_table(tmp_path / "absent.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputFileError, match=r"corrupt\.parquet: not a readable parquet table"):
        read_table(tmp_path / "corrupt.parquet")


def test_a_failed_write_keeps_the_previous_table(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    write_table(path, _table())
    bad = _table()
    bad["obj"] = np.array(["a"] * 5, dtype=object)
    with pytest.raises(HepchainError, match="dtype object"):
        write_table(path, bad)
    back, _ = read_table(path)
    assert len(back["event"]) == 5


def test_concat_and_length() -> None:
    a, b = _table(2), _table(3)
    both = concat_tables([a, b])
    assert table_length(both) == 5 and both["image"].shape == (5, 2, 3)


def test_padded_sets_without_loops() -> None:
    values = ak.Array([[3.0, 2.0, 1.0], [], [5.0]])
    np.testing.assert_array_equal(padded(values, 2), [[3, 2], [0, 0], [5, 0]])
    np.testing.assert_array_equal(padded(values, 4, fill=-1.0)[0], [3, 2, 1, -1])


def _spec() -> FeatureSpec:
    return FeatureSpec(
        "toy",
        (
            Feature("met", "GeV", "missing ET", lambda t: t["met"], ("met",)),
            Feature(
                "pt",
                "GeV",
                "object pT",
                lambda t: t["set_pt"],
                ("set_pt",),
                per="object",
                shape=(4,),
                group="objects",
                dtype="float32",
            ),
            Feature(
                "log_pt",
                "",
                "log object pT",
                lambda t: np.log1p(t["set_pt"]),
                ("set_pt",),
                per="object",
                shape=(4,),
                group="objects",
                dtype="float32",
            ),
            Feature(
                "objects_mask",
                "",
                "real objects",
                lambda t: t["set_mask"],
                ("set_mask",),
                per="object",
                shape=(4,),
                group="objects",
                dtype="bool",
            ),
            Feature(
                "cells",
                "GeV",
                "image",
                lambda t: t["image"].reshape(len(t["image"]), -1),
                ("image",),
                per="cell",
                shape=(6,),
                group="cells",
                dtype="float32",
            ),
        ),
    )


def test_spec_groups_and_tensors() -> None:
    spec = _spec()
    table = _table()
    assert spec.groups == ["event", "objects", "cells"]
    arrays = spec.compute_arrays(table)
    tensors = spec.tensors(arrays)
    assert tensors["event"].shape == (5, 1)
    assert tensors["objects"].shape == (5, 4, 2) and tensors["objects"].dtype == np.float32
    np.testing.assert_allclose(tensors["objects"][..., 1], np.log1p(table["set_pt"]), rtol=1e-6)
    assert tensors["objects_mask"].dtype == bool and tensors["objects_mask"].shape == (5, 4)
    assert tensors["cells"].shape == (5, 6, 1)
    doc = spec.to_dict()
    assert doc["features"][1]["shape"] == [4] and doc["features"][1]["group"] == "objects"
    with pytest.raises(HepchainError, match="use compute_arrays"):
        spec.compute(pd.DataFrame({"met": [1.0]}))


def test_spec_rejects_inconsistent_shapes_and_reports_missing_inputs() -> None:
    with pytest.raises(ValueError, match="group 'objects'"):
        FeatureSpec(
            "bad",
            (
                Feature("a", "", "", lambda t: t["x"], per="object", shape=(4,), group="objects"),
                Feature("b", "", "", lambda t: t["x"], per="object", shape=(5,), group="objects"),
            ),
        )
    with pytest.raises(ValueError, match="must be a scalar"):
        FeatureSpec("bad", (Feature("a", "", "", lambda t: t["x"], shape=(2,)),))
    table = _table()
    del table["set_mask"]
    with pytest.raises(HepchainError, match="column 'set_mask' needed by feature 'objects_mask'"):
        _spec().compute_arrays(table)
    wrong = FeatureSpec("w", (Feature("a", "", "", lambda t: t["set_pt"], ("set_pt",), shape=(3,), group="o"),))
    with pytest.raises(HepchainError, match=r"returned shape \(5, 4\), expected \(5, 3\)"):
        wrong.compute_arrays(_table())


def test_unknown_study_is_a_config_error() -> None:
    from hepchain.skim.registry import get_study

    with pytest.raises(ConfigError, match="study 'muons' is unknown; known studies: recoil, ditau, jets, electrons"):
        get_study("muons")
