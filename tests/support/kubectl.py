"""Run the real kubectl from tests, isolated from the machine's own configuration.

Each call gets its own HOME (so kubectl's discovery cache belongs to the test) and an explicit KUBECONFIG.
"""

from __future__ import annotations

import os
import subprocess


def kubectl_env(kubeconfig: str, home: str) -> dict[str, str]:
    """This process's environment with kubectl pointed at `kubeconfig` and a private HOME."""
    return {**os.environ, "KUBECONFIG": kubeconfig, "HOME": home}


def run_kubectl(argv: list[str], *, kubeconfig: str, home: str, stdin: str | None = None,
                check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `argv` (kubectl and its arguments) with text output captured; with `check`, a non-zero exit fails
    the test with kubectl's stderr."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                            env=kubectl_env(kubeconfig, home))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
    return result
