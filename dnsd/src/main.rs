//! `labnet-dnsd --config PATH [--check-config]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use labnet_config::Config;

#[derive(Parser)]
#[command(name = "labnet-dnsd", version, about = "labnet's DNS server")]
struct Args {
    /// The labnet config file.
    #[arg(long, short, default_value = "/etc/labnet/labnet.toml")]
    config: PathBuf,
    /// Validate the config and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(&args.config).and_then(|c| {
        c.require_dns("labnet-dnsd")?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labnet-dnsd: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{}: ok", config.path.display());
        return ExitCode::SUCCESS;
    }
    labnet_daemon::init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labnet-dnsd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labnet-dnsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = labnet_store::open(&config.store.url).await?;
    let server = labnet_dnsd::Server::new(config, store);
    let shutdown = labnet_daemon::stop_on_signals(Some(server.reload_trigger()))?;
    server.run(shutdown).await?;
    Ok(())
}
