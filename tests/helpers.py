"""Helpers shared by the tests (paths, the real NanoAOD file, tiny generation)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_NANOAOD = ROOT / ".." / "shared" / "data" / "real" / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
TINY_CONFIG = ROOT / "tests" / "data" / "config_tiny.yaml"


def real_nanoaod() -> Path:
    """The real CMS NanoAOD file of shared/, or skip the test with the reason."""
    if not REAL_NANOAOD.exists():
        pytest.skip(f"real NanoAOD file not found at {REAL_NANOAOD} (shared/ is not checked out beside the project)")
    return REAL_NANOAOD
