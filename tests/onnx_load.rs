//! Loading bad ONNX models: each is refused at load with an error that names what is wrong, and
//! no byte sequence (fuzzed, truncated) makes the loader or a loaded model panic.

use std::path::{Path, PathBuf};

use ml_serving::onnx::proto::{self, tensor_proto::DataType};
use ml_serving::onnx::{OnnxError, OnnxModel, TensorError};
use proptest::prelude::*;
use prost::Message;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/onnx/{name}.onnx"))
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn decode(name: &str) -> proto::ModelProto {
    proto::ModelProto::decode(bytes(name).as_slice()).unwrap()
}

fn load(model: &proto::ModelProto) -> Result<OnnxModel, OnnxError> {
    OnnxModel::from_bytes(&model.encode_to_vec())
}

fn graph(model: &mut proto::ModelProto) -> &mut proto::GraphProto {
    model.graph.as_mut().unwrap()
}

/// The tree fixture with its TreeEnsembleClassifier node edited.
fn tree_with(edit: impl FnOnce(&mut proto::NodeProto)) -> proto::ModelProto {
    let mut m = decode("tree_cancer_nozipmap");
    edit(&mut graph(&mut m).node[0]);
    m
}

/// The integer list of a node's attribute.
fn tree_ints<'a>(node: &'a mut proto::NodeProto, name: &str) -> &'a mut Vec<i64> {
    let attribute = node
        .attribute
        .iter_mut()
        .find(|a| a.name.as_deref() == Some(name));
    &mut attribute
        .unwrap_or_else(|| panic!("no attribute {name}"))
        .ints
}

fn input_type(model: &mut proto::ModelProto) -> &mut proto::type_proto::Tensor {
    match graph(model).input[0]
        .r#type
        .as_mut()
        .unwrap()
        .value
        .as_mut()
        .unwrap()
    {
        proto::type_proto::Value::TensorType(t) => t,
        _ => unreachable!(),
    }
}

#[test]
fn the_unchanged_fixtures_load() {
    // The baseline of every mutation below.
    for name in [
        "logreg_cancer_nozipmap",
        "tree_cancer_nozipmap",
        "linreg_diabetes_double",
    ] {
        load(&decode(name)).unwrap();
    }
}

#[test]
fn an_unsupported_operator_is_named_with_its_node_and_the_supported_list() {
    let mut m = decode("logreg_cancer_nozipmap");
    graph(&mut m).node[0].op_type = Some("FancyScaler".into());
    let err = load(&m).unwrap_err();
    let OnnxError::UnsupportedOperator {
        op,
        domain,
        node,
        supported,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (op.as_str(), domain.as_str(), node.as_str()),
        ("FancyScaler", "ai.onnx.ml", "Scaler")
    );
    assert!(supported.contains("TreeEnsembleClassifier") && supported.contains("MatMul"));
    let text = err.to_string();
    assert!(
        text.contains("FancyScaler") && text.contains("\"Scaler\""),
        "{text}"
    );
}

#[test]
fn an_operator_of_an_unknown_domain_is_refused() {
    let mut m = decode("logreg_cancer_nozipmap");
    graph(&mut m).node[0].domain = Some("com.microsoft".into());
    assert!(
        matches!(load(&m), Err(OnnxError::UnsupportedOperator { domain, .. }) if domain == "com.microsoft")
    );
}

#[test]
fn an_opset_we_do_not_implement_is_refused() {
    let mut m = decode("logreg_cancer_nozipmap");
    for o in &mut m.opset_import {
        if o.domain.as_deref() == Some("ai.onnx.ml") {
            o.version = Some(99);
        }
    }
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::Opset { domain, version: 99, .. } if domain == "ai.onnx.ml"),
        "{err:?}"
    );
}

#[test]
fn the_input_must_be_a_2d_numeric_tensor_with_a_dynamic_batch() {
    let mut rank3 = decode("logreg_cancer_nozipmap");
    let dim = input_type(&mut rank3).shape.as_ref().unwrap().dim[1].clone();
    input_type(&mut rank3).shape.as_mut().unwrap().dim.push(dim);
    let err = load(&rank3).unwrap_err();
    assert!(
        matches!(&err, OnnxError::Input(m) if m.contains("3 dimensions")),
        "{err:?}"
    );

    let mut strings = decode("logreg_cancer_nozipmap");
    input_type(&mut strings).elem_type = Some(DataType::String as i32);
    let err = load(&strings).unwrap_err();
    assert!(
        matches!(&err, OnnxError::Input(m) if m.contains("string")),
        "{err:?}"
    );

    let mut ints = decode("logreg_cancer_nozipmap");
    input_type(&mut ints).elem_type = Some(DataType::Int64 as i32);
    assert!(matches!(load(&ints), Err(OnnxError::Input(m)) if m.contains("int64")));

    let mut fixed = decode("logreg_cancer_nozipmap");
    input_type(&mut fixed).shape.as_mut().unwrap().dim[0].value =
        Some(proto::tensor_shape_proto::dimension::Value::DimValue(1));
    assert!(matches!(load(&fixed), Err(OnnxError::Input(m)) if m.contains("fixed batch")));

    let mut two = decode("logreg_cancer_nozipmap");
    let extra = graph(&mut two).input[0].clone();
    graph(&mut two).input.push(proto::ValueInfoProto {
        name: Some("Y".into()),
        ..extra
    });
    assert!(matches!(load(&two), Err(OnnxError::Input(m)) if m.contains("2 inputs")));
}

#[test]
fn external_data_is_refused() {
    let mut m = decode("linreg_diabetes_double");
    let init = &mut graph(&mut m).initializer[0];
    init.double_data.clear();
    init.raw_data = None;
    init.data_location = Some(proto::tensor_proto::DataLocation::External as i32);
    init.external_data.push(proto::StringStringEntryProto {
        key: Some("location".into()),
        value: Some("/etc/passwd".into()),
    });
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::Tensor { name, source: TensorError::ExternalData } if name == "coef"),
        "{err:?}"
    );
}

#[test]
fn huge_dims_are_refused_before_any_allocation() {
    let mut m = decode("linreg_diabetes_double");
    graph(&mut m).initializer[0].dims = vec![1 << 40, 1 << 40];
    let err = load(&m).unwrap_err();
    assert!(
        matches!(
            &err,
            OnnxError::Tensor {
                source: TensorError::TooLarge { .. },
                ..
            }
        ),
        "{err:?}"
    );

    // Dims that fit but do not match the data.
    let mut m = decode("linreg_diabetes_double");
    graph(&mut m).initializer[0].dims = vec![10, 2];
    assert!(matches!(
        load(&m),
        Err(OnnxError::Tensor {
            source: TensorError::Length {
                expected: 20,
                got: 10
            },
            ..
        })
    ));
}

#[test]
fn a_file_larger_than_the_limit_is_refused_unread() {
    let err = OnnxModel::from_bytes(&vec![0u8; ml_serving::onnx::MAX_MODEL_BYTES as usize + 1])
        .unwrap_err();
    assert!(matches!(err, OnnxError::TooLarge { .. }));
}

#[test]
fn truncated_files_are_refused_without_panicking() {
    let full = bytes("tree_cancer_nozipmap");
    for len in [full.len() / 2, full.len() - 1, 3, 0] {
        assert!(
            OnnxModel::from_bytes(&full[..len]).is_err(),
            "a prefix of {len} bytes loaded"
        );
    }
    // Every prefix: an answer, never a panic.
    for len in 0..full.len() {
        let _ = OnnxModel::from_bytes(&full[..len]);
    }
}

#[test]
fn a_broken_tree_is_refused_naming_the_node() {
    let m = tree_with(|node| tree_ints(node, "nodes_truenodeids")[0] = 9999);
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::InvalidNode { op, problem, .. } if op == "TreeEnsembleClassifier" && problem.contains("9999")),
        "{err:?}"
    );

    // A cycle: the root's true child is the root itself.
    let m = tree_with(|node| tree_ints(node, "nodes_truenodeids")[0] = 0);
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::InvalidNode { problem, .. } if problem.contains("root")),
        "{err:?}"
    );

    // A branch whose two children are the same node (its old false child is left orphaned).
    let m = tree_with(|node| tree_ints(node, "nodes_falsenodeids")[0] = 1);
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::InvalidNode { problem, .. } if problem.contains("tree 0")),
        "{err:?}"
    );
}

#[test]
fn a_tree_reading_a_feature_the_input_lacks_fails_at_load_not_at_predict() {
    let m = tree_with(|node| tree_ints(node, "nodes_featureids")[0] = 30);
    let err = load(&m).unwrap_err();
    assert!(
        matches!(&err, OnnxError::Eval { problem, .. } if problem.contains("feature 30")),
        "{err:?}"
    );
}

#[test]
fn an_output_declared_with_another_type_is_refused() {
    let mut m = decode("logreg_cancer_nozipmap");
    let out = &mut graph(&mut m).output[0];
    if let Some(proto::type_proto::Value::TensorType(t)) =
        out.r#type.as_mut().unwrap().value.as_mut()
    {
        t.elem_type = Some(DataType::String as i32);
    }
    assert!(matches!(load(&m), Err(OnnxError::Output(msg)) if msg.contains("declared as string")));
}

#[test]
fn predict_checks_the_row_count_against_the_values() {
    let model = OnnxModel::load(&fixture("logreg_cancer_nozipmap")).unwrap();
    assert_eq!(model.input().width, 30);
    assert!(matches!(
        model.predict_f32(&[0.0; 29], 1),
        Err(OnnxError::Rows {
            values: 29,
            rows: 1,
            width: 30
        })
    ));
    assert!(matches!(
        model.predict_f32(&[], 0),
        Err(OnnxError::Rows { .. })
    ));
    assert!(matches!(
        model.predict_f64(&[0.0; 60], usize::MAX),
        Err(OnnxError::Rows { .. })
    ));
    assert!(model.predict_f64(&[0.0; 60], 2).is_ok());
}

/// One model of each kind on the 30 breast-cancer features, loaded once.
static MISSING_VALUE_MODELS: std::sync::LazyLock<Vec<(&str, OnnxModel)>> =
    std::sync::LazyLock::new(|| {
        [
            "logreg_missing",
            "forest_missing",
            "xgb_missing",
            "lgbm_missing",
            "svc_rbf_cancer",
            "gnb_cancer",
            "mlp_cancer",
            "adaboost_cancer",
            "gboost_cancer",
        ]
        .into_iter()
        .map(|name| (name, OnnxModel::load(&fixture(name)).unwrap()))
        .collect()
    });

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = OnnxModel::from_bytes(&data);
    }

    /// A real model with a few bytes changed: loading answers, and a model that loads answers
    /// any row without panicking.
    #[test]
    fn mutated_models_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        row in proptest::collection::vec(prop_oneof![any::<f32>(), Just(f32::NAN), -10.0f32..10.0], 30),
    ) {
        let name = ["logreg_cancer_nozipmap", "tree_cancer", "svc_rbf_proba_cancer", "adaboost_cancer_nozipmap"][which];
        let mut data = bytes(name);
        for (at, byte) in edits {
            let i = at.index(data.len());
            data[i] = byte;
        }
        if let Ok(model) = OnnxModel::from_bytes(&data) {
            let width = model.input().width;
            let mut values = row.clone();
            values.resize(width, 0.5);
            let _ = model.predict_f32(&values, 1);
        }
    }

    /// Any row, missing values and infinities included, gets an answer from every kind.
    #[test]
    fn any_row_gets_an_answer(
        row in proptest::collection::vec(prop_oneof![any::<f32>(), Just(f32::NAN), Just(f32::INFINITY), -1e3f32..1e3], 30),
    ) {
        for (name, model) in MISSING_VALUE_MODELS.iter() {
            prop_assert!(model.predict_f32(&row, 1).is_ok(), "{name} failed on {row:?}");
        }
    }
}

#[test]
fn the_model_describes_its_input_and_outputs() {
    use ml_serving::onnx::{Dim, ElemType, OutputKind};
    let zipmap = OnnxModel::load(&fixture("logreg_cancer")).unwrap();
    assert_eq!(
        (
            zipmap.input().name.as_str(),
            zipmap.input().elem,
            zipmap.input().width
        ),
        ("X", ElemType::F32, 30)
    );
    let outs = zipmap.outputs();
    assert_eq!(outs[0].name, "output_label");
    assert_eq!(
        outs[0].kind,
        OutputKind::Tensor {
            elem: ElemType::I64,
            shape: vec![Dim::Batch]
        }
    );
    assert_eq!(
        outs[1].kind,
        OutputKind::Maps {
            key: ElemType::I64,
            classes: 2
        }
    );
    assert_eq!(zipmap.label_output(), Some(0));
    assert_eq!(
        zipmap.operators(),
        [
            "ai.onnx.ml:Scaler",
            "ai.onnx.ml:LinearClassifier",
            "Cast",
            "ai.onnx.ml:ZipMap"
        ]
    );

    let plain = OnnxModel::load(&fixture("lgbm_iris_str_nozipmap")).unwrap();
    // The export declares the label's shape as [1]; the probe finds the batch dimension.
    assert_eq!(
        plain.outputs()[0].kind,
        OutputKind::Tensor {
            elem: ElemType::Str,
            shape: vec![Dim::Batch]
        }
    );
    assert_eq!(
        plain.outputs()[1].kind,
        OutputKind::Tensor {
            elem: ElemType::F32,
            shape: vec![Dim::Batch, Dim::Fixed(3)]
        }
    );

    let double = OnnxModel::load(&fixture("linreg_diabetes_double")).unwrap();
    assert_eq!(double.input().elem, ElemType::F64);
    assert_eq!(
        double.outputs()[0].kind,
        OutputKind::Tensor {
            elem: ElemType::F64,
            shape: vec![Dim::Batch, Dim::Fixed(1)]
        }
    );
    assert_eq!(double.label_output(), None);
    assert_eq!(double.metadata().producer_name, "skl2onnx");
}

#[test]
fn a_small_file_that_would_decode_into_gigabytes_is_refused_before_decoding() {
    // Four million empty nodes: 8 MB on disk, several GB as decoded structs. Written by hand
    // (ModelProto field 7 = graph, GraphProto field 1 = node, each of length 0) so that the test
    // itself does not build them.
    let nodes: Vec<u8> = std::iter::repeat_n([0x0a, 0x00], 4 << 20)
        .flatten()
        .collect();
    let mut bytes = vec![0x3a];
    prost::encoding::encode_varint(nodes.len() as u64, &mut bytes);
    bytes.extend(nodes);
    let err = OnnxModel::from_bytes(&bytes).unwrap_err();
    assert!(matches!(err, OnnxError::DecodeBudget { .. }), "{err:?}");
}
