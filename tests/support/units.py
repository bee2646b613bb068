"""systemd unit files as the tests read and run them, without systemd (it is not PID 1 here).

`parse_unit` reads a unit the way systemd does (sections of key=value, continuation lines joined); `exec_argv`
gives its ExecStart with ${VAR}/$VAR expanded from its EnvironmentFile= and Environment= lines. `UnitRunner`
starts a unit's ExecStart as systemd would, but inside a test "machine" (a network namespace) and with the
installed layout's paths mapped onto a test's temp dirs and this checkout's venv.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokube.cluster.process import ManagedProcess, spawn

# How a unit's EnvironmentFile path turns into its variables: a lookup in samples, or reading a real file.
EnvFiles = Callable[[str], dict[str, str]]


@dataclass
class Unit:
    """A unit file as systemd reads it: sections of (key, value) in order, continuation lines joined."""

    name: str
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def value(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None


def parse_unit(path: Path) -> Unit:
    unit = Unit(path.name)
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"{path.name}: not a key=value line in a section: {raw!r}"
        unit.sections[section].append((key.strip(), value.strip()))
    assert not pending, f"{path.name}: ends in a continuation"
    return unit


def read_env_file(path: str) -> dict[str, str]:
    """An EnvironmentFile as systemd reads it: KEY=VALUE lines, # comments, optional quotes around the value."""
    env: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a KEY=VALUE line: {line!r}"
        env[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    return env


def unit_environment(unit: Unit, env_files: EnvFiles) -> dict[str, str]:
    env: dict[str, str] = {}
    for file in unit.values("Service", "EnvironmentFile"):
        env.update(env_files(file.lstrip("-")))
    for assignment in unit.values("Service", "Environment"):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def exec_argv(unit: Unit, env_files: EnvFiles) -> list[str]:
    """The ExecStart command line with ${VAR}/$VAR substituted as systemd does (every variable must be set)."""
    starts = unit.values("Service", "ExecStart")
    assert len(starts) == 1, f"{unit.name}: expected one ExecStart, got {starts}"
    env = unit_environment(unit, env_files)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"{unit.name}: ${name} is not set by its Environment/EnvironmentFile"
        return env[name]

    return shlex.split(re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, starts[0]))


@dataclass
class UnitRunner:
    """Starts units' ExecStart lines the way systemd would, on a test machine.

    `path_map` maps installed-layout path prefixes (/etc/aiokube, /var/lib/aiokube, /opt/aiokube/.venv/bin/python)
    onto the test's temp dirs and this checkout's venv. The mapping is applied to the EnvironmentFile paths and to
    the expanded command line, never to the unit files themselves, so the units run exactly as shipped.
    `prefix` is prepended to every command (nsenter into the machine's network namespace)."""

    path_map: dict[str, str]
    prefix: list[str]
    log_dir: Path
    cwd: str
    processes: list[ManagedProcess] = field(default_factory=list)

    def map_path(self, text: str) -> str:
        for installed, here in self.path_map.items():
            text = text.replace(installed, here)
        return text

    def argv(self, unit_path: Path) -> list[str]:
        unit = parse_unit(unit_path)
        return [self.map_path(a) for a in exec_argv(unit, lambda f: read_env_file(self.map_path(f)))]

    def start(self, unit_path: Path) -> ManagedProcess:
        name = unit_path.name.removesuffix(".service")
        process = spawn(name, [*self.prefix, *self.argv(unit_path)], str(self.log_dir / f"{name}.log"), cwd=self.cwd)
        self.processes.append(process)
        return process

    def stop_all(self, timeout: float = 5.0) -> None:
        """Newest first, as systemd stops units in reverse start order."""
        while self.processes:
            self.processes.pop().stop(timeout=timeout)
