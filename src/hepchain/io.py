"""Outputs on disk, written atomically (temporary name, then rename); tables read with one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import awkward as ak
import pandas as pd

from .errors import InputFileError


def write_table_atomic(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``table`` as parquet under a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table.to_parquet(tmp, index=False, compression="zstd")
    os.replace(tmp, path)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: table does not exist")
    try:
        table = pd.read_parquet(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputFileError(f"{path}: not a readable parquet table ({type(exc).__name__}: {exc})") from exc
    return table


def write_parquet_atomic(array: ak.Array, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ak.to_parquet(array, tmp, compression="zstd", compression_level=3)
    os.replace(tmp, path)


def write_json_atomic(data: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
