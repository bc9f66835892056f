//! `--check-config` on the built binaries: every file in
//! `config/tests/invalid/` is refused by each daemon and by `labnetctl` with
//! exit code 2 and a message naming the line (issue 12, finding 7: values
//! that once crashed a binary or were accepted and then misbehaved).

use std::process::Command;

use labnet_integration::{bin, workspace_root};

fn check(binary: &str, args: &[&str], file: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(bin(binary))
        .args(args)
        .arg("--config")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("run {binary}: {e}"));
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_invalid_example_is_refused_by_every_binary() {
    let dir = workspace_root().join("config/tests/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/tests/invalid")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "found only {} invalid examples",
        files.len()
    );
    for f in &files {
        let head = String::from_utf8_lossy(&std::fs::read(f).expect("read")).into_owned();
        let line = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: line "))
            .and_then(|l| l.split(':').next())
            .unwrap_or_else(|| panic!("{}: no '# expect' line", f.display()));
        for (binary, args) in [
            ("labnet-dhcpd", &["--check-config"][..]),
            ("labnet-dnsd", &["--check-config"][..]),
            ("labnet-tftpd", &["--check-config"][..]),
            ("labnetctl", &["check-config"][..]),
        ] {
            let (code, msg) = check(binary, args, f);
            assert_eq!(code, Some(2), "{binary} {}: {msg}", f.display());
            assert!(
                msg.contains(&format!("line {line}:")),
                "{binary} {}: line {line} not named in: {msg}",
                f.display()
            );
            assert!(!msg.contains("panicked"), "{binary} panicked: {msg}");
        }
    }
}

#[test]
fn tftpd_refuses_a_missing_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("labnet.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = \"sqlite://{}/x.db\"\n[tftp]\nlisten = [\"127.0.0.1:69\"]\nroot = \"{}/no-such-root\"\n",
            dir.path().display(),
            dir.path().display()
        ),
    )
    .expect("write");
    let (code, msg) = check("labnet-tftpd", &["--check-config"], &cfg);
    assert_eq!(code, Some(2), "{msg}");
    assert!(msg.contains("line 5: tftp.root"), "{msg}");
}
