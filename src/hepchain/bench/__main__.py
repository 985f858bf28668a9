"""``python -m hepchain.bench <name> [options]``."""

from __future__ import annotations

import sys

from . import gensim, skim, train

BENCHMARKS = {"gensim": gensim.main, "skim": skim.main, "train": train.main}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        sys.exit(f"usage: python -m hepchain.bench {{{','.join(BENCHMARKS)}}} [options]")
    BENCHMARKS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
