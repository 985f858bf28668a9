"""Benchmarks: ``python -m hepchain.bench <name>``; ratios against a reference measured in the same run."""
