//! The V2 gRPC service over a real socket (127.0.0.1:0) with the generated client: metadata,
//! health, both input layouts in typed `contents` and in `raw_input_contents` against
//! `/predict` on every bundled row, every error with its protocol code and message, the API
//! key, the client's deadline, the in-flight limit, the message size limit, metrics by method
//! and code, the drain; and a property test feeding arbitrary requests to ModelInfer.

mod common;

use std::time::Duration;

use common::process::Server;
use common::*;
use ml_serving::dataset::DEFAULT_FEATURES as FEATURES;
use ml_serving::server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use ml_serving::server::grpc::proto::grpc_inference_service_server::GrpcInferenceService;
use ml_serving::server::grpc::proto::model_infer_request::{
    InferInputTensor, InferRequestedOutputTensor,
};
use ml_serving::server::grpc::proto::*;
use ml_serving::server::grpc::{GrpcSettings, InferenceService, serve};
use proptest::prelude::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Running {
    addr: std::net::SocketAddr,
    channel: Channel,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(setup: Setup, drain: Duration) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let settings = GrpcSettings {
        slots: ml_serving::server::Slots::new(setup.max_in_flight),
        request_timeout: setup.timeout,
        connections: common::conn_settings(drain),
    };
    let task = tokio::spawn(serve(listener, setup.state(), settings, stop.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        addr,
        channel,
        stop,
        task,
    }
}

async fn client(setup: Setup) -> GrpcInferenceServiceClient<Channel> {
    let running = start(setup, Duration::from_secs(1)).await;
    GrpcInferenceServiceClient::new(running.channel)
}

fn contents_fp64(values: Vec<f64>) -> InferTensorContents {
    InferTensorContents {
        fp64_contents: values,
        ..Default::default()
    }
}

/// `input-0` `[N, 6]` FP64 in `contents`.
fn matrix(rows: &[[f64; 6]]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "breast_model".into(),
        inputs: vec![InferInputTensor {
            name: "input-0".into(),
            datatype: "FP64".into(),
            shape: vec![rows.len() as i64, 6],
            parameters: Default::default(),
            contents: Some(contents_fp64(rows.iter().flatten().copied().collect())),
        }],
        ..Default::default()
    }
}

/// One FP32 tensor per feature in `raw_input_contents`.
fn raw_columns(rows: &[[f64; 6]]) -> ModelInferRequest {
    let mut request = ModelInferRequest {
        model_name: "breast_model".into(),
        ..Default::default()
    };
    for (j, name) in FEATURES.iter().enumerate() {
        request.inputs.push(InferInputTensor {
            name: name.to_string(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64],
            ..Default::default()
        });
        request.raw_input_contents.push(
            rows.iter()
                .flat_map(|r| (r[j] as f32).to_le_bytes())
                .collect(),
        );
    }
    request
}

fn int64s(raw: &[u8]) -> Vec<i64> {
    raw.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn strings(mut raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let n = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
        out.push(String::from_utf8(raw[4..4 + n].to_vec()).unwrap());
        raw = &raw[4 + n..];
    }
    out
}

fn output<'a>(response: &'a ModelInferResponse, name: &str) -> &'a [u8] {
    let i = response
        .outputs
        .iter()
        .position(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}"));
    &response.raw_output_contents[i]
}

#[tokio::test]
async fn health_and_metadata() {
    let running = start(Setup::default(), Duration::from_secs(1)).await;
    let mut c = GrpcInferenceServiceClient::new(running.channel.clone());
    assert!(
        c.server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = c
        .model_ready(ModelReadyRequest {
            name: "breast_model".into(),
            version: "1".into(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let server = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "ml-serving");
    assert_eq!(
        server.extensions,
        ["binary_tensor_data", "model_repository"]
    );
    let model = c
        .model_metadata(ModelMetadataRequest {
            name: "breast_model".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    // The same metadata as REST's.
    let (_, rest) = get(&default_app(), "/v2/models/breast_model").await;
    assert_eq!(model.name, rest["name"]);
    assert_eq!(model.versions, ["1"]);
    assert_eq!(model.platform, rest["platform"]);
    let names: Vec<&str> = model.inputs.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, FEATURES);
    let outputs: Vec<(&str, &str)> = model
        .outputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    assert_eq!(outputs[1], ("label", "BYTES"));
    assert_eq!(outputs.len(), 5);

    let mut health = HealthClient::new(running.channel.clone());
    for service in ["", "inference.GRPCInferenceService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn both_layouts_in_both_encodings_give_predicts_answers_on_every_bundled_row() {
    let app = default_app();
    let expected = predict_answers(&app).await;
    let labels: Vec<String> = expected
        .iter()
        .map(|&p| if p == 1 { "M" } else { "B" }.to_string())
        .collect();
    let mut c = client(Setup::default()).await;
    let rows = bundled_feature_rows();
    // FP32 rounding changes no prediction on the bundled rows (checked by REST's FP32 test too).
    for mut request in [matrix(&rows), raw_columns(&rows)] {
        request.id = "req-9".into();
        let answer = c.model_infer(request).await.unwrap().into_inner();
        assert_eq!(answer.id, "req-9");
        assert_eq!(answer.model_name, "breast_model");
        assert_eq!(answer.model_version, "1");
        assert_eq!(answer.outputs.len(), 5);
        assert_eq!(answer.outputs[0].shape, [569]);
        assert_eq!(int64s(output(&answer, "predict")), expected);
        assert_eq!(strings(output(&answer, "label")), labels);
    }
    // Only the outputs asked for, in the order asked.
    let mut request = matrix(&[SAMPLE_ROW, BENIGN_ROW]);
    request.outputs = ["label", "tree_vote"]
        .map(|name| InferRequestedOutputTensor {
            name: name.into(),
            parameters: Default::default(),
        })
        .to_vec();
    let answer = c.model_infer(request).await.unwrap().into_inner();
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["label", "tree_vote"]);
    assert_eq!(strings(&answer.raw_output_contents[0]), ["M", "B"]);
}

#[tokio::test]
async fn typed_contents_of_every_integer_type() {
    let mut c = client(Setup::default()).await;
    let reference = c
        .model_infer(matrix(&[BENIGN_ROW]))
        .await
        .unwrap()
        .into_inner();
    let ints: Vec<i64> = BENIGN_ROW.iter().map(|&v| v as i64).collect();
    let as_i32 = || ints.iter().map(|&v| v as i32).collect();
    for (datatype, contents) in [
        (
            "INT32",
            InferTensorContents {
                int_contents: as_i32(),
                ..Default::default()
            },
        ),
        (
            "INT16",
            InferTensorContents {
                int_contents: as_i32(),
                ..Default::default()
            },
        ),
        (
            "INT64",
            InferTensorContents {
                int64_contents: ints.clone(),
                ..Default::default()
            },
        ),
        (
            "UINT32",
            InferTensorContents {
                uint_contents: ints.iter().map(|&v| v as u32).collect(),
                ..Default::default()
            },
        ),
        (
            "UINT64",
            InferTensorContents {
                uint64_contents: ints.iter().map(|&v| v as u64).collect(),
                ..Default::default()
            },
        ),
        (
            "FP32",
            InferTensorContents {
                fp32_contents: BENIGN_ROW.iter().map(|&v| v as f32).collect(),
                ..Default::default()
            },
        ),
    ] {
        let mut request = matrix(&[BENIGN_ROW]);
        request.inputs[0].datatype = datatype.into();
        request.inputs[0].contents = Some(contents);
        let answer = c.model_infer(request).await.unwrap().into_inner();
        assert_eq!(
            answer.raw_output_contents, reference.raw_output_contents,
            "{datatype}"
        );
    }
    // 500 does not fit INT8.
    let mut request = matrix(&[BENIGN_ROW]);
    request.inputs[0].datatype = "INT8".into();
    request.inputs[0].contents = Some(InferTensorContents {
        int_contents: as_i32(),
        ..Default::default()
    });
    let err = c.model_infer(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("element 5 of int_contents is outside the range of INT8"),
        "{}",
        err.message()
    );
}

type Edit = fn(&mut ModelInferRequest);

#[tokio::test]
async fn errors_have_the_protocols_codes_and_clear_messages() {
    let mut c = client(Setup {
        batch_rows: 10,
        ..Setup::default()
    })
    .await;
    let invalid = Code::InvalidArgument;
    // Each case edits a one-row request (`matrix`, or `raw_columns` where it says so).
    let cases: [(bool, Edit, Code, &[&str]); 15] = [
        (
            false,
            |r| r.model_name = "nope".into(),
            Code::NotFound,
            &["Unknown model \"nope\"", "\"breast_model\""],
        ),
        (
            false,
            |r| r.model_version = "2".into(),
            Code::NotFound,
            &["no version \"2\""],
        ),
        (
            false,
            |r| r.inputs[0].shape = vec![1, 5],
            invalid,
            &["shape [1, 5]", "[N, 6]"],
        ),
        (
            false,
            |r| r.inputs[0].shape = vec![-1, 6],
            invalid,
            &["negative dimension"],
        ),
        (
            false,
            |r| r.inputs[0].datatype = "BYTES".into(),
            invalid,
            &["datatype \"BYTES\""],
        ),
        (
            false,
            |r| r.inputs[0].datatype = "FP32".into(),
            invalid,
            &["datatype FP32 but its data is in fp64_contents"],
        ),
        (
            false,
            |r| *r = matrix(&[SAMPLE_ROW; 11]),
            invalid,
            &["Too many rows", "11 rows", "at most 10"],
        ),
        (
            false,
            |r| {
                r.inputs[0].contents.as_mut().unwrap().fp64_contents.pop();
            },
            invalid,
            &["holds 6 elements, but fp64_contents has 5"],
        ),
        (
            false,
            |r| r.inputs[0].contents.as_mut().unwrap().fp64_contents[3] = -1.0,
            invalid,
            &["column 3 (area_se) is -1"],
        ),
        (
            false,
            |r| r.inputs[0].contents = None,
            invalid,
            &["has no contents"],
        ),
        (
            true,
            |r| {
                r.raw_input_contents.pop();
            },
            invalid,
            &["raw_input_contents has 5 entries but there are 6 inputs"],
        ),
        (
            true,
            |r| r.raw_input_contents[2].push(0),
            invalid,
            &[
                "\"perimeter_se\"",
                "takes 4 bytes, but its binary data has 5",
            ],
        ),
        (
            true,
            |r| r.inputs[0].contents = Some(contents_fp64(vec![1.0])),
            invalid,
            &["use one or the other"],
        ),
        (
            false,
            |r| {
                r.outputs = vec![InferRequestedOutputTensor {
                    name: "proba".into(),
                    parameters: Default::default(),
                }]
            },
            invalid,
            &["unknown output \"proba\""],
        ),
        (false, |r| r.inputs.clear(), invalid, &["no inputs"]),
    ];
    for (raw, edit, code, parts) in cases {
        let mut request = if raw {
            raw_columns(&[SAMPLE_ROW])
        } else {
            matrix(&[SAMPLE_ROW])
        };
        edit(&mut request);
        let err = c.model_infer(request).await.unwrap_err();
        assert_eq!(err.code(), code, "{}", err.message());
        for part in parts {
            assert!(
                err.message().contains(part),
                "{:?} lacks {part:?}",
                err.message()
            );
        }
    }
    let err = c
        .model_metadata(ModelMetadataRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .model_ready(ModelReadyRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn the_api_key_is_read_from_the_authorization_metadata() {
    let mut c = client(Setup {
        api_key: Some("s3cret".into()),
        ..Setup::default()
    })
    .await;
    let err = c.model_infer(matrix(&[SAMPLE_ROW])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("authorization: Bearer"),
        "{}",
        err.message()
    );
    let mut wrong = Request::new(matrix(&[SAMPLE_ROW]));
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        c.model_infer(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut right = Request::new(matrix(&[SAMPLE_ROW]));
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(c.model_infer(right).await.is_ok());
    // Health and metadata stay open, as on REST.
    assert!(c.server_ready(ServerReadyRequest {}).await.is_ok());
}

/// Sends one ModelInfer over a bare HTTP/2 connection (no client-side deadline handling, unlike
/// tonic's channel, which would give up by itself) with `grpc-timeout: timeout`; the body is
/// the message, or never arrives when `stall`. Returns the `grpc-status` and `grpc-message`.
async fn raw_call(addr: std::net::SocketAddr, timeout: &str, stall: bool) -> (String, String) {
    use prost::Message;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let message = matrix(&[SAMPLE_ROW]).encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let (tx, body) = stalled_body();
    if !stall {
        tx.send(Ok(frame)).await.unwrap();
        drop(tx);
    } else {
        std::mem::forget(tx);
    }
    let request = axum::http::Request::post(format!(
        "http://{addr}/inference.GRPCInferenceService/ModelInfer"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("grpc-timeout", timeout)
    .body(body)
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    // grpc-message is percent-encoded.
    (
        header("grpc-status"),
        header("grpc-message").replace("%20", " "),
    )
}

#[tokio::test]
async fn a_call_past_the_clients_deadline_is_deadline_exceeded() {
    let setup = Setup {
        max_in_flight: 8,
        timeout: Duration::from_secs(60),
        ..Setup::default()
    };
    let running = start(setup, Duration::from_secs(1)).await;
    let addr = running.addr;
    let deadline_exceeded = (Code::DeadlineExceeded as i32).to_string();
    // The deadline has passed by the time the call is handled.
    let (code, message) = raw_call(addr, "1n", false).await;
    assert_eq!(code, deadline_exceeded, "{message}");
    // A client whose message never arrives gets its answer at its deadline (100 ms), not at
    // the server's timeout (60 s).
    let (code, message) =
        tokio::time::timeout(Duration::from_secs(30), raw_call(addr, "100m", true))
            .await
            .expect("answered at the client's deadline");
    assert_eq!(code, deadline_exceeded, "{message}");
    assert!(message.contains("longer than its deadline"), "{message}");
    // A generous deadline is met.
    let (code, _) = raw_call(addr, "30S", false).await;
    assert_eq!(code, "", "a success carries its status in the trailers");
    let mut c = GrpcInferenceServiceClient::new(running.channel.clone());
    let mut request = Request::new(matrix(&[SAMPLE_ROW]));
    request.set_timeout(Duration::from_secs(30));
    assert!(c.model_infer(request).await.is_ok());
}

#[tokio::test]
async fn the_servers_timeout_bounds_every_call() {
    let mut c = client(Setup {
        timeout: Duration::from_nanos(1),
        ..Setup::default()
    })
    .await;
    let err = c.model_infer(matrix(&[SAMPLE_ROW])).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
}

#[tokio::test]
async fn with_no_free_slot_a_call_is_resource_exhausted() {
    // One slot, shared with REST, held as a REST prediction would hold it.
    let slots = ml_serving::server::Slots::new(1);
    let service = InferenceService::new(
        Setup::default().state(),
        slots.clone(),
        Duration::from_secs(10),
    );
    let held = slots.take().unwrap();
    let err = service
        .model_infer(Request::new(matrix(&[SAMPLE_ROW])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("Too many requests in flight"));
    drop(held);
    service
        .model_infer(Request::new(matrix(&[SAMPLE_ROW])))
        .await
        .expect("a free slot serves the call");
}

#[tokio::test]
async fn a_message_over_the_body_limit_is_refused() {
    let mut c = client(Setup {
        body_bytes: 4096,
        ..Setup::default()
    })
    .await;
    assert!(c.model_infer(matrix(&[SAMPLE_ROW])).await.is_ok());
    let err = c.model_infer(matrix(&[SAMPLE_ROW; 100])).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    assert!(err.message().contains("4096"), "{}", err.message());
}

#[tokio::test]
async fn calls_are_counted_by_method_and_code() {
    let mut c = client(Setup::default()).await;
    let count = |code: &str| {
        metric(
            "grpc_requests_total",
            &["method=\"ModelInfer\"", &format!("code=\"{code}\"")],
        )
    };
    let (ok, bad) = (count("OK"), count("InvalidArgument"));
    c.model_infer(matrix(&[SAMPLE_ROW])).await.unwrap();
    let mut r = matrix(&[SAMPLE_ROW]);
    r.inputs[0].shape = vec![1, 5];
    c.model_infer(r).await.unwrap_err();
    // Other tests in this process may call too: at least ours are counted.
    assert!(count("OK") >= ok + 1.0);
    assert!(count("InvalidArgument") >= bad + 1.0);
}

#[tokio::test]
async fn on_stop_health_turns_not_serving_and_the_server_drains_then_returns() {
    let running = start(Setup::default(), Duration::from_millis(300)).await;
    let mut health = HealthClient::new(running.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "inference.GRPCInferenceService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    running.stop.cancel();
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    // The open Watch stream holds the drain until its timeout; then the server returns.
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .expect("the server returns after its drain timeout")
        .unwrap()
        .unwrap();
}

// ------------------------------------------------------------------ property test

fn any_request() -> impl Strategy<Value = ModelInferRequest> {
    let name = prop::sample::select(vec!["input-0", "concavity_mean", "area_se", "x", ""]);
    let datatype = prop::sample::select(vec![
        "FP64", "FP32", "INT8", "UINT32", "INT64", "BYTES", "BOOL",
    ]);
    let dim = prop_oneof![0i64..8, Just(6i64), Just(-1i64), any::<i64>()];
    let contents = prop_oneof![
        Just(None),
        prop::collection::vec(any::<f64>(), 0..16).prop_map(|v| Some(contents_fp64(v))),
        prop::collection::vec(any::<f32>(), 0..16).prop_map(|v| Some(InferTensorContents {
            fp32_contents: v,
            ..Default::default()
        })),
        prop::collection::vec(any::<i32>(), 0..16).prop_map(|v| Some(InferTensorContents {
            int_contents: v,
            ..Default::default()
        })),
        prop::collection::vec(any::<u64>(), 0..16).prop_map(|v| Some(InferTensorContents {
            uint64_contents: v,
            ..Default::default()
        })),
    ];
    let input = (name, datatype, prop::collection::vec(dim, 0..3), contents).prop_map(
        |(name, datatype, shape, contents)| InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            parameters: Default::default(),
            contents,
        },
    );
    (
        prop::collection::vec(input, 0..7),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..7),
        prop::sample::select(vec!["breast_model", "other"]),
    )
        .prop_map(|(inputs, raw, model)| ModelInferRequest {
            model_name: model.into(),
            inputs,
            raw_input_contents: raw,
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_model_infer_request_gets_an_answer_or_a_client_error(request in any_request()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let service = InferenceService::new(Setup { batch_rows: 8, ..Setup::default() }.state(), ml_serving::server::Slots::new(4), Duration::from_secs(10));
        match runtime.block_on(service.model_infer(Request::new(request))) {
            Ok(response) => {
                let response = response.into_inner();
                prop_assert_eq!(response.outputs.len(), response.raw_output_contents.len());
            }
            Err(status) => {
                prop_assert!(
                    [Code::InvalidArgument, Code::NotFound].contains(&status.code()),
                    "{:?}: {}", status.code(), status.message()
                );
                prop_assert!(!status.message().is_empty());
            }
        }
    }
}

// ------------------------------------------------------------------ the real binary

#[tokio::test]
async fn the_binary_serves_grpc_on_grpc_port_and_drains_it_on_sigterm() {
    let port = free_port().to_string();
    let mut server = Server::start(&bundled_model_path(), &[("GRPC_PORT", &port)]);
    let addr = server.logged_address("gRPC listening");
    assert_eq!(addr.port().to_string(), port);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = GrpcInferenceServiceClient::new(channel.clone());
    let answer = c
        .model_infer(matrix(&[SAMPLE_ROW, BENIGN_ROW]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(int64s(output(&answer, "predict")), [1, 0]);
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    server.signal("TERM");
    let (exit, _) = tokio::task::spawn_blocking(move || server.wait(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the server exits after draining");
    assert!(exit.success(), "{exit:?}");
}
