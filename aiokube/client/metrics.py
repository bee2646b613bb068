"""Prometheus metrics of the controller runtime (registered once, in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILE_TOTAL = Counter(
    "aiokube_reconcile_total", "Reconciliations per controller and outcome "
    "(success, requeue, requeue_after, error, terminal_error).", ["controller", "result"])
RECONCILE_ERRORS_TOTAL = Counter(
    "aiokube_reconcile_errors_total", "Reconciliations that raised (retried or terminal).", ["controller"])
TERMINAL_RECONCILE_ERRORS_TOTAL = Counter(
    "aiokube_terminal_reconcile_errors_total", "Reconciliations that raised TerminalError (not retried).",
    ["controller"])
RECONCILE_DURATION_SECONDS = Histogram(
    "aiokube_reconcile_duration_seconds", "Time spent in one reconcile call.", ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
