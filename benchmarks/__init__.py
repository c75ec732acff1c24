"""secbus benchmark suite: what secbus costs, carries and survives, measured
side by side with baselines in the same run.

Run it with ``python -m benchmarks --mode quick|full`` (``make bench``). Each
benchmark is a module with one job; :mod:`benchmarks.harness` interleaves the
baseline and subject runs, takes medians and ratios (this machine is shared
and noisy, so absolute numbers drift between minutes but ratios measured in
the same minute hold), and :mod:`benchmarks.report` writes
``benchmarks/results/latest.md`` and ``latest.json``.

Every load loop is bounded in count and in time, and only targets 127.0.0.1.
"""
