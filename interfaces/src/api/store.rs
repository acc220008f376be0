//! `/api/v1/store`: the namespaced key-value store (LangGraph `BaseStore`-like).
//!
//! The key-value port itself is not user-scoped, so the HTTP layer scopes it: a request with a
//! user works inside the namespace `("users", <user>, …)` and never sees the prefix; an
//! unscoped (administrative) request sees raw namespaces.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use waymark_domain::kv::{ItemNamespace, ItemSearch, NamespaceListing};
use waymark_domain::paging::Limit;
use waymark_domain::{ItemKey, JsonObject};

use super::dto::ItemDto;
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::state::AppState;

/// The labels a user's items live under.
fn user_prefix(caller: &Caller) -> Vec<String> {
    match caller.user() {
        Some(u) => vec!["users".to_owned(), u.as_str().to_owned()],
        None => Vec::new(),
    }
}

fn scoped(caller: &Caller, labels: Vec<String>) -> Vec<String> {
    let mut out = user_prefix(caller);
    out.extend(labels);
    out
}

fn namespace(caller: &Caller, labels: Vec<String>) -> ApiResult<ItemNamespace> {
    if labels.is_empty() {
        return Err(ApiError::bad_request(
            "invalid namespace: needs at least one label",
        ));
    }
    Ok(ItemNamespace::parse(scoped(caller, labels))?)
}

fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    let l = limit.unwrap_or(10);
    if l == 0 || l > 1000 {
        return Err(ApiError::bad_request(format!(
            "invalid limit: is {l}; 1 to 1000 items per page"
        )));
    }
    Ok(l)
}

/// `PUT /store/items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    /// Namespace labels, e.g. `["memories", "profile"]`.
    pub namespace: Vec<String>,
    /// The key.
    pub key: String,
    /// The value (a JSON object).
    #[schema(value_type = Object)]
    pub value: JsonObject,
    /// Expire after this many seconds.
    pub ttl_seconds: Option<u64>,
}

/// Addresses one item: `namespace` is the labels joined with `.`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// Labels joined with `.`, e.g. `memories.profile`.
    pub namespace: String,
    /// The key.
    pub key: String,
}

/// `POST /store/items/search`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchItems {
    /// Namespace prefix (empty: everything visible).
    #[serde(default)]
    pub prefix: Vec<String>,
    /// Exact matches on top-level value keys.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<JsonObject>,
    /// 1-1000 (default 10).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u64>,
}

/// `POST /store/namespaces`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListNamespaces {
    /// Only namespaces starting with these labels.
    #[serde(default)]
    pub prefix: Vec<String>,
    /// Only namespaces ending with these labels.
    #[serde(default)]
    pub suffix: Vec<String>,
    /// Truncate to this depth.
    pub max_depth: Option<u32>,
    /// 1-1000 (default 10).
    pub limit: Option<u32>,
    /// Namespaces to skip.
    pub offset: Option<u64>,
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    /// The items, by namespace then key.
    pub data: Vec<ItemDto>,
    /// More items match.
    pub has_more: bool,
}

/// A page of namespaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceList {
    /// The namespaces.
    pub data: Vec<Vec<String>>,
    /// More namespaces match.
    pub has_more: bool,
}

/// Insert or replace an item.
#[utoipa::path(put, path = "/api/v1/store/items", tag = "store", operation_id = "store_put", request_body = PutItem,
    responses((status = 200, body = ItemDto), (status = 400, body = ErrorEnvelope)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PutItem>,
) -> ApiResult<Json<ItemDto>> {
    let ns = namespace(&caller, body.namespace)?;
    let key = ItemKey::parse(body.key)?;
    let item = state
        .services
        .stores
        .items
        .put(&ns, &key, body.value, body.ttl_seconds)
        .await?;
    Ok(Json(ItemDto::of(item, user_prefix(&caller).len())))
}

fn address(caller: &Caller, q: ItemQuery) -> ApiResult<(ItemNamespace, ItemKey)> {
    let labels: Vec<String> = q.namespace.split('.').map(str::to_owned).collect();
    Ok((namespace(caller, labels)?, ItemKey::parse(q.key)?))
}

/// One item, unless missing or expired.
#[utoipa::path(get, path = "/api/v1/store/items", tag = "store", operation_id = "store_get", params(ItemQuery),
    responses((status = 200, body = ItemDto), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ItemQuery>,
) -> ApiResult<Json<ItemDto>> {
    let (ns, key) = address(&caller, q)?;
    match state.services.stores.items.get(&ns, &key).await? {
        Some(item) => Ok(Json(ItemDto::of(item, user_prefix(&caller).len()))),
        None => Err(ApiError::not_found(format!("item not found: {key}"))),
    }
}

/// Delete an item.
#[utoipa::path(delete, path = "/api/v1/store/items", tag = "store", operation_id = "store_delete", params(ItemQuery),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ItemQuery>,
) -> ApiResult<StatusCode> {
    let (ns, key) = address(&caller, q)?;
    if state.services.stores.items.delete(&ns, &key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("item not found: {key}")))
    }
}

/// Items under a namespace prefix matching a filter.
#[utoipa::path(post, path = "/api/v1/store/items/search", tag = "store", operation_id = "store_search", request_body = SearchItems,
    responses((status = 200, body = ItemList), (status = 400, body = ErrorEnvelope)))]
pub async fn search(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SearchItems>,
) -> ApiResult<Json<ItemList>> {
    let limit = page_limit(body.limit)?;
    let prefix = scoped(&caller, body.prefix);
    ItemNamespace::check_labels(&prefix)?;
    let query = ItemSearch {
        prefix,
        filter: body.filter.unwrap_or_default(),
        limit: Limit::new(limit + 1)?,
        offset: body.offset.unwrap_or(0),
    };
    let mut items = state.services.stores.items.search(&query).await?;
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let strip = user_prefix(&caller).len();
    Ok(Json(ItemList {
        data: items.into_iter().map(|i| ItemDto::of(i, strip)).collect(),
        has_more,
    }))
}

/// Distinct namespaces of live items.
#[utoipa::path(post, path = "/api/v1/store/namespaces", tag = "store", operation_id = "store_namespaces", request_body = ListNamespaces,
    responses((status = 200, body = NamespaceList), (status = 400, body = ErrorEnvelope)))]
pub async fn namespaces(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListNamespaces>,
) -> ApiResult<Json<NamespaceList>> {
    let limit = page_limit(body.limit)?;
    let strip = user_prefix(&caller).len();
    let prefix = scoped(&caller, body.prefix);
    ItemNamespace::check_labels(&prefix)?;
    ItemNamespace::check_labels(&body.suffix)?;
    let query = NamespaceListing {
        prefix,
        suffix: body.suffix,
        max_depth: body.max_depth.map(|d| d + strip as u32),
        limit: Limit::new(limit + 1)?,
        offset: body.offset.unwrap_or(0),
    };
    let mut list = state.services.stores.items.list_namespaces(&query).await?;
    let has_more = list.len() > limit as usize;
    list.truncate(limit as usize);
    Ok(Json(NamespaceList {
        data: list
            .into_iter()
            .map(|n| n.labels()[strip.min(n.labels().len())..].to_vec())
            .collect(),
        has_more,
    }))
}
