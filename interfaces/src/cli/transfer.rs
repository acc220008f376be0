//! Inspection commands: `threads`, `history`, `show`, `diff`, `messages`.

use clap::Args;

use super::{CliError, CliResult, DbArgs, OutputArgs};

/// `waymark threads`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    out: OutputArgs,
}
/// `waymark history`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    db: DbArgs,
}
/// `waymark show`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    #[command(flatten)]
    db: DbArgs,
}
pub async fn export(_a: ExportArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn import(_a: ImportArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
pub async fn copy(_a: CopyArgs) -> CliResult {
    Err(CliError::new("not yet"))
}
