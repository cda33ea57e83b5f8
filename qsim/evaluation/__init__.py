"""Evaluation models, data and accuracy: a digits CNN trained at run time, all-MiniLM-L6-v2 from
packaged weights, per-plan accuracy tables over the simulator (``evaluate``), and the
``evaluation:`` block of workloads and sweep specs (``data.load_evaluation`` -> ``Evaluation``,
whose ``measure`` and ``key`` sweeps and searches use)."""
