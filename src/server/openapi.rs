//! The OpenAPI document: paths and response schemas come from the handlers' annotations and
//! the wire types; the request schemas are built from the live model's feature list.

use utoipa::OpenApi;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, ServerBuilder};

use crate::wire;

use super::{routes, v2};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ml-serving",
        description = "Predictions from a tabular model over HTTP: the breast-cancer tutorial's API, done right."
    ),
    paths(
        routes::predict,
        routes::predict_batch,
        routes::info,
        routes::health,
        routes::ready,
        routes::metrics,
        v2::server_live,
        v2::server_ready,
        v2::server_metadata,
        v2::model_metadata,
        v2::model_version_metadata,
        v2::model_ready,
        v2::model_version_ready,
        v2::infer,
        v2::infer_version,
    ),
    components(schemas(
        wire::PredictResponse,
        wire::BatchResponse,
        wire::Answer,
        wire::HealthResponse,
        wire::InfoResponse,
        wire::ArtifactInfo,
        wire::ValidationErrorBody,
        wire::FieldError,
        wire::ErrorBody,
        v2::V2ErrorBody,
        v2::LiveResponse,
        v2::ReadyResponse,
        v2::ModelReadyResponse,
        v2::ServerMetadata,
        v2::ModelMetadata,
        v2::ModelParameters,
        v2::TensorMetadata,
        v2::InferenceRequest,
        v2::RequestInput,
        v2::RequestOutput,
        v2::InferenceResponse,
        v2::ResponseOutput,
        v2::TensorData,
    ))
)]
struct ApiDoc;

/// The document for a model with these features (each ≥ 0 when `nonnegative`).
pub fn document(
    features: &[String],
    sample: &[f64],
    nonnegative: bool,
) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    let mut row = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(if nonnegative {
            "One row: every feature of the model, each a finite number ≥ 0. Unknown fields are refused."
        } else {
            "One row: every feature of the model, each a finite number. Unknown fields are refused."
        }))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    let mut example = serde_json::Map::new();
    for (name, value) in features.iter().zip(sample) {
        row = row
            .property(
                name,
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(nonnegative.then_some(0.0)),
            )
            .required(name);
        example.insert(name.clone(), serde_json::json!(value));
    }
    let row = row.examples([serde_json::Value::Object(example)]).build();
    let rows = || {
        ArrayBuilder::new()
            .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "PredictRequest",
            )))
            .min_items(Some(1))
    };
    let batch = OneOfBuilder::new()
        .item(rows())
        .item(
            ObjectBuilder::new()
                .property("rows", rows())
                .required("rows")
                .additional_properties(Some(AdditionalProperties::FreeForm(false))),
        )
        .build();
    if let Some(components) = doc.components.as_mut() {
        components
            .schemas
            .insert("PredictRequest".to_string(), RefOr::T(Schema::Object(row)));
        components
            .schemas
            .insert("BatchRequest".to_string(), RefOr::T(Schema::OneOf(batch)));
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
    doc
}
