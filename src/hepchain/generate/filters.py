"""Process-level event filters (Pythia UserHooks).

A filter vetoes events right after the hard process and its resonance decays,
before showering and hadronisation, so it costs almost nothing; Pythia's
``sigmaGen`` then estimates the cross section of the accepted events, which
folds the filter efficiency in (checked: a veto of every second event halves
``sigmaGen``).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

_QUARKS = {1, 2, 3, 4, 5}
_LEPTONS = {11, 13, 15}


def _vh_hadronic_v_leptonic_h(process: Any) -> bool:
    """Keep V(->qq) H(->WW->l nu l nu): True means veto."""
    n = process.size()
    ids = [process[i].id() for i in range(n)]
    mothers = [process[i].mother1() for i in range(n)]
    higgs = [i for i in range(n) if ids[i] == 25]
    if not higgs:
        return True
    h = higgs[-1]
    leptonic_w_from_h = 0
    hadronic_v = 0
    for i in range(n):
        if abs(ids[i]) not in (23, 24):
            continue
        daughters = [abs(ids[j]) for j in range(n) if mothers[j] == i]
        if not daughters:
            continue
        from_higgs = mothers[i] == h
        if from_higgs and any(d in _LEPTONS for d in daughters):
            leptonic_w_from_h += 1
        elif not from_higgs and all(d in _QUARKS for d in daughters):
            hadronic_v += 1
    return not (leptonic_w_from_h == 2 and hadronic_v == 1)


FILTERS = {"vh_hadronic_v_leptonic_h": _vh_hadronic_v_leptonic_h}


def make_filter(name: str) -> Any:
    """Return a Pythia UserHooks object that applies the named filter."""
    import pythia8mc

    if name not in FILTERS:
        raise ConfigError(f"generate.filter: unknown filter '{name}' (known: {', '.join(sorted(FILTERS))})")
    veto = FILTERS[name]

    class _Hook(pythia8mc.UserHooks):  # type: ignore[misc]
        def __init__(self) -> None:
            pythia8mc.UserHooks.__init__(self)

        def canVetoProcessLevel(self) -> bool:
            return True

        def doVetoProcessLevel(self, process: Any) -> bool:
            return bool(veto(process))

    return _Hook()
