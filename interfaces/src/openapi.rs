//! The OpenAPI document (`GET /openapi.json`) and a self-contained docs page (`GET /docs`).

use axum::Json;
use utoipa::OpenApi;

/// The API description, assembled from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waymark",
        description = "Persistence for AI-agent runtimes: REST API and LangGraph remote checkpointer."
    ),
    paths(crate::http::health, crate::http::metrics_text),
    components(schemas(
        crate::http::error::ErrorEnvelope,
        crate::http::error::ErrorBody,
        crate::http::Health
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: renders `/openapi.json` in the browser without any external script or CDN.
pub const DOCS_HTML: &str = include_str!("docs.html");
