"""Bad inputs give one line naming the file, for every study's skim and every kind of executor run.

All five skims go through :func:`hepchain.skim.common.run_processor`; the
iterative executor checks each file as it opens it, futures and dask check all
files up front, so both paths are exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hepchain.errors import InputFileError
from hepchain.skim.registry import STUDIES
from hepchain.skim.vh import run_vh_skim


def _runner(study: str) -> Callable[..., Any]:
    if study == "vh":
        return lambda files, executor: run_vh_skim(files, executor=executor)
    return lambda files, executor: STUDIES[study].run_skim(files, executor={"name": executor}, cutflow_only=True)


CASES = [(study, executor) for study in ("vh", *STUDIES) for executor in ("iterative", "futures")]


def _message(study: str, executor: str, path: Path) -> str:
    with pytest.raises(InputFileError) as err:
        _runner(study)([str(path)], executor)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.mark.parametrize(("study", "executor"), CASES)
def test_missing_file(tmp_path: Path, study: str, executor: str) -> None:
    assert "does not exist" in _message(study, executor, tmp_path / "nope.root")


@pytest.mark.parametrize(("study", "executor"), CASES)
def test_file_without_events_tree(tmp_path: Path, study: str, executor: str) -> None:
    import uproot

    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f["Other"] = {"x": np.arange(3, dtype=np.float32)}
    message = _message(study, executor, path)
    assert "'Events'" in message and "Other" in message


@pytest.mark.parametrize(("study", "executor"), CASES)
def test_not_a_root_file(tmp_path: Path, study: str, executor: str) -> None:
    path = tmp_path / "text.root"
    path.write_text("not ROOT")
    assert "not a readable ROOT file" in _message(study, executor, path)
