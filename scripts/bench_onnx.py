"""The Python half of scripts/bench-onnx: trains the big forests, times onnxruntime, prints the
table. Subcommands: forests DIR | latency DIR MODEL DATA ... | table OURS.tsv ORT.tsv | rss MODEL
"""

import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

warnings.filterwarnings("ignore")
ort.set_default_logger_severity(3)


def rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def forests(out):
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from onnx import TensorProto, helper

    out = Path(out)
    x, y = load_breast_cancer(return_X_y=True)
    x = x.astype(np.float32)
    for n in (100, 500):
        path = out / f"forest{n}_cancer.onnx"
        if not path.exists():
            model = RandomForestClassifier(n_estimators=n, random_state=0).fit(x, y)
            path.write_bytes(to_onnx(model, x[:1]).SerializeToString())
    # Deep trees: 500 fully grown trees on 5,000 synthetic rows (a few hundred nodes each).
    from sklearn.datasets import make_classification
    path = out / "forest500_deep.onnx"
    if not path.exists():
        xs, ys = make_classification(n_samples=5000, n_features=30, n_informative=10, random_state=0)
        xs = xs.astype(np.float32)
        model = RandomForestClassifier(n_estimators=500, random_state=0, n_jobs=1).fit(xs, ys)
        path.write_bytes(to_onnx(model, xs[:1], options={id(model): {"zipmap": False}}).SerializeToString())
    # A one-node model: what a Python call into onnxruntime costs by itself.
    node = helper.make_node("Identity", ["X"], ["Y"])
    graph = helper.make_graph([node], "identity",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 30])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 30])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (out / "identity.onnx").write_bytes(model.SerializeToString())


def rows_of(data):
    d = json.loads(Path(data).read_text())
    return np.array([[np.nan if v is None else v for v in r] for r in d["rows"]], dtype=np.float32)


def time_rows(sess, rows):
    name = sess.get_inputs()[0].name
    double = sess.get_inputs()[0].type == "tensor(double)"
    feeds = [{name: (r.astype(np.float64) if double else r)[None, :]} for r in rows]
    for f in feeds:
        sess.run(None, f)
    times = []
    begin = time.perf_counter()
    while time.perf_counter() - begin < 0.5 or len(times) < len(feeds):
        for f in feeds:
            t = time.perf_counter_ns()
            sess.run(None, f)
            times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1e3


def latency(work, pairs):
    cancer = rows_of("tests/fixtures/onnx/data_cancer.json")
    print(f"identity\t{time_rows(session(Path(work) / 'identity.onnx'), cancer):.2f}")
    for model, data in zip(pairs[::2], pairs[1::2]):
        start = time.perf_counter()
        sess = session(model)
        load_ms = (time.perf_counter() - start) * 1e3
        print(f"{Path(model).stem}\t{time_rows(sess, rows_of(data)):.2f}\t{load_ms:.2f}", flush=True)


def table(ours_tsv, ort_tsv):
    ours = {l.split("\t")[0]: l.split("\t") for l in Path(ours_tsv).read_text().splitlines()}
    theirs = {l.split("\t")[0]: l.split("\t") for l in Path(ort_tsv).read_text().splitlines()}
    base = float(theirs["identity"][1])
    print(f"onnxruntime from Python answers a one-node Identity model in {base:.1f} µs (median): "
          "the call overhead included in its column")
    head = ("model", "ours µs", "ort µs", "ort-call µs", "ours/(ort-call)", "our load ms", "ort load ms")
    print("{:<28}{:>9}{:>9}{:>13}{:>17}{:>13}{:>13}".format(*head))
    for name, row in ours.items():
        o = float(row[2])
        t = float(theirs[name][1])
        net = max(t - base, 0.01)
        print(f"{name:<28}{o:>9.2f}{t:>9.2f}{net:>13.2f}{o / net:>17.2f}{float(row[1]):>13.2f}"
              f"{float(theirs[name][2]):>13.2f}")


def rss(model):
    before = rss_kib()
    start = time.perf_counter()
    sess = session(model)
    load_ms = (time.perf_counter() - start) * 1e3
    print(f"onnxruntime\tload_ms={load_ms:.1f}\trss_before_kib={before}\trss_after_kib={rss_kib()}")
    del sess


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"forests": lambda: forests(args[0]),
     "latency": lambda: latency(args[0], args[1:]),
     "table": lambda: table(args[0], args[1]),
     "rss": lambda: rss(args[0])}[cmd]()
