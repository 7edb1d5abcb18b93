"""Prometheus metrics of the runtime plane."""

from prometheus_client import Counter

EXECUTIONS_CREATED = Counter("intentd_executions_created_total", "Executions accepted", ["intent"])
EXECUTIONS_FINISHED = Counter("intentd_executions_finished_total", "Executions finished", ["intent", "status"])
