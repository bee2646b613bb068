"""Score weights from the command line: `--score-weights Name=N,...` or a KubeSchedulerConfiguration file.

Only the part of KubeSchedulerConfiguration this scheduler honours is read: the first profile's
`plugins.score.enabled[].weight` (a plugin listed without a weight keeps its default). Anything else in the
file is ignored; a profile for another schedulerName is rejected loudly rather than silently applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCHEDULER_NAME = "default-scheduler"


class ConfigError(ValueError):
    """The weights could not be understood; the process exits with this message."""


def parse_score_weights(text: str) -> dict[str, int]:
    weights: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--score-weights: expected Name=N, got {item!r}")
        try:
            weights[name.strip()] = int(value)
        except ValueError as exc:
            raise ConfigError(f"--score-weights: weight of {name.strip()} is not an integer: {value!r}") from exc
    return weights


def weights_from_config(document: Any) -> dict[str, int]:
    if not isinstance(document, dict):
        raise ConfigError("scheduler config: expected a KubeSchedulerConfiguration mapping")
    profiles = document.get("profiles") or []
    if not profiles:
        return {}
    profile = profiles[0] or {}
    name = profile.get("schedulerName") or DEFAULT_SCHEDULER_NAME
    if name != DEFAULT_SCHEDULER_NAME:
        raise ConfigError(f"scheduler config: only the {DEFAULT_SCHEDULER_NAME} profile is supported, got {name!r}")
    enabled = (((profile.get("plugins") or {}).get("score") or {}).get("enabled")) or []
    weights: dict[str, int] = {}
    for entry in enabled:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ConfigError(f"scheduler config: score plugin entry without a name: {entry!r}")
        if entry.get("weight") is not None:
            weights[str(entry["name"])] = int(entry["weight"])
    return weights


def load_config_weights(path: str | Path) -> dict[str, int]:
    with open(path, encoding="utf-8") as fh:
        return weights_from_config(yaml.safe_load(fh))
