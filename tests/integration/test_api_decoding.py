"""Request bodies as Kubernetes decodes them: unknown fields pruned, duplicate keys reported per
fieldValidation, hostile YAML (alias bombs, deep nesting) refused with a 400."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

pytestmark = pytest.mark.etcd

CM = "/api/v1/namespaces/default/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
JSON = {"content-type": "application/json"}
YAML = {"content-type": "application/yaml"}
MERGE = {"content-type": "application/merge-patch+json"}


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


@pytest.mark.parametrize("mode", ["Warn", "Ignore"])
async def test_unknown_fields_are_dropped_on_every_write(api: httpx.AsyncClient, mode: str) -> None:
    name = f"prune-{mode.lower()}"
    body = deployment(name)
    body["bogus"] = 1
    body["spec"]["bogus"] = {"deep": True}
    body["spec"]["template"]["spec"]["containers"][0]["bogus"] = "x"
    body["metadata"]["annotations"] = {"free-form": "kept"}  # a map's keys are data, never unknown
    created = await api.post(f"{DEPLOY}?fieldValidation={mode}", json=body)
    assert created.status_code == 201, created.text
    assert ("warning" in created.headers) == (mode == "Warn")
    for obj in (created.json(), (await api.get(f"{DEPLOY}/{name}")).json()):
        assert "bogus" not in obj and "bogus" not in obj["spec"]
        assert "bogus" not in obj["spec"]["template"]["spec"]["containers"][0]
        assert obj["metadata"]["annotations"] == {"free-form": "kept"}
    patched = await api.patch(f"{DEPLOY}/{name}?fieldValidation={mode}", json={"spec": {"later": 1}}, headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert "later" not in (await api.get(f"{DEPLOY}/{name}")).json()["spec"]
    current = (await api.get(f"{DEPLOY}/{name}")).json()
    current["spec"]["viaPut"] = 1
    assert (await api.put(f"{DEPLOY}/{name}?fieldValidation={mode}", json=current)).status_code == 200
    assert "viaPut" not in (await api.get(f"{DEPLOY}/{name}")).json()["spec"]
    applied = await api.patch(f"{DEPLOY}/{name}?fieldManager=t&fieldValidation={mode}&force=true",
                              content=b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s}\n"
                                      b"spec: {viaApply: 1}\n" % name.encode(),
                              headers={"content-type": "application/apply-patch+yaml"})
    assert applied.status_code == 200, applied.text
    assert "viaApply" not in (await api.get(f"{DEPLOY}/{name}")).json()["spec"]


async def test_duplicate_fields_follow_field_validation(api: httpx.AsyncClient) -> None:
    body = '{"metadata":{"name":"dup-%s"},"data":{"a":"1","a":"2"}}'
    strict = await api.post(f"{CM}?fieldValidation=Strict", content=body % "strict", headers=JSON)
    assert strict.status_code == 400
    assert strict.json()["message"] == 'strict decoding error: duplicate field "data.a"'
    warn = await api.post(CM, content=body % "warn", headers=JSON)
    assert warn.status_code == 201 and warn.headers["warning"] == '299 - "duplicate field \\"data.a\\""'
    assert warn.json()["data"] == {"a": "2"}  # the last one wins, as in Go
    ignore = await api.post(f"{CM}?fieldValidation=Ignore", content=body % "ignore", headers=JSON)
    assert ignore.status_code == 201 and "warning" not in ignore.headers
    yaml_body = 'metadata: {name: ydup}\ndata:\n  a: "1"\n  a: "2"\n'
    yaml_strict = await api.post(f"{CM}?fieldValidation=Strict", content=yaml_body, headers=YAML)
    assert yaml_strict.status_code == 400
    assert yaml_strict.json()["message"] == 'strict decoding error: line 4: key "a" already set in map'
    patch = await api.patch(f"{CM}/dup-warn?fieldValidation=Strict", content='{"data":{"b":"1","b":"2"}}',
                            headers=MERGE)
    assert patch.status_code == 400 and 'duplicate field "data.b"' in patch.json()["message"]


async def test_strict_duplicates_come_before_decoding_errors(api: httpx.AsyncClient) -> None:
    """A body with keys given twice that also fails to decode: with Strict the duplicates are the answer (the
    strict check reads the raw body first); otherwise the decoding error is."""
    twice = '{"metadata":{"name":"order"},"data":{"a":"1","a":"2"}}'
    for content_type, decoded_code in (("application/xml", 415), ("application/json", 400)):
        body = twice if content_type == "application/xml" else twice.replace('"1"', "NaN")  # NaN: not JSON
        strict = await api.post(f"{CM}?fieldValidation=Strict", content=body, headers={"content-type": content_type})
        assert strict.status_code == 400, strict.text
        assert strict.json()["message"] == 'strict decoding error: duplicate field "data.a"'
        warn = await api.post(CM, content=body, headers={"content-type": content_type})
        assert warn.status_code == decoded_code, warn.text
    update = await api.put(f"{CM}/order?fieldValidation=Strict", content=twice, headers={"content-type": "text/xml"})
    assert update.status_code == 400 and "duplicate field" in update.json()["message"]
    empty = await api.post(f"{CM}?fieldValidation=Strict", content=" ", headers=JSON)
    assert empty.status_code == 400 and empty.json()["message"] == "the request body is empty"
    assert (await api.get(f"{CM}/order")).status_code == 404  # none of them stored anything


async def test_alias_bomb_is_refused_quickly_without_blocking(api: httpx.AsyncClient) -> None:
    laughs = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n" + "".join(
        f"{n}: &{n} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ) + "metadata: {name: laughs}\n"
    started = time.monotonic()
    bomb, ready = await asyncio.gather(api.post(CM, content=laughs, headers=YAML), api.get("/readyz"))
    assert bomb.status_code == 400 and "aliasing" in bomb.json()["message"]
    assert ready.status_code == 200 and time.monotonic() - started < 2
    itself = await api.post(CM, content="metadata: {name: x}\ndata: &d {a: *d}\n", headers=YAML)
    assert itself.status_code == 400


@pytest.mark.parametrize("content_type", ["application/yaml", "application/json"])
async def test_deep_nesting_is_a_400(api: httpx.AsyncClient, content_type: str) -> None:
    for depth in (50_000, 500):
        deep = '{"metadata":{"name":"deep"},"data":' + "[" * depth + "]" * depth + "}"
        answer = await api.post(CM, content=deep, headers={"content-type": content_type})
        assert answer.status_code == 400, answer.text
    shallow = await api.post(CM, content='{"metadata":{"name":"ok"},"data":{"a":"[[[]]]"}}', headers=YAML)
    assert shallow.status_code == 201
