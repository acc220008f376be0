//! Inspection commands: `threads`, `history`, `show`, `diff`, `messages`.

use clap::Args;

use super::{CliError, CliResult, DbArgs, OutputArgs};

/// `waymark threads`.
#[derive(Debug, Args)]
pub struct ThreadsArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
}
/// `waymark history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    db: DbArgs,
}
/// `waymark show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    db: DbArgs,
}
/// `waymark diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    db: DbArgs,
}
/// `waymark messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[command(flatten)]
    db: DbArgs,
}

pub async fn threads(_a: ThreadsArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn history(_a: HistoryArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn show(_a: ShowArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn diff(_a: DiffArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn messages(_a: MessagesArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
