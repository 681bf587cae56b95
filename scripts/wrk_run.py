"""One wrk run as the benchmark scripts make it (scripts/bench, scripts/bench-rounds): one thread,
one request repeated (a POST of a JSON body, or a GET), and the latency percentiles printed by the
Lua script's `done`."""

import json
import re
import subprocess

DONE = """
done = function(summary, latency, requests)
  io.write(string.format("P %d %d %d\\n", latency:percentile(50), latency:percentile(99),
                         latency:percentile(99.9)))
end
"""


def script(path, body=None):
    """Writes wrk's Lua script to `path`: a POST of `body` (JSON text), or a GET without one."""
    with open(path, "w") as f:
        if body is not None:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
            f.write(f"wrk.body = {json.dumps(body)}\n")
        f.write(DONE)
    return path


def run(url, conns, seconds, lua, preexec_fn=None):
    """One run of `lua` against `url`: (req/s, p50, p99, p99.9 in ms, errors, requests), errors
    being wrk's socket errors and non-2xx/3xx answers; exits with wrk's stderr if it fails."""
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "-s", lua, url],
                         capture_output=True, text=True, preexec_fn=preexec_fn)
    if out.returncode != 0:
        raise SystemExit(f"wrk {url} failed: {out.stderr}")
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    p50, p99, p999 = (int(v) / 1e3 for v in re.search(r"^P (\d+) (\d+) (\d+)$", text, re.M).groups())
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(map(int, m.groups()))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    return rps, p50, p99, p999, errors, requests
