"""aiokube's client library (this project's client-go): REST client, watch, informers, work queue,
controller runtime, leader election and event recording. Everything public is exported here."""

from aiokube.api.errors import ApiError
from aiokube.client.api_client import PATCH_CONTENT_TYPES, ApiClient, error_from_response
from aiokube.client.backoff import ExponentialBackoff
from aiokube.client.clock import REAL_CLOCK, Clock, RealClock
from aiokube.client.controller import Controller, Reconciler, Result, TerminalError
from aiokube.client.events import EventRecorder, object_reference
from aiokube.client.informer import Informer
from aiokube.client.keys import object_key, split_key
from aiokube.client.kubeconfig import KubeConfig, load_kubeconfig
from aiokube.client.leader import LeaderElector
from aiokube.client.ratelimit import (
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    TokenBucketRateLimiter,
    default_controller_rate_limiter,
)
from aiokube.client.retry import RetryPolicy
from aiokube.client.store import (
    IndexFunc,
    Store,
    controller_uid_index,
    namespace_index,
    node_name_index,
    owner_uid_index,
)
from aiokube.client.timefmt import format_micro_time, format_time, parse_time
from aiokube.client.workqueue import WorkQueue

__all__ = [
    "PATCH_CONTENT_TYPES",
    "REAL_CLOCK",
    "ApiClient",
    "ApiError",
    "Clock",
    "Controller",
    "EventRecorder",
    "ExponentialBackoff",
    "IndexFunc",
    "Informer",
    "ItemExponentialRateLimiter",
    "KubeConfig",
    "LeaderElector",
    "MaxOfRateLimiter",
    "RateLimiter",
    "RealClock",
    "Reconciler",
    "Result",
    "RetryPolicy",
    "Store",
    "TerminalError",
    "TokenBucketRateLimiter",
    "WorkQueue",
    "controller_uid_index",
    "default_controller_rate_limiter",
    "error_from_response",
    "format_micro_time",
    "format_time",
    "load_kubeconfig",
    "namespace_index",
    "node_name_index",
    "object_key",
    "object_reference",
    "owner_uid_index",
    "parse_time",
    "split_key",
]
