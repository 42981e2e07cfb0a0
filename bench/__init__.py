"""Benchmarks of the pack against the peer baseline (fal_client + Pillow defaults).

Run all of them with `python -m bench.run_all --quick` (or `--full`); see bench/run_all.py.
"""
