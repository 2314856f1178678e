"""The benchmark of issue 6 (docs/benchmark.md): ``python -m bench`` or ``make bench``."""
