"""Storage behind a narrow, revisioned interface (see interface.py). Only this package imports the etcd client."""

from apiserver.storage.interface import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Storage,
    StorageError,
    StorageUnavailableError,
    WatchEvent,
)

__all__ = [
    "CompactedError",
    "ConflictError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "WatchEvent",
]
