#!/usr/bin/env python3
"""Checks the Kubernetes manifests under deploy/k8s with no cluster.

Run it through scripts/k8s-check, which prepares the virtual environment
(kubernetes-validate, PyYAML) and finds a current kubectl. For every
kustomization under deploy/k8s (and every YAML file outside one) it:

* renders it with `kubectl kustomize`;
* validates each object strictly against the pinned Kubernetes versions
  (K8S_VERSIONS); objects of a built-in API group with no schema (a removed
  or misspelt apiVersion) fail, objects of other groups (CRDs such as
  KServe's) are skipped with a message;
* cross-checks the objects (Jobs too, such as the batch-scoring one, which is
  not a server: no probes or server settings): ConfigMap keys are settings the binary reads
  (`ml-serving serve --help`) and every ConfigMap is read; Service selectors
  select a workload and targetPorts are container ports; the HPA targets an
  object of the rendering; every container requests CPU and memory; the grace
  period exceeds preStop sleep + DRAIN_TIMEOUT_SECS; the security context is
  restricted; probes use a container port that is the server's port;
* starts the real server (ML_SERVING_BIN) on a free loopback port with the
  ConfigMap's settings and requires 200 from every probe path, then stops it
  with SIGTERM and requires it to exit within the grace period.

`--self-test` renders copies of the base with one known defect each, using a
stand-in server, and requires each defect to be reported (and the unmodified
copy to pass).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes_validate import utils as kv

# Kubernetes versions whose OpenAPI schemas every object must satisfy: the
# oldest still served by current minikube/kubectl releases that supports
# everything the manifests use (the preStop sleep action needs 1.30), and the
# newest that kubernetes-validate 1.37.0 bundles.
K8S_VERSIONS = ("1.32.0", "1.37.0")

SERVER_START_TIMEOUT = 20.0  # seconds for /health to answer
PROBE_RETRY_TIMEOUT = 10.0  # seconds a probe path may take to turn 200
HTTP_TIMEOUT = 2.0
COMMAND_TIMEOUT = 60
DEFAULT_GRACE_PERIOD = 30  # Kubernetes' default terminationGracePeriodSeconds

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SERVER_IMAGE = "ml-serving"


# ---------------------------------------------------------------- reporting


@dataclass
class Result:
    status: str  # PASS, FAIL or SKIP
    check: str
    subject: str
    message: str


@dataclass
class Report:
    echo: bool = True
    results: list[Result] = field(default_factory=list)

    def add(self, status: str, check: str, subject: str, message: str) -> None:
        result = Result(status, check, subject, message)
        self.results.append(result)
        if self.echo:
            print(format_result(result), flush=True)

    def ok(self, check: str, subject: str, message: str) -> None:
        self.add("PASS", check, subject, message)

    def fail(self, check: str, subject: str, message: str) -> None:
        self.add("FAIL", check, subject, message)

    def skip(self, check: str, subject: str, message: str) -> None:
        self.add("SKIP", check, subject, message)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def failed_checks(self) -> set[str]:
        return {r.check for r in self.results if r.status == "FAIL"}


def format_result(r: Result) -> str:
    return f"{r.status} [{r.check}] {r.subject}: {r.message}"


# ------------------------------------------------------------ the binary


@dataclass
class ServerSettings:
    """What `ml-serving serve --help` says about the environment."""

    env_names: set[str]
    defaults: dict[str, str]


def minimal_env() -> dict[str, str]:
    """An environment without any of the server's settings, so that --help
    shows defaults rather than this shell's values."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    return env


def parse_help(text: str) -> ServerSettings:
    """Env names and defaults from clap's help: `[env: NAME=]`, `[default: V]`.

    clap may wrap these brackets over lines, and prints `[env: NAME]` when an
    argument hides its value, so whitespace and the `=` are optional."""
    env_pattern = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)(?:=[^\]]*)?\]")
    names = set(env_pattern.findall(text))
    defaults: dict[str, str] = {}
    starts = [m.start() for m in re.finditer(r"(?m)^\s+(?:-\w,\s*)?--[\w-]+", text)]
    for begin, end in zip(starts, starts[1:] + [len(text)]):
        block = text[begin:end]
        env = env_pattern.search(block)
        default = re.search(r"\[default:\s*([^\]]*)\]", block)
        if env and default:
            defaults[env.group(1)] = " ".join(default.group(1).split())
    return ServerSettings(names, defaults)


def read_server_settings(report: Report, binary: Path) -> ServerSettings | None:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        report.fail(
            "binary",
            str(binary),
            "not found or not executable; run `cargo build` or set ML_SERVING_BIN",
        )
        return None
    texts = []
    for args in (["serve", "--help"], ["--help"]):
        try:
            done = subprocess.run(
                [str(binary), *args],
                env=minimal_env(),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            report.fail("binary", str(binary), f"`{' '.join(args)}` did not finish")
            return None
        if done.returncode != 0:
            report.fail(
                "binary",
                str(binary),
                f"`{' '.join(args)}` exited {done.returncode}: "
                + (done.stderr.strip().splitlines() or ["(no message)"])[0][:200],
            )
            return None
        texts.append(done.stdout)
    settings = parse_help("\n".join(texts))
    if not settings.env_names:
        report.fail("binary", str(binary), "`serve --help` lists no `[env: NAME=]` settings")
        return None
    report.ok(
        "binary",
        str(binary),
        f"`serve --help` lists {len(settings.env_names)} settings: "
        + ", ".join(sorted(settings.env_names)),
    )
    return settings


# ------------------------------------------------------------- rendering


@dataclass
class Rendering:
    name: str  # path relative to the checked tree
    objects: list[dict]


def kustomization_dirs(tree: Path) -> list[Path]:
    return sorted(
        {p.parent for name in KUSTOMIZATION_FILES for p in tree.rglob(name)},
    )


def loose_yaml_groups(tree: Path, kustomizations: list[Path]) -> dict[Path, list[Path]]:
    """YAML files in no kustomization's folder (nor below one), by folder."""
    groups: dict[Path, list[Path]] = {}
    for path in sorted([*tree.rglob("*.yaml"), *tree.rglob("*.yml")]):
        if any(k == path.parent or k in path.parents for k in kustomizations):
            continue
        groups.setdefault(path.parent, []).append(path)
    return groups


def load_documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_tree(report: Report, tree: Path, kubectl: str) -> list[Rendering]:
    renderings = []
    kustomizations = kustomization_dirs(tree)
    for folder in kustomizations:
        name = str(folder.relative_to(tree.parent.parent))
        try:
            done = subprocess.run(
                [kubectl, "kustomize", str(folder)],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            report.fail("render", name, "`kubectl kustomize` did not finish")
            continue
        if done.returncode != 0:
            report.fail("render", name, f"`kubectl kustomize` failed: {done.stderr.strip()}")
            continue
        try:
            objects = load_documents(done.stdout)
        except yaml.YAMLError as error:
            report.fail("render", name, f"output is not YAML: {error}")
            continue
        report.ok("render", name, f"`kubectl kustomize` gave {len(objects)} objects")
        renderings.append(Rendering(name, objects))
    for folder, files in loose_yaml_groups(tree, kustomizations).items():
        name = str(folder.relative_to(tree.parent.parent))
        objects = []
        for path in files:
            try:
                objects.extend(load_documents(path.read_text()))
            except yaml.YAMLError as error:
                report.fail("render", str(path.relative_to(tree.parent.parent)), f"not YAML: {error}")
        report.ok("render", name, f"{len(files)} plain YAML files, {len(objects)} objects")
        renderings.append(Rendering(name, objects))
    if not renderings:
        report.fail("render", str(tree), "no kustomization or YAML file found")
    return renderings


# ------------------------------------------------------------ validation


def api_group(obj: dict) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.split("/")[0] if "/" in api_version else ""


def is_built_in(obj: dict) -> bool:
    """Kubernetes' own API groups: the core group, dotless groups (apps,
    autoscaling, batch, ...) and *.k8s.io. Anything else is a CRD's."""
    group = api_group(obj)
    return group == "" or "." not in group or group.endswith(".k8s.io")


def describe(obj: dict) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def validate_rendering(report: Report, rendering: Rendering) -> None:
    for obj in rendering.objects:
        subject = f"{rendering.name} {describe(obj)}"
        if not isinstance(obj, dict) or "kind" not in obj or "apiVersion" not in obj:
            report.fail("schema", subject, "not a Kubernetes object (no kind/apiVersion)")
            continue
        if not is_built_in(obj):
            report.skip(
                "schema",
                subject,
                f"{obj['apiVersion']} is not a built-in API group; no schema to check against",
            )
            continue
        problems = []
        for version in K8S_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as error:
                where = ".".join(str(p) for p in error.path) or "(top level)"
                problems.append(f"Kubernetes {version}: {where}: {error.message}")
            except (kv.SchemaNotFoundError, kv.InvalidSchemaError, kv.VersionNotSupportedError) as error:
                problems.append(f"Kubernetes {version}: {error.message}")
        if problems:
            report.fail("schema", subject, "; ".join(problems))
        else:
            report.ok("schema", subject, "valid (strict) for Kubernetes " + ", ".join(K8S_VERSIONS))


# ---------------------------------------------------------- cross-checks


@dataclass
class Workload:
    obj: dict
    pod: dict  # the pod spec
    labels: dict

    @property
    def name(self) -> str:
        return describe(self.obj)

    def containers(self) -> list[dict]:
        return [*(self.pod.get("initContainers") or []), *(self.pod.get("containers") or [])]


def workloads(objects: list[dict]) -> list[Workload]:
    found = []
    for obj in objects:
        if obj.get("kind") in WORKLOAD_KINDS:
            template = (obj.get("spec") or {}).get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            found.append(Workload(obj, template.get("spec") or {}, labels))
    return found


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def is_server_container(container: dict) -> bool:
    """Runs our image, whatever registry or tag: `.../ml-serving[:tag|@digest]`, as a server
    (the image's default command, or `serve`), not another subcommand such as a batch `score`."""
    image = str(container.get("image", "")).split("@")[0]
    repository = image.rsplit("/", 1)[-1].split(":")[0]
    args = container.get("args") or ["serve"]
    return repository == SERVER_IMAGE and not container.get("command") and args[0] == "serve"


def container_env(container: dict, configmaps: dict[str, dict]) -> dict[str, str]:
    """The environment the container gets from envFrom ConfigMaps and literal env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref and ref.get("name") in configmaps:
            prefix = source.get("prefix", "")
            for key, value in (configmaps[ref["name"]].get("data") or {}).items():
                env[prefix + key] = str(value)
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
            if ref and ref.get("name") in configmaps:
                value = (configmaps[ref["name"]].get("data") or {}).get(ref.get("key"))
                if value is not None:
                    env[item["name"]] = str(value)
    return env


def check_configmaps(
    report: Report, rendering: Rendering, settings: ServerSettings | None
) -> None:
    configmaps = {(c.get("metadata") or {}).get("name"): c for c in of_kind(rendering.objects, "ConfigMap")}
    read_as_env: set[str] = set()
    read_otherwise: set[str] = set()
    for workload in workloads(rendering.objects):
        for volume in workload.pod.get("volumes") or []:
            if "configMap" in volume:
                read_otherwise.add(volume["configMap"].get("name"))
            for source in (volume.get("projected") or {}).get("sources") or []:
                if "configMap" in source:
                    read_otherwise.add(source["configMap"].get("name"))
        for container in workload.containers():
            subject = f"{rendering.name} {workload.name} container {container.get('name')}"
            for source in container.get("envFrom") or []:
                ref = source.get("configMapRef")
                if not ref:
                    continue
                read_as_env.add(ref.get("name"))
                if ref.get("name") not in configmaps and not ref.get("optional"):
                    report.fail(
                        "configmap-missing",
                        subject,
                        f"envFrom names ConfigMap {ref.get('name')!r}, which this rendering lacks",
                    )
            for item in container.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    read_otherwise.add(ref.get("name"))
            if settings is not None and is_server_container(container):
                unknown = sorted(
                    item["name"]
                    for item in container.get("env") or []
                    if item.get("name") not in settings.env_names
                )
                if unknown:
                    report.fail(
                        "container-env",
                        subject,
                        f"env sets {', '.join(unknown)}, which `ml-serving serve` does not read",
                    )
    for name, configmap in configmaps.items():
        subject = f"{rendering.name} ConfigMap/{name}"
        keys = sorted([*(configmap.get("data") or {}), *(configmap.get("binaryData") or {})])
        if name not in read_as_env and name not in read_otherwise:
            report.fail("configmap-unread", subject, "no container reads it (envFrom, env or volume)")
            continue
        if name not in read_as_env:
            report.skip("configmap-key", subject, "read as files or single keys, not as settings")
            continue
        if settings is None:
            report.skip("configmap-key", subject, "the binary's settings are unknown")
            continue
        unknown = [k for k in keys if k not in settings.env_names]
        if unknown:
            report.fail(
                "configmap-key",
                subject,
                f"{', '.join(unknown)} not among the settings of `ml-serving serve` "
                f"({', '.join(sorted(settings.env_names))})",
            )
        else:
            report.ok("configmap-key", subject, f"every key is a server setting: {', '.join(keys)}")


def check_serving_runtimes(report: Report, rendering: Rendering, settings: ServerSettings | None) -> None:
    """KServe's ServingRuntime is not a built-in kind, so the schema check skips it; its server
    container's settings are still ours to check: every env name must be one the binary reads."""
    for runtime in of_kind(rendering.objects, "ServingRuntime"):
        for container in (runtime.get("spec") or {}).get("containers") or []:
            if not is_server_container(container):
                continue
            subject = f"{rendering.name} {describe(runtime)} container {container.get('name')}"
            if settings is None:
                report.skip("runtime-env", subject, "the binary's settings are unknown")
                continue
            names = sorted(item.get("name") for item in container.get("env") or [])
            unknown = [n for n in names if n not in settings.env_names]
            if unknown:
                report.fail("runtime-env", subject, f"env sets {', '.join(unknown)}, which `ml-serving serve` does not read")
            else:
                report.ok("runtime-env", subject, f"every env name is a server setting: {', '.join(names)}")


def container_ports(workload: Workload) -> list[dict]:
    return [p for c in workload.pod.get("containers") or [] for p in c.get("ports") or []]


def port_matches(port_ref, ports: list[dict]) -> bool:
    if isinstance(port_ref, int):
        return any(p.get("containerPort") == port_ref for p in ports)
    return any(p.get("name") == port_ref for p in ports)


def check_services(report: Report, rendering: Rendering) -> None:
    all_workloads = workloads(rendering.objects)
    for service in of_kind(rendering.objects, "Service"):
        subject = f"{rendering.name} {describe(service)}"
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector:
            report.skip("service-selector", subject, "no selector (endpoints managed by hand)")
            continue
        selected = [
            w for w in all_workloads if all(w.labels.get(k) == v for k, v in selector.items())
        ]
        if not selected:
            report.fail(
                "service-selector",
                subject,
                f"selector {selector} matches the pod labels of no workload "
                f"({'; '.join(f'{w.name}: {w.labels}' for w in all_workloads) or 'none'})",
            )
            continue
        report.ok(
            "service-selector",
            subject,
            f"selector {selector} selects {', '.join(w.name for w in selected)}",
        )
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            missing = [w.name for w in selected if not port_matches(target, container_ports(w))]
            if missing:
                report.fail(
                    "service-target-port",
                    subject,
                    f"targetPort {target!r} is no container port of {', '.join(missing)}",
                )
            else:
                report.ok("service-target-port", subject, f"port {port.get('port')} -> container port {target!r}")


def check_workload_selectors(report: Report, rendering: Rendering) -> None:
    for workload in workloads(rendering.objects):
        subject = f"{rendering.name} {workload.name}"
        match = ((workload.obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if workload.obj.get("kind") == "Job" and not match:
            report.ok("workload-selector", subject, "a Job's selector is generated by Kubernetes")
            continue
        if match and all(workload.labels.get(k) == v for k, v in match.items()):
            report.ok("workload-selector", subject, f"selector {match} matches its pod template")
        else:
            report.fail(
                "workload-selector",
                subject,
                f"spec.selector.matchLabels {match} does not match template labels {workload.labels}",
            )


def check_hpas(report: Report, rendering: Rendering) -> None:
    for hpa in of_kind(rendering.objects, "HorizontalPodAutoscaler"):
        subject = f"{rendering.name} {describe(hpa)}"
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        targets = [
            o
            for o in rendering.objects
            if o.get("kind") == ref.get("kind")
            and (o.get("metadata") or {}).get("name") == ref.get("name")
            and o.get("apiVersion") == ref.get("apiVersion", o.get("apiVersion"))
        ]
        if targets:
            report.ok("hpa-target", subject, f"scales {ref.get('apiVersion')} {ref.get('kind')}/{ref.get('name')}")
        else:
            report.fail(
                "hpa-target",
                subject,
                f"scaleTargetRef {ref} names no object of this rendering",
            )


CPU_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
MEMORY_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|)$")


def quantity(resource: str, value) -> float | None:
    """A CPU quantity in cores or a memory quantity in bytes; None if unreadable."""
    text = str(value)
    if resource == "cpu":
        m = CPU_PATTERN.match(text)
        return None if not m else float(m.group(1)) / (1000 if m.group(2) else 1)
    m = MEMORY_PATTERN.match(text)
    return None if not m else float(m.group(1)) * MEMORY_UNITS[m.group(2)]


def check_resources(report: Report, rendering: Rendering) -> None:
    for workload in workloads(rendering.objects):
        for container in workload.containers():
            subject = f"{rendering.name} {workload.name} container {container.get('name')}"
            resources = container.get("resources") or {}
            requests = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            for resource in ("cpu", "memory"):
                check = f"{resource}-request"
                if resource not in requests:
                    report.fail(check, subject, f"no {resource} request" + (
                        " (the HPA cannot compute CPU utilisation without it)" if resource == "cpu" else ""))
                    continue
                request = quantity(resource, requests[resource])
                if request is None or request <= 0:
                    report.fail(check, subject, f"{resource} request {requests[resource]!r} is not a positive quantity")
                    continue
                if resource in limits:
                    limit = quantity(resource, limits[resource])
                    if limit is None or limit < request:
                        report.fail(check, subject, f"{resource} request {requests[resource]} exceeds limit {limits[resource]}")
                        continue
                elif resource == "memory":
                    report.fail(check, subject, "no memory limit: a leak would take the node's memory")
                    continue
                report.ok(check, subject, f"{resource} request {requests[resource]}, limit {limits.get(resource, 'none')}")


def seconds(text: str) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$", str(text))
    return float(m.group(1)) if m else None


def server_port(env: dict[str, str], settings: ServerSettings | None) -> int | None:
    value = env.get("PORT", settings.defaults.get("PORT") if settings else None)
    return int(value) if value is not None and str(value).isdigit() else None


def check_grace_periods(
    report: Report, rendering: Rendering, settings: ServerSettings | None
) -> None:
    configmaps = {(c.get("metadata") or {}).get("name"): c for c in of_kind(rendering.objects, "ConfigMap")}
    for workload in workloads(rendering.objects):
        grace = workload.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
        for container in workload.containers():
            if not is_server_container(container):
                continue
            subject = f"{rendering.name} {workload.name} container {container.get('name')}"
            env = container_env(container, configmaps)
            if "DRAIN_TIMEOUT_SECS" in env:
                drain_text, source = env["DRAIN_TIMEOUT_SECS"], "from its environment"
            elif settings and "DRAIN_TIMEOUT_SECS" in settings.defaults:
                drain_text, source = settings.defaults["DRAIN_TIMEOUT_SECS"], "the binary's default"
            else:
                report.fail("grace-period", subject, "DRAIN_TIMEOUT_SECS is neither set nor has a known default")
                continue
            drain = seconds(drain_text)
            if drain is None:
                report.fail("grace-period", subject, f"DRAIN_TIMEOUT_SECS {drain_text!r} is not a number of seconds")
                continue
            sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
            delay = seconds(env.get("SHUTDOWN_DELAY_SECS", (settings.defaults if settings else {}).get("SHUTDOWN_DELAY_SECS", "0"))) or 0
            needed = drain + sleep + delay
            detail = (
                f"terminationGracePeriodSeconds {grace} vs preStop sleep {sleep} s "
                f"+ SHUTDOWN_DELAY_SECS {delay:g} s + DRAIN_TIMEOUT_SECS {drain:g} s ({source})"
            )
            if grace > needed:
                report.ok("grace-period", subject, detail)
            else:
                report.fail("grace-period", subject, detail + ": the kubelet would kill the server mid-drain")


MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9, "": 1}


def memory_bytes(quantity: str) -> float | None:
    m = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(quantity))
    return float(m.group(1)) * MEMORY_UNITS[m.group(2) or ""] if m else None


def memory_bound(env: dict[str, str], defaults: dict[str, str], features: int = 6) -> float:
    """The README's formula ("Memory is bounded by the settings"), in bytes."""

    def value(name: str) -> float:
        return float(env.get(name, defaults.get(name, "0")))

    per_connection = value("MAX_HEADER_BYTES") + value("BODY_LIMIT_BYTES") + 64 * 2**10
    per_request = value("MAX_BATCH_ROWS") * features * 16 + 64 * 2**10
    return 10 * 2**20 + value("MAX_CONNECTIONS") * per_connection + value("MAX_IN_FLIGHT") * per_request


def check_memory(report: Report, rendering: Rendering, settings: ServerSettings | None) -> None:
    """Every server container's memory limit holds the worst case its settings allow."""
    if settings is None:
        report.skip("memory-bound", rendering.name, "the binary's settings are unknown")
        return
    configmaps = {(c.get("metadata") or {}).get("name"): c for c in of_kind(rendering.objects, "ConfigMap")}
    containers = [
        (f"{rendering.name} {w.name} container {c.get('name')}", c)
        for w in workloads(rendering.objects)
        for c in w.containers()
        if is_server_container(c)
    ] + [
        (f"{rendering.name} ServingRuntime {(r.get('metadata') or {}).get('name')} container {c.get('name')}", c)
        for r in of_kind(rendering.objects, "ServingRuntime")
        for c in (r.get("spec") or {}).get("containers") or []
    ]
    for subject, container in containers:
        limit = memory_bytes(((container.get("resources") or {}).get("limits") or {}).get("memory", ""))
        if limit is None:
            report.fail("memory-bound", subject, "no memory limit")
            continue
        bound = memory_bound(container_env(container, configmaps), settings.defaults)
        detail = f"settings allow at most {bound / 2**20:.0f} MiB; limit {limit / 2**20:.0f} MiB"
        if bound <= limit:
            report.ok("memory-bound", subject, detail)
        else:
            report.fail("memory-bound", subject, detail + ": lower MAX_CONNECTIONS, BODY_LIMIT_BYTES or MAX_IN_FLIGHT")


def check_security(report: Report, rendering: Rendering) -> None:
    for workload in workloads(rendering.objects):
        pod_context = workload.pod.get("securityContext") or {}
        for container in workload.containers():
            subject = f"{rendering.name} {workload.name} container {container.get('name')}"
            context = container.get("securityContext") or {}

            def effective(key):
                return context.get(key, pod_context.get(key))

            problems = []
            if effective("runAsNonRoot") is not True:
                problems.append("runAsNonRoot is not true")
            if effective("runAsUser") == 0:
                problems.append("runAsUser is 0")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append("readOnlyRootFilesystem is not true")
            if context.get("privileged"):
                problems.append("privileged")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append("capabilities.drop lacks ALL")
            seccomp = (effective("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"seccompProfile type is {seccomp or 'unset'}")
            if problems:
                report.fail("security-context", subject, "; ".join(problems))
            else:
                report.ok("security-context", subject, "non-root, read-only root, no escalation, no capabilities, seccomp")


@dataclass
class LiveCheck:
    """One run of the real server: its settings and the probe paths to ask."""

    env: dict[str, str]
    grace: float
    paths: dict[str, list[str]] = field(default_factory=dict)  # path -> subjects


def check_probes(
    report: Report,
    rendering: Rendering,
    settings: ServerSettings | None,
    live: dict[tuple, LiveCheck],
) -> None:
    configmaps = {(c.get("metadata") or {}).get("name"): c for c in of_kind(rendering.objects, "ConfigMap")}
    for workload in workloads(rendering.objects):
        grace = workload.pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD)
        for container in workload.pod.get("containers") or []:
            if not is_server_container(container):
                continue
            subject = f"{rendering.name} {workload.name} container {container.get('name')}"
            env = container_env(container, configmaps)
            port = server_port(env, settings)
            ports = container.get("ports") or []
            for kind in ("readinessProbe", "livenessProbe"):
                if kind not in container:
                    report.fail("probe-present", subject, f"no {kind}")
            key = tuple(sorted(env.items()))
            run = live.setdefault(key, LiveCheck(env, grace))
            run.grace = min(run.grace, grace)
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                http = probe.get("httpGet")
                if not http:
                    report.skip("probe-path", f"{subject} {kind}", "not an httpGet probe")
                    continue
                ref = http.get("port")
                resolved = [
                    p.get("containerPort")
                    for p in ports
                    if (p.get("name") == ref if isinstance(ref, str) else p.get("containerPort") == ref)
                ]
                if not resolved:
                    report.fail("probe-port", f"{subject} {kind}", f"port {ref!r} is not a port of the container")
                elif port is None and settings is None:
                    report.skip("probe-port", f"{subject} {kind}", "the server's default PORT is unknown")
                elif port is None:
                    report.fail("probe-port", f"{subject} {kind}", "PORT is neither set nor has a known default")
                elif resolved[0] != port:
                    report.fail(
                        "probe-port",
                        f"{subject} {kind}",
                        f"port {ref!r} is {resolved[0]}, but the server listens on PORT {port}",
                    )
                else:
                    report.ok("probe-port", f"{subject} {kind}", f"port {ref!r} = {port}, the server's PORT")
                if http.get("scheme", "HTTP") != "HTTP":
                    report.fail("probe-path", f"{subject} {kind}", "the server speaks plain HTTP")
                run.paths.setdefault(http.get("path", "/"), []).append(f"{subject} {kind}")


# ------------------------------------------------------- the live server


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str) -> tuple[int | None, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=HTTP_TIMEOUT) as response:
            return response.status, response.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(300).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def poll(url: str, timeout: float, process: subprocess.Popen) -> tuple[int | None, str]:
    """GET `url` until it answers something other than "not yet" (no
    connection, or 503 as /ready gives while loading), like a kubelet retrying
    a probe; bounded by `timeout` and by the server's life."""
    deadline = time.monotonic() + timeout
    status, body = None, ""
    while time.monotonic() < deadline and process.poll() is None:
        status, body = http_get(url)
        if status not in (None, 503):
            break
        time.sleep(0.1)
    return status, body


def log_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()[-15:]
    return textwrap.indent("\n".join(lines), "    | ") if lines else "    | (no output)"


def run_live_check(report: Report, binary: Path, model: Path, run: LiveCheck) -> None:
    subject = f"{binary.name} serve"
    if not model.is_file():
        report.fail(
            "probe-path",
            subject,
            f"model artifact {model} not found (train one, or set ML_SERVING_MODEL)",
        )
        return
    port = free_loopback_port()
    # GRPC_PORT=0: no gRPC listener, so its fixed default port cannot collide.
    env = {**minimal_env(), **run.env, "MODEL_PATH": str(model), "HOST": "127.0.0.1", "PORT": str(port),
           "GRPC_PORT": "0"}
    shown = {k: v for k, v in run.env.items() if k not in ("MODEL_PATH", "HOST", "PORT", "GRPC_PORT")}
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="k8s-check-") as scratch:
        log_path = Path(scratch) / "server.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [str(binary), "serve"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            started = time.monotonic()
            status, body = poll(base + "/health", SERVER_START_TIMEOUT, process)
            if status != 200:
                why = (
                    f"exited with {process.returncode}"
                    if process.poll() is not None
                    else f"no 200 from /health within {SERVER_START_TIMEOUT:g} s (last: {status} {body})"
                )
                report.fail("server-start", subject, f"with {shown} on {base}: {why}\n{log_tail(log_path)}")
                return
            report.ok(
                "server-start",
                subject,
                f"answered /health {time.monotonic() - started:.2f} s after start, with {shown} and MODEL_PATH={model}",
            )
            for path, users in sorted(run.paths.items()):
                status, body = poll(base + path, PROBE_RETRY_TIMEOUT, process)
                who = f" (used by {len(users)} probes)"
                if status == 200:
                    report.ok("probe-path", f"GET {path}", f"200 {body.strip()[:80]}{who}")
                else:
                    report.fail("probe-path", f"GET {path}", f"{status} {body.strip()[:120]}; used by {', '.join(users)}")
        finally:
            stop_server(report, subject, process, run.grace, log_path)


def stop_server(report: Report, subject: str, process: subprocess.Popen, grace: float, log_path: Path) -> None:
    if process.poll() is not None:
        return
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        report.fail(
            "sigterm-exit",
            subject,
            f"still running {grace:g} s after SIGTERM (the kubelet would SIGKILL it)\n{log_tail(log_path)}",
        )
        return
    report.ok(
        "sigterm-exit",
        subject,
        f"exited with {code} {time.monotonic() - stopped_at:.2f} s after SIGTERM (grace period {grace:g} s)",
    )


# ----------------------------------------------------------------- driver


def check_tree(report: Report, tree: Path, kubectl: str, binary: Path, model: Path) -> None:
    settings = read_server_settings(report, binary)
    live: dict[tuple, LiveCheck] = {}
    for rendering in render_tree(report, tree, kubectl):
        validate_rendering(report, rendering)
        check_configmaps(report, rendering, settings)
        check_serving_runtimes(report, rendering, settings)
        check_workload_selectors(report, rendering)
        check_services(report, rendering)
        check_hpas(report, rendering)
        check_resources(report, rendering)
        check_grace_periods(report, rendering, settings)
        check_memory(report, rendering, settings)
        check_security(report, rendering)
        check_probes(report, rendering, settings, live)
    if settings is None:
        report.skip("probe-path", str(binary), "no server to ask")
        return
    for run in live.values():
        run_live_check(report, binary, model, run)


def summary(name: str, report: Report) -> str:
    return f"{name}: {report.count('PASS')} passed, {report.count('FAIL')} failed, {report.count('SKIP')} skipped"


# -------------------------------------------------------------- self-test

# The stand-in's help: the shape and settings of the real `ml-serving serve
# --help` (wrapped brackets and a hidden value included). Keep its settings in
# step with the binary's: the unmodified base must pass with it. The normal run
# checks the ConfigMap against the real binary, not against this.
STUB_HELP = """Serve a model artifact over HTTP

Usage: ml-serving serve [OPTIONS]

Options:
      --model-path <MODEL_PATH>
          The model artifact to serve [env: MODEL_PATH=] [default: model/model_binary.dat.gz]
      --model-name <MODEL_NAME>
          Serve the model under this name instead of the one stored in the artifact [env:
          MODEL_NAME=]
      --host <HOST>
          Address to listen on [env: HOST=] [default: 0.0.0.0]
      --port <PORT>
          Port to listen on [env: PORT=] [default: 8000]
      --body-limit-bytes <BODY_LIMIT_BYTES>
          [env: BODY_LIMIT_BYTES=] [default: 1048576]
      --max-batch-rows <MAX_BATCH_ROWS>
          [env: MAX_BATCH_ROWS=] [default: 1000]
      --max-in-flight <MAX_IN_FLIGHT>
          [env: MAX_IN_FLIGHT=] [default: 512]
      --request-timeout-secs <REQUEST_TIMEOUT_SECS>
          [env: REQUEST_TIMEOUT_SECS=] [default: 10]
      --drain-timeout-secs <DRAIN_TIMEOUT_SECS>
          On SIGTERM, how long requests in flight may take to finish, in seconds [env:
          DRAIN_TIMEOUT_SECS=] [default: 10]
      --reload-interval-secs <RELOAD_INTERVAL_SECS>
          [env: RELOAD_INTERVAL_SECS=] [default: 0]
      --api-key <API_KEY>
          Require a bearer key on the prediction routes [env: API_KEY]
      --log <LOG_FILTER>
          Log filter, in `RUST_LOG` syntax [env: RUST_LOG=] [default: info]
      --log-json
          Log as JSON lines [env: LOG_JSON=]
  -h, --help
          Print help
"""

STUB_SERVER = '''
import http.server, json, os, signal, sys

HELP = {help!r}
if "--help" in sys.argv:
    print(HELP)
    sys.exit(0)
assert sys.argv[1:] == ["serve"], sys.argv
assert os.path.isfile(os.environ["MODEL_PATH"]), "MODEL_PATH must name a file"
int(os.environ.get("DRAIN_TIMEOUT_SECS", "10"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        known = self.path in ("/health", "/ready")
        body = json.dumps({{"status": "ok"}} if known else {{"error": "not found"}}).encode()
        self.send_response(200 if known else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
server = http.server.HTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
server.serve_forever()
'''


def edit_objects(folder: Path, mutate) -> None:
    """Apply `mutate(objects)` to the objects of every manifest in `folder`
    and write them back (comments are lost; this is a scratch copy)."""
    files = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name in KUSTOMIZATION_FILES:
            continue
        files[path] = load_documents(path.read_text())
    mutate([obj for objs in files.values() for obj in objs])
    for path, objs in files.items():
        path.write_text(yaml.safe_dump_all(objs, sort_keys=False))


def first(objects: list[dict], kind: str) -> dict:
    matches = of_kind(objects, kind)
    assert matches, f"the base has no {kind}"
    return matches[0]


def server_container(objects: list[dict]) -> dict:
    return first(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def pod_spec(objects: list[dict]) -> dict:
    return first(objects, "Deployment")["spec"]["template"]["spec"]


def add_crd_object(folder: Path) -> None:
    (folder / "inference-service.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "breast-model"},
                "spec": {"predictor": {"model": {"modelFormat": {"name": "custom"}}}},
            }
        )
    )
    kustomization = folder / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    data["resources"].append("inference-service.yaml")
    kustomization.write_text(yaml.safe_dump(data, sort_keys=False))


def wrong_hpa_api(objects):
    first(objects, "HorizontalPodAutoscaler")["apiVersion"] = "autoscaling/v2beta2"


# (description, expected failing check or None for "passes", edit of the objects, edit of the folder)
SELF_TEST_CASES = [
    ("unmodified base", None, None, None),
    ("KServe object of a CRD (skipped, not failed)", None, None, add_crd_object),
    (
        "Service selector differs from the pod labels",
        "service-selector",
        lambda o: first(o, "Service")["spec"].update(selector={"app.kubernetes.io/name": "ml-serve"}),
        None,
    ),
    (
        "Service targetPort is no container port",
        "service-target-port",
        lambda o: first(o, "Service")["spec"]["ports"][0].update(targetPort=8080),
        None,
    ),
    (
        "container without a CPU request",
        "cpu-request",
        lambda o: server_container(o)["resources"]["requests"].pop("cpu"),
        None,
    ),
    (
        "container without a memory request",
        "memory-request",
        lambda o: server_container(o)["resources"]["requests"].pop("memory"),
        None,
    ),
    (
        "HPA names another Deployment",
        "hpa-target",
        lambda o: first(o, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="ml-serving"),
        None,
    ),
    (
        "ConfigMap key the binary does not read (the tutorial's MODEL_BASE_PATH)",
        "configmap-key",
        lambda o: first(o, "ConfigMap")["data"].update(MODEL_BASE_PATH="/model"),
        None,
    ),
    (
        "ConfigMap that no container reads",
        "configmap-unread",
        lambda o: server_container(o).pop("envFrom"),
        None,
    ),
    (
        "grace period shorter than preStop sleep + drain",
        "grace-period",
        lambda o: pod_spec(o).update(terminationGracePeriodSeconds=12),
        None,
    ),
    (
        "readiness probe on a path the server does not answer",
        "probe-path",
        lambda o: server_container(o)["readinessProbe"]["httpGet"].update(path="/readyz"),
        None,
    ),
    (
        "liveness probe on a port the container does not have",
        "probe-port",
        lambda o: server_container(o)["livenessProbe"]["httpGet"].update(port="metrics"),
        None,
    ),
    (
        "server told to listen on another port than the probes use",
        "probe-port",
        lambda o: first(o, "ConfigMap")["data"].update(PORT="9000"),
        None,
    ),
    (
        "container allowed to run as root",
        "security-context",
        lambda o: pod_spec(o)["securityContext"].update(runAsNonRoot=False),
        None,
    ),
    (
        "misspelt field (strict schema)",
        "schema",
        lambda o: server_container(o).update(imagePullPolicys="Never"),
        None,
    ),
    ("removed API version autoscaling/v2beta2", "schema", wrong_hpa_api, None),
]


def self_test(kubectl: str, base: Path) -> int:
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="k8s-check-self-test-") as scratch:
        scratch = Path(scratch)
        stub = scratch / "ml-serving"
        stub.write_text(f"#!{sys.executable}\n" + STUB_SERVER.format(help=STUB_HELP))
        stub.chmod(0o755)
        model = scratch / "model.stub"
        model.write_text("stand-in model\n")
        for number, (description, expected, edit, edit_folder) in enumerate(SELF_TEST_CASES):
            tree = scratch / f"case{number}" / "k8s"
            shutil.copytree(base, tree / "base")
            if edit:
                edit_objects(tree / "base", edit)
            if edit_folder:
                edit_folder(tree / "base")
            report = Report(echo=False)
            check_tree(report, tree, kubectl, stub, model)
            failures = report.failed_checks()
            if expected is None:
                good = not failures
                outcome = "passes" if good else f"reported {sorted(failures)}"
            else:
                good = expected in failures
                outcome = f"[{expected}] reported" if good else f"[{expected}] NOT reported (got {sorted(failures) or 'no failure'})"
            if expected is None and good and edit_folder is add_crd_object:
                good = any(r.status == "SKIP" and r.check == "schema" for r in report.results)
                outcome = "skipped with a message" if good else "was not reported as skipped"
            print(f"{'ok  ' if good else 'FAIL'} {description}: {outcome}", flush=True)
            if not good:
                for r in report.results:
                    print("     " + format_result(r).replace("\n", "\n     "))
            passed += good
            failed += not good
    print(f"self_test: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", required=True, help="kubectl to render with")
    parser.add_argument("--self-test", action="store_true", help="check the checks on broken copies of the base")
    parser.add_argument("--tree", type=Path, default=None, help="folder to check (default deploy/k8s)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    tree = (args.tree or root / "deploy" / "k8s").resolve()
    if args.self_test:
        return self_test(args.kubectl, tree / "base")
    binary = Path(os.environ.get("ML_SERVING_BIN") or root / "target" / "debug" / "ml-serving")
    model = Path(os.environ.get("ML_SERVING_MODEL") or root / "model" / "model_binary.dat.gz")
    report = Report()
    check_tree(report, tree, args.kubectl, binary.resolve(), model.resolve())
    print(summary("k8s_check", report))
    return 1 if report.count("FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
