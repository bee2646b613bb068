"""PodSpec rules shared by Pods and every pod template (Deployment, ReplicaSet, DaemonSet, StatefulSet, Job,
CronJob): Kubernetes' SetDefaults_PodSpec/Container/Probe/Volume and ValidatePodSpec, the parts that matter for
a control plane driven by kubectl."""

from __future__ import annotations

from typing import Any

from aiokube.api.types import Obj
from apiserver.strategies import fielderrors as fe
from apiserver.strategies import meta, names
from apiserver.strategies.base import Cause
from apiserver.strategies.quantity import parse_quantity

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
# Volume sources: a volume must name exactly one of these.
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)
# The mode files of secret/configMap/downwardAPI/projected volumes get when the user does not choose (0644).
DEFAULT_VOLUME_MODE = 0o644


# --- defaults --------------------------------------------------------------------------------------------------

def default_pull_policy(image: str) -> str:
    """`:latest` or no tag pulls Always, anything else IfNotPresent (a digest counts as pinned)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_handler(handler: Obj | None) -> None:
    http = (handler or {}).get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_probe(probe: Obj | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_handler(probe)


def default_container(container: Obj) -> None:
    if container.get("image") and not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = default_pull_policy(container["image"])
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    for hook in ("postStart", "preStop"):
        _default_handler((container.get("lifecycle") or {}).get(hook))
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def default_volume(volume: Obj) -> None:
    if not any(source in volume for source in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", DEFAULT_VOLUME_MODE)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        if isinstance(item.get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested in it (used for pods and pod templates alike)."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            default_container(container)
    for volume in spec.get("volumes") or []:
        default_volume(volume)


def default_pod_template(template: Obj | None) -> None:
    if isinstance(template, dict):
        default_pod_spec(template.setdefault("spec", {}))


# --- validation ------------------------------------------------------------------------------------------------

def _validate_resources(resources: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            amount = parse_quantity(value)
            if amount is None:
                causes.append(fe.invalid(f"{path}.{kind}[{name}]", value,
                                         "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"))
            elif amount < 0:
                causes.append(fe.invalid(f"{path}.{kind}[{name}]", value, "must be greater than or equal to 0"))
    for name, value in requests.items():
        request, limit = parse_quantity(value), parse_quantity(limits.get(name))
        if request is None or limit is None or name not in limits:
            continue
        if request > limit:
            causes.append(fe.invalid(f"{path}.requests", value,
                                     f"must be less than or equal to {name} limit of {limits[name]}"))
    return causes


def _validate_ports(ports: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen_names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if port.get("name"):
            name = str(port["name"])
            causes.extend(fe.invalid(f"{p}.name", name, msg) for msg in names.port_name(name))
            if name in seen_names:
                causes.append(fe.duplicate(f"{p}.name", name))
            seen_names.add(name)
        container_port = port.get("containerPort")
        if not container_port:
            causes.append(fe.required(f"{p}.containerPort"))
        else:
            causes.extend(fe.invalid(f"{p}.containerPort", container_port, msg)
                          for msg in names.port_number(int(container_port)))
        host_port = port.get("hostPort")
        if host_port:
            causes.extend(fe.invalid(f"{p}.hostPort", host_port, msg) for msg in names.port_number(int(host_port)))
        protocol = port.get("protocol")
        if not protocol:
            causes.append(fe.required(f"{p}.protocol"))
        elif protocol not in PROTOCOLS:
            causes.append(fe.not_supported(f"{p}.protocol", protocol, PROTOCOLS))
    return causes


def _validate_container(container: Obj, path: str, volume_names: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    name = container.get("name") or ""
    if not name:
        causes.append(fe.required(f"{path}.name"))
    else:
        causes.extend(fe.invalid(f"{path}.name", name, msg) for msg in names.dns1123_label(name))
    if not container.get("image"):
        causes.append(fe.required(f"{path}.image"))
    policy = container.get("imagePullPolicy")
    if policy and policy not in PULL_POLICIES:
        causes.append(fe.not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    message_policy = container.get("terminationMessagePolicy")
    if message_policy and message_policy not in TERMINATION_MESSAGE_POLICIES:
        causes.append(fe.not_supported(f"{path}.terminationMessagePolicy", message_policy,
                                       TERMINATION_MESSAGE_POLICIES))
    causes.extend(_validate_ports(container.get("ports") or [], f"{path}.ports"))
    for i, env in enumerate(container.get("env") or []):
        env_name = env.get("name") or ""
        if not env_name:
            causes.append(fe.required(f"{path}.env[{i}].name"))
        else:
            causes.extend(fe.invalid(f"{path}.env[{i}].name", env_name, msg) for msg in names.env_var_name(env_name))
    for i, mount in enumerate(container.get("volumeMounts") or []):
        mount_name = mount.get("name") or ""
        if not mount_name:
            causes.append(fe.required(f"{path}.volumeMounts[{i}].name"))
        elif mount_name not in volume_names:
            causes.append(fe.not_found(f"{path}.volumeMounts[{i}].name", mount_name))
        if not mount.get("mountPath"):
            causes.append(fe.required(f"{path}.volumeMounts[{i}].mountPath"))
    causes.extend(_validate_resources(container.get("resources") or {}, f"{path}.resources"))
    return causes


def _validate_volumes(volumes: list[Obj], path: str) -> tuple[list[Cause], set[str]]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, volume in enumerate(volumes):
        p = f"{path}[{i}]"
        name = volume.get("name") or ""
        if not name:
            causes.append(fe.required(f"{p}.name"))
        else:
            causes.extend(fe.invalid(f"{p}.name", name, msg) for msg in names.dns1123_label(name))
            if name in seen:
                causes.append(fe.duplicate(f"{p}.name", name))
            seen.add(name)
        sources = [s for s in VOLUME_SOURCES if s in volume]
        if not sources:
            causes.append(fe.required(p, "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(fe.forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
    return causes, seen


def _validate_tolerations(tolerations: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, toleration in enumerate(tolerations):
        p = f"{path}[{i}]"
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if key:
            causes.extend(fe.invalid(f"{p}.key", key, msg) for msg in names.qualified_name(key))
        elif operator != "Exists":
            causes.append(fe.invalid(f"{p}.operator", operator,
                                     "operator must be Exists when `key` is empty, which means \"match all values "
                                     "and all keys\""))
        if operator not in TOLERATION_OPERATORS:
            causes.append(fe.not_supported(f"{p}.operator", operator, TOLERATION_OPERATORS))
        elif operator == "Exists" and toleration.get("value"):
            causes.append(fe.invalid(f"{p}.operator", toleration.get("value"),
                                     "value must be empty when `operator` is 'Exists'"))
        effect = toleration.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            causes.append(fe.not_supported(f"{p}.effect", effect, TAINT_EFFECTS))
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(fe.invalid(f"{p}.effect", effect or "",
                                     "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return causes


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    """ValidatePodSpec (the commonly hit rules)."""
    if not isinstance(spec, dict):
        return [fe.required(path)]
    causes, volume_names = _validate_volumes(spec.get("volumes") or [], f"{path}.volumes")
    containers = spec.get("containers") or []
    if not containers:
        causes.append(fe.required(f"{path}.containers"))
    seen: set[str] = set()
    for key, items in (("initContainers", spec.get("initContainers") or []), ("containers", containers)):
        for i, container in enumerate(items):
            p = f"{path}.{key}[{i}]"
            causes.extend(_validate_container(container, p, volume_names))
            name = container.get("name")
            if name and name in seen:
                causes.append(fe.duplicate(f"{p}.name", name))
            if name:
                seen.add(name)
            if key == "initContainers":
                policy = container.get("restartPolicy")
                if policy is not None and policy != "Always":
                    causes.append(fe.not_supported(f"{p}.restartPolicy", policy, ["Always"]))
    restart = spec.get("restartPolicy")
    if restart is None:
        causes.append(fe.required(f"{path}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        causes.append(fe.not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns and dns not in DNS_POLICIES:
        causes.append(fe.not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= int(deadline) <= 2**31 - 1:
        causes.append(fe.invalid(f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, "
                                 "inclusive"))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and int(grace) < 0:
        causes.append(fe.invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be >= 0"))
    causes.extend(meta.validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    causes.extend(_validate_tolerations(spec.get("tolerations") or [], f"{path}.tolerations"))
    if spec.get("serviceAccountName"):
        causes.extend(fe.invalid(f"{path}.serviceAccountName", spec["serviceAccountName"], msg)
                      for msg in names.dns1123_subdomain(spec["serviceAccountName"]))
    if spec.get("nodeName"):
        causes.extend(fe.invalid(f"{path}.nodeName", spec["nodeName"], msg)
                      for msg in names.dns1123_subdomain(spec["nodeName"]))
    return causes


def validate_pod_template(template: Any, path: str, *, selector: Any = None, match_selector: bool = False,
                          restart_policies: tuple[str, ...] | None = None) -> list[Cause]:
    """ValidatePodTemplateSpec for controllers: labels, spec, the restart policies the controller allows, and
    (with `match_selector`) that the selector selects the template's labels; a missing selector selects nothing,
    an empty one everything, as in metav1.LabelSelectorAsSelector."""
    if not isinstance(template, dict):
        return [fe.required(path)]
    template_meta = template.get("metadata") or {}
    labels = template_meta.get("labels") or {}
    causes = meta.validate_labels(labels, f"{path}.metadata.labels")
    causes.extend(meta.validate_annotations(template_meta.get("annotations"), f"{path}.metadata.annotations"))
    if match_selector and (selector is None or not meta.selector_is_empty(selector)) \
            and not meta.selector_matches(selector, labels):
        causes.append(fe.invalid(f"{path}.metadata.labels", labels, "`selector` does not match template `labels`"))
    spec = template.get("spec")
    causes.extend(validate_pod_spec(spec, f"{path}.spec"))
    restart = (spec or {}).get("restartPolicy")
    if restart_policies and restart in RESTART_POLICIES and restart not in restart_policies:
        causes.append(fe.not_supported(f"{path}.spec.restartPolicy", restart, restart_policies))
    return causes


def validate_controller_selector(selector: Any, path: str, empty_message: str) -> list[Cause]:
    """A workload controller's selector: required, well-formed, not empty."""
    if selector is None:
        return [fe.required(path)]
    causes = meta.validate_label_selector(selector, path)
    if meta.selector_is_empty(selector):
        causes.append(fe.invalid(path, meta.go_label_selector(selector), empty_message))
    return causes
