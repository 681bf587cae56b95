#!/usr/bin/env python3
"""What slow, abusive clients cost the server, and whether well-behaved clients still get served.

Usage: scripts/bench-abuse.py [--no-build] [--duration SECONDS] [--slow-body N] [--slow-header N]

Starts the release server on a free loopback port with its default settings, opens N
connections that send a /predict request head and then trickle its body one byte a second
(slow body, default 512) and N connections that trickle a request head one byte a second
(slow header, default 200), and meanwhile runs `ml-serving loadtest` (8 connections, closed loop)
against POST /predict. It prints, for one run: the well-behaved client's success rate and
latency percentiles, the server's peak resident memory (VmHWM) and its memory after the run,
and how long the server took to close the slow connections (the slow-header ones by
HEADER_READ_TIMEOUT_SECS; the slow-body ones by REQUEST_TIMEOUT_SECS, with a 408).
Everything targets loopback and stops by itself. Figures vary with the machine: read them as
one run's, not as a contract.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = (
    b'{"concavity_mean":0.3001,"concave_points_mean":0.1471,"perimeter_se":8.589,'
    b'"area_se":153.4,"texture_worst":17.33,"area_worst":2019.0}'
)


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def trickle(addr, head: bytes, drip: bytes, closed_at: list, stop: threading.Event) -> None:
    """Sends `head` at once, then `drip` one byte a second until the server closes."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(addr, timeout=5)
        sock.sendall(head)
        sock.settimeout(1.0)
        for byte in drip:
            if stop.is_set():
                return
            try:
                if sock.recv(4096) == b"":
                    break
            except socket.timeout:
                pass
            sock.sendall(bytes([byte]))
        else:
            return
    except OSError:
        pass
    closed_at.append(time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--duration", type=int, default=12)
    parser.add_argument("--slow-body", type=int, default=512)
    parser.add_argument("--slow-header", type=int, default=200)
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = ROOT / "target/release/ml-serving"
    env = {k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_KEY_FILE")}
    env.update(HOST="127.0.0.1", PORT="0", LOG_JSON="true", RUST_LOG="warn,ml_serving=info")
    server = subprocess.Popen([binary, "serve"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        addr = None
        for line in server.stderr:
            fields = json.loads(line).get("fields", {})
            if "address" in fields:
                host, port = fields["address"].rsplit(":", 1)
                addr = (host, int(port))
                break
        assert addr, "the server did not start"
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        idle_kib = status_kib(server.pid, "VmRSS")

        stop = threading.Event()
        body_closed: list[float] = []
        header_closed: list[float] = []
        head = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(SAMPLE)
        )
        threads = [
            threading.Thread(target=trickle, args=(addr, head, SAMPLE, body_closed, stop), daemon=True)
            for _ in range(args.slow_body)
        ] + [
            threading.Thread(
                target=trickle,
                args=(addr, b"G", b"ET /health HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 50, header_closed, stop),
                daemon=True,
            )
            for _ in range(args.slow_header)
        ]
        for t in threads:
            t.start()
        time.sleep(1.0)
        load = subprocess.run(
            [binary, "loadtest", "--url", f"http://{addr[0]}:{addr[1]}", "--concurrency", "8",
             "--duration", f"{args.duration}s", "--json", "--max-error-rate", "1"],
            capture_output=True, text=True,
        )
        if load.returncode != 0 and not load.stdout:
            sys.exit(f"bench-abuse: loadtest failed: {load.stderr}")
        report = json.loads(load.stdout)
        stop.set()
        peak_kib = status_kib(server.pid, "VmHWM")
        after_kib = status_kib(server.pid, "VmRSS")
        total = report["sent"]
        ok = report["statuses"].get("200", 0)
        lat = report["latency_us"]
        print(f"slow-body connections     {args.slow_body} (closed by the server: {len(body_closed)}, "
              f"median after {median(body_closed)} s)")
        print(f"slow-header connections   {args.slow_header} (closed by the server: {len(header_closed)}, "
              f"median after {median(header_closed)} s)")
        print(f"well-behaved /predict     {ok}/{total} answered 200 ({100 * ok / max(total, 1):.2f} %), "
              f"{report['throughput_rps']:.0f} req/s")
        print(f"  latency                 p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, "
              f"max {lat['max'] / 1000:.2f} ms")
        print(f"server memory             idle {idle_kib / 1024:.1f} MiB, peak {peak_kib / 1024:.1f} MiB, "
              f"after {after_kib / 1024:.1f} MiB")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


def median(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{sorted(values)[len(values) // 2]:.1f}"


if __name__ == "__main__":
    sys.exit(main())
