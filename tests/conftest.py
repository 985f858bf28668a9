"""Shared pytest configuration."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``gpu`` marker (tests needing CUDA; skipped without it)."""
    config.addinivalue_line(
        "markers",
        "gpu: needs a CUDA device; skipped when torch.cuda.is_available() is False",
    )
