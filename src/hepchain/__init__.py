"""hepchain: reproducible HEP machine-learning analyses from ntuples to figures."""

from __future__ import annotations

__version__ = "0.1.0"
