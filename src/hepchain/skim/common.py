"""Shared machinery of the skims: input checks, a coffea runner, cutflows and columns.

Every skim is a :class:`coffea.processor.ProcessorABC` whose ``process(events)``
returns ``{"cutflow": ..., "columns": ...}`` built with :class:`Cutflow` and
:func:`chunk_columns`, and is run with :func:`run_processor`, which

1. checks each input file up front (exists or is a URL, opens as ROOT, has an
   ``Events`` tree, has every branch the skim reads) and raises a one-line
   :class:`~hepchain.errors.InputFileError` / :class:`~hepchain.errors.MissingBranchError`
   naming the file and the branch;
2. runs the processor with ``coffea.processor.Runner`` and the executor chosen by
   config: ``"iterative"`` (one process), ``"futures"`` (``workers`` local
   processes) or ``"dask"`` (a dask.distributed cluster: the scheduler at
   ``scheduler``, e.g. ``tcp://host:8786`` or a dask-jobqueue SLURM/HTCondor
   cluster started beside the workflow, or, without one, a local cluster of
   ``workers`` single-threaded processes), ``NanoAODSchema`` and ``chunksize``
   events per chunk;
3. merges the chunks in a fixed order (input file order, then entry), so that the
   output table and the cutflow are the same whatever the executor and the
   number of workers: chunk outputs are keyed by ``(file, entrystart)`` and the
   weighted sums are added with :func:`math.fsum` (correctly rounded, so
   independent of the order in which the chunks finish).

Accumulator layout (plain dicts, which ``coffea.processor.accumulate`` merges
key by key; the keys of different chunks never collide)::

    {"cutflow": {(file, entrystart): {"all": {"raw": n, "weighted": w}, cut1: {...}, ...}},
     "columns": {(file, entrystart): {name: column_accumulator(ndarray), ...}}}

coffea emits ``RuntimeWarning: Missing cross-reference index for X => Y`` when a
file lacks NanoAOD cross-reference branches (ours carry no ``Jet_muonIdx1`` and
so on); exactly that message is silenced while a skim runs, in the worker
processes as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import awkward as ak
import numpy as np
import pandas as pd
from coffea.analysis_tools import PackedSelection
from coffea.processor import (
    FuturesExecutor,
    IterativeExecutor,
    ProcessorABC,
    Runner,
    column_accumulator,
)
from coffea.processor.executor import FileMeta

from ..detector.particles import index_within_group
from ..errors import ConfigError, InputFileError
from ..nanoaod import open_events, require_branches

#: Regular expression of the only coffea warning the skims silence.
XREF_WARNING = r"Missing cross-reference index"

#: Executors :func:`run_processor` knows.
EXECUTORS = ("iterative", "futures", "dask")

ChunkKey = tuple[str, int]


class SelectionConfig:
    """Base of the selections' frozen dataclasses: typed keys, built from config, recorded as a dict.

    A subclass sets ``label`` (for messages), declares its thresholds as
    dataclass fields with defaults and calls :meth:`check_numbers` (plus its
    own checks) in ``__post_init__``.
    """

    label: ClassVar[str] = "selection"

    def check_numbers(self) -> None:
        """bool fields must be booleans, int fields integers, float fields finite numbers; other types are skipped."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"selection key '{f.name}' must be true or false, got {value!r}")
            elif f.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ConfigError(f"selection key '{f.name}' must be an integer, got {value!r}")
            elif f.type in ("float", float) and (
                isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value)
            ):
                raise ConfigError(f"selection key '{f.name}' must be a finite number, got {value!r}")

    def check_below(self, *pairs: tuple[str, str]) -> None:
        """Each (low, high) pair of keys must satisfy low < high."""
        for low, high in pairs:
            if getattr(self, low) >= getattr(self, high):
                raise ConfigError(f"selection: {low} ({getattr(self, low)}) must be below {high} ({getattr(self, high)})")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Any:
        """Build from a config mapping; unknown keys raise :class:`~hepchain.errors.ConfigError` naming them."""
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.label} selection key(s) {', '.join(repr(k) for k in unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain JSON-ready dict (lists for tuples), for provenance records."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]


def ignore_xref_warnings() -> None:
    """Install a filter for coffea's harmless "Missing cross-reference index" warning.

    Used as the initializer of the worker processes of the futures executor.
    """
    warnings.filterwarnings("ignore", message=XREF_WARNING, category=RuntimeWarning)


@contextlib.contextmanager
def quiet_nanoevents() -> Iterator[None]:
    """Silence the "Missing cross-reference index" warning (only that one) inside the block."""
    with warnings.catch_warnings():
        ignore_xref_warnings()
        yield


def check_inputs(
    files: Sequence[str], branches: Sequence[str], stage: str, hint: str | Callable[[str], str] = ""
) -> dict[str, dict[str, Any]]:
    """Check that every file opens as NanoAOD and carries every branch in ``branches``.

    Raises :class:`~hepchain.errors.InputFileError` (missing or unreadable file, no
    ``Events`` tree) or :class:`~hepchain.errors.MissingBranchError` with a
    one-line message naming the file and the branch.  Returns each file's
    ``{"numentries", "uuid"}``, the metadata coffea would otherwise open every
    file again to learn (its preprocessing step).
    """
    if not files:
        raise InputFileError(f"{stage}: no input files given")
    meta: dict[str, dict[str, Any]] = {}
    for path in files:
        path = str(path)
        if path in meta:
            continue
        if "://" not in path and Path(path).is_dir():
            raise InputFileError(f"{path}: is a directory, not a ROOT file (needed by {stage})")
        tree = open_events(path, stage)
        require_branches(path, tree, list(branches), stage, hint)
        meta[path] = {"numentries": int(tree.num_entries), "uuid": tree.file.fUUID}
    return meta


def chunk_key(events: Any) -> ChunkKey:
    """The ``(filename, entrystart)`` of a chunk, from the metadata coffea attaches to ``events``."""
    meta = getattr(events, "metadata", None) or {}
    return (str(meta.get("filename", "")), int(meta.get("entrystart", 0) or 0))


def event_weights(events: Any) -> np.ndarray:
    """Per-event generator weights as float64; ones where ``genWeight`` is absent (data)."""
    if "genWeight" in events.fields:
        return ak.to_numpy(events.genWeight).astype(np.float64)
    return np.ones(len(events), dtype=np.float64)


class Cutflow:
    """Cumulative cutflow of ordered, named cuts, built from a :class:`PackedSelection`.

    ``fill`` gives one chunk's accumulatable entry; ``finalize`` turns the merged
    entries into ``{"cuts": [{"name": "all", "raw": N, "weighted": sumw}, ...],
    "sumw": ..., "n_events": ...}`` where each cut counts the events passing it
    and every cut before it, and ``sumw`` is the sum of weights of all events
    read (the normalisation denominator).
    """

    def __init__(self, names: Sequence[str]) -> None:
        names = tuple(names)
        if "all" in names:
            raise ValueError("cut name 'all' is reserved for the events read")
        if len(set(names)) != len(names):
            raise ValueError(f"cut names must be unique, got {names}")
        self.names = names

    def selection(self, masks: Mapping[str, Any]) -> PackedSelection:
        """A :class:`PackedSelection` holding ``masks`` (one per cut name, in order; None counts as fail)."""
        missing = [n for n in self.names if n not in masks]
        if missing:
            raise ValueError(f"no mask for cuts {missing}")
        sel = PackedSelection(dtype="uint64")
        for name in self.names:
            mask = masks[name]
            if isinstance(mask, ak.Array):
                mask = ak.to_numpy(ak.fill_none(mask, False))
            sel.add(name, np.asarray(mask, dtype=bool))
        return sel

    def fill(self, selection: PackedSelection, weights: np.ndarray) -> dict[str, dict[str, float | int]]:
        """Raw and weighted cumulative counts of one chunk: ``{"all": {...}, cut1: {...}, ...}``."""
        weights = np.asarray(weights, dtype=np.float64)
        out: dict[str, dict[str, float | int]] = {
            "all": {"raw": int(weights.size), "weighted": math.fsum(weights.tolist())}
        }
        for i, name in enumerate(self.names):
            mask = np.asarray(selection.all(*self.names[: i + 1]), dtype=bool)
            out[name] = {"raw": int(mask.sum()), "weighted": math.fsum(weights[mask].tolist())}
        return out

    def finalize(self, chunks: Mapping[ChunkKey, Mapping[str, Mapping[str, float | int]]]) -> dict[str, Any]:
        """Sum the chunk entries into the cutflow dict (exact, order-independent sums)."""
        cuts = []
        for name in ("all", *self.names):
            raw = sum(int(c[name]["raw"]) for c in chunks.values())
            weighted = math.fsum(float(c[name]["weighted"]) for c in chunks.values())
            cuts.append({"name": name, "raw": raw, "weighted": weighted})
        return {"cuts": cuts, "sumw": cuts[0]["weighted"], "n_events": cuts[0]["raw"]}


def chunk_columns(events: Any, columns: Mapping[str, Any]) -> dict[ChunkKey, dict[str, column_accumulator]]:
    """Wrap one chunk's output columns (flat arrays, one entry per kept event) for accumulation."""
    out: dict[str, column_accumulator] = {}
    for name, values in columns.items():
        if isinstance(values, ak.Array):
            values = ak.to_numpy(values)
        out[name] = column_accumulator(np.asarray(values))
    return {chunk_key(events): out}


def _ordered_keys(keys: Sequence[ChunkKey], files: Sequence[str]) -> list[ChunkKey]:
    position = {str(f): i for i, f in enumerate(files)}
    return sorted(keys, key=lambda k: (position.get(k[0], len(position)), k[0], k[1]))


def columns_to_frame(
    chunks: Mapping[ChunkKey, Mapping[str, column_accumulator]], files: Sequence[str], names: Sequence[str]
) -> pd.DataFrame:
    """Concatenate the chunk columns in file-then-entry order into a DataFrame with ``names``."""
    keys = _ordered_keys(list(chunks), files)
    data: dict[str, np.ndarray] = {}
    for name in names:
        parts = [np.asarray(chunks[k][name].value) for k in keys if name in chunks[k]]
        data[name] = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
    return pd.DataFrame(data, columns=list(names))


#: Output columns of a skim: name -> (dtype, row shape); () for a scalar per event, (K,) for K padded objects.
ColumnSpec = Mapping[str, tuple[str, tuple[int, ...]]]


def columns_to_arrays(
    chunks: Mapping[ChunkKey, Mapping[str, column_accumulator]], files: Sequence[str], columns: ColumnSpec
) -> dict[str, np.ndarray]:
    """Concatenate the chunk columns in file-then-entry order into arrays of the declared dtype and shape.

    Unlike :func:`columns_to_frame` this keeps multi-dimensional columns
    (padded sets, images); a skim without chunks or events gives empty arrays
    of the right shape.
    """
    keys = _ordered_keys(list(chunks), files)
    out: dict[str, np.ndarray] = {}
    for name, (dtype, shape) in columns.items():
        parts = [np.asarray(chunks[k][name].value) for k in keys if name in chunks[k]]
        values = np.concatenate(parts) if parts else np.empty((0, *shape), dtype=dtype)
        if values.shape[1:] != tuple(shape):
            raise ValueError(f"skim column '{name}' has row shape {values.shape[1:]}, declared {tuple(shape)}")
        out[name] = values.astype(dtype, copy=False)
    return out


def flat_fields(collection: Any, fields: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(objects per event, {field: flat numpy array}) of a jagged NanoEvents collection.

    The skims work on these flat arrays with numpy (a few calls per chunk
    instead of one awkward broadcast per operation, which dominates the cost
    on NanoAOD-sized chunks).  Where the collection is a list of records of
    flat numbers (as NanoEvents collections are) the arrays are taken straight
    from its buffers; otherwise (a sliced or masked collection) through
    ``ak.flatten``.  Both give the same arrays.
    """
    fields = list(fields)
    layout = getattr(collection, "layout", None)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
        record = layout.content
        if all(f in record.fields for f in fields):
            contents = [record.content(f) for f in fields]
            if all(isinstance(c, ak.contents.NumpyArray) for c in contents):
                offsets = np.asarray(layout.offsets.data).astype(np.int64)
                start, stop = int(offsets[0]), int(offsets[-1])
                flat = {f: np.asarray(c.to_backend_array())[start:stop] for f, c in zip(fields, contents, strict=True)}
                if all(v.ndim == 1 for v in flat.values()):
                    return np.diff(offsets), flat
    counts = ak.to_numpy(ak.num(collection, axis=1)).astype(np.int64)
    return counts, {f: ak.to_numpy(ak.flatten(collection[f], axis=1)) for f in fields}


def event_values(x: Any) -> np.ndarray:
    """A per-event branch (flat NanoEvents array) as numpy, from its buffer where it is a plain array of numbers."""
    layout = getattr(x, "layout", None)
    if isinstance(layout, ak.contents.NumpyArray):
        values = np.asarray(layout.to_backend_array())
        if values.ndim == 1:
            return values
    return np.asarray(ak.to_numpy(x))


def first_two(evt: np.ndarray, values: Mapping[str, np.ndarray], n_events: int, fills: Mapping[str, Any]) -> dict:
    """Per event, the first and second entry of flat ``values`` (grouped and ordered by ``evt``), ``fills`` else."""
    counts = np.bincount(evt, minlength=n_events)
    rank = index_within_group(counts)
    out: dict[tuple[int, str], np.ndarray] = {}
    for i in (0, 1):
        pick = rank == i
        for name, v in values.items():
            arr = np.full(n_events, fills[name], dtype=np.result_type(v.dtype, np.min_scalar_type(fills[name])))
            arr[evt[pick]] = v[pick]
            out[i, name] = arr
    return out


def padded(values: Any, size: int, fill: float = 0.0, dtype: Any = np.float32) -> np.ndarray:
    """The first ``size`` entries of each event's list as an ``(events, size)`` array, ``fill`` beyond.

    ``values`` is a jagged awkward array (one list per event); no Python loop.
    """
    clipped = ak.pad_none(values, size, axis=1, clip=True)
    return np.asarray(ak.to_numpy(ak.fill_none(clipped, fill)), dtype=dtype).reshape(-1, size)


def check_executor(executor: str, workers: int, scheduler: str | None = None) -> None:
    """Raise :class:`~hepchain.errors.ConfigError` naming the executor key that is wrong."""
    if executor not in EXECUTORS:
        raise ConfigError(f"executor '{executor}' is unknown; choose one of {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is not None and executor != "dask":
        raise ConfigError(f"executor.scheduler is only used by the dask executor, not by '{executor}'")


@contextlib.contextmanager
def make_executor(executor: str, workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """The coffea executor named by config, as a context (a dask client is closed on exit).

    ``"iterative"``; ``"futures"`` with ``workers`` processes; ``"dask"`` connected to
    ``scheduler`` (an address such as ``tcp://host:8786``) or, if None, to a local
    cluster of ``workers`` single-threaded worker processes started for this call.
    """
    check_executor(executor, workers, scheduler)
    if executor == "iterative":
        yield IterativeExecutor(status=False)
        return
    if executor == "futures":
        import loky  # the process pool coffea's FuturesExecutor uses by default

        pool = functools.partial(loky.ProcessPoolExecutor, initializer=ignore_xref_warnings)
        yield FuturesExecutor(status=False, workers=workers, pool=pool)
        return
    from coffea.processor import DaskExecutor

    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ConfigError("executor 'dask' needs the 'distributed' package (pip install distributed)") from exc
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            )
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            except OSError as exc:
                raise ConfigError(f"executor.scheduler: cannot reach the dask scheduler at '{scheduler}' ({exc})") from exc
        client.run(ignore_xref_warnings)
        yield DaskExecutor(client=client, status=False, retries=0)


def run_processor(
    files: Sequence[str],
    processor: ProcessorABC,
    *,
    branches: Sequence[str],
    stage: str,
    executor: str = "iterative",
    workers: int = 1,
    chunksize: int = 100_000,
    hint: str | Callable[[str], str] = "",
    progress: bool = False,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Check the inputs, then run ``processor`` over ``files`` with coffea and return the merged output.

    ``branches`` are the branches the processor reads (checked in every file
    before any processing).  The output is the processor's accumulator merged
    over all chunks (see the module docstring for its layout); an input without
    events gives ``{"cutflow": {}, "columns": {}}``.  ``progress`` shows coffea's
    progress bars (off by default: they would clutter logs).  ``scheduler``: the
    dask scheduler address (dask executor only).
    """
    files = [str(f) for f in files]
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ConfigError(f"chunksize must be a positive integer, got {chunksize!r}")
    check_executor(executor, workers, scheduler)
    if executor == "iterative":
        return _run_in_process(files, processor, branches=branches, stage=stage, chunksize=chunksize, hint=hint)
    # the checks open every file once; their entries and UUIDs spare coffea a second opening (preprocessing)
    known = check_inputs(files, branches, stage, hint)
    metadata_cache = {FileMeta(stage, path, "Events"): meta for path, meta in known.items()}
    with (
        make_executor(executor, workers, scheduler) as runner_executor,
        quiet_nanoevents(),
        _quiet_progress(not progress),
    ):
        runner = Runner(
            executor=runner_executor,
            pre_executor=IterativeExecutor(status=False),
            chunksize=chunksize,
            schema=_nanoaod_schema(),
            metadata_cache=metadata_cache,  # fresh per call: files may be rewritten in place between runs
        )
        out = runner({stage: files}, processor, treename="Events")
    if not out:
        out = {}
    out.setdefault("cutflow", {})
    out.setdefault("columns", {})
    return out


def chunk_ranges(n_entries: int, chunksize: int) -> list[tuple[int, int]]:
    """Entry ranges of a file's chunks: as coffea's Runner splits it (nearly equal chunks of about ``chunksize``)."""
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < n_entries:
        n = max(round((n_entries - start) / chunksize), 1)
        stop = min(n_entries, start + math.ceil((n_entries - start) / n))
        ranges.append((start, stop))
        start = stop
    return ranges


def _run_in_process(
    files: Sequence[str],
    processor: ProcessorABC,
    *,
    branches: Sequence[str],
    stage: str,
    chunksize: int,
    hint: str | Callable[[str], str],
) -> dict[str, Any]:
    """The iterative executor with one opening per file.

    coffea's Runner opens a file once to learn its entries and again for every
    chunk, and the TTree metadata (hundreds of branches in our ntuples) costs
    as much as reading a skim's branches.  Here every file is checked up front
    for existence, then opened once: its branches are checked (one-line error
    naming file and branch) and NanoEvents builds every chunk from that same
    tree, with the metadata coffea gives (dataset, filename, entry range), so
    the output is the one the Runner gives (tested against the futures and
    dask executors).  The declared branches and their counters are read in one
    request per chunk (NanoEvents' ``preload``) instead of one per branch.  A file that lacks a branch stops the run when it is
    reached; nothing is written before the end in any case.
    """
    from coffea.nanoevents import NanoEventsFactory
    from coffea.processor import accumulate

    if not files:
        raise InputFileError(f"{stage}: no input files given")
    for path in files:
        if "://" not in path and not Path(path).is_file():
            what = "is a directory, not a ROOT file" if Path(path).is_dir() else "input file does not exist"
            raise InputFileError(f"{path}: {what} (needed by {stage})")
    outputs: list[Any] = []
    with quiet_nanoevents():
        for path in files:
            tree = open_events(path, stage)
            require_branches(path, tree, list(branches), stage, hint)
            # the declared branches and their collections' counters are read in one request per chunk (coffea's
            # documented preload); anything else the processor touches is still read lazily by NanoEvents
            counters = {f"n{b.split('_', 1)[0]}" for b in branches if "_" in b}
            preload = [b for b in (*branches, *sorted(counters)) if b in tree]
            for start, stop in chunk_ranges(int(tree.num_entries), chunksize):
                factory = NanoEventsFactory.from_root(
                    tree.file.root_directory,  # the same file object: its object cache returns the parsed tree
                    treepath="Events",
                    schemaclass=_nanoaod_schema(),
                    metadata={"dataset": stage, "filename": path, "treename": "Events",
                              "entrystart": start, "entrystop": stop},
                    mode="virtual",
                    entry_start=start,
                    entry_stop=stop,
                    preload=preload,
                )
                outputs.append(processor.process(factory.events()))
            tree.file.close()
    out = processor.postprocess(accumulate(outputs)) if outputs else {}
    out = dict(out or {})
    out.setdefault("cutflow", {})
    out.setdefault("columns", {})
    return out


@contextlib.contextmanager
def _quiet_progress(quiet: bool) -> Iterator[None]:
    """Mute coffea's rich progress bars (its executors' ``status=False`` does not hide them)."""
    from coffea.util import coffea_console

    saved = coffea_console.quiet
    coffea_console.quiet = quiet or saved
    try:
        yield
    finally:
        coffea_console.quiet = saved


def _nanoaod_schema() -> Any:
    from coffea.nanoevents import NanoAODSchema

    return NanoAODSchema
