//! The command line: `serve`, `migrate`, the inspection commands (`threads`, `history`, `show`,
//! `diff`, `messages`) and the transfer commands (`export`, `import`, `copy`).
//!
//! Every command takes `--database-url` (env `WAYMARK_DATABASE_URL`), so each works on a
//! native database, an in-memory server's data is out of reach by nature, and a LangGraph
//! SQLite file or PostgreSQL database is read through `langgraph+sqlite://` /
//! `langgraph+postgres://`. Output is a human-readable table by default and JSON with `--json`.
//!
//! Read commands open the database read-only ([`DbArgs::open_read_only`]) and change nothing
//! in it; the commands that write (`serve`, `migrate`, `chown`, `import`, `copy --to`) say so
//! in their help and open it read-write, creating and migrating Waymark's tables.

pub mod config_file;
mod inspect;
mod transfer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use waymark_application::ApplicationError;
use waymark_domain::DomainError;

use crate::backend::{self, Backend, BackendError, DatabaseUrl};
use crate::http;
use crate::http::state::{AppState, ServerConfig};

/// A failed command: what to print and the exit status.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A failure (exit status 1).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// Bad arguments (exit status 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    /// The process exit status.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<DomainError> for CliError {
    fn from(e: DomainError) -> Self {
        if e.is_invalid_input() {
            Self::usage(e.to_string())
        } else {
            Self::new(e.to_string())
        }
    }
}

impl From<ApplicationError> for CliError {
    fn from(e: ApplicationError) -> Self {
        match e {
            ApplicationError::Domain(d) => d.into(),
            other => Self::new(other.to_string()),
        }
    }
}

impl From<BackendError> for CliError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::UnknownScheme(_) | BackendError::Invalid(_) => Self::usage(e.to_string()),
            _ => Self::new(e.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e.to_string())
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Waymark: persistence for AI-agent runtimes (sessions, threads, checkpoints, history),
/// readable by Python LangGraph too.
#[derive(Debug, Parser)]
#[command(name = "waymark", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WAYMARK_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// More log output on stderr: `-v` info, `-vv` debug, `-vvv` trace (default: warn, or
    /// info for `serve`; `RUST_LOG` overrides both).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The database a command works on.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// sqlite://PATH, postgres://…, memory://, langgraph+sqlite://PATH or langgraph+postgres://…
    #[arg(long, env = "WAYMARK_DATABASE_URL", default_value = DatabaseUrl::DEFAULT)]
    pub database_url: String,
}

impl DbArgs {
    /// Opens the database to write: creates a missing SQLite file and migrates Waymark's
    /// tables (the write commands: `migrate`, `chown`, `import`, `copy --to`, `serve`).
    pub async fn open(&self) -> CliResult<Backend> {
        Ok(backend::open(&self.database_url).await?)
    }

    /// Opens the database for reading only, changing nothing in it (the read commands:
    /// `threads`, `history`, `show`, `diff`, `messages`, `export`, `copy --from`); see
    /// [`backend::open_read_only`].
    pub async fn open_read_only(&self) -> CliResult<Backend> {
        Ok(backend::open_read_only(&self.database_url).await?)
    }
}

/// Output switches shared by the read commands.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The commands. Read commands open the database read-only and change nothing in it (no
/// file created, no migration, no LangGraph setup); the commands that write say so.
// The serve arguments are the largest variant by far; the value is parsed once per process,
// so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: REST API under /api/v1, remote checkpointer under /checkpointer
    /// (writes: creates and migrates the database).
    Serve(ServeArgs),
    /// Create or upgrade the schema of a database, then exit (writes).
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// List threads (thread records and threads that only have checkpoints).
    Threads(inspect::ThreadsArgs),
    /// A thread's checkpoints, newest first, with step, source and pending writes.
    History(inspect::HistoryArgs),
    /// The state at a checkpoint (the latest by default), values decoded.
    Show(inspect::ShowArgs),
    /// What changed between two checkpoints (`THREAD` or `THREAD@CHECKPOINT`).
    Diff(inspect::DiffArgs),
    /// A thread's messages from the run-event log (or its latest checkpoint).
    Messages(inspect::MessagesArgs),
    /// Assign a thread's owner (administrative): owner-less and row-less threads (legacy
    /// data, checkpoints a Python process wrote directly) become visible to that user
    /// (writes: migrates the database).
    Chown(ChownArgs),
    /// Write everything (or some threads) as JSON lines, payload bytes in base64.
    Export(transfer::ExportArgs),
    /// Read JSON lines written by `export` (writes: creates and migrates the database).
    Import(transfer::ImportArgs),
    /// Copy threads and their checkpoints between two databases, resumably, then verify
    /// (reads --from without changing it; writes --to, creating and migrating it).
    Copy(transfer::CopyArgs),
}

/// `waymark chown`.
#[derive(Debug, Args)]
pub struct ChownArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The thread id.
    thread: String,
    /// The new owner; omit with --no-owner to make the thread owner-less (admin-only).
    #[arg(required_unless_present = "no_owner", conflicts_with = "no_owner")]
    user: Option<String>,
    /// Clear the owner instead.
    #[arg(long)]
    no_owner: bool,
}

async fn chown(a: ChownArgs) -> CliResult {
    use waymark_domain::thread::ThreadUpdate;
    use waymark_domain::{ThreadId, UserId, UserScope};
    let id = ThreadId::parse(a.thread.as_str())?;
    let owner = a.user.as_deref().map(UserId::parse).transpose()?;
    let backend = a.db.open().await?;
    let threads = &backend.stores.threads;
    // An administrative claim gives a row-less thread its (owner-less) row first.
    threads.claim(&UserScope::Unscoped, &id).await?;
    let update = ThreadUpdate {
        owner: Some(owner),
        ..ThreadUpdate::default()
    };
    let t = threads.update(&UserScope::Unscoped, &id, update).await?;
    match &t.owner {
        Some(o) => println!("thread {} is now owned by {o}", t.id),
        None => println!("thread {} now has no owner (admin-only)", t.id),
    }
    Ok(())
}

/// `waymark serve`. Every long flag here is also a key of the `--config` file
/// ([`config_file`]), named by its field.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file of serve settings, one key per flag named like the flag with `_`
    /// (`max_body_bytes = 1048576`, `user_tokens = ["alice=t1"]`); flags and environment
    /// variables win over it.
    #[arg(long, env = config_file::CONFIG_ENV)]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// The address to listen on.
    #[arg(long, env = "WAYMARK_BIND", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,
    /// Protocol-harness form (remote checkpointer spec §9.2): `sqlite` or `pg`, storing
    /// checkpoints in LangGraph's own layout; replaces --database-url.
    #[arg(long, value_parser = ["sqlite", "pg"], requires_ifs = [("sqlite", "sqlite_path"), ("pg", "pg_dsn")])]
    backend: Option<String>,
    /// Protocol-harness form: listen on 127.0.0.1:PORT; replaces --bind.
    #[arg(long)]
    port: Option<u16>,
    /// Protocol-harness form: the SQLite file (with --backend sqlite).
    #[arg(long)]
    sqlite_path: Option<PathBuf>,
    /// Protocol-harness form: the PostgreSQL DSN (with --backend pg).
    #[arg(long)]
    pg_dsn: Option<String>,
    /// The shared service token: require `Authorization: Bearer <token>` on every request
    /// except probes and docs; the X-Waymark-User header then names the user (for a trusted
    /// gateway in front of the server).
    #[arg(long, env = "WAYMARK_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// A per-user token, `USER=TOKEN` (repeatable): the token itself binds the user; a
    /// header naming anyone else is refused (403). Env: comma-separated list.
    #[arg(
        long = "user-token",
        env = "WAYMARK_USER_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    user_tokens: Vec<String>,
    /// A file of per-user tokens, one `USER=TOKEN` a line (`#` comments, blank lines
    /// ignored).
    #[arg(long, env = "WAYMARK_USER_TOKENS_FILE")]
    user_tokens_file: Option<PathBuf>,
    /// Administrative mode: requests that name no user run unscoped (every thread, owner-less
    /// and row-less ones included) instead of failing with 401. Off by default.
    #[arg(long, env = "WAYMARK_ADMIN_UNSCOPED")]
    admin_unscoped: bool,
    /// Accepted for compatibility: a user is now always required unless --admin-unscoped.
    #[arg(long, hide = true, conflicts_with = "admin_unscoped")]
    require_user: bool,
    /// The largest REST request body in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// The largest checkpointer request body in bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_checkpoint_body_bytes: usize,
    /// Bytes of request bodies all requests in flight may hold together; a body beyond it
    /// is answered 503 with Retry-After. At least the larger of the two body limits.
    #[arg(long, env = "WAYMARK_MAX_INFLIGHT_BODY_BYTES", default_value_t = 512 * 1024 * 1024)]
    max_inflight_body_bytes: usize,
    /// How long a client may take to send a request head, from connecting or from the first
    /// byte of a request (`10s`, `500ms`, `1m`); then the connection is closed.
    #[arg(long, env = "WAYMARK_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// How long a request body may take to arrive completely; then the request is answered
    /// 408 and the connection closed.
    #[arg(long, env = "WAYMARK_BODY_READ_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "WAYMARK_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog until one
    /// closes (lowered, with a warning, when the open-file limit cannot carry it).
    #[arg(long, env = "WAYMARK_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Chat-stream persistence on or off (off: the chat-stream routes answer 503 and nothing
    /// is buffered or stored).
    #[arg(long, env = "WAYMARK_CHAT_STREAMS", default_value_t = true, action = clap::ArgAction::Set)]
    chat_streams: bool,
    /// Chat-stream records last appended more than this many days ago are purged by the
    /// server's housekeeping; 0 keeps them forever.
    #[arg(long, env = "WAYMARK_CHAT_STREAM_RETENTION_DAYS", default_value_t = 30)]
    chat_stream_retention_days: u32,
    /// Bytes of chat-stream frames buffered across all threads; a frame beyond it is refused
    /// with 503 (after persisting its own thread's buffer, if it had one). At least 8 MiB,
    /// one thread's buffer.
    #[arg(long, env = "WAYMARK_CHAT_STREAM_BUFFER_BUDGET_BYTES", default_value_t = 256 * 1024 * 1024)]
    chat_stream_buffer_budget_bytes: usize,
}

/// Parses a duration such as `10s`, `500ms` or `1m 30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write e.g. 10s, 500ms or 2m)"))
}

/// The log level when `RUST_LOG` is unset: `warn` for one-shot commands (no migration or
/// connection chatter on every run), `info` for `serve`; each `-v` raises it one step.
pub fn default_log_level(cli: &Cli) -> &'static str {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let base = if matches!(cli.command, Command::Serve(_)) {
        2
    } else {
        1
    };
    LEVELS[(base + usize::from(cli.verbose)).min(LEVELS.len() - 1)]
}

/// Sets up the tracing subscriber (`RUST_LOG` filters; default [`default_log_level`]).
pub fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_level(cli)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate { db } => {
            let backend = db.open().await?;
            println!("{} is migrated and ready", backend.url);
            Ok(())
        }
        Command::Threads(a) => inspect::threads(a).await,
        Command::History(a) => inspect::history(a).await,
        Command::Show(a) => inspect::show(a).await,
        Command::Diff(a) => inspect::diff(a).await,
        Command::Messages(a) => inspect::messages(a).await,
        Command::Chown(a) => chown(a).await,
        Command::Export(a) => transfer::export(a).await,
        Command::Import(a) => transfer::import(a).await,
        Command::Copy(a) => transfer::copy(a).await,
    }
}

async fn serve(args: ServeArgs) -> CliResult {
    let config = server_config(&args)?;
    let url = match args.backend.as_deref() {
        Some("sqlite") => format!(
            "langgraph+sqlite://{}",
            args.sqlite_path
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        ),
        Some(_) => format!("langgraph+{}", args.pg_dsn.clone().unwrap_or_default()),
        None => args.db.database_url.clone(),
    };
    let bind = match args.port {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        None => args.bind,
    };
    let backend = backend::open(&url).await?;
    let state = AppState::new(backend, config);
    state
        .services
        .reconcile_runs()
        .await
        .map_err(|e| CliError::new(format!("run reconciliation failed: {e}")))?;
    http::serve(state, bind)
        .await
        .map_err(|e| CliError::new(format!("cannot serve on {bind}: {e}")))
}

/// The server settings `serve` runs with, validated: a bad value is a usage error before
/// anything is opened or bound.
pub fn server_config(args: &ServeArgs) -> CliResult<ServerConfig> {
    let mut token_specs = args.user_tokens.clone();
    if let Some(path) = &args.user_tokens_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::usage(format!(
                "cannot read --user-tokens-file {}: {e}",
                path.display()
            ))
        })?;
        token_specs.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let user_tokens = parse_user_tokens(&token_specs)?;
    let _ = args.require_user;
    let config = ServerConfig {
        auth_token: args.auth_token.clone().filter(|t| !t.is_empty()),
        user_tokens,
        admin_unscoped: args.admin_unscoped,
        max_body_bytes: args.max_body_bytes,
        max_checkpoint_body_bytes: args.max_checkpoint_body_bytes,
        max_inflight_body_bytes: args.max_inflight_body_bytes,
        header_read_timeout: args.header_read_timeout,
        body_read_timeout: args.body_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
        chat_streams: waymark_application::ChatStreamConfig {
            enabled: args.chat_streams,
            retention_days: args.chat_stream_retention_days,
            max_total_bytes: args.chat_stream_buffer_budget_bytes,
            ..Default::default()
        },
    };
    config.validate().map_err(CliError::usage)?;
    Ok(config)
}

/// Parses `USER=TOKEN` specs; an empty token, a bad user id or a token given twice is a
/// usage error.
pub fn parse_user_tokens(specs: &[String]) -> CliResult<Vec<(waymark_domain::UserId, String)>> {
    let mut out: Vec<(waymark_domain::UserId, String)> = Vec::new();
    for spec in specs.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some((user, token)) = spec.split_once('=') else {
            return Err(CliError::usage(
                "a user token must be USER=TOKEN (the token value is not shown)",
            ));
        };
        let user = waymark_domain::UserId::parse(user.trim())
            .map_err(|e| CliError::usage(format!("user token: {e}")))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CliError::usage(format!(
                "the token of user {user} is empty"
            )));
        }
        if out.iter().any(|(_, t)| t == token) {
            return Err(CliError::usage(format!(
                "the token of user {user} is also given to another user"
            )));
        }
        out.push((user, token.to_owned()));
    }
    Ok(out)
}

/// Where a file argument points: a path, or `-` for stdin/stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileArg {
    /// Standard input or output.
    Std,
    /// A file.
    Path(PathBuf),
}

impl std::str::FromStr for FileArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "-" {
            Self::Std
        } else {
            Self::Path(PathBuf::from(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["waymark", "serve"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)
            .expect("the arguments parse")
            .command
        {
            Command::Serve(args) => args,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn serve_defaults_are_the_server_defaults() {
        let config = server_config(&serve_args(&[])).unwrap();
        let defaults = ServerConfig::default();
        assert_eq!(config.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(
            config.max_checkpoint_body_bytes,
            defaults.max_checkpoint_body_bytes
        );
        assert_eq!(
            config.max_inflight_body_bytes,
            defaults.max_inflight_body_bytes
        );
        assert_eq!(config.header_read_timeout, defaults.header_read_timeout);
        assert_eq!(config.body_read_timeout, defaults.body_read_timeout);
        assert_eq!(config.idle_timeout, defaults.idle_timeout);
        assert_eq!(config.max_connections, defaults.max_connections);
        assert_eq!(config.chat_streams, defaults.chat_streams);
    }

    #[test]
    fn limit_flags_reach_the_server_settings() {
        let config = server_config(&serve_args(&[
            "--header-read-timeout",
            "1500ms",
            "--body-read-timeout",
            "2m",
            "--idle-timeout",
            "5s",
            "--max-connections",
            "7",
            "--max-inflight-body-bytes",
            "300000000",
            "--chat-stream-buffer-budget-bytes",
            "16777216",
        ]))
        .unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(config.body_read_timeout, Duration::from_secs(120));
        assert_eq!(config.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.max_inflight_body_bytes, 300_000_000);
        assert_eq!(config.chat_streams.max_total_bytes, 16 * 1024 * 1024);
    }
}
