"""Seeds derived from (global seed, sample, chunk, stage).

Every job gets its own seed from a hash of what identifies it, so that jobs are
independent and a rerun of the same config gives the same events.
"""

from __future__ import annotations

import hashlib

#: Pythia accepts seeds in [1, 900_000_000].
PYTHIA_MAX_SEED = 900_000_000


def derive_seed(global_seed: int, *parts: object, modulo: int = PYTHIA_MAX_SEED) -> int:
    """Return a seed in ``[1, modulo]`` from ``global_seed`` and identifying ``parts``."""
    text = ":".join([str(int(global_seed)), *(str(p) for p in parts)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") % modulo + 1
