//! `labnet-dnsd --config PATH [--check-config]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use labnet_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                // sqlx logs every statement at debug; the poller runs four a second.
                .add_directive("sqlx=warn".parse().expect("static directive")),
        )
        .with_writer(std::io::stderr)
        .init();
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
    let reload = server.reload_trigger();
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading from the store");
                    reload.notify_one();
                }
            }
        }
        tracing::info!("stopping");
        stop.cancel();
    });
    server.run(shutdown).await?;
    Ok(())
}
