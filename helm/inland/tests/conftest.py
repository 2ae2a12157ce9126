"""Renders the chart with helm (the binary scripts/chart-check.sh installs) for the tests.

HELM: the helm binary (default: `helm` on PATH); KUBE_VERSION: the Kubernetes version to
render for (default 1.37.0).
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parent.parent
CI = CHART / "ci"
TEST_VALUES = Path(__file__).resolve().parent / "values"
HELM = os.environ.get("HELM", "helm")
KUBE_VERSION = os.environ.get("KUBE_VERSION", "1.37.0")
NAMESPACE = "inland"

# The value sets every structural test runs on: the chart's defaults and the ci/ files.
VALUE_SETS = {
    "chart-defaults": [],
    "default-values": [CI / "default-values.yaml"],
    "production-values": [CI / "production-values.yaml"],
}


def helm_template(values_files=(), set_values=(), check=True, set_strings=()):
    """`helm template` of the chart; returns the CompletedProcess (text)."""
    cmd = [HELM, "template", "inland", str(CHART), "--namespace", NAMESPACE,
           "--kube-version", KUBE_VERSION]
    for f in values_files:
        cmd += ["--values", str(f)]
    for s in set_values:
        cmd += ["--set", s]
    for s in set_strings:
        cmd += ["--set-string", s]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return proc


def render(values_files=(), set_values=(), set_strings=()):
    """The rendered manifests as a list of dicts (empty documents dropped)."""
    out = helm_template(values_files, set_values, set_strings=set_strings).stdout
    return [d for d in yaml.safe_load_all(out) if d]


_cache = {}


@pytest.fixture(params=sorted(VALUE_SETS), scope="session")
def manifests(request):
    name = request.param
    if name not in _cache:
        _cache[name] = render(VALUE_SETS[name])
    return _cache[name]


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def all_containers(workload):
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def component(obj):
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def workloads(docs):
    """Everything that runs pods: the services' Deployments and the hook Jobs."""
    return of_kind(docs, "Deployment") + of_kind(docs, "Job")


def by_component(docs, kind, name):
    (obj,) = [d for d in of_kind(docs, kind) if component(d) == name]
    return obj


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}
