"""Prometheus metrics of the runtime plane."""

from prometheus_client import Counter, Histogram

EXECUTIONS_CREATED = Counter("intentd_executions_created_total", "Executions accepted", ["intent"])
EXECUTIONS_FINISHED = Counter("intentd_executions_finished_total", "Executions finished", ["intent", "status"])
BATCH_ITEMS = Histogram(
    "intentd_execution_batch_items", "Items per POST /executions/batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
