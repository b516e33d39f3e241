"""The chatd benchmark suite: a load generator, contenders, scenarios and the report.

Run it with ``python -m bench`` or ``chatd-bench``; ``--quick`` is the CI smoke run.
"""
