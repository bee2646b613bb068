"""Discovery documents (/api, /apis, /api/v1, /apis/{group}, /apis/{group}/{version}) built once from the
resource registry. Plain JSON only: kubectl falls back from aggregated discovery when answered with
Content-Type application/json."""

from __future__ import annotations

from aiokube.api import resources
from aiokube.api.types import Obj
from apiserver import metrics_api


def resource_list(group: str, version: str) -> Obj:
    entries: list[Obj] = []
    for info in resources.RESOURCES:
        if info.group != group or info.version != version:
            continue
        entry: Obj = {"name": info.plural, "singularName": info.singular, "namespaced": info.namespaced,
                      "kind": info.kind, "verbs": list(info.verbs)}
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        entries.append(entry)
        for sub, (kind, sub_group, sub_version, verbs) in info.subresources.items():
            sub_entry: Obj = {"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                              "kind": kind, "verbs": list(verbs)}
            if sub_group or sub_version:
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version or version
            entries.append(sub_entry)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": entries}


def _group(name: str, versions: list[str]) -> Obj:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group_list() -> Obj:
    groups = [_group(g, vs) for g, vs in resources.group_versions().items() if g]
    groups.append(metrics_api.discovery_group())  # served by apiserver/metrics_api.py, not the registry
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> Obj | None:
    versions = resources.group_versions().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def served_versions(group: str) -> list[str]:
    return resources.group_versions().get(group, [])
