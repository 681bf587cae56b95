#!/usr/bin/env python3
"""Renders every kustomization under deploy/k8s with kubectl and validates each object strictly
against the Kubernetes versions in K8S_VERSIONS (kubernetes-validate). Objects of a built-in API
group with no schema (a removed or misspelt apiVersion) fail; those of other groups (KServe's CRDs)
are skipped with a message. What only this project knows (settings, probes, grace period, memory,
the batch Job, KServe's runtime) is checked by tests/k8s_manifests.rs.

Run it through scripts/k8s-check, which installs the tools. `--self-test` breaks copies of the base
(a misspelt field, a removed apiVersion) and requires each to fail, and the unmodified copy to pass.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from kubernetes_validate import utils as kv

# The oldest version current minikube and kubectl serve that has all the manifests use (the
# preStop sleep action needs 1.30), and the newest kubernetes-validate 1.37.0 bundles.
K8S_VERSIONS = ("1.32.0", "1.37.0")


def is_built_in(obj: dict) -> bool:
    """The core group, dotless groups (apps, batch, ...) and *.k8s.io; others are CRDs."""
    api = str(obj.get("apiVersion", ""))
    group = api.split("/")[0] if "/" in api else ""
    return "." not in group or group.endswith(".k8s.io")


def check(tree: Path, kubectl: str) -> tuple[int, int]:
    """Prints one line an object; returns (passed, failed)."""
    passed = failed = 0
    folders = sorted(p.parent for p in tree.rglob("kustomization.yaml"))
    if not folders:
        print(f"FAIL {tree}: no kustomization")
        return 0, 1
    for folder in folders:
        name = folder.relative_to(tree)
        done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            print(f"FAIL {name}: kubectl kustomize: {done.stderr.strip()}")
            failed += 1
            continue
        for obj in (o for o in yaml.safe_load_all(done.stdout) if o):
            subject = f"{name} {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            if not is_built_in(obj):
                print(f"SKIP {subject}: {obj.get('apiVersion')} is no built-in API group (no schema)")
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
            print(f"{'FAIL' if problems else 'PASS'} {subject}: " + ("; ".join(problems) or "valid (strict)"))
            passed += not problems
            failed += bool(problems)
    return passed, failed


def misspelt_field(objects: list[dict]) -> None:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicys"] = "Never"


def removed_api_version(objects: list[dict]) -> None:
    next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")["apiVersion"] = "autoscaling/v2beta2"


def self_test(base: Path, kubectl: str) -> int:
    bad = 0
    for breaks, expected_failures in ((None, False), (misspelt_field, True), (removed_api_version, True)):
        with tempfile.TemporaryDirectory(prefix="k8s-check-") as scratch:
            copy = Path(scratch) / "base"
            shutil.copytree(base, copy)
            if breaks:
                files = {p: list(yaml.safe_load_all(p.read_text())) for p in copy.glob("*.yaml") if p.name != "kustomization.yaml"}
                breaks([o for objects in files.values() for o in objects])
                for path, objects in files.items():
                    path.write_text(yaml.safe_dump_all(objects))
            _, failed = check(Path(scratch), kubectl)
        good = bool(failed) == expected_failures
        bad += not good
        what = breaks.__name__ if breaks else "unmodified base"
        print(f"{'ok  ' if good else 'FAIL'} self-test {what}: {'failed' if failed else 'passed'}\n")
    print(f"self-test: {3 - bad} passed, {bad} failed")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    tree = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
    if args.self_test:
        return self_test(tree / "base", args.kubectl)
    passed, failed = check(tree, args.kubectl)
    print(f"k8s_check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
