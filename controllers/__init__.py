"""The controller-manager: one reconciler per module, wired by manager.py over shared informers.

Every controller follows the same contract (style.md, controller-runtime): its reconciler turns a
`namespace/name` key into `Result` by reading the informer caches and writing through the API server.
"""
