"""The benchmark harness: datasets, methods (vanilla, best-of-n, RAIN), metrics, a
resumable runner, reports, judge calibration and a synthetic judge of known accuracy.

Nothing is imported at package import time; use the submodules::

    from rainlm.bench.datasets import load_dataset
    from rainlm.bench.runner import BenchSettings, run_bench
"""
