//! The OpenAPI document (`GET /openapi.json`, utoipa 5) and a self-contained docs page
//! (`GET /docs`) that renders it in the browser without any external script or CDN.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Adds the optional bearer-token scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description, assembled from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Waymark",
        description = "Persistence for AI-agent runtimes. REST API under /api/v1 (every read and write is scoped to the X-Waymark-User header when sent; errors are {\"error\": {\"code\", \"message\"}}) and the LangGraph remote checkpointer protocol v1 under /checkpointer (errors are {\"error\", \"kind\"})."
    ),
    modifiers(&BearerAuth),
    security((), ("bearer" = [])),
    paths(
        crate::http::probes::health,
        crate::http::probes::metrics_text,
        crate::api::sessions::create,
        crate::api::sessions::list,
        crate::api::sessions::get,
        crate::api::sessions::update,
        crate::api::sessions::delete,
        crate::api::sessions::threads,
        crate::api::sessions::statistics,
        crate::api::sessions::apply_policy,
        crate::api::threads::create,
        crate::api::threads::list,
        crate::api::threads::search,
        crate::api::threads::get,
        crate::api::threads::update,
        crate::api::threads::delete,
        crate::api::threads::pin,
        crate::api::threads::unpin,
        crate::api::threads::state,
        crate::api::threads::checkpoint,
        crate::api::threads::history,
        crate::api::threads::summary,
        crate::api::threads::diff,
        crate::api::threads::rollback,
        crate::api::threads::fork,
        crate::api::threads::branches,
        crate::api::threads::delete_branch,
        crate::api::threads::create_snapshot,
        crate::api::threads::snapshots,
        crate::api::threads::snapshot_state,
        crate::api::threads::delete_snapshot,
        crate::api::messages::thread_messages,
        crate::api::messages::run_messages,
        crate::api::messages::history,
        crate::api::messages::feed,
        crate::api::messages::append_events,
        crate::api::messages::run_events,
        crate::api::messages::delete_run_events,
        crate::api::messages::list_streams,
        crate::api::messages::get_stream,
        crate::api::messages::delete_stream,
        crate::api::messages::record_frame,
        crate::api::messages::end_stream,
        crate::api::feedback::upsert,
        crate::api::feedback::create,
        crate::api::feedback::delete_mine,
        crate::api::feedback::list_for_run,
        crate::api::feedback::list_for_run_id,
        crate::api::feedback::list_for_thread,
        crate::api::feedback::stats,
        crate::api::feedback::delete_one,
        crate::api::runs::create,
        crate::api::runs::list,
        crate::api::runs::get,
        crate::api::runs::start,
        crate::api::runs::heartbeat,
        crate::api::runs::finish,
        crate::api::runs::cancel,
        crate::api::tokens::record,
        crate::api::tokens::stats,
        crate::api::store::put,
        crate::api::store::get,
        crate::api::store::delete,
        crate::api::store::search,
        crate::api::store::namespaces,
        crate::checkpointer::put,
        crate::checkpointer::put_writes,
        crate::checkpointer::get_tuple,
        crate::checkpointer::list,
        crate::checkpointer::delete_thread,
        crate::checkpointer::delete_for_runs,
        crate::checkpointer::copy_thread,
        crate::checkpointer::prune,
        crate::checkpointer::capabilities,
        crate::checkpointer::health
    ),
    components(schemas(
        crate::http::error::ErrorEnvelope, crate::http::error::ErrorBody, crate::http::probes::Health,
        crate::api::dto::PolicyDto, crate::api::dto::SessionDto, crate::api::dto::SessionList, crate::api::dto::ThreadDto, crate::api::dto::ThreadList,
        crate::api::dto::BranchDto, crate::api::dto::SnapshotDto, crate::api::dto::CheckpointEntry, crate::api::dto::CheckpointHistory, crate::api::dto::CheckpointState,
        crate::api::dto::SummaryDto, crate::api::dto::EventDto, crate::api::dto::MessagePage, crate::api::dto::FeedbackDto, crate::api::dto::FeedbackList,
        crate::api::dto::TokenUsageDto, crate::api::dto::TokenStatsDto, crate::api::dto::ChatStreamDto, crate::api::dto::ChatStreamSummaryDto, crate::api::dto::ItemDto,
        crate::api::sessions::PolicyIn, crate::api::sessions::CreateSession, crate::api::sessions::UpdateSession,
        crate::api::threads::CreateThread, crate::api::threads::UpdateThread, crate::api::threads::SearchThreads, crate::api::threads::RollbackRequest,
        crate::api::threads::ForkBody, crate::api::threads::ForkResponse, crate::api::threads::SnapshotBody,
        crate::api::messages::EventIn, crate::api::messages::AppendEvents, crate::api::messages::EventList, crate::api::messages::FrameIn,
        crate::api::feedback::FeedbackIn, crate::api::feedback::FeedbackStatsDto, crate::api::tokens::UsageIn,
        crate::api::dto::RunDto, crate::api::dto::RunListDto, crate::api::runs::CreateRun, crate::api::runs::StartRun, crate::api::runs::Heartbeat, crate::api::runs::FinishRun,
        crate::api::store::PutItem, crate::api::store::SearchItems, crate::api::store::ListNamespaces, crate::api::store::ItemList, crate::api::store::NamespaceList,
        crate::api::dto::DeletedCount, crate::api::dto::FeedItemDto, crate::api::dto::FeedPageDto, crate::api::dto::HistoryDto,
        crate::api::dto::RecordOutcomeDto, crate::api::dto::PersistOutcomeDto, crate::api::dto::MessageChangeDto, crate::api::dto::MessageDiffDto,
        crate::api::dto::ChannelChangeDto, crate::api::dto::CheckpointDiffDto,
        crate::api::dto::ThreadSummaryFigures, crate::api::dto::ThreadStatsDto, crate::api::dto::SessionStatsDto,
        crate::api::dto::RemovedCheckpointsDto, crate::api::dto::RetentionOutcomeDto, crate::api::dto::PolicyReportDto
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`.
pub const DOCS_HTML: &str = include_str!("docs.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_family_is_documented() {
        let doc = ApiDoc::openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for want in [
            "/health",
            "/api/v1/threads/{thread_id}/checkpoints",
            "/api/v1/messages/streams/{thread_id}",
            "/api/v1/threads/{thread_id}/runs/{run_id}/feedback",
            "/api/v1/threads/{thread_id}/runs",
            "/api/v1/threads/{thread_id}/runs/{run_id}/heartbeat",
            "/checkpointer/put",
        ] {
            assert!(paths.iter().any(|p| p.as_str() == want), "{want} missing");
        }
        let json = serde_json::to_string(&doc).unwrap();
        assert!(json.contains("ErrorEnvelope"));
    }
}
