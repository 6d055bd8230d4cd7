"""asv benchmarks of the delay-SNN suite (numpy/scipy style: parameterised classes, fixed-seed inputs).

Run from the repository root: ``asv run --quick --environment existing:$PWD/.venv/bin/python`` (docs/performance.md).
"""
