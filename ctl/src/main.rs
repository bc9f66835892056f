//! `labnetctl`: parse the command line, load the config, run the command
//! (the library, `lib.rs`, has the commands).

use std::process::ExitCode;

use clap::Parser;
use labnet_config::Config;
use labnetctl::{dispatch, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labnetctl: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labnetctl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli.command, &config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labnetctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
