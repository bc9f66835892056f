use std::path::{Path, PathBuf};

use super::*;

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(sub)
}

fn toml_files(sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(sub))
        .unwrap_or_else(|e| panic!("{sub}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_shipped_example_parses_with_every_section() {
    let c = Config::load(dir("../dist/labnet.toml")).expect("dist/labnet.toml");
    let dhcp = c.dhcp.as_ref().expect("dhcp");
    assert_eq!(dhcp.interfaces, ["br0"]);
    let s = &dhcp.subnets[0];
    assert_eq!(s.cidr.to_string(), "10.77.0.0/24");
    assert_eq!(s.lease_time, std::time::Duration::from_secs(12 * 3600));
    assert_eq!(s.renew_time, s.lease_time / 2);
    assert!(s.in_pool("10.77.0.100".parse().expect("ip")));
    assert!(!s.in_pool("10.77.0.150".parse().expect("ip")), "excluded");
    assert!(c.tftp.is_some() && c.pxe.is_some() && c.dns.is_some());
}

#[test]
fn every_valid_example_parses() {
    let files = toml_files("tests/valid");
    assert!(!files.is_empty(), "no files found in tests/valid");
    for f in files {
        Config::load(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

/// Each file in tests/invalid starts with `# expect: line N: WORD`; loading it
/// must fail at that line with WORD somewhere in the message.
#[test]
fn every_invalid_example_is_refused_with_line_and_key() {
    let files = toml_files("tests/invalid");
    assert!(
        files.len() >= 10,
        "expected the invalid examples, found {}",
        files.len()
    );
    for f in files {
        // Lossy: one example is deliberately not UTF-8 past its first line.
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: line "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: first line must be '# expect: line N: WORD'",
                    f.display()
                )
            });
        let (line, word) = expect.split_once(": ").expect("N: WORD");
        let line: usize = line.parse().expect("line number");
        let err = Config::load(&f).expect_err(&format!("{} must be refused", f.display()));
        let msg = err.to_string();
        assert_eq!(
            err.line(),
            Some(line),
            "{}: wrong line in: {msg}",
            f.display()
        );
        assert!(
            msg.contains(word),
            "{}: `{word}` missing from: {msg}",
            f.display()
        );
    }
}

#[test]
fn extra_options_are_encoded() {
    let c = Config::parse(
        r#"
[store]
url = "sqlite:///tmp/x.db"
[dhcp]
interfaces = ["eth0"]
options = [
  { code = 252, text = "http://x/wpad.dat" },
  { code = 150, ips = ["10.0.0.1", "10.0.0.2"] },
  { code = 224, hex = "de:ad:be:ef" },
  { code = 225, u16 = 1500 },
]
"#,
        "inline",
    )
    .expect("parses");
    let o = &c.dhcp.expect("dhcp").options;
    assert_eq!(o[0].data, b"http://x/wpad.dat");
    assert_eq!(o[1].data, [10, 0, 0, 1, 10, 0, 0, 2]);
    assert_eq!(o[2].data, [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(o[3].data, [0x05, 0xdc]);
}

#[test]
fn dns_recursion_keys() {
    let c = Config::load(dir("tests/valid/dns-recursion.toml")).expect("valid");
    let d = c.dns.expect("dns");
    assert_eq!(d.cache_size, 128 << 20);
    assert_eq!((d.min_ttl, d.max_ttl, d.max_negative_ttl), (5, 3600, 600));
    assert_eq!(d.forward.len(), 2);
    assert_eq!(d.forward[1].zone, "lab2.example");
    assert!(d.root_hints.is_none());
    let hints = std::env::temp_dir().join(format!("labnet-hints-{}", std::process::id()));
    std::fs::write(
        &hints,
        ".  3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 IN A 127.0.0.2\n; c\nb.root-servers.net. 3600000 AAAA ::1\n",
    )
    .expect("write");
    let text = format!(
        "[store]\nurl = \"sqlite:///tmp/x.db\"\n[dns]\nlisten = [\"127.0.0.1:53\"]\nroot_hints = \"{}\"\n",
        hints.display()
    );
    let c = Config::parse(&text, "x.toml").expect("hints");
    let h = c.dns_root_hints().expect("readable").expect("hints");
    assert_eq!(h.len(), 2);
    let _ = std::fs::remove_file(&hints);
    // A missing file parses (it is the DNS server's machine that reads it)
    // and is refused by the check, with its line.
    let c = Config::parse(
        "[store]\nurl = \"sqlite:///tmp/x.db\"\n[dns]\nlisten = [\"127.0.0.1:53\"]\nroot_hints = \"/nonexistent/root.hints\"\n",
        "inline",
    )
    .expect("parses");
    let err = c.dns_root_hints().expect_err("missing hints refused");
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(err.to_string().contains("dns.root_hints"), "{err}");
    // So is a missing trust anchor file; unset, DNSSEC is left to the
    // DNS server to decide (on with the IANA anchors when iterating from
    // the IANA root).
    assert!(d.dnssec.is_none() && d.trust_anchors.is_none());
    let c = Config::parse(
        "[store]\nurl = \"sqlite:///tmp/x.db\"\n[dns]\nlisten = [\"127.0.0.1:53\"]\n\ntrust_anchors = \"/nonexistent/anchors\"\ndnssec = true\n",
        "inline",
    )
    .expect("parses");
    assert_eq!(c.dns.as_ref().and_then(|d| d.dnssec), Some(true));
    let err = c.dns_trust_anchors().expect_err("missing anchors refused");
    assert_eq!(err.line(), Some(6), "{err}");
    assert!(err.to_string().contains("dns.trust_anchors"), "{err}");
}

#[test]
fn dnssec_is_a_switch_written_either_way() {
    let parse = |v: &str| {
        Config::parse(
            &format!("[store]\nurl = \"sqlite:///tmp/x.db\"\n[dns]\nlisten = [\"127.0.0.1:53\"]\ndnssec = {v}\n"),
            "inline",
        )
    };
    for (v, want) in [
        ("\"off\"", false),
        ("false", false),
        ("\"on\"", true),
        ("true", true),
    ] {
        let c = parse(v).unwrap_or_else(|e| panic!("dnssec = {v}: {e}"));
        assert_eq!(c.dns.as_ref().and_then(|d| d.dnssec), Some(want), "{v}");
    }
    let err = parse("\"maybe\"").expect_err("not a switch");
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(
        err.to_string().contains("dnssec") && err.to_string().contains("maybe"),
        "{err}"
    );
}

#[test]
fn a_missing_tftp_root_is_refused_with_its_line() {
    let c = Config::parse(
        "[store]\nurl = \"sqlite:///tmp/x.db\"\n[tftp]\nlisten = [\"127.0.0.1:69\"]\nroot = \"/nonexistent/labnet-tftp\"\n",
        "inline",
    )
    .expect("parses: the directory is checked by the TFTP server's machine");
    let err = c.check_tftp_dirs().expect_err("missing root refused");
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(err.to_string().contains("tftp.root"), "{err}");
}
