"""Benchmarks of issue 4 (see docs/benchmarks.md). Run each as `python bench/<name>.py`."""
