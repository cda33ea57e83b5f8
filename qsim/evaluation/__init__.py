"""Evaluation models and accuracy tables (used by benchmarks and tests): a digits CNN trained at
run time, all-MiniLM-L6-v2 from packaged weights, and per-plan accuracy tables over the simulator."""
