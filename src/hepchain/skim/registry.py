"""The studies that share the generic skim and feature stages (``python -m hepchain skim|features``).

Each entry names the study's skim module (selection dataclass, coffea
processor, ``run_<study>_skim``) and feature module (feature spec, targets,
``build_feature_table``).  Modules are imported only when a study is used, so
that reading the config does not import coffea.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Study:
    """Where one study's skim and features live."""

    name: str
    seed: str
    skim_module: str
    run_function: str
    selection_class: str
    features_module: str
    spec_name: str
    needs: str  # what the extended columns need from the simulation, for the docs

    def skim(self) -> ModuleType:
        return importlib.import_module(self.skim_module)

    def features(self) -> ModuleType:
        return importlib.import_module(self.features_module)

    def selection(self, config: Mapping[str, Any] | None) -> Any:
        """The selection dataclass from a config mapping (unknown keys raise ConfigError)."""
        return getattr(self.skim(), self.selection_class).from_config(dict(config or {}))

    def run_skim(
        self,
        files: Sequence[str],
        *,
        selection: Mapping[str, Any] | None = None,
        executor: Mapping[str, Any] | None = None,
        cutflow_only: bool = False,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Run the study's skim on ``files`` with the config's selection and executor sections."""
        ex = dict(executor or {})
        run = getattr(self.skim(), self.run_function)
        return run(
            list(files),
            selection=self.selection(selection),
            executor=ex.get("name", "iterative"),
            workers=int(ex.get("workers", 1)),
            chunksize=int(ex.get("chunksize", 100_000)),
            scheduler=ex.get("scheduler"),
            cutflow_only=cutflow_only,
        )

    def spec(self) -> Any:
        return getattr(self.features(), self.spec_name)

    def targets(self) -> tuple[str, ...]:
        return tuple(self.features().TARGETS)


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study("recoil", "000", "hepchain.skim.recoil", "run_recoil_skim", "RecoilSelection",
              "hepchain.features.recoil", "RECOIL_SPEC", "PFCands (samples.<name>.simulate.store_pfcands: true)"),
        Study("ditau", "001", "hepchain.skim.ditau", "run_ditau_skim", "DitauSelection",
              "hepchain.features.ditau", "DITAU_SPEC", "standard NanoAOD branches only"),
        Study("jets", "002", "hepchain.skim.jets", "run_jets_skim", "DijetSelection",
              "hepchain.features.jets", "JETS_SPEC", "PFCands and JetPFCands (store_pfcands: true)"),
        Study("electrons", "004", "hepchain.skim.electrons", "run_electrons_skim", "ZeeSelection",
              "hepchain.features.electrons", "ELECTRONS_SPEC", "EleCell and EleTrack (store_cells: true)"),
    )
}


def get_study(name: str) -> Study:
    """The registry entry of ``name``; unknown names raise ConfigError listing the known ones."""
    if name not in STUDIES:
        raise ConfigError(f"study '{name}' is unknown; known studies: {', '.join(STUDIES)}")
    return STUDIES[name]
