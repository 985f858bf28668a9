"""Skim throughput against a plain uproot read of the same branches, measured in one process.

The reference reads exactly the branches the skim reads (recorded from
uproot during a warm-up run of the skim: the declared branches, the optional
ones present in the files such as ``genWeight`` and truth, and the counters
NanoEvents reads for the offsets) with ``uproot`` in chunks of the skim's chunk
size and does nothing else; then the skim runs on the same
files with the iterative executor (one core).  Both are reported in events/s
per core with their ratio (skim / read; the acceptance is >= 0.5).  With
``--memory`` the skim also runs in two fresh processes, on the input and on
twice the input, and their peak resident memory is printed: chunking keeps it
flat.

Inputs: ``--files`` (NanoAOD), listed again until at least ``--events``
events are reached (the page cache then serves repeats, for the reference
as for the skim).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import HepchainError


def _branches(study: str, cutflow_only: bool) -> list[str]:
    if study == "vh":
        from ..skim import vh

        return [b for b in vh.BRANCHES]
    from ..skim.registry import get_study

    module = get_study(study).skim()
    extra = [] if cutflow_only else [*getattr(module, "COLUMN_BRANCHES", ()), *getattr(module, "EXTENDED_BRANCHES", ())]
    return list(dict.fromkeys([*module.BRANCHES, *extra]))


@contextlib.contextmanager
def _recording_branches() -> Iterator[list[str]]:
    """Record the names of the TTree branches read inside the block.

    NanoEvents reads branch by branch (``TBranch.array``); a processor may also
    read several at once (``HasBranches.arrays`` with a list of names).
    """
    import uproot

    names: list[str] = []
    branch_cls = uproot.behaviors.TBranch.TBranch
    tree_cls = uproot.behaviors.TBranch.HasBranches
    original_array, original_arrays = branch_cls.array, tree_cls.arrays

    def array(self: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(self.name)
        return original_array(self, *args, **kwargs)

    def arrays(self: Any, expressions: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(expressions, str):
            names.append(expressions)
        elif expressions is not None:
            names.extend(str(e) for e in expressions)
        else:  # a selection by filters (NanoEvents' preload uses filter_branch)
            filters = {k: kwargs[k] for k in ("filter_name", "filter_typename", "filter_branch") if k in kwargs}
            names.extend(self.keys(**filters))
        return original_arrays(self, expressions, *args, **kwargs)

    branch_cls.array, tree_cls.arrays = array, arrays
    try:
        yield names
    finally:
        branch_cls.array, tree_cls.arrays = original_array, original_arrays


def _run_skim(study: str, files: list[str], chunksize: int, cutflow_only: bool) -> dict[str, Any]:
    if study == "vh":
        from ..skim.vh import run_vh_skim

        table, cutflow = run_vh_skim(files, executor="iterative", workers=1, chunksize=chunksize)
        return {"rows": len(table), "cutflow": cutflow}
    from ..features.table import table_length
    from ..skim.registry import get_study

    table, cutflow = get_study(study).run_skim(
        files, executor={"name": "iterative", "workers": 1, "chunksize": chunksize}, cutflow_only=cutflow_only
    )
    return {"rows": table_length(table), "cutflow": cutflow}


def _n_events(files: list[str]) -> list[int]:
    import uproot

    out = []
    for f in files:
        with uproot.open(f) as root:
            if "Events" not in root:
                raise HepchainError(f"{f}: no 'Events' tree")
            out.append(int(root["Events"].num_entries))
    return out


def _plain_read(files: list[str], branches: list[str], chunksize: int) -> int:
    """Read ``branches`` of every file in chunks of ``chunksize`` entries; return the events read."""
    import uproot

    n = 0
    for f in files:
        with uproot.open(f) as root:
            tree = root["Events"]
            for start in range(0, tree.num_entries, chunksize):
                stop = min(start + chunksize, tree.num_entries)
                tree.arrays(branches, entry_start=start, entry_stop=stop, library="ak")
                n += stop - start
    return n


def _peak_rss_mb(study: str, files: list[str], chunksize: int, cutflow_only: bool) -> float:
    """Peak resident memory [MB] of a fresh process running the skim on ``files``."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(files, fh)
    code = (
        "import json, resource, sys; from hepchain.bench.skim import _run_skim; "
        f"_run_skim({study!r}, json.load(open({fh.name!r})), {chunksize}, {cutflow_only}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    Path(fh.name).unlink(missing_ok=True)
    if r.returncode != 0:
        raise HepchainError(f"memory probe failed: {r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode}")
    return int(r.stdout.strip().splitlines()[-1]) / 1024.0


def run(study: str, files: list[str], events: int, chunksize: int, cutflow_only: bool, memory: bool) -> dict[str, Any]:
    counts = _n_events(files)
    per_pass = sum(counts)
    if per_pass == 0:
        raise HepchainError("the input files hold no events")
    repeats = max(1, -(-events // per_pass))
    listed = [f for _ in range(repeats) for f in files]
    declared = _branches(study, cutflow_only)
    # warm-up (imports, file metadata, page cache) outside the timed region; it also records what the skim reads
    with _recording_branches() as read_by_skim:
        _run_skim(study, files[:1], chunksize, cutflow_only)
    branches = list(dict.fromkeys(read_by_skim)) or declared
    _plain_read(files[:1], branches, chunksize)
    t0 = time.perf_counter()
    n_read = _plain_read(listed, branches, chunksize)
    t1 = time.perf_counter()
    result = _run_skim(study, listed, chunksize, cutflow_only)
    t2 = time.perf_counter()
    n_skim = result["cutflow"]["n_events"]
    out: dict[str, Any] = {
        "study": study,
        "events": n_read,
        "branches": len(branches),
        "declared_branches": len(declared),
        "read_events_per_s": n_read / (t1 - t0),
        "skim_events_per_s": n_skim / (t2 - t1),
        "rows": result["rows"],
    }
    out["ratio"] = out["skim_events_per_s"] / out["read_events_per_s"]
    if memory:
        out["peak_rss_mb_1x"] = _peak_rss_mb(study, listed, chunksize, cutflow_only)
        out["peak_rss_mb_2x"] = _peak_rss_mb(study, listed + listed, chunksize, cutflow_only)
    out["max_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hepchain.bench skim", description=__doc__.splitlines()[0])
    p.add_argument("--study", default="vh", help="vh | recoil | ditau | jets | electrons")
    p.add_argument("--files", nargs="+", required=True, help="NanoAOD files (e.g. results/samples/top/nominal/*.root)")
    p.add_argument("--events", type=int, default=100_000, help="list the files again until this many events")
    p.add_argument("--chunksize", type=int, default=100_000)
    p.add_argument("--cutflow-only", action="store_true", help="the selection alone (no extended branches)")
    p.add_argument("--memory", action="store_true", help="also peak memory on the input and on twice the input")
    ns = p.parse_args(argv)
    try:
        r = run(ns.study, list(ns.files), ns.events, ns.chunksize, ns.cutflow_only, ns.memory)
    except HepchainError as exc:
        sys.exit(f"hepchain.bench skim: error: {exc}")
    print(f"study {r['study']}: {r['events']} events, {r['branches']} branches read by the skim "
          f"({r['declared_branches']} declared), {r['rows']} rows selected (1 core)")
    print(f"plain uproot read of the same branches: {r['read_events_per_s']:.0f} events/s")
    print(f"skim (coffea, iterative executor):      {r['skim_events_per_s']:.0f} events/s")
    print(f"skim / read: {r['ratio']:.3f}")
    if ns.memory:
        print(f"peak memory of the skim: {r['peak_rss_mb_1x']:.0f} MB on the input, {r['peak_rss_mb_2x']:.0f} MB on twice the input")
