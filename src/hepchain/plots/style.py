"""Common figure style and the PDF + PNG writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def setup() -> None:
    """Non-interactive backend and the CMS-like mplhep style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    plt.style.use(hep.style.CMS)
    plt.rcParams.update({"font.size": 11, "axes.labelsize": 12, "figure.dpi": 100})


def save(fig: Any, stem: Path) -> list[Path]:
    """Write ``stem.pdf`` and ``stem.png`` atomically and close the figure."""
    import matplotlib.pyplot as plt

    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("pdf", "png"):
        path = stem.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.stem}.tmp.{ext}")
        fig.savefig(tmp, dpi=120 if ext == "png" else None, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        os.replace(tmp, path)
        out.append(path)
    plt.close(fig)
    return out
