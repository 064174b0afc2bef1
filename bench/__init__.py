"""Benchmarks: `make bench` runs every bench/<area>.py side by side and prints ratios."""
