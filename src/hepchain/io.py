"""Tables on disk: parquet, written atomically, read with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

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
