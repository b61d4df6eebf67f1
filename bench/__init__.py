"""commsgw benchmarks: `python -m bench` (see bench/README section in bench/results/report.md)."""
