"""Trains small models, exports them to ONNX and records onnxruntime's outputs for every row.

Run by scripts/onnx-fixtures (which pins the versions); writes into the folder given as argv[1]:
  data_<set>.json   the input rows of one data set (float32 values, null for a missing value)
  <model>.onnx      the export, with the converter's default options or with zipmap=False
  <model>.ort.json  which data set it reads and every output onnxruntime gave for all its rows
  <model>.json      for a few models, the sidecar the serving side reads (docs/onnx.md), with
                    sample rows and the answers scikit-learn gave for them
Tree ensembles are kept small (few trees, shallow) so that the committed folder stays small.
"""

import json
import sys
import warnings
from pathlib import Path

import lightgbm
import numpy as np
import onnxmltools
import onnxruntime as ort
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MlFloatTensorType
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType
from sklearn import datasets
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    AdaBoostClassifier,
    VotingClassifier,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

warnings.filterwarnings("ignore")
ort.set_default_logger_severity(3)  # not the shape warnings of the LightGBM exports
OUT = Path(sys.argv[1])
SEED = 0


def f32(v):
    """The shortest decimal that reads back as the same float32 (None for NaN)."""
    v = np.float32(v)
    if np.isnan(v):
        return None
    s = float(str(v))
    assert np.float32(s) == v
    return s


def write_json(path, obj):
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def load_sets():
    rng = np.random.default_rng(SEED)
    sets = {}
    x, y = datasets.load_breast_cancer(return_X_y=True)
    sets["cancer"] = (x, y)
    x_missing = x.copy()
    x_missing[rng.random(x.shape) < 0.1] = np.nan
    sets["cancer_missing"] = (x_missing, y)
    iris = datasets.load_iris()
    sets["iris_str"] = (iris.data, iris.target_names[iris.target])
    wine = datasets.load_wine()
    sets["wine"] = (wine.data, wine.target)
    # One categorical column (a small integer code) for OneHotEncoder in a ColumnTransformer.
    code = np.digitize(iris.data[:, 2], [2.0, 4.0, 5.0]).astype(float)
    sets["iris_cat"] = (np.column_stack([iris.data, code]), iris.target)
    xr, yr = datasets.load_diabetes(return_X_y=True)
    sets["diabetes"] = (xr, yr)
    for name, (x, _) in sets.items():
        rows = [[f32(v) for v in row] for row in x.astype(np.float32)]
        write_json(OUT / f"data_{name}.json", {"width": x.shape[1], "rows": rows})
    return {k: (x.astype(np.float32), y) for k, (x, y) in sets.items()}


def record(name, onx, data, x, reference):
    """Saves the model and onnxruntime's outputs for every row of x."""
    path = OUT / f"{name}.onnx"
    onx.graph.name = name  # onnxmltools names graphs with a random UUID
    path.write_bytes(onx.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    feed = x.astype(np.float64) if inp.type == "tensor(double)" else x
    results = sess.run(None, {inp.name: feed})
    outputs = []
    for meta, value in zip(sess.get_outputs(), results):
        if isinstance(value, list):  # ZipMap: a sequence of maps, one per row
            keys = list(value[0].keys())
            outputs.append({
                "name": meta.name,
                "kind": "maps",
                "keys": [k if isinstance(k, str) else int(k) for k in keys],
                "values": [[f32(row[k]) for k in keys] for row in value],
            })
            continue
        value = np.asarray(value)
        if value.dtype.kind in "fc":
            values = [f32(v) for v in value.ravel()]
        elif value.dtype.kind in "iu":
            values = [int(v) for v in value.ravel()]
        else:
            values = [str(v) for v in value.ravel()]
        outputs.append({
            "name": meta.name,
            "kind": "tensor",
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "values": values,
        })
    agree = ""
    if reference is not None:
        label = np.asarray(results[0]).ravel()
        if label.dtype.kind in "fc":
            ok = np.isclose(label, reference, rtol=1e-4, atol=1e-4).sum()
        else:
            ok = (label.astype(str) == np.asarray(reference).astype(str)).sum()
        agree = f", agrees with the trained model on {ok}/{len(label)} rows"
    write_json(OUT / f"{name}.ort.json", {"data": data, "outputs": outputs})
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
    print(f"{name}: {path.stat().st_size} bytes, {len(ops)} operator kinds{agree}", flush=True)


def sidecar(name, data, sets, model, feature_names, rows, classes=None):
    """Writes <name>.json: the model's identity and scikit-learn's answers on the given rows."""
    x, _ = sets[data]
    answers = model.predict(x[rows])
    samples = []
    for r, a in zip(rows, answers):
        sample = {"features": [f32(v) for v in x[r]]}
        if classes is None:
            sample["value"] = float(a)
        else:
            sample["label"] = a.item() if hasattr(a, "item") else a
        samples.append(sample)
    doc = {"name": name.replace("_", "-"), "version": "1", "feature_names": list(feature_names), "samples": samples}
    if classes is not None:
        doc["class_labels"] = [c.item() if hasattr(c, "item") else c for c in classes]
    (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")


def final_step(model):
    return model.steps[-1][1] if hasattr(model, "steps") else model


sk_models = {}


def ort_session_labels(name, x):
    sess = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def sk(name, model, data, sets, zipmap=True, double=False):
    """A scikit-learn model (or pipeline) through skl2onnx, default options and zipmap=False."""
    x, y = sets[data]
    sk_models[name] = model
    model.fit(x.astype(np.float64) if double else x, y)
    reference = model.predict(x.astype(np.float64) if double else x)
    if double:
        onx = to_onnx(model, initial_types=[("input", DoubleTensorType([None, x.shape[1]]))])
        record(name, onx, data, x, reference)
        return
    record(name, to_onnx(model, x[:1]), data, x, reference)
    if zipmap and is_classifier(model):
        options = {id(final_step(model)): {"zipmap": False}}
        record(f"{name}_nozipmap", to_onnx(model, x[:1], options=options), data, x, reference)


def ml(name, model, data, sets, convert, zipmap=True):
    """An XGBoost or LightGBM model through onnxmltools (its XGBoost converter has no ZipMap)."""
    x, y = sets[data]
    model.fit(x, y)
    reference = model.predict(x)
    types = [("input", MlFloatTensorType([None, x.shape[1]]))]
    record(name, convert(model, initial_types=types), data, x, reference)
    if zipmap:
        record(f"{name}_nozipmap", convert(model, initial_types=types, zipmap=False), data, x, reference)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    s = load_sets()
    small = {"random_state": SEED}
    # Linear models and pipelines around them.
    sk("logreg_cancer", make_pipeline(StandardScaler(), LogisticRegression()), "cancer", s)
    sk("logreg_iris_str", LogisticRegression(max_iter=500), "iris_str", s)
    sk("logreg_missing", make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()), "cancer_missing", s)
    sk("normalizer_logreg_wine", make_pipeline(Normalizer(), LogisticRegression(max_iter=2000)), "wine", s)
    onehot = ColumnTransformer([
        ("num", StandardScaler(), [0, 1, 2, 3]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), [4]),
    ])
    sk("onehot_logreg_iris", make_pipeline(onehot, LogisticRegression(max_iter=500)), "iris_cat", s)
    sk("binarizer_logreg_cancer", make_pipeline(StandardScaler(), Binarizer(), LogisticRegression()), "cancer", s)
    sk("robust_logreg_wine", make_pipeline(RobustScaler(), LogisticRegression(max_iter=2000)), "wine", s)
    sk("maxabs_ridge_diabetes", make_pipeline(MaxAbsScaler(), Ridge()), "diabetes", s)
    sk("linreg_diabetes", LinearRegression(), "diabetes", s)
    sk("linreg_diabetes_double", LinearRegression(), "diabetes", s, double=True)
    sk("ridge_diabetes", make_pipeline(StandardScaler(), Ridge()), "diabetes", s)
    # Support vector machines.
    sk("svc_rbf_cancer", make_pipeline(MinMaxScaler(), SVC()), "cancer", s)
    sk("svc_rbf_proba_cancer", make_pipeline(MinMaxScaler(), SVC(probability=True, random_state=SEED)), "cancer", s)
    sk("svc_linear_iris_str", SVC(kernel="linear", probability=True, random_state=SEED), "iris_str", s)
    sk("svc_poly_wine", make_pipeline(StandardScaler(), SVC(kernel="poly")), "wine", s)
    sk("svc_sigmoid_cancer", make_pipeline(StandardScaler(), SVC(kernel="sigmoid")), "cancer", s)
    sk("svr_rbf_diabetes", SVR(), "diabetes", s)
    sk("svr_linear_diabetes", SVR(kernel="linear"), "diabetes", s)
    sk("svr_poly_diabetes", make_pipeline(StandardScaler(), SVR(kernel="poly")), "diabetes", s)
    # Trees and ensembles (small).
    sk("tree_cancer", DecisionTreeClassifier(max_depth=6, **small), "cancer", s)
    sk("tree_iris_str", DecisionTreeClassifier(**small), "iris_str", s)
    sk("tree_diabetes", DecisionTreeRegressor(max_depth=6, **small), "diabetes", s)
    sk("forest_cancer", RandomForestClassifier(n_estimators=10, max_depth=6, **small), "cancer", s)
    sk("forest_missing", RandomForestClassifier(n_estimators=10, max_depth=6, **small), "cancer_missing", s)
    sk("forest_wine", RandomForestClassifier(n_estimators=10, max_depth=5, **small), "wine", s)
    sk("forest_diabetes", RandomForestRegressor(n_estimators=10, max_depth=5, **small), "diabetes", s)
    sk("extra_iris_str", ExtraTreesClassifier(n_estimators=10, max_depth=5, **small), "iris_str", s)
    sk("extra_diabetes", ExtraTreesRegressor(n_estimators=10, max_depth=5, **small), "diabetes", s)
    sk("gboost_cancer", GradientBoostingClassifier(n_estimators=20, max_depth=3, **small), "cancer", s)
    sk("gboost_wine", GradientBoostingClassifier(n_estimators=10, max_depth=3, **small), "wine", s)
    sk("gboost_diabetes", GradientBoostingRegressor(n_estimators=20, max_depth=3, **small), "diabetes", s)
    sk("adaboost_cancer", AdaBoostClassifier(n_estimators=10, **small), "cancer", s)
    # Standard-operator exports.
    mlp = {"hidden_layer_sizes": (16,), "max_iter": 300, **small}
    sk("mlp_cancer", make_pipeline(StandardScaler(), MLPClassifier(**mlp)), "cancer", s)
    sk("mlp_iris_str", make_pipeline(StandardScaler(), MLPClassifier(**mlp)), "iris_str", s)
    sk("mlp_diabetes", make_pipeline(StandardScaler(), MLPRegressor(**mlp)), "diabetes", s)
    sk("knn_iris_str", KNeighborsClassifier(), "iris_str", s)
    sk("knn_cancer", make_pipeline(StandardScaler(), KNeighborsClassifier()), "cancer", s)
    sk("gnb_wine", GaussianNB(), "wine", s)
    sk("gnb_cancer", GaussianNB(), "cancer", s)
    # The tutorial's pipeline: a hard vote of logistic regression, SVC and a tree. skl2onnx's
    # export disagrees with scikit-learn on some rows; its sidecar lists them, so that loading
    # it with the sidecar fails (tests/onnx_sidecar.rs).
    voting = make_pipeline(SimpleImputer(), MinMaxScaler(), VotingClassifier([
        ("lr", LogisticRegression()),
        ("svc", SVC()),
        ("tree", DecisionTreeClassifier(random_state=SEED)),
    ], voting="hard", flatten_transform=False))
    sk("voting_cancer", voting, "cancer", s)
    x, _ = s["cancer"]
    ort_labels = ort_session_labels("voting_cancer_nozipmap", x)
    disagree = [int(i) for i in np.flatnonzero(ort_labels != voting.predict(x))]
    print(f"voting_cancer: onnxruntime disagrees with scikit-learn on {len(disagree)} rows", flush=True)
    names = datasets.load_breast_cancer().feature_names
    sidecar("voting_cancer", "cancer", s, voting, names, list(range(5)) + disagree, voting.classes_)
    sidecar("logreg_cancer", "cancer", s, sk_models["logreg_cancer"], names, list(range(0, 569, 19)),
            sk_models["logreg_cancer"].classes_)
    sidecar("linreg_diabetes", "diabetes", s, sk_models["linreg_diabetes"], datasets.load_diabetes().feature_names,
            list(range(0, 442, 17)))
    # XGBoost and LightGBM through onnxmltools.
    xgb = {"n_estimators": 20, "max_depth": 3, "random_state": SEED}
    ml("xgb_cancer", xgboost.XGBClassifier(**xgb), "cancer", s, onnxmltools.convert_xgboost, zipmap=False)
    ml("xgb_missing", xgboost.XGBClassifier(**xgb), "cancer_missing", s, onnxmltools.convert_xgboost, zipmap=False)
    ml("xgb_wine", xgboost.XGBClassifier(**xgb), "wine", s, onnxmltools.convert_xgboost, zipmap=False)
    ml("xgb_diabetes", xgboost.XGBRegressor(**xgb), "diabetes", s, onnxmltools.convert_xgboost, zipmap=False)
    lgb = {"n_estimators": 20, "num_leaves": 15, "random_state": SEED, "verbose": -1}
    ml("lgbm_cancer", lightgbm.LGBMClassifier(**lgb), "cancer", s, onnxmltools.convert_lightgbm)
    ml("lgbm_missing", lightgbm.LGBMClassifier(**lgb), "cancer_missing", s, onnxmltools.convert_lightgbm)
    ml("lgbm_iris_str", lightgbm.LGBMClassifier(**lgb), "iris_str", s, onnxmltools.convert_lightgbm)
    ml("lgbm_diabetes", lightgbm.LGBMRegressor(**lgb), "diabetes", s, onnxmltools.convert_lightgbm, zipmap=False)


if __name__ == "__main__":
    main()
