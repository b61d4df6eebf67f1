"""Soak test of a gateway process: `python -m soak --minutes 10` (see soak/README.md)."""
