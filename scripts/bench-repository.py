#!/usr/bin/env python3
"""Benchmarks the model repository (docs/repository.md) with the release binary, on loopback.

    scripts/bench-repository.py [--models 100] [--duration 5] [--repeat 2] [--no-build]

Prints, from one run:
  - POST /predict throughput and p99 (ml-serving loadtest, 32 connections) with 1 model loaded
    and with N models loaded (copies of the bundled model), alternating, and their ratio;
  - the server's idle resident memory with 1 and with N models, and per added model;
  - the time from a new version directory appearing (renamed into place) to it serving as the
    model's latest, polled every 0.1 s (median of 5).

Figures depend on the machine and whatever else runs on it: compare within one run.
Standard library only.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target/release/ml-serving"
MODEL = ROOT / "model/model_binary.dat.gz"


def make_repository(root, models):
    for i in range(models):
        version = root / f"m{i:03d}" / "1"
        version.mkdir(parents=True)
        shutil.copy(MODEL, version / "model.dat.gz")


def start(root, extra=None):
    env = {"MODEL_REPOSITORY": str(root), "DEFAULT_MODEL": "m000", "PORT": "0", "GRPC_PORT": "0",
           "HOST": "127.0.0.1", "LOG_JSON": "true", "RUST_LOG": "info", "PATH": "/usr/bin:/bin"}
    env.update(extra or {})
    proc = subprocess.Popen([str(BIN), "serve"], env=env, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            continue
        if "address" in fields:
            return proc, f"http://{fields['address']}"
    raise SystemExit(f"the server did not start: exit {proc.wait()}")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def loadtest(url, seconds):
    out = subprocess.run([str(BIN), "loadtest", "--url", url, "--path", "/predict", "-c", "32",
                          "-d", f"{seconds}s", "-q", "--json"], capture_output=True, text=True,
                         check=True)
    report = json.loads(out.stdout)
    return report["throughput_rps"], report["latency_us"]["p99"], report["errors"]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not 2 <= args.models <= 1000 or not 1 <= args.duration <= 600 or not 1 <= args.repeat <= 20:
        raise SystemExit("--models 2..1000, --duration 1..600, --repeat 1..20")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp, "one"), Path(tmp, "many")
        make_repository(one, 1)
        make_repository(many, args.models)
        servers = {}
        try:
            for name, root in (("1 model", one), (f"{args.models} models", many)):
                proc, url = start(root, {"MAX_MODELS": str(args.models)})
                time.sleep(0.5)
                servers[name] = (proc, url, rss_kib(proc.pid))
            runs = {name: [] for name in servers}
            for _ in range(args.repeat):
                for name, (_, url, _) in servers.items():
                    runs[name].append(loadtest(url, args.duration))
            print(f"{'':>12} {'req/s':>10} {'p99 µs':>8} {'errors':>7} {'idle RSS':>10}")
            medians = {}
            for name, results in runs.items():
                rps = statistics.median(r[0] for r in results)
                p99 = statistics.median(r[1] for r in results)
                errors = sum(r[2] for r in results)
                medians[name] = rps
                print(f"{name:>12} {rps:>10.0f} {p99:>8.0f} {errors:>7} {servers[name][2] / 1024:>8.1f} MiB")
            (a, b) = medians.values()
            print(f"\n/predict req/s, {args.models} models ÷ 1 model: {b / a:.2f} (median of {args.repeat})")
            rss_one, rss_many = servers["1 model"][2], servers[f"{args.models} models"][2]
            print(f"idle RSS per added model: {(rss_many - rss_one) / (args.models - 1):.0f} KiB")
        finally:
            for proc, _, _ in servers.values():
                proc.terminate()
                proc.wait()
        # Time to serve a new version.
        proc, url = start(one, {"RELOAD_INTERVAL_SECS": "0.1"})
        try:
            took = []
            for version in range(2, 7):
                directory = one / "m000" / str(version)
                directory.mkdir()
                shutil.copy(MODEL, directory / ".incoming")
                started = time.monotonic()
                (directory / ".incoming").rename(directory / "model.dat.gz")
                while get(f"{url}/models")["models"][0].get("latest") != str(version):
                    if time.monotonic() - started > 10:
                        raise SystemExit(f"version {version} was not served within 10 s")
                    time.sleep(0.002)
                took.append(time.monotonic() - started)
            print(f"new version directory → serving as latest: median {statistics.median(took) * 1000:.0f} ms "
                  f"(polling every 100 ms; min {min(took) * 1000:.0f}, max {max(took) * 1000:.0f})")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
