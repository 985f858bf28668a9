"""Array tables on disk: skim outputs and feature tables with scalars, sets and images.

A table is a mapping ``name -> numpy array`` whose arrays share their first
dimension (one row per event, or per object where a study trains on objects).
A column may have more dimensions: ``(N,)`` a scalar per row, ``(N, K)`` a
padded set of K objects (with a boolean ``<set>_mask`` column beside it) or a
flattened image of K cells, ``(N, A, B)`` and so on.

On disk a table is one parquet file: scalar columns are plain parquet columns,
multi-dimensional ones are ``FixedSizeList`` columns of the flattened row
(row shape in the file's metadata), so that

- pandas, pyarrow and ROOT-free tools read the scalar columns as usual;
- :func:`read_table` returns every column as one contiguous numpy array of
  its original shape with a reshape of the flat buffer, no Python loop over
  rows, which a DataLoader can turn into a tensor at once.

Writing is atomic (a temporary file renamed into place), so an interrupted
or failed step never leaves a half-written table under the final name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HepchainError, InputFileError

_META_KEY = b"hepchain"


def table_length(columns: Mapping[str, np.ndarray], source: str = "table") -> int:
    """Number of rows; raises naming the first column whose length differs."""
    n: int | None = None
    first = ""
    for name, values in columns.items():
        rows = int(np.shape(values)[0]) if np.ndim(values) else -1
        if rows < 0:
            raise HepchainError(f"{source}: column '{name}' is a scalar, not an array with one entry per row")
        if n is None:
            n, first = rows, name
        elif rows != n:
            raise HepchainError(f"{source}: column '{name}' has {rows} rows but '{first}' has {n}")
    return 0 if n is None else n


def write_table(path: str | Path, columns: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``columns`` (arrays with a common first dimension) to ``path`` atomically.

    ``metadata`` (JSON-serialisable: the selection, the feature spec, the
    cutflow) is stored in the parquet schema and returned by :func:`read_table`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    n = table_length(columns, str(path))
    arrays = []
    shapes: dict[str, list[int]] = {}
    for name, values in columns.items():
        values = np.ascontiguousarray(values)
        if values.dtype == object:
            raise HepchainError(f"{path}: column '{name}' has dtype object; tables hold numeric or boolean arrays")
        if values.ndim == 1:
            arrays.append(pa.array(values))
            continue
        row_shape = list(values.shape[1:])
        size = int(np.prod(row_shape))
        if size == 0:
            raise HepchainError(f"{path}: column '{name}' has an empty row shape {tuple(row_shape)}")
        shapes[name] = row_shape
        arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(n * size)), size))
    meta = {"shapes": shapes, "rows": n, "metadata": dict(metadata or {})}
    schema = pa.schema(
        [pa.field(name, a.type) for name, a in zip(columns, arrays, strict=True)],
        metadata={_META_KEY: json.dumps(meta, default=_json_default).encode()},
    )
    table = pa.Table.from_arrays(arrays, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_schema(path: str | Path) -> Any:
    """The pyarrow schema of a table file; a missing or unreadable file raises one line naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: table does not exist")
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputFileError(f"{path}: not a readable parquet table ({exc})") from exc


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a table written by :func:`write_table`: (columns with their shapes, metadata).

    ``columns`` selects a subset (only those are read from disk); a column the
    file lacks raises one line naming the file and the column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = read_schema(path)
    meta = json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
    shapes = meta.get("shapes", {})
    names = list(schema.names) if columns is None else list(columns)
    missing = [c for c in names if c not in schema.names]
    if missing:
        raise InputFileError(f"{path}: column '{missing[0]}' is missing from the table")
    table = pq.read_table(path, columns=names)
    out: dict[str, np.ndarray] = {}
    for name in names:
        chunked = table.column(name)
        if name in shapes:
            flat = pa.concat_arrays([c.flatten() for c in chunked.chunks]) if chunked.num_chunks else pa.array([])
            out[name] = flat.to_numpy(zero_copy_only=False).reshape(len(chunked), *shapes[name])
        else:
            out[name] = chunked.to_numpy()
    return out, meta.get("metadata", {})


def concat_tables(tables: Sequence[Mapping[str, np.ndarray]], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Row-wise concatenation of tables with the same columns (``names``: which, in order)."""
    if not tables:
        return {}
    names = list(tables[0]) if names is None else list(names)
    return {name: np.concatenate([np.asarray(t[name]) for t in tables]) for name in names}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
