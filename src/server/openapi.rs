//! The OpenAPI document: paths and response schemas come from the handlers' annotations and
//! the wire types; the request schemas, and each model's own named-field routes, are built
//! from the registry's models, once per change of the registry.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::path::PathItem;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, ServerBuilder};

use crate::wire;

use super::registry::Snapshot;
use super::state::AppState;
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
        routes::models,
        routes::model_info,
        v2::server_live,
        v2::server_ready,
        v2::server_metadata,
        v2::model_metadata,
        v2::model_version_metadata,
        v2::model_ready,
        v2::model_version_ready,
        v2::infer,
        v2::infer_version,
        v2::repository_index,
        v2::repository_load,
        v2::repository_unload,
    ),
    components(schemas(
        wire::PredictResponse,
        wire::BatchResponse,
        wire::Answer,
        wire::HealthResponse,
        wire::InfoResponse,
        wire::ArtifactInfo,
        wire::ModelsResponse,
        wire::ModelStatus,
        wire::VersionStatus,
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
        v2::IndexEntry,
        v2::IndexRequest,
    ))
)]
struct ApiDoc;

/// The document for a server whose `/predict` serves a model with these features (each ≥ 0
/// when `nonnegative`).
pub fn document(
    features: &[String],
    sample: &[f64],
    nonnegative: bool,
) -> utoipa::openapi::OpenApi {
    let mut doc = base();
    add_schemas(&mut doc, "", features, sample, nonnegative);
    doc
}

/// The document for the models served now: `/predict` with the default model's schema, and
/// each model's and version's own named-field routes with theirs.
pub fn document_for(snapshot: &Snapshot, default: Option<&str>) -> utoipa::openapi::OpenApi {
    let mut doc = base();
    let default = default
        .and_then(|name| snapshot.models.get(name))
        .and_then(|m| m.latest());
    match default {
        Some(m) => add_schemas(
            &mut doc,
            "",
            m.features(),
            m.model.sample(),
            m.model.nonnegative_features(),
        ),
        None => add_schemas(&mut doc, "", &[], &[], false),
    }
    let single = doc.paths.paths.get("/predict").cloned();
    let batch = doc.paths.paths.get("/predict/batch").cloned();
    for (name, entry) in &snapshot.models {
        let mut routes = Vec::new();
        if let Some(latest) = entry.latest() {
            routes.push((format!("/models/{name}"), format!(".{name}"), latest));
        }
        for v in &entry.versions {
            let version = &v.served.version;
            routes.push((
                format!("/models/{name}/versions/{version}"),
                format!(".{name}.{version}"),
                &v.served,
            ));
        }
        for (prefix, suffix, model) in routes {
            add_schemas(
                &mut doc,
                &suffix,
                model.features(),
                model.model.sample(),
                model.model.nonnegative_features(),
            );
            let summary = format!("{name}, version {}", model.version);
            for (template, path) in [(&single, "/predict"), (&batch, "/predict/batch")] {
                if let Some(item) = template {
                    doc.paths.paths.insert(
                        format!("{prefix}{path}"),
                        for_model(item.clone(), &suffix, &summary),
                    );
                }
            }
        }
    }
    doc
}

/// `GET /openapi.json`: the document for the models served now (built once per change).
pub async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    let json = state.openapi_json(|snapshot| {
        serde_json::to_vec(&document_for(snapshot, state.registry().default_name()))
            .unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], json)
}

/// A copy of `/predict`'s (or `/predict/batch`'s) path item whose request schema is the
/// model's own (`PredictRequest<suffix>`, `BatchRequest<suffix>`).
fn for_model(mut item: PathItem, suffix: &str, summary: &str) -> PathItem {
    if let Some(op) = item.post.as_mut() {
        op.summary = Some(format!(
            "{} ({summary})",
            op.summary.clone().unwrap_or_default()
        ));
        op.operation_id = None;
        if let Some(body) = op.request_body.as_mut() {
            for content in body.content.values_mut() {
                if let Some(RefOr::Ref(r)) = &content.schema {
                    let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                    content.schema = Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        format!("{name}{suffix}"),
                    )));
                }
            }
        }
    }
    item
}

fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.servers = Some(vec![ServerBuilder::new().url("/").build()]);
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
    doc
}

/// `PredictRequest<suffix>` and `BatchRequest<suffix>` for a model with these features.
fn add_schemas(
    doc: &mut utoipa::openapi::OpenApi,
    suffix: &str,
    features: &[String],
    sample: &[f64],
    nonnegative: bool,
) {
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
    let row_name = format!("PredictRequest{suffix}");
    let rows = || {
        ArrayBuilder::new()
            .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                row_name.clone(),
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
            .insert(row_name.clone(), RefOr::T(Schema::Object(row)));
        components.schemas.insert(
            format!("BatchRequest{suffix}"),
            RefOr::T(Schema::OneOf(batch)),
        );
    }
}
