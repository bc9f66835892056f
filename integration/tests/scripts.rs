//! The README's two commands (`./scripts/lab.sh`, `./scripts/test.sh`) as a
//! fresh Debian runs them: as root with no `sudo` installed, or as a user who
//! has `sudo` (issue 10). Both scripts start with `scripts/as-root.sh`; these
//! tests run the real scripts with a PATH that holds only what the check
//! itself needs, so the outcome does not depend on what this machine has.
//!
//! The full runs of the scripts are what CI does (`scripts/test.sh`); here
//! `lab.sh stop` stands for them, since it passes the same check first and
//! then only tears down a lab that is not there.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use labnet_integration::{require_root, require_tools, workspace_root};

/// A directory for PATH holding links to the few tools the scripts' start
/// needs, and no `sudo`; readable by anyone (the scripts also run as nobody).
fn bare_path(dir: &Path) -> String {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for tool in ["bash", "id", "basename", "dirname", "env", "ip", "grep"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .expect("sh");
        let from = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        assert!(!from.is_empty(), "`{tool}` is not installed");
        std::os::unix::fs::symlink(&from, dir.join(tool)).expect("link tool");
    }
    dir.display().to_string()
}

/// `script ARGS` run with `PATH=path`, as `uid` (0: root) via setpriv.
fn run_as(uid: u32, path: &str, script: &str, args: &[&str]) -> Output {
    let script = workspace_root().join("scripts").join(script);
    // By full path: with PATH replaced, Command would look it up there.
    let setpriv = Command::new("sh")
        .args(["-c", "command -v setpriv"])
        .output()
        .expect("sh");
    let setpriv = String::from_utf8_lossy(&setpriv.stdout).trim().to_owned();
    let mut cmd = Command::new(setpriv);
    if uid != 0 {
        cmd.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ]);
    }
    cmd.arg("--")
        .arg(&script)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/nonexistent")
        .output()
        .expect("run setpriv")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn root_without_sudo_runs_the_scripts() {
    require_root();
    require_tools("util-linux", &["setpriv"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = bare_path(dir.path());
    let out = run_as(0, &path, "lab.sh", &["stop"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("sudo"), "{}", text(&out));
}

#[test]
fn a_user_without_sudo_is_told_what_is_missing() {
    require_root();
    require_tools("util-linux", &["setpriv"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = bare_path(dir.path());
    for script in ["lab.sh", "test.sh"] {
        let out = run_as(65534, &path, script, &[]);
        assert_eq!(out.status.code(), Some(1), "{script}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{script}: run as root"))
                && err.contains("sudo is not installed"),
            "{script}: {}",
            text(&out)
        );
    }
}

/// A user with sudo: the script re-runs itself through it, by absolute path,
/// with the user's PATH and toolchain variables (sudo's secure_path would
/// lose cargo). The `sudo` here records its arguments instead of switching
/// user: what matters is the command line the script hands it.
#[test]
fn a_user_with_sudo_reruns_through_it_keeping_cargo() {
    require_root();
    require_tools("util-linux", &["setpriv"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = bare_path(dir.path());
    // The fake sudo, run as nobody, writes its record here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let record = dir.path().join("sudo-args");
    let sudo = dir.path().join("sudo");
    std::fs::write(
        &sudo,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done > {}\n",
            record.display()
        ),
    )
    .expect("write sudo");
    std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run_as(65534, &path, "test.sh", &["--x"]);
    assert!(out.status.success(), "{}", text(&out));
    let args = std::fs::read_to_string(&record).expect("sudo was not called");
    let args: Vec<&str> = args.lines().collect();
    let me = workspace_root().join("scripts/test.sh");
    assert_eq!(args.first(), Some(&"env"), "{args:?}");
    assert!(args.contains(&format!("PATH={path}").as_str()), "{args:?}");
    assert_eq!(
        &args[args.len() - 2..],
        &[me.to_str().expect("utf8 path"), "--x"],
        "{args:?}"
    );
}
