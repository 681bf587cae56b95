#!/usr/bin/env python3
"""The V2 protocol against NVIDIA's official Python client (tritonclient), over HTTP and gRPC.

Run by scripts/v2-client-test (which installs the client into .venv/v2) as
`v2_client_test.py BINARY`. It starts BINARY on free loopback ports (HTTP and gRPC) and checks,
with the client's own defaults and with JSON:

- liveness, readiness, model readiness, server and model metadata;
- inference with one [N, 6] tensor and with one tensor per feature, FP32 and FP64, over HTTP
  binary (the client's default: binary tensors in and out, no Content-Type), HTTP JSON, HTTP
  with gzip/deflate bodies and gzipped answers, and gRPC; the request id echoed; only the
  outputs asked for returned;
- every one of the 569 rows of data/breast_cancer.csv gets exactly /predict's answer in each;
- errors (unknown model, wrong shape, wrong datatype, too many rows, missing API key, a passed
  deadline) arrive as the client's InferenceServerException carrying the server's message;
- the gRPC example in docs/kserve.md runs as written and prints what the page shows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parent.parent
MODEL = "breast_model"
API_KEY = "v2-client-test-key"

passed = 0
failures: list[str] = []


def check(name: str, condition: bool, detail: str = "") -> None:
    global passed
    if condition:
        passed += 1
        print(f"ok: {name}")
    else:
        failures.append(f"{name}: {detail}")
        print(f"FAIL: {name}: {detail}")


def expect_error(name: str, call, *parts: str) -> None:
    """`call()` must raise InferenceServerException whose text holds every one of `parts`."""
    try:
        call()
    except InferenceServerException as e:
        text = f"{e.status()} {e.message()}"
        missing = [p for p in parts if p not in text]
        check(name, not missing, f"{text!r} lacks {missing}")
        return
    except Exception as e:  # noqa: BLE001 - any other exception is the failure being reported
        check(name, False, f"raised {type(e).__name__}: {e}")
        return
    check(name, False, "no exception")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(binary: str, **env: str):
    """The real server on free ports; yields (http_port, grpc_port)."""
    http_port, grpc_port = free_port(), free_port()
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "MODEL_PATH": str(ROOT / "model/model_binary.dat.gz"),
        "HOST": "127.0.0.1",
        "PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "RUST_LOG": "warn",
        **env,
    }
    process = subprocess.Popen([binary, "serve"], env=full_env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ready", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not come up (exit {process.poll()})")
                time.sleep(0.02)
        yield http_port, grpc_port
    finally:
        process.terminate()
        code = process.wait(timeout=30)
        check("the server drains and exits 0 on SIGTERM", code == 0, f"exit {code}")


def bundled_rows(features: list[str]) -> np.ndarray:
    with open(ROOT / "data/breast_cancer.csv", newline="") as f:
        rows = [[float(r[name]) for name in features] for r in csv.DictReader(f)]
    return np.array(rows, dtype=np.float64)


def predict_answers(http_port: int, features: list[str], rows: np.ndarray) -> list[int]:
    answers = []
    for row in rows:
        body = json.dumps(dict(zip(features, row.tolist()))).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            answers.append(json.load(r)["prediction"])
    return answers


def labels_for(predictions: list[int]) -> list[bytes]:
    return [b"M" if p == 1 else b"B" for p in predictions]


# ------------------------------------------------------------------ inputs


def http_inputs(rows: np.ndarray, datatype: str, layout: str, binary: bool, features: list[str]):
    dtype = np.float32 if datatype == "FP32" else np.float64
    if layout == "matrix":
        tensor = httpclient.InferInput("input-0", list(rows.shape), datatype)
        tensor.set_data_from_numpy(rows.astype(dtype), binary_data=binary)
        return [tensor]
    inputs = []
    for j, name in enumerate(features):
        tensor = httpclient.InferInput(name, [rows.shape[0]], datatype)
        tensor.set_data_from_numpy(np.ascontiguousarray(rows[:, j]).astype(dtype), binary_data=binary)
        inputs.append(tensor)
    return inputs


def grpc_inputs(rows: np.ndarray, datatype: str, layout: str, features: list[str]):
    dtype = np.float32 if datatype == "FP32" else np.float64
    if layout == "matrix":
        tensor = grpcclient.InferInput("input-0", list(rows.shape), datatype)
        tensor.set_data_from_numpy(rows.astype(dtype))
        return [tensor]
    inputs = []
    for j, name in enumerate(features):
        tensor = grpcclient.InferInput(name, [rows.shape[0]], datatype)
        tensor.set_data_from_numpy(np.ascontiguousarray(rows[:, j]).astype(dtype))
        inputs.append(tensor)
    return inputs


# ------------------------------------------------------------------ HTTP


def check_http(http_port: int, features: list[str], rows: np.ndarray, expected: list[int]) -> None:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    check("http: server live", client.is_server_live())
    check("http: server ready", client.is_server_ready())
    check("http: model ready", client.is_model_ready(MODEL))
    meta = client.get_server_metadata()
    check("http: server metadata lists binary_tensor_data",
          meta["name"] == "ml-serving" and "binary_tensor_data" in meta["extensions"], str(meta))
    model = client.get_model_metadata(MODEL)
    check("http: model metadata lists the features in order",
          [i["name"] for i in model["inputs"]] == features, str(model["inputs"]))

    labels = labels_for(expected)
    for datatype in ("FP64", "FP32"):
        for layout in ("matrix", "columns"):
            # The client's defaults: binary inputs, no outputs named -> every output binary.
            result = client.infer(MODEL, http_inputs(rows, datatype, layout, True, features),
                                  request_id=f"http-{datatype}-{layout}")
            response = result.get_response()
            binary_out = all("binary_data_size" in o.get("parameters", {}) for o in response["outputs"])
            check(f"http binary {datatype} {layout}: all 569 rows match /predict",
                  result.as_numpy("predict").tolist() == expected
                  and result.as_numpy("label").tolist() == labels and binary_out,
                  f"binary outputs: {binary_out}")
            check(f"http binary {datatype} {layout}: request id echoed",
                  response.get("id") == f"http-{datatype}-{layout}", str(response.get("id")))
            # JSON in and out, two outputs asked for.
            outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "predict")]
            result = client.infer(MODEL, http_inputs(rows, datatype, layout, False, features),
                                  outputs=outputs)
            names = [o["name"] for o in result.get_response()["outputs"]]
            check(f"http json {datatype} {layout}: all 569 rows match /predict, only the outputs asked for",
                  result.as_numpy("predict").tolist() == expected
                  and [str(x, "utf-8") if isinstance(x, bytes) else x for x in result.as_numpy("label").tolist()]
                  == [x.decode() for x in labels] and names == ["label", "predict"], str(names))
    for algorithm in ("gzip", "deflate"):
        result = client.infer(MODEL, http_inputs(rows, "FP64", "matrix", True, features),
                              request_compression_algorithm=algorithm,
                              response_compression_algorithm="gzip")
        check(f"http binary, {algorithm} request and gzip answer: all 569 rows match /predict",
              result.as_numpy("predict").tolist() == expected)

    expect_error("http: unknown model", lambda: client.infer(
        "nope", http_inputs(rows[:1], "FP64", "matrix", True, features)), 'Unknown model "nope"')
    expect_error("http: wrong shape", lambda: client.infer(
        MODEL, http_inputs(rows[:2, :5], "FP64", "matrix", True, features)), "shape [2, 5]", "[N, 6]")
    wrong_type = httpclient.InferInput("input-0", [1, 6], "BYTES")
    wrong_type.set_data_from_numpy(np.array([[b"1"] * 6], dtype=np.object_))
    expect_error("http: wrong datatype", lambda: client.infer(MODEL, [wrong_type]), 'datatype "BYTES"')
    many = np.repeat(rows[:1], 1001, axis=0)
    expect_error("http: too many rows", lambda: client.infer(
        MODEL, http_inputs(many, "FP64", "matrix", True, features)), "Too many rows", "1001 rows", "at most 1000")


# ------------------------------------------------------------------ gRPC


def check_grpc(grpc_port: int, features: list[str], rows: np.ndarray, expected: list[int]) -> None:
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    check("grpc: server live", client.is_server_live())
    check("grpc: server ready", client.is_server_ready())
    check("grpc: model ready", client.is_model_ready(MODEL))
    meta = client.get_server_metadata(as_json=True)
    check("grpc: server metadata lists binary_tensor_data",
          meta["name"] == "ml-serving" and "binary_tensor_data" in meta["extensions"], str(meta))
    model = client.get_model_metadata(MODEL, as_json=True)
    check("grpc: model metadata lists the features in order",
          [i["name"] for i in model["inputs"]] == features, str(model["inputs"]))
    labels = labels_for(expected)
    for datatype in ("FP64", "FP32"):
        for layout in ("matrix", "columns"):
            result = client.infer(MODEL, grpc_inputs(rows, datatype, layout, features),
                                  request_id=f"grpc-{datatype}-{layout}")
            check(f"grpc {datatype} {layout}: all 569 rows match /predict",
                  result.as_numpy("predict").tolist() == expected
                  and result.as_numpy("label").tolist() == labels)
            check(f"grpc {datatype} {layout}: request id echoed",
                  result.get_response().id == f"grpc-{datatype}-{layout}")
    outputs = [grpcclient.InferRequestedOutput("svm_vote")]
    result = client.infer(MODEL, grpc_inputs(rows[:3], "FP64", "matrix", features), outputs=outputs)
    check("grpc: only the outputs asked for",
          [o.name for o in result.get_response().outputs] == ["svm_vote"])

    expect_error("grpc: unknown model", lambda: client.infer(
        "nope", grpc_inputs(rows[:1], "FP64", "matrix", features)), "NOT_FOUND", 'Unknown model "nope"')
    expect_error("grpc: wrong shape", lambda: client.infer(
        MODEL, grpc_inputs(rows[:2, :5], "FP64", "matrix", features)),
        "INVALID_ARGUMENT", "shape [2, 5]", "[N, 6]")
    wrong_type = grpcclient.InferInput("input-0", [1, 6], "BYTES")
    wrong_type.set_data_from_numpy(np.array([[b"1"] * 6], dtype=np.object_))
    expect_error("grpc: wrong datatype", lambda: client.infer(MODEL, [wrong_type]),
                 "INVALID_ARGUMENT", 'datatype "BYTES"')
    many = np.repeat(rows[:1], 1001, axis=0)
    expect_error("grpc: too many rows", lambda: client.infer(
        MODEL, grpc_inputs(many, "FP64", "matrix", features)), "INVALID_ARGUMENT", "Too many rows")
    expect_error("grpc: a passed deadline", lambda: client.infer(
        MODEL, grpc_inputs(rows, "FP64", "matrix", features), client_timeout=1e-6), "DEADLINE_EXCEEDED")


# ------------------------------------------------------------------ API key


def check_api_key(http_port: int, grpc_port: int, features: list[str], rows: np.ndarray) -> None:
    def auth():
        # A new dict each call: the HTTP client adds its own headers to the one it is given.
        return {"authorization": f"Bearer {API_KEY}"}

    http = httpclient.InferenceServerClient(url=f"127.0.0.1:{http_port}")
    grpc = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
    expect_error("http: no API key", lambda: http.infer(
        MODEL, http_inputs(rows[:1], "FP64", "matrix", True, features)), "Missing or wrong API key")
    result = http.infer(MODEL, http_inputs(rows[:1], "FP64", "matrix", True, features), headers=auth())
    check("http: the API key in Authorization", result.as_numpy("predict").tolist() == [1])
    expect_error("grpc: no API key", lambda: grpc.infer(
        MODEL, grpc_inputs(rows[:1], "FP64", "matrix", features)), "UNAUTHENTICATED", "Missing or wrong API key")
    result = grpc.infer(MODEL, grpc_inputs(rows[:1], "FP64", "matrix", features), headers=auth())
    check("grpc: the API key in authorization metadata", result.as_numpy("predict").tolist() == [1])


# ------------------------------------------------------------------ docs/kserve.md


def check_docs_example(grpc_port: int) -> None:
    """Runs the page's gRPC example (the Python block using tritonclient.grpc) against the
    server, and compares what it prints with the `text` block that follows it."""
    page = (ROOT / "docs/kserve.md").read_text()
    match = re.search(r"```python\n(.*?tritonclient\.grpc.*?)```\s*```text\n(.*?)```", page, re.S)
    if not match:
        check("docs/kserve.md: the gRPC example", False, "no python block with tritonclient.grpc and its output")
        return
    code, shown = match.group(1).replace("localhost:8081", f"127.0.0.1:{grpc_port}"), match.group(2)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/kserve.md", "exec"), {})
    check("docs/kserve.md: the gRPC example prints what the page shows",
          out.getvalue().strip() == shown.strip(), f"printed {out.getvalue()!r}, the page shows {shown!r}")


def main() -> int:
    binary = sys.argv[1]
    with server(binary) as (http_port, grpc_port):
        features = [i["name"] for i in httpclient.InferenceServerClient(
            url=f"127.0.0.1:{http_port}").get_model_metadata(MODEL)["inputs"]]
        rows = bundled_rows(features)
        check("the data set has 569 rows", rows.shape == (569, 6), str(rows.shape))
        expected = predict_answers(http_port, features, rows)
        check_http(http_port, features, rows, expected)
        check_grpc(grpc_port, features, rows, expected)
        check_docs_example(grpc_port)
    with server(binary, API_KEY=API_KEY) as (http_port, grpc_port):
        check_api_key(http_port, grpc_port, features, rows)
    print(f"v2-client-test: {passed} checks passed, {len(failures)} failed")
    for failure in failures:
        print(f"  FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
