"""Table column definitions and cell helpers shared by the per-kind printers.

Descriptions come from the Kubernetes 1.32 OpenAPI docs shipped with kubernetes-validate (the same swagger
docs the upstream printers quote), so the server's Table matches a real cluster's column for column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies.tableutil import age, human_duration, parse_time

_SCHEMA_VERSION = "v1.32.0-local"


@cache
def _definitions() -> dict[str, Any]:
    try:
        import kubernetes_validate
    except ImportError:  # descriptions are cosmetic: tables still work without them
        return {}
    path = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / _SCHEMA_VERSION / "_definitions.json"
    try:
        defs: dict[str, Any] = json.loads(path.read_text())["$defs"]
    except (OSError, KeyError, ValueError):
        return {}
    return defs


def doc(definition: str, field: str) -> str:
    """The swagger description of `field` in `definition` ("core.v1.PodStatus", "meta.v1.ObjectMeta" …)."""
    if definition.startswith("meta."):
        full = "io.k8s.apimachinery.pkg.apis." + definition
    else:
        full = "io.k8s.api." + definition
    prop = _definitions().get(full, {}).get("properties", {}).get(field, {})
    return str(prop.get("description", ""))


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format, "description": self.description,
                "priority": self.priority}


def name_column() -> Column:
    return Column("Name", format="name", description=doc("meta.v1.ObjectMeta", "name"))


def age_column() -> Column:
    return Column("Age", description=doc("meta.v1.ObjectMeta", "creationTimestamp"))


def containers_column() -> Column:
    return Column("Containers", priority=1, description="Names of each container in the template.")


def images_column() -> Column:
    return Column("Images", priority=1, description="Images referenced by each container in the template.")


def age_cell(obj: Obj, now: float) -> str:
    return age(obj, now)


def since(timestamp: str | None, now: float) -> str:
    """translateTimestampSince: a human duration, "<unknown>" for a missing time."""
    if not timestamp:
        return "<unknown>"
    return human_duration(now - parse_time(timestamp))


def container_cells(containers: list[Obj] | None) -> tuple[str, str]:
    """layoutContainerCells: names and images joined with commas."""
    containers = containers or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def print_bool_ptr(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    """listWithMoreString: the first `limit` items and "+ N more..."."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"
