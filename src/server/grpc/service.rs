//! `inference.GRPCInferenceService` over the served model: the same model, tensor reader,
//! validation, row limit and outputs as the V2 REST routes, with the API key, the in-flight
//! limit and the deadline checked per call, and errors mapped once to gRPC status codes.

use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};

use super::proto::grpc_inference_service_server::GrpcInferenceService;
use super::proto::model_infer_request::InferInputTensor;
use super::proto::model_infer_response::InferOutputTensor;
use super::proto::model_metadata_response::TensorMetadata;
use super::proto::*;
use crate::model::OutputSpec;
use crate::server::AppState;
use crate::server::Slots;
use crate::server::v2::{self, Source, Tensor, V2Error};
use crate::server::{ApiError, LookupError};

/// The service; cheap to clone.
#[derive(Debug, Clone)]
pub struct InferenceService {
    state: AppState,
    /// The same prediction slots as the REST routes.
    slots: Slots,
    timeout: Duration,
}

impl InferenceService {
    pub fn new(state: AppState, slots: Slots, timeout: Duration) -> Self {
        Self {
            state,
            slots,
            timeout,
        }
    }

    /// When `API_KEY` is set, the call carries `authorization: Bearer <key>` (compared in
    /// constant time).
    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = self.state.api_key() else {
            return Ok(());
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "Missing or wrong API key: send metadata authorization: Bearer <key>",
            ))
        }
    }

    /// The sooner of the server's timeout and the client's deadline (`grpc-timeout`).
    fn deadline<T>(&self, request: &Request<T>) -> Instant {
        let client = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout);
        Instant::now() + client.map_or(self.timeout, |c| c.min(self.timeout))
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit (H, M, S, m, u, n).
pub fn grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    if !value.is_char_boundary(split) {
        return None;
    }
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(super) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded(
        "The request took longer than its deadline (the client's, or the server's timeout)",
    )
}

/// The one table of gRPC codes for the V2 errors.
pub fn status(err: &V2Error) -> Status {
    let code = match err {
        V2Error::BadRequest(_) | V2Error::TooManyRows { .. } => Code::InvalidArgument,
        V2Error::UnknownRoute(_) => Code::NotFound,
        V2Error::Server(e) => match e {
            ApiError::Model(LookupError::Unavailable { .. }) => Code::Unavailable,
            ApiError::Model(_) => Code::NotFound,
            ApiError::Unauthorized => Code::Unauthenticated,
            ApiError::BodyTooLarge { .. } | ApiError::Overloaded => Code::ResourceExhausted,
            ApiError::Timeout => Code::DeadlineExceeded,
            ApiError::Internal(_) => Code::Internal,
            _ => Code::InvalidArgument,
        },
    };
    if code == Code::Internal {
        tracing::error!(error = %err.message(), "gRPC request failed");
    }
    Status::new(code, err.message())
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn shape(input: &InferInputTensor) -> Result<Vec<u64>, Status> {
    input
        .shape
        .iter()
        .map(|&d| u64::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Status::invalid_argument(format!(
                "input {:?}: shape {:?} has a negative dimension",
                input.name, input.shape
            ))
        })
}

/// An input's typed `contents`: the one non-empty field (or the datatype's own, empty).
fn typed_source(input: &InferInputTensor) -> Result<Source<'_>, Status> {
    let Some(c) = &input.contents else {
        return Err(Status::invalid_argument(format!(
            "input {:?} has no contents: give contents, or raw_input_contents for every input",
            input.name
        )));
    };
    if !c.bool_contents.is_empty() || !c.bytes_contents.is_empty() {
        return Err(Status::invalid_argument(format!(
            "input {:?}: bool_contents and bytes_contents are not features; send numbers",
            input.name
        )));
    }
    let mut filled = Vec::new();
    if !c.fp64_contents.is_empty() {
        filled.push(Source::Fp64(&c.fp64_contents));
    }
    if !c.fp32_contents.is_empty() {
        filled.push(Source::Fp32(&c.fp32_contents));
    }
    if !c.int_contents.is_empty() {
        filled.push(Source::Int32(&c.int_contents));
    }
    if !c.int64_contents.is_empty() {
        filled.push(Source::Int64(&c.int64_contents));
    }
    if !c.uint_contents.is_empty() {
        filled.push(Source::Uint32(&c.uint_contents));
    }
    if !c.uint64_contents.is_empty() {
        filled.push(Source::Uint64(&c.uint64_contents));
    }
    match filled[..] {
        [one] => Ok(one),
        [] => Ok(match input.datatype.as_str() {
            "FP32" => Source::Fp32(&[]),
            "INT8" | "INT16" | "INT32" => Source::Int32(&[]),
            "INT64" => Source::Int64(&[]),
            "UINT8" | "UINT16" | "UINT32" => Source::Uint32(&[]),
            "UINT64" => Source::Uint64(&[]),
            _ => Source::Fp64(&[]),
        }),
        _ => Err(Status::invalid_argument(format!(
            "input {:?} has contents in more than one field",
            input.name
        ))),
    }
}

/// The request's outputs (indices into `specs`), in its order; all of them when it names none.
fn outputs(request: &ModelInferRequest, specs: &[OutputSpec]) -> Result<Vec<usize>, V2Error> {
    if request.outputs.is_empty() {
        return Ok((0..specs.len()).collect());
    }
    let mut selected = Vec::with_capacity(request.outputs.len().min(specs.len()));
    for out in &request.outputs {
        let output = v2::output_named(specs, &out.name)?;
        if selected.contains(&output) {
            return Err(V2Error::BadRequest(format!(
                "output {:?} is asked for twice",
                out.name
            )));
        }
        selected.push(output);
    }
    Ok(selected)
}

impl InferenceService {
    fn infer(&self, request: &ModelInferRequest) -> Result<ModelInferResponse, Status> {
        let model = v2::lookup(
            &self.state,
            &request.model_name,
            version(&request.model_version),
        )
        .map_err(|e| status(&e))?;
        let raw = &request.raw_input_contents;
        if !raw.is_empty() {
            if raw.len() != request.inputs.len() {
                return Err(Status::invalid_argument(format!(
                    "raw_input_contents has {} entries but there are {} inputs: one per input, in order",
                    raw.len(),
                    request.inputs.len()
                )));
            }
            if let Some(input) = request.inputs.iter().find(|i| i.contents.is_some()) {
                return Err(Status::invalid_argument(format!(
                    "input {:?} has contents, but the request uses raw_input_contents: use one or the other",
                    input.name
                )));
            }
        }
        let shapes: Vec<Vec<u64>> = request.inputs.iter().map(shape).collect::<Result<_, _>>()?;
        let tensors: Vec<Tensor> = request
            .inputs
            .iter()
            .zip(&shapes)
            .enumerate()
            .map(|(i, (input, shape))| {
                let source = match raw.get(i) {
                    Some(bytes) => Source::Binary(bytes),
                    None => typed_source(input)?,
                };
                Ok(Tensor {
                    name: &input.name,
                    datatype: &input.datatype,
                    shape,
                    source,
                })
            })
            .collect::<Result<_, Status>>()?;
        let specs = &model.outputs;
        let wanted = outputs(request, specs).map_err(|e| status(&e))?;
        let rules = v2::ReadRules {
            max_rows: model.batch_rows.min(self.state.limits().batch_rows),
            nonnegative: model.model.nonnegative_features(),
        };
        let values = v2::read_inputs(model.features(), &tensors, rules).map_err(|e| status(&e))?;
        let data = v2::predict_outputs(&model, &values, &wanted).map_err(|e| status(&e))?;
        let rows = (values.len() / model.features().len()) as u64;
        Ok(ModelInferResponse {
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            id: request.id.clone(),
            parameters: Default::default(),
            outputs: wanted
                .iter()
                .map(|&o| InferOutputTensor {
                    name: specs[o].name.clone(),
                    datatype: specs[o].datatype.name().to_string(),
                    shape: v2::output_shape(&specs[o], rows)
                        .as_slice()
                        .iter()
                        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
                        .collect(),
                    parameters: Default::default(),
                    contents: None,
                })
                .collect(),
            raw_output_contents: data.iter().map(v2::raw).collect(),
        })
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.get_ref();
        let ready = match v2::lookup(&self.state, &r.name, version(&r.version)) {
            Ok(_) => !self.state.is_shutting_down(),
            Err(V2Error::Server(ApiError::Model(LookupError::Unavailable { .. }))) => false,
            Err(e) => return Err(status(&e)),
        };
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: v2::SERVER_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: v2::EXTENSIONS.map(str::to_string).to_vec(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.get_ref();
        let m = v2::metadata(&self.state, &r.name, version(&r.version)).map_err(|e| status(&e))?;
        let tensors = |list: Vec<v2::TensorMetadata>| {
            list.into_iter()
                .map(|t| TensorMetadata {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                })
                .collect()
        };
        Ok(Response::new(ModelMetadataResponse {
            name: m.name,
            versions: m.versions,
            platform: m.platform,
            inputs: tensors(m.inputs),
            outputs: tensors(m.outputs),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let deadline = self.deadline(&request);
        self.authorize(&request)?;
        let _permit = self.slots.take().map_err(|_| {
            Status::resource_exhausted(format!(
                "Too many requests in flight (MAX_IN_FLIGHT = {}, shared with REST); retry shortly",
                self.slots.capacity()
            ))
        })?;
        if Instant::now() >= deadline {
            return Err(deadline_exceeded());
        }
        let response = self.infer(request.get_ref())?;
        // The work is not preempted; an answer the client has stopped waiting for is not sent.
        if Instant::now() >= deadline {
            return Err(deadline_exceeded());
        }
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("1n"), Some(Duration::from_nanos(1)));
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S", "é"] {
            assert_eq!(grpc_timeout(bad), None, "{bad}");
        }
    }
}
