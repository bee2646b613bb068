"""Shared type aliases.

API objects travel as plain JSON dictionaries (exactly what the wire carries), so no field a user sends is
ever dropped by a model that does not know it. Schemas (apiserver/schema.py) validate them.
"""

from typing import Any

Obj = dict[str, Any]
"""A Kubernetes object as decoded JSON: apiVersion, kind, metadata, spec, status …"""
