//! `labnetctl status`: is each daemon up? Asked of the daemons themselves,
//! through the metrics endpoint each serves on its `[metrics.listen]`
//! address: a daemon is up when `GET /metrics` answers 200 within a second.
//! That works the same under systemd, in a container or on another host,
//! where a PID file or `systemctl` would not.
//!
//! The HTTP/1.1 exchange goes through hyper (already in the tree for the
//! daemons' exporter), one connection per daemon.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use labnet_config::Config;
use serde::Serialize;

/// How long one daemon gets to answer.
const TIMEOUT: Duration = Duration::from_secs(1);

/// One daemon's state as `status` reports it.
#[derive(Serialize)]
struct Row {
    daemon: &'static str,
    /// `[metrics.listen]` address, if the config gives one.
    metrics: Option<SocketAddr>,
    /// "up", "down", or "unknown" (no metrics address to ask).
    state: &'static str,
    /// Why down or unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// `GET http://addr/metrics`: Ok when it answers 200. The body is read but
/// may be empty: a daemon that has served nothing yet has no samples.
async fn scrape(addr: SocketAddr) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    // The connection task ends with the exchange (or with this function).
    let driver = tokio::spawn(conn);
    let req = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    driver.abort();
    if status != hyper::StatusCode::OK {
        bail!("/metrics answered {status}");
    }
    Ok(())
}

/// Print each daemon's state; fail (exit 1) when a configured daemon is
/// down, so scripts and monitoring can use the exit code.
pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let daemons = [
        ("labnet-dhcpd", config.dhcp.is_some()),
        ("labnet-dnsd", config.dns.is_some()),
        ("labnet-tftpd", config.tftp.is_some()),
    ];
    let mut rows = Vec::new();
    // A daemon without its section in the config does not run at all.
    for (daemon, _) in daemons.into_iter().filter(|(_, configured)| *configured) {
        let metrics = config.metrics_listen(daemon);
        let (state, detail) = match metrics {
            None => (
                "unknown",
                Some(format!(
                    "no [metrics.listen] {} in the config",
                    daemon.trim_start_matches("labnet-")
                )),
            ),
            Some(addr) => match tokio::time::timeout(TIMEOUT, scrape(addr)).await {
                Ok(Ok(())) => ("up", None),
                Ok(Err(e)) => ("down", Some(format!("{e:#}"))),
                Err(_) => ("down", Some(format!("no answer within {TIMEOUT:?}"))),
            },
        };
        rows.push(Row {
            daemon,
            metrics,
            state,
            detail,
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).context("encoding JSON")?
        );
    } else {
        println!("{:<14} {:<22} STATE", "DAEMON", "METRICS");
        for r in &rows {
            let addr = r.metrics.map_or("-".to_owned(), |a| a.to_string());
            match &r.detail {
                Some(d) => println!("{:<14} {:<22} {} ({d})", r.daemon, addr, r.state),
                None => println!("{:<14} {:<22} {}", r.daemon, addr, r.state),
            }
        }
    }
    let down: Vec<&str> = rows
        .iter()
        .filter(|r| r.state == "down")
        .map(|r| r.daemon)
        .collect();
    if !down.is_empty() {
        bail!("down: {}", down.join(", "));
    }
    Ok(())
}
