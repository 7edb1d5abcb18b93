"""`intentd bench`: each scenario starts what it measures in its own process(es)
and drives it from a separate load-generator process (issue 7, DESIGN §2).

Modules: ``loadgen`` (the load generator, run as ``python -m intentd.bench.loadgen``),
``procs`` (starting and stopping the measured processes), ``report`` (tables and
JSON), ``echo_app`` and ``dbos_baseline`` (the baselines), ``stream_intent``
(a bench-only intent) and one module per scenario.
"""
