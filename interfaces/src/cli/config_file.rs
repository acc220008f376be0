//! The optional configuration file of `waymark serve`: `--config FILE` (env `WAYMARK_CONFIG`),
//! TOML, one key per serve setting.
//!
//! The keys are not listed anywhere: they are the serve flags themselves, spelled as the
//! flag's argument id (`--max-body-bytes` is `max_body_bytes`, `--user-token` is
//! `user_tokens`). A file value is handed to clap as if it had been typed, but only for the
//! settings that neither a flag nor an environment variable set, so the precedence is
//! flags > env > file > defaults, and each value goes through the flag's own parser. A new
//! `#[arg(long)]` field on `ServeArgs` is therefore a file key with no further code.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use super::{Cli, CliError};

/// The environment variable naming the file when `--config` is absent.
pub const CONFIG_ENV: &str = "WAYMARK_CONFIG";

/// Why the command line could not be turned into a [`Cli`].
#[derive(Debug)]
pub enum CommandLineError {
    /// Clap's own error (bad flag, `--help`, `--version`): let clap print it and exit.
    Clap(clap::Error),
    /// The configuration file is unreadable or holds an unknown key or a bad value.
    Config(CliError),
}

impl From<clap::Error> for CommandLineError {
    fn from(e: clap::Error) -> Self {
        Self::Clap(e)
    }
}

impl From<CliError> for CommandLineError {
    fn from(e: CliError) -> Self {
        Self::Config(e)
    }
}

/// Parses `args` (the program name first) and, for `serve` with a configuration file, fills
/// every setting that no flag and no environment variable gave from the file.
pub fn parse_command_line<I, T>(args: I) -> Result<Cli, CommandLineError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = Cli::command();
    let matches = command.try_get_matches_from_mut(&args)?;
    let (path, file_args) = match matches.subcommand() {
        Some(("serve", serve)) => match serve.get_one::<std::path::PathBuf>("config") {
            Some(path) => {
                let serve_command = command
                    .find_subcommand_mut("serve")
                    .expect("serve is a subcommand");
                serve_command.build();
                (path.clone(), file_arguments(path, serve_command, serve)?)
            }
            None => return Ok(Cli::from_arg_matches(&matches)?),
        },
        _ => return Ok(Cli::from_arg_matches(&matches)?),
    };
    let mut merged = args;
    merged.extend(file_args.iter().flat_map(|a| a.args.iter().cloned()));
    let matches = Cli::command()
        .try_get_matches_from(merged)
        .map_err(|e| blame_the_file(e, &path, &file_args))?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// One file setting as the command-line arguments it became.
struct FileArgument {
    key: String,
    long: String,
    args: Vec<OsString>,
}

/// Clap's error about a flag that only the file gave, restated with the file and the key.
fn blame_the_file(e: clap::Error, path: &Path, file_args: &[FileArgument]) -> CommandLineError {
    use clap::error::{ContextKind, ContextValue};
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return CommandLineError::Clap(e),
    };
    let long = flag
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    match file_args.iter().find(|a| a.long == long) {
        Some(a) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let why = first.strip_prefix("error: ").unwrap_or(first);
            CommandLineError::Config(CliError::usage(format!(
                "config file {}: key `{}`: {why}",
                path.display(),
                a.key
            )))
        }
        None => CommandLineError::Clap(e),
    }
}

/// The serve settings a file may hold: every long flag except `--config`, `--help` and the
/// global and hidden ones.
fn settings(serve: &clap::Command) -> impl Iterator<Item = &Arg> {
    serve.get_arguments().filter(|a| {
        a.get_long().is_some()
            && !a.is_global_set()
            && !a.is_hide_set()
            && !matches!(a.get_id().as_str(), "config" | "help" | "version")
    })
}

/// The file's settings as extra command-line arguments, skipping those set by a flag or an
/// environment variable (clap then checks each value with the flag's own parser).
fn file_arguments(
    path: &Path,
    serve: &clap::Command,
    given: &ArgMatches,
) -> Result<Vec<FileArgument>, CliError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read config file {shown}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| CliError::usage(format!("config file {shown} is not valid TOML: {e}")))?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let Some(arg) = settings(serve).find(|a| a.get_id().as_str() == key.as_str()) else {
            let known: Vec<&str> = settings(serve).map(|a| a.get_id().as_str()).collect();
            return Err(CliError::usage(format!(
                "config file {shown}: unknown key `{key}`; the keys are {}",
                known.join(", ")
            )));
        };
        if matches!(
            given.value_source(key),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let bad = |why: String| CliError::usage(format!("config file {shown}: key `{key}`: {why}"));
        let long = arg.get_long().unwrap_or(key).to_owned();
        let flag = format!("--{long}");
        let mut args = Vec::new();
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                toml::Value::Boolean(on) => {
                    if *on == matches!(arg.get_action(), ArgAction::SetTrue) {
                        args.push(OsString::from(&flag));
                    }
                }
                other => return Err(bad(format!("expected true or false, found {other}"))),
            },
            ArgAction::Set | ArgAction::Append => {
                let values = match value {
                    toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                        items.iter().map(scalar_text).collect::<Result<Vec<_>, _>>()
                    }
                    toml::Value::Array(_) => Err("expected one value, found an array".to_owned()),
                    other => scalar_text(other).map(|v| vec![v]),
                }
                .map_err(bad)?;
                // `--flag=value`: a value starting with `-` stays a value.
                args.extend(values.iter().map(|v| OsString::from(format!("{flag}={v}"))));
            }
            _ => return Err(bad("this setting cannot be given in a file".to_owned())),
        }
        out.push(FileArgument {
            key: key.clone(),
            long,
            args,
        });
    }
    Ok(out)
}

/// A TOML scalar as the text a flag would take.
fn scalar_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "expected a string, number or boolean, found {}",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn serve_args(file: &str, flags: &[&str]) -> Result<super::super::ServeArgs, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waymark.toml");
        std::fs::write(&path, file).unwrap();
        let mut args = vec!["waymark", "serve", "--config", path.to_str().unwrap()];
        args.extend_from_slice(flags);
        match parse_command_line(args) {
            Ok(Cli {
                command: Command::Serve(s),
                ..
            }) => Ok(s),
            Ok(other) => panic!("not serve: {other:?}"),
            Err(CommandLineError::Config(e)) => Err(e.to_string()),
            Err(CommandLineError::Clap(e)) => Err(e.to_string()),
        }
    }

    #[test]
    fn file_values_fill_what_flags_leave_unset() {
        let s = serve_args(
            r#"
database_url = "sqlite:///tmp/from-file.db"
bind = "127.0.0.1:9999"
max_body_bytes = 1024
chat_streams = false
chat_stream_retention_days = 7
user_tokens = ["alice=t1", "bob=t2"]
admin_unscoped = true
"#,
            &["--bind", "127.0.0.1:7777"],
        )
        .unwrap();
        assert_eq!(s.db.database_url, "sqlite:///tmp/from-file.db");
        assert_eq!(s.bind.to_string(), "127.0.0.1:7777", "the flag wins");
        assert_eq!(s.max_body_bytes, 1024);
        assert!(!s.chat_streams);
        assert_eq!(s.chat_stream_retention_days, 7);
        assert_eq!(s.user_tokens, ["alice=t1", "bob=t2"]);
        assert!(s.admin_unscoped);
    }

    #[test]
    fn an_empty_file_keeps_the_defaults() {
        let s = serve_args("", &[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8787");
        assert!(s.chat_streams);
        assert_eq!(s.chat_stream_retention_days, 30);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = serve_args("bnd = \"x\"", &[]).unwrap_err();
        assert!(e.contains("unknown key `bnd`") && e.contains("bind"), "{e}");
        let e = serve_args("max_body_bytes = \"lots\"", &[]).unwrap_err();
        assert!(
            e.contains("key `max_body_bytes`") && e.contains("lots"),
            "{e}"
        );
        let e = serve_args("bind = \"not an address\"", &[]).unwrap_err();
        assert!(e.contains("key `bind`"), "{e}");
        let e = serve_args("chat_streams = \"maybe\"", &[]).unwrap_err();
        assert!(e.contains("key `chat_streams`"), "{e}");
        let e = serve_args("admin_unscoped = 1", &[]).unwrap_err();
        assert!(
            e.contains("key `admin_unscoped`") && e.contains("true or false"),
            "{e}"
        );
        let e = serve_args("bind = [\"a\", \"b\"]", &[]).unwrap_err();
        assert!(e.contains("key `bind`") && e.contains("array"), "{e}");
        let e = serve_args("log_format = \"json\"", &[]).unwrap_err();
        assert!(e.contains("unknown key `log_format`"), "{e}");
        let e = serve_args("bind = ", &[]).unwrap_err();
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = match parse_command_line(["waymark", "serve", "--config", "/nonexistent/w.toml"]) {
            Err(CommandLineError::Config(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(
            e.contains("cannot read config file /nonexistent/w.toml"),
            "{e}"
        );
    }
}
