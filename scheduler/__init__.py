"""aiokube's scheduler: assigns pending pods to nodes through the API server (see scheduler/scheduler.py)."""
