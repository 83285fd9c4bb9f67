"""Benchmarks (`cmr bench ...`); each writes its results and plots to docs/benchmarks/."""
