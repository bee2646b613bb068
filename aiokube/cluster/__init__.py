"""Launching local clusters: the processes `aiokube up` starts, their state on disk, and stopping them."""
