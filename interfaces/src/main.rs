//! The `waymark` binary: see `waymark --help`.

use std::process::ExitCode;

use waymark_interfaces::cli::{self, config_file};

fn main() -> ExitCode {
    let cli = match config_file::parse_command_line(std::env::args_os()) {
        Ok(cli) => cli,
        Err(config_file::CommandLineError::Clap(e)) => e.exit(),
        Err(config_file::CommandLineError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    cli::init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
