//! Prometheus metrics (issue 10), scraped with curl from the three daemons
//! after stock clients used them: udhcpc gets a lease from labnet-dhcpd,
//! tftp-hpa fetches a file (and one that is missing) from labnet-tftpd, dig
//! asks labnet-dnsd over UDP and TCP. Each endpoint's text must pass
//! `promtool check metrics` and hold the counts those clients caused.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use labnet_integration::*;

/// `[metrics.listen]` inside the server namespace.
const DHCPD: &str = "127.0.0.1:9967";
const DNSD: &str = "127.0.0.1:9968";
const TFTPD: &str = "127.0.0.1:9969";

/// One sample: name and labels → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parse Prometheus text exposition (the subset the exporter writes:
/// `name{k="v",...} value` lines, no escapes inside our label values).
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("label");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.insert((name.to_owned(), labels), value.parse().expect("value"));
    }
    out
}

/// The value of `name` with exactly `labels`, if present.
fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.get(&(name.to_owned(), labels)).copied()
}

fn scrape(ns: &Netns, addr: &str) -> String {
    let out = run(ns
        .cmd("curl")
        .args(["-sS", "--fail", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics")));
    String::from_utf8(out.stdout).expect("utf8 metrics")
}

/// `promtool check metrics` reads the text on stdin; lint problems make it
/// exit non-zero.
fn promtool(text: &str, what: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics on {what}: {}{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn three_daemons_expose_what_stock_clients_did() {
    require_root();
    require_tools("curl", &["curl"]);
    require_tools("prometheus", &["promtool"]);
    require_tools("udhcpc", &["udhcpc"]);
    require_tools("tftp-hpa", &["tftp"]);
    require_tools("bind9-dnsutils", &["dig"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("tftp");
    std::fs::create_dir(&root).expect("root");
    std::fs::write(root.join("kernel"), vec![7u8; 123_456]).expect("file");
    let cfg = write_file(
        dir.path(),
        "labnet.toml",
        &format!(
            r#"
[store]
url = "sqlite://{d}/labnet.db"

[dhcp]
interfaces = ["br0"]
ping_check = false

[[dhcp.subnets]]
cidr = "10.77.0.0/24"
pools = ["10.77.0.100-10.77.0.199"]
exclude = ["10.77.0.150-10.77.0.159"]
lease_time = "1h"

[tftp]
listen = ["10.77.0.1:69"]
root = "{r}"

[dns]
listen = ["10.77.0.1:53"]

[metrics.listen]
dhcpd = "{DHCPD}"
dnsd = "{DNSD}"
tftpd = "{TFTPD}"
"#,
            d = dir.path().display(),
            r = root.display(),
        ),
    );
    ctl(&cfg, &["init"]);
    let srv = Netns::new("met");
    srv.add_bridge("br0", "10.77.0.1/24");
    let mut daemons: Vec<Daemon> = ["labnet-dhcpd", "labnet-dnsd", "labnet-tftpd"]
        .iter()
        .map(|name| {
            let log = dir.path().join(format!("{name}.log"));
            let mut d = Daemon::start(Some(&srv), name, &cfg, &log);
            d.wait_log("serving", Duration::from_secs(20));
            d.wait_log("serving metrics", Duration::from_secs(5));
            d
        })
        .collect();

    // DHCP: one client, one lease.
    let cli = Netns::new("metc");
    srv.attach_veth("br0", "vmetc", &cli, "eth0");
    run(cli
        .cmd("udhcpc")
        .args(["-q", "-n", "-f", "-i", "eth0", "-t", "10", "-T", "1"])
        .args(["-s", "/bin/true"]));
    // TFTP: a file, then one that is not there.
    let got = dir.path().join("got");
    run(srv
        .cmd("tftp")
        .args(["10.77.0.1", "-m", "binary", "-c", "get", "kernel"])
        .arg(&got));
    assert_eq!(std::fs::metadata(&got).expect("got").len(), 123_456);
    let _ = srv
        .cmd("tftp")
        .args(["10.77.0.1", "-c", "get", "missing", "/dev/null"])
        .output();
    // DNS: no zones, so REFUSED, over UDP and over TCP.
    for transport in ["+notcp", "+tcp"] {
        let out = srv.sh(&format!(
            "dig @10.77.0.1 {transport} +tries=1 www.lab.test A"
        ));
        assert!(out.contains("status: REFUSED"), "{out}");
    }

    let dhcp = wait_for(
        "pool gauges after the lease",
        Duration::from_secs(5),
        || {
            let text = scrape(&srv, DHCPD);
            let s = parse(&text);
            (value(&s, "labnet_dhcp_pool_used", &[("subnet", "10.77.0.0/24")]) == Some(1.0))
                .then_some(text)
        },
    );
    promtool(&dhcp, "labnet-dhcpd");
    let s = parse(&dhcp);
    let subnet = [("subnet", "10.77.0.0/24")];
    assert_eq!(value(&s, "labnet_dhcp_pool_size", &subnet), Some(90.0));
    assert_eq!(value(&s, "labnet_dhcp_pool_free", &subnet), Some(89.0));
    let pkts = |t: &str, o: &str| {
        value(
            &s,
            "labnet_dhcp_packets_total",
            &[("type", t), ("outcome", o)],
        )
    };
    assert_eq!(pkts("discover", "offer"), Some(1.0), "{dhcp}");
    assert_eq!(pkts("request", "ack"), Some(1.0), "{dhcp}");
    assert_eq!(
        value(&s, "labnet_dhcp_commit_batch_size_count", &[]),
        Some(1.0),
        "{dhcp}"
    );
    assert!(
        value(&s, "labnet_dhcp_commit_seconds_sum", &[]).is_some_and(|v| v > 0.0),
        "{dhcp}"
    );

    let tftp = scrape(&srv, TFTPD);
    promtool(&tftp, "labnet-tftpd");
    let s = parse(&tftp);
    let read = [("direction", "read")];
    assert_eq!(
        value(
            &s,
            "labnet_tftp_transfers_total",
            &[("direction", "read"), ("outcome", "complete")]
        ),
        Some(1.0),
        "{tftp}"
    );
    assert_eq!(value(&s, "labnet_tftp_bytes_total", &read), Some(123_456.0));
    assert_eq!(
        value(
            &s,
            "labnet_tftp_errors_total",
            &[("reason", "file_not_found")]
        ),
        Some(1.0),
        "{tftp}"
    );
    assert_eq!(value(&s, "labnet_tftp_retransmits_total", &[]), Some(0.0));
    assert_eq!(value(&s, "labnet_tftp_transfers_active", &[]), Some(0.0));
    assert_eq!(
        value(&s, "labnet_tftp_transfer_seconds_count", &read),
        Some(1.0)
    );

    let dns = scrape(&srv, DNSD);
    promtool(&dns, "labnet-dnsd");
    let s = parse(&dns);
    for t in ["udp", "tcp"] {
        assert_eq!(
            value(
                &s,
                "labnet_dns_queries_total",
                &[("transport", t), ("rcode", "REFUSED")]
            ),
            Some(1.0),
            "{dns}"
        );
    }
    // The shipped dashboard and scrape config use only what the daemons
    // serve.
    let served: String = [dhcp.as_str(), tftp.as_str(), dns.as_str()].concat();
    for name in dashboard_metrics() {
        assert!(
            served.contains(&name),
            "dist/grafana-labnet.json uses {name}, which no daemon serves"
        );
    }
    let conf = workspace_root().join("dist/prometheus.yml");
    run(Command::new("promtool")
        .args(["check", "config"])
        .arg(&conf));
    for d in &mut daemons {
        assert!(d.stop().success(), "{}", d.log_text());
    }
}

/// Every `labnet_*` series name in the dashboard's queries.
fn dashboard_metrics() -> Vec<String> {
    let path = workspace_root().join("dist/grafana-labnet.json");
    let text = std::fs::read_to_string(&path).expect("dist/grafana-labnet.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut names = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("labnet_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() >= 10, "too few queries found: {names:?}");
    names
}
