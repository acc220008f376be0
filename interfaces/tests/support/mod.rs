//! Shared helpers of the black-box tests: a server on a random port over its own database.
#![allow(dead_code)]

use std::sync::Arc;

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use waymark_domain::clock::SystemClock;
use waymark_interfaces::backend::Backend;
use waymark_interfaces::http::{AppState, ServerConfig, serve_on};

/// A running server; dropping it stops the server.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client.
    pub client: Client,
    /// The stores behind the server (to check that nothing was written).
    pub backend: Backend,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A server over fresh in-memory stores in administrative mode (requests without a user
/// run unscoped; those naming one are scoped to it).
pub async fn spawn_app() -> TestApp {
    spawn_with(
        Backend::memory_with_clock(Arc::new(SystemClock)),
        ServerConfig::admin(),
    )
    .await
}

/// A server over `backend` with `config`.
pub async fn spawn_with(backend: Backend, config: ServerConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a random port");
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(backend.clone(), config);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_on(state, listener, async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        base: format!("http://{addr}"),
        client: Client::new(),
        backend,
        stop: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has flushed and exited.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("graceful shutdown finishes")
                .expect("server task ends cleanly");
        }
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON and returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        read(
            self.client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POSTs raw bytes as JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        read(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// GETs and returns status and body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Sends a request built by `f`.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        read(req.send().await.unwrap()).await
    }
}

/// Status and JSON body (`Null` for an empty body, a string for non-JSON text).
pub async fn read(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

// -- PostgreSQL databases for one test -------------------------------------------------------

/// The test server's URL (`WAYMARK_TEST_POSTGRES_URL` or the local default).
pub fn postgres_url() -> String {
    let url = std::env::var("WAYMARK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    if !url.contains("sslmode=") && url.contains("@127.0.0.1") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    } else {
        url
    }
}

/// A new database on the test server for one test; `None` (with a visible `SKIPPED`) when no
/// server answers, unless `WAYMARK_REQUIRE_POSTGRES=1`.
pub async fn fresh_database(test: &str) -> Option<(String, String)> {
    use sea_orm::ConnectionTrait;
    let admin_url = postgres_url();
    let admin = match sea_orm::Database::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("WAYMARK_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("WAYMARK_REQUIRE_POSTGRES=1 but PostgreSQL does not answer: {e}");
            }
            println!(
                "SKIPPED {test}: PostgreSQL unavailable (set WAYMARK_REQUIRE_POSTGRES=1 to fail instead)"
            );
            return None;
        }
    };
    let name = format!("waymark_http_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let _ = admin.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin_url.clone(), String::new()),
    };
    let base = &base[..base.rfind('/').expect("a database path")];
    Some((format!("{base}/{name}{query}"), name))
}

pub async fn drop_database(name: &str) {
    use sea_orm::ConnectionTrait;
    if let Ok(admin) = sea_orm::Database::connect(&postgres_url()).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        let _ = admin.close().await;
    }
}
