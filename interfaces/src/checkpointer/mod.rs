//! The remote checkpointer protocol, version 1 (spec `remote-checkpointer-protocol.md`),
//! mounted under `/checkpointer` over `Stores.checkpoints` of whatever backend the server
//! opened.
//!
//! Division of labour (spec §1): the Python client serializes values, merges metadata with the
//! config and generates ids and versions; this server validates shapes and hands domain values
//! to the checkpoint port, whose stores own every storage rule (LangGraph's PostgreSQL layout
//! drops a top-level `"writes"` metadata key, its SQLite layout refuses value tags its blob
//! cannot embed and filter keys `json_extract` cannot use, PostgreSQL refuses U+0000 in
//! filters). The handlers know no engine or layout: they ask the store for its
//! [`CheckpointCapabilities`] to report its filter semantics and to refuse input the store
//! would refuse *before* claiming a thread or listing the caller's threads.
//!
//! Ownership (the same model as the REST API): every handler resolves the caller like REST
//! does ([`Caller::resolve`]: header, per-user token, or the explicit admin mode). Writes
//! (`put`, `put_writes`, the `copy_thread` target) claim the thread id for the caller; a
//! thread owned by someone else, owner-less or row-less answers `LookupError` (404) and
//! nothing is written. Reads and deletes of a thread the caller does not own behave exactly
//! as for a thread that does not exist: `get_tuple` answers `null`, `list` `[]`, and
//! `delete_thread`, `delete_for_runs`, `prune` and a `copy_thread` source change nothing. A
//! `list` without a thread lists only the caller's threads; `delete_for_runs` deletes only
//! runs whose checkpoints all lie in the caller's threads.
//!
//! Errors use the protocol's own envelope `{"error": "…", "kind": "<PythonException>"}`
//! (spec §5), not the REST API's, because the client re-raises `kind` as a Python builtin.

pub mod codec;
pub mod error;
pub mod msgpack;
pub mod wire;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use waymark_domain::checkpoint::{
    CheckpointCapabilities, CheckpointMetadata, CheckpointPut, CheckpointQuery, CheckpointRef,
    FilterSemantics, PruneStrategy, WriteBatch,
};
use waymark_domain::{ChannelName, CheckpointNamespace, RunId, TaskId, ThreadId};

use waymark_application::Access;
use waymark_domain::paging::OffsetPage;
use waymark_domain::thread::ThreadQuery;
use waymark_domain::{UserScope, checkpoint::CheckpointTuple};

use crate::http::caller::Caller;
use crate::http::state::AppState;
use codec::{Answer, ProtoBody};
pub use error::ProtoError;
use error::{invalid, type_error, value_error};
use wire::{Obj, WireConfig, member};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The optional operations every Waymark backend implements.
pub const CAPABILITIES: [&str; 3] = ["delete_for_runs", "copy_thread", "prune"];

type ProtoResult = Result<Answer, ProtoError>;

/// The caller of a checkpointer request, resolved exactly as for REST; rejections use the
/// protocol envelope (`PermissionError` for 401/403, `ValueError` for a malformed header).
#[derive(Debug, Clone)]
pub struct ProtoCaller(pub UserScope);

impl axum::extract::FromRequestParts<AppState> for ProtoCaller {
    type Rejection = ProtoError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ProtoError> {
        match Caller::resolve(parts, &state.config) {
            Ok(c) => Ok(Self(c.scope)),
            Err(r) if r.status == StatusCode::BAD_REQUEST => Err(value_error(r.message)),
            Err(r) => Err(ProtoError::new(r.status, "PermissionError", r.message)),
        }
    }
}

/// Whether the scope may read the thread (its own; anything when unscoped).
async fn may_read(
    state: &AppState,
    scope: &UserScope,
    thread: &ThreadId,
) -> Result<bool, ProtoError> {
    Ok(state
        .services
        .threads
        .check_access(scope, thread, Access::Read)
        .await?)
}

/// Every thread id the user owns (pages of 1000).
async fn owned_threads(state: &AppState, scope: &UserScope) -> Result<Vec<ThreadId>, ProtoError> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let query = ThreadQuery {
            filter: Default::default(),
            status: None,
            session_id: None,
            page: OffsetPage::new(1000, offset)?,
        };
        let page = state.services.threads.search(scope, &query).await?;
        offset += page.items.len() as u64;
        out.extend(page.items.into_iter().map(|t| t.id));
        if !page.has_more {
            return Ok(out);
        }
    }
}

fn config_member<'a>(obj: &'a Obj, key: &str) -> Result<Option<&'a Obj>, ProtoError> {
    wire::opt_obj(obj, key, "")
}

fn required_config(obj: &Obj) -> Result<WireConfig, ProtoError> {
    let c = config_member(obj, "config")?
        .ok_or_else(|| value_error("missing required member config"))?;
    WireConfig::parse(c, "config.")
}

/// The routes, relative to `/checkpointer`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/put", post(put))
        .route("/put_writes", post(put_writes))
        .route("/get_tuple", post(get_tuple))
        .route("/list", post(list))
        .route("/delete_thread", post(delete_thread))
        .route("/delete_for_runs", post(delete_for_runs))
        .route("/copy_thread", post(copy_thread))
        .route("/prune", post(prune))
        .route("/capabilities", get(capabilities))
        .route("/health", get(health))
        .fallback(unknown)
        .method_not_allowed_fallback(unknown)
        .layer(axum::middleware::from_fn(check_protocol_version))
}

/// The header a client may send to choose a protocol version (spec §2).
pub const VERSION_HEADER: &str = "waymark-protocol";

/// Refuses a request for a protocol version this server does not speak, instead of
/// answering it in a shape the client would misread.
async fn check_protocol_version(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(v) = req.headers().get(VERSION_HEADER) {
        let asked = v.to_str().unwrap_or("").trim();
        if asked != PROTOCOL_VERSION.to_string() {
            return value_error(format!(
                "unsupported protocol version {asked:?}; this server speaks version {PROTOCOL_VERSION}"
            ))
            .into_response();
        }
    }
    next.run(req).await
}

async fn unknown(req: axum::extract::Request) -> ProtoError {
    ProtoError::new(
        StatusCode::NOT_FOUND,
        "LookupError",
        format!(
            "no checkpointer operation {} {}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// Store one checkpoint (protocol §4.1). Body: {config, checkpoint, metadata, new_versions}.
#[utoipa::path(post, path = "/checkpointer/put", tag = "checkpointer", operation_id = "checkpointer_put", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn put(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, mut bins, reply) = body.into_parts();
    let config = required_config(&obj)?;
    let checkpoint_obj = wire::req_obj(&obj, "checkpoint", "")?;
    let checkpoint = wire::parse_checkpoint_in(checkpoint_obj, &mut bins)?;
    bins.finish()?;
    let metadata = wire::opt_obj(&obj, "metadata", "")?
        .cloned()
        .unwrap_or_default();
    let new_versions =
        wire::parse_versions(wire::opt_obj(&obj, "new_versions", "")?, "new_versions")?;
    // Everything is parsed: free the request tree before the store copies the payloads.
    drop(obj);
    let namespace = config.namespace_or_root();
    let request = CheckpointPut {
        thread_id: config.thread_id,
        namespace,
        parent_id: config.checkpoint_id,
        checkpoint,
        metadata: CheckpointMetadata(metadata),
        new_versions,
    };
    let checkpoints = &state.services.stores.checkpoints;
    // Refused input claims nothing: the store's rules are checked before the claim.
    request.validate()?;
    checkpoints.capabilities().check_put(&request)?;
    state
        .services
        .threads
        .claim(&scope, &request.thread_id)
        .await?;
    let stored = checkpoints.put(request).await?;
    Ok(reply.json(json!({
        "config": wire::config_json(&stored.thread_id, &stored.namespace, &stored.checkpoint_id)
    })))
}

/// Store pending writes of one task (protocol §4.2). Body: {config, writes, task_id, task_path}.
#[utoipa::path(post, path = "/checkpointer/put_writes", tag = "checkpointer", operation_id = "checkpointer_put_writes", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn put_writes(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, mut bins, reply) = body.into_parts();
    let config = required_config(&obj)?;
    let checkpoint_id = config.checkpoint_id.clone().ok_or_else(|| {
        value_error("config.checkpoint_id is required: the checkpoint the writes belong to")
    })?;
    let task_id = TaskId::parse(wire::req_str(&obj, "task_id", "")?).map_err(invalid)?;
    let task_path = wire::opt_str(&obj, "task_path", "")?
        .unwrap_or("")
        .to_owned();
    if task_path.contains('\0') {
        return Err(value_error("task_path contains a NUL character"));
    }
    let writes = match member(&obj, "writes") {
        None => return Err(value_error("missing required member writes")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(type_error("writes must be an array of {channel, value}")),
    };
    let mut parsed = Vec::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        let ctx = format!("writes[{i}]");
        let Value::Object(w) = w else {
            return Err(type_error(format!(
                "{ctx} must be an object {{channel, value}}"
            )));
        };
        let channel = ChannelName::parse(wire::req_str(w, "channel", &format!("{ctx}."))?)
            .map_err(|e| value_error(format!("{ctx}: {e}")))?;
        let value = match member(w, "value") {
            Some(v) => wire::parse_value_in(v, &format!("{ctx}.value"), &mut bins)?,
            None => return Err(value_error(format!("missing required member {ctx}.value"))),
        };
        parsed.push((channel, value));
    }
    bins.finish()?;
    drop(obj);
    if parsed.is_empty() {
        // Nothing to write: answer as for any thread, without claiming it.
        return Ok(reply.json(json!({})));
    }
    state
        .services
        .threads
        .claim(&scope, &config.thread_id)
        .await?;
    let batch = WriteBatch {
        target: CheckpointRef {
            thread_id: config.thread_id.clone(),
            namespace: config.namespace_or_root(),
            checkpoint_id,
        },
        task_id,
        task_path,
        writes: parsed,
    };
    state.services.stores.checkpoints.put_writes(batch).await?;
    Ok(reply.json(json!({})))
}

/// The requested or latest checkpoint with its pending writes (protocol §4.3).
#[utoipa::path(post, path = "/checkpointer/get_tuple", tag = "checkpointer", operation_id = "checkpointer_get_tuple", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn get_tuple(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let config = required_config(&obj)?;
    let ns = config.namespace_or_root();
    if !may_read(&state, &scope, &config.thread_id).await? {
        return Ok(reply.tuple(None));
    }
    let tuple = state
        .services
        .stores
        .checkpoints
        .get_tuple(&config.thread_id, &ns, config.checkpoint_id.clone())
        .await?;
    Ok(reply.tuple(tuple.as_ref()))
}

/// Matching checkpoints, newest first (protocol §4.4). Body: {config, filter, before, limit}.
#[utoipa::path(post, path = "/checkpointer/list", tag = "checkpointer", operation_id = "checkpointer_list", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn list(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let mut query = CheckpointQuery::default();
    if let Some(c) = config_member(&obj, "config")? {
        let c = WireConfig::parse(c, "config.")?;
        query.thread_id = Some(c.thread_id);
        query.namespace = c.namespace;
        query.checkpoint_id = c.checkpoint_id;
    }
    if let Some(filter) = wire::opt_obj(&obj, "filter", "")? {
        // Checked here as well as in the store: a scoped list may never reach the store (no
        // readable thread), and a bad filter is refused the same way either way.
        state
            .services
            .stores
            .checkpoints
            .capabilities()
            .check_filter(filter)?;
        query.filter = filter.clone();
    }
    if let Some(before) = config_member(&obj, "before")? {
        query.before = wire::opt_str(before, "checkpoint_id", "before.")?
            .filter(|s| !s.is_empty())
            .map(waymark_domain::CheckpointId::parse)
            .transpose()
            .map_err(invalid)?;
    }
    query.limit = match member(&obj, "limit") {
        None => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) | None => {
                return Err(value_error(format!(
                    "limit must be null or an integer >= 1, not {n}"
                )));
            }
            Some(l) => Some(u32::try_from(l).unwrap_or(u32::MAX)),
        },
        Some(other) => {
            return Err(value_error(format!(
                "limit must be null or an integer >= 1, not {other}"
            )));
        }
    };
    let tuples = scoped_list(&state, &scope, query).await?;
    Ok(reply.tuples(&tuples))
}

/// `list` under a scope: one thread only when the caller may read it; across threads, the
/// caller's threads only, merged newest first (checkpoint ids sort by time) and cut at the
/// limit.
async fn scoped_list(
    state: &AppState,
    scope: &UserScope,
    query: CheckpointQuery,
) -> Result<Vec<CheckpointTuple>, ProtoError> {
    let checkpoints = &state.services.stores.checkpoints;
    if *scope == UserScope::Unscoped {
        return Ok(checkpoints.list(&query).await?);
    }
    if let Some(thread) = &query.thread_id {
        if !may_read(state, scope, thread).await? {
            return Ok(Vec::new());
        }
        return Ok(checkpoints.list(&query).await?);
    }
    let mut all = Vec::new();
    for thread in owned_threads(state, scope).await? {
        let mut q = query.clone();
        q.thread_id = Some(thread);
        all.extend(checkpoints.list(&q).await?);
    }
    all.sort_by(|a, b| b.checkpoint.id.cmp(&a.checkpoint.id));
    if let Some(limit) = query.limit {
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(all)
}

/// Delete every checkpoint and write of a thread (protocol §4.5).
#[utoipa::path(post, path = "/checkpointer/delete_thread", tag = "checkpointer", operation_id = "checkpointer_delete_thread", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn delete_thread(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let thread = ThreadId::parse(wire::req_str(&obj, "thread_id", "")?).map_err(invalid)?;
    if !may_read(&state, &scope, &thread).await? {
        // As for a thread that does not exist: nothing to delete.
        return Ok(reply.json(json!({})));
    }
    state
        .services
        .stores
        .checkpoints
        .delete_thread(&thread)
        .await?;
    Ok(reply.json(json!({})))
}

/// Delete the checkpoints of the given runs (protocol §4.6).
#[utoipa::path(post, path = "/checkpointer/delete_for_runs", tag = "checkpointer", operation_id = "checkpointer_delete_for_runs", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn delete_for_runs(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let run_ids = wire::req_str_array(&obj, "run_ids")?
        .into_iter()
        .map(RunId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let run_ids = runs_in_scope(&state, &scope, run_ids).await?;
    if !run_ids.is_empty() {
        state
            .services
            .stores
            .checkpoints
            .delete_for_runs(run_ids)
            .await?;
    }
    Ok(reply.json(json!({})))
}

/// The runs a scope may delete: unscoped, all; a user, the runs whose checkpoints all lie in
/// threads the user owns (another user's run is left alone, as a run that does not exist).
async fn runs_in_scope(
    state: &AppState,
    scope: &UserScope,
    run_ids: Vec<RunId>,
) -> Result<Vec<RunId>, ProtoError> {
    if *scope == UserScope::Unscoped {
        return Ok(run_ids);
    }
    let mut kept = Vec::with_capacity(run_ids.len());
    for run in run_ids {
        let mut query = CheckpointQuery::default();
        query
            .filter
            .insert("run_id".into(), Value::String(run.as_str().to_owned()));
        let tuples = state.services.stores.checkpoints.list(&query).await?;
        let mut all_mine = true;
        let mut seen: Vec<&ThreadId> = Vec::new();
        for t in &tuples {
            if seen.contains(&&t.thread_id) {
                continue;
            }
            seen.push(&t.thread_id);
            if !may_read(state, scope, &t.thread_id).await? {
                all_mine = false;
                break;
            }
        }
        if all_mine {
            kept.push(run);
        }
    }
    Ok(kept)
}

/// Copy a thread's checkpoints and writes to another thread (protocol §4.7).
#[utoipa::path(post, path = "/checkpointer/copy_thread", tag = "checkpointer", operation_id = "checkpointer_copy_thread", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn copy_thread(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let source = ThreadId::parse(wire::req_str(&obj, "source_thread_id", "")?).map_err(invalid)?;
    let target = ThreadId::parse(wire::req_str(&obj, "target_thread_id", "")?).map_err(invalid)?;
    if !may_read(&state, &scope, &source).await? {
        // A source the caller may not read copies nothing, as a missing source does.
        return Ok(reply.json(json!({})));
    }
    state.services.threads.claim(&scope, &target).await?;
    state
        .services
        .stores
        .checkpoints
        .copy_thread(&source, &target)
        .await?;
    Ok(reply.json(json!({})))
}

/// Prune threads: keep_latest or delete (protocol §4.8).
#[utoipa::path(post, path = "/checkpointer/prune", tag = "checkpointer", operation_id = "checkpointer_prune", request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn prune(
    State(state): State<AppState>,
    ProtoCaller(scope): ProtoCaller,
    body: ProtoBody,
) -> ProtoResult {
    let (obj, reply) = body.plain()?;
    let thread_ids = wire::req_str_array(&obj, "thread_ids")?
        .into_iter()
        .map(ThreadId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let strategy = match member(&obj, "strategy") {
        None => PruneStrategy::KeepLatest,
        Some(Value::String(s)) => s.parse::<PruneStrategy>().map_err(invalid)?,
        Some(other) => {
            return Err(value_error(format!(
                "strategy must be \"keep_latest\" or \"delete\", not {other}"
            )));
        }
    };
    let mut mine = Vec::with_capacity(thread_ids.len());
    for t in thread_ids {
        // Another user's thread is left alone, as one that does not exist.
        if may_read(&state, &scope, &t).await? {
            mine.push(t);
        }
    }
    let thread_ids = mine;
    if !thread_ids.is_empty() {
        state
            .services
            .stores
            .checkpoints
            .prune(thread_ids, strategy)
            .await?;
    }
    Ok(reply.json(json!({})))
}

/// Protocol version, optional operations, backend and filter semantics (protocol §4.9).
#[utoipa::path(get, path = "/checkpointer/capabilities", tag = "checkpointer", operation_id = "checkpointer_capabilities",
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn capabilities(State(state): State<AppState>) -> Json<Value> {
    let store: CheckpointCapabilities = state.services.stores.checkpoints.capabilities();
    Json(json!({
        "protocol_version": PROTOCOL_VERSION,
        "capabilities": CAPABILITIES,
        "backend": state.backend.engine().as_str(),
        "filter_semantics": filter_semantics_name(store.filter_semantics),
        "content_types": codec::CONTENT_TYPES,
    }))
}

/// The protocol's name for a filter rule (§4.9): `"containment"` or `"sqlite"`.
pub fn filter_semantics_name(semantics: FilterSemantics) -> &'static str {
    match semantics {
        FilterSemantics::Containment => "containment",
        FilterSemantics::SqliteJsonExtract => "sqlite",
    }
}

/// Whether the checkpoint store answers a cheap read.
pub async fn probe_storage(state: &AppState) -> bool {
    let probe = ThreadId::parse("__waymark_health_probe__").expect("a valid thread id");
    let result = state
        .services
        .stores
        .checkpoints
        .get_tuple(&probe, &CheckpointNamespace::root(), None)
        .await;
    if let Err(e) = &result {
        tracing::warn!(error = %e, "storage probe failed");
    }
    result.is_ok()
}

/// 200 {"ok": true} once storage is reachable; 503 otherwise (protocol §4.10).
#[utoipa::path(get, path = "/checkpointer/health", tag = "checkpointer", operation_id = "checkpointer_health",
    responses((status = 200, body = Object, description = "success"), (status = 400, body = Object, description = "{\"error\", \"kind\": \"ValueError\" | \"TypeError\"}")))]
pub async fn health(State(state): State<AppState>) -> Response {
    if probe_storage(&state).await {
        Json(json!({"ok": true})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"ok": false, "error": "storage is unreachable", "kind": "ConnectionError"}),
            ),
        )
            .into_response()
    }
}
