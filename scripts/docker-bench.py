#!/usr/bin/env python3
"""Benchmark the ml-serving image: size, cold start, idle memory (the goals in brackets).

    scripts/docker-bench.py                  # the image ml-serving:latest (scripts/docker-build makes it)
    scripts/docker-bench.py --image NAME     # another image
    scripts/docker-bench.py --runs 9         # cold starts to take the median of (default 5)

- image size, as `docker image inspect` reports it            [under 15 MB]
- cold start: from `docker run -d` to the first correct /predict answer, median of N fresh
  containers, each on its own free port                          [under 100 ms]
  (and the part of it after the engine started the process, from the container's StartedAt)
- idle memory: `docker stats --no-stream` of a container that has answered a few requests and
  then sat idle for 2 s; the process's resident set from `docker top` beside it  [under 15 MB]

Its containers carry a random suffix and are removed on exit. Standard library only.
"""

import argparse
import datetime
import http.client
import json
import secrets
import socket
import statistics
import subprocess
import sys
import time

SAMPLE = {
    "concavity_mean": 0.3001,
    "concave_points_mean": 0.1471,
    "perimeter_se": 8.589,
    "area_se": 153.4,
    "texture_worst": 17.33,
    "area_worst": 2019.0,
}
SUFFIX = secrets.token_hex(4)


def docker(*args, timeout=60):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"docker-bench: docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def predict_ok(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("POST", "/predict", body=json.dumps(SAMPLE),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and json.loads(body).get("label") == "M"
    except (OSError, http.client.HTTPException, ValueError):
        return False
    finally:
        conn.close()


def started_at(name):
    """When the engine started the container's process, as a Unix time (same host clock)."""
    stamp = docker("inspect", "--format", "{{.State.StartedAt}}", name)  # ...T12:34:56.123456789Z
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    base = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    return base.timestamp() + float("0." + (fraction or "0"))


def start(image, name, timeout=30.0):
    """docker run -d; returns (port, ms in `docker run -d`, ms to the first correct answer,
    ms from the process start to that answer)."""
    port = free_port()
    started = time.monotonic()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    returned = time.monotonic()
    while not predict_ok(port):
        if time.monotonic() - started > timeout:
            sys.exit(f"docker-bench: {name} did not answer /predict within {timeout} s")
        time.sleep(0.002)
    answered, answered_wall = time.monotonic(), time.time()
    in_process = (answered_wall - started_at(name)) * 1000
    return port, (returned - started) * 1000, (answered - started) * 1000, in_process


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="ml-serving:latest")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    names = []
    try:
        size = int(docker("image", "inspect", "--format", "{{.Size}}", args.image))
        print(f"image size:   {size / 1e6:.2f} MB ({size} bytes) [goal: under 15 MB]")

        totals, processes = [], []
        for i in range(args.runs):
            name = f"mlsv-bench-{SUFFIX}-{i}"
            names.append(name)
            _, run_ms, total_ms, process_ms = start(args.image, name)
            totals.append(total_ms)
            processes.append(process_ms)
            print(f"  cold start {i + 1}: {total_ms:6.1f} ms (`docker run -d` took {run_ms:.1f} ms;"
                  f" {process_ms:.1f} ms from the process start to the answer)")
            docker("rm", "-f", name)
        print(f"cold start:   median {statistics.median(totals):.1f} ms of {args.runs}"
              f" (min {min(totals):.1f}, max {max(totals):.1f}) [goal: under 100 ms];"
              f" of it from the process start: median {statistics.median(processes):.1f} ms")

        name = f"mlsv-bench-{SUFFIX}-idle"
        names.append(name)
        port, *_ = start(args.image, name)
        for _ in range(20):
            predict_ok(port)
        time.sleep(2)
        usage = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name)
        rss_kib = sum(int(line.split()[1]) for line in
                      docker("top", name, "-o", "pid,rss").splitlines()[1:] if line.strip())
        print(f"idle memory:  {usage.split(' / ')[0]} (docker stats), resident set"
              f" {rss_kib / 1024:.1f} MiB (docker top) [goal: under 15 MB]")
    finally:
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=30)


if __name__ == "__main__":
    main()
