"""Container environment: env (value, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef), envFrom,
and `$(VAR)` expansion in values, command and args.

A missing non-optional ConfigMap/Secret (or key) raises `ContainerConfigError`, which the status reports as
waiting reason CreateContainerConfigError, as the kubelet does.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Protocol

from aiokube.api.errors import ApiError
from aiokube.api.quantity import parse_quantity
from aiokube.api.types import Obj


class ObjectGetter(Protocol):
    """The slice of ApiClient the agent needs to read ConfigMaps and Secrets."""

    async def get(self, resource: str, name: str, namespace: str | None = None) -> Obj: ...


class ContainerConfigError(Exception):
    """The container cannot be configured yet (a referenced object or key is missing)."""


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, unknown left as is, `$$` escapes `$`."""

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR.sub(replace, text)


class SourceCache:
    """ConfigMaps/Secrets fetched once per sync (a pod referencing one 10 times costs one GET)."""

    def __init__(self, api: ObjectGetter, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[tuple[str, str], Obj | None] = {}

    async def get(self, resource: str, name: str) -> Obj | None:
        key = (resource, name)
        if key not in self._cache:
            try:
                self._cache[key] = await self.api.get(resource, name, namespace=self.namespace)
            except ApiError as e:
                if e.code != 404:
                    raise
                self._cache[key] = None
        return self._cache[key]

    async def data(self, resource: str, name: str, *, optional: bool) -> dict[str, str] | None:
        """The object's data as text (Secrets decoded), None if absent and optional."""
        obj = await self.get(resource, name)
        if obj is None:
            if optional:
                return None
            kind = "configmap" if resource == "configmaps" else "secret"
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return decoded_data(resource, obj)


def decoded_data(resource: str, obj: Obj) -> dict[str, str]:
    data: dict[str, str] = {}
    if resource == "secrets":
        for k, v in (obj.get("data") or {}).items():
            data[k] = base64.b64decode(v).decode(errors="replace")
        data.update(obj.get("stringData") or {})
    else:
        data.update(obj.get("data") or {})
        for k, v in (obj.get("binaryData") or {}).items():
            data[k] = base64.b64decode(v).decode(errors="replace")
    return data


def field_ref_value(pod: Obj, field_path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": ",".join(p.get("ip", "") for p in status.get("podIPs") or []),
    }
    if field_path == "metadata.labels":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("labels") or {}).items()))
    if field_path == "metadata.annotations":
        return "\n".join(f'{k}="{v}"' for k, v in sorted((meta.get("annotations") or {}).items()))
    if field_path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef {field_path!r}")
    return str(simple[field_path] or "")


def resource_field_value(pod: Obj, container_name: str, ref: Obj, node_allocatable: dict[str, str]) -> str:
    container: Obj = next((c for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
                      if c["name"] == (ref.get("containerName") or container_name)), {})
    kind, _, res = ref["resource"].partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(res)
    if value is None:
        # Unset limits default to the node's allocatable (as the kubelet does), requests to 0.
        value = node_allocatable.get(res, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(value) / divisor))


async def container_env(
    pod: Obj, container: Obj, sources: SourceCache, node_allocatable: dict[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        prefix = item.get("prefix", "")
        for ref_key, resource in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
            ref = item.get(ref_key)
            if ref:
                data = await sources.data(resource, ref["name"], optional=bool(ref.get("optional")))
                for k, v in (data or {}).items():
                    env[prefix + k] = v
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_ref_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = resource_field_value(pod, container["name"], source["resourceFieldRef"], node_allocatable)
        else:
            for ref_key, resource in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
                ref = source.get(ref_key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                data = await sources.data(resource, ref["name"], optional=optional)
                if data is None:
                    break
                if ref["key"] not in data:
                    if optional:
                        break
                    kind = "configmap" if resource == "configmaps" else "secret"
                    raise ContainerConfigError(f'couldn\'t find key {ref["key"]} in {kind} '
                                               f'{sources.namespace}/{ref["name"]}')
                env[name] = data[ref["key"]]
    return env
