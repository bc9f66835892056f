//! `labnet-xtask`: chores that need the binaries' clap definitions but have
//! no place in every build (a `build.rs` would run on each compile of the
//! daemons and could not see the other crates' commands anyway).
//!
//! `labnet-xtask dist-assets DIR` writes, for labnet-dhcpd, labnet-dnsd,
//! labnet-tftpd and labnetctl:
//!
//! - `DIR/man/NAME.1` (clap_mangen), plus `labnetctl-SUBCOMMAND.1` pages;
//! - `DIR/completions/bash/NAME`, `DIR/completions/zsh/_NAME`,
//!   `DIR/completions/fish/NAME.fish` (clap_complete), named as Debian's
//!   bash-completion, zsh and fish look them up.
//!
//! The Debian package (`[package.metadata.deb]` in `ctl/Cargo.toml`) takes
//! them from `target/release/dist/`, where `scripts/package.sh` has this
//! write them.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap_complete::Shell;

/// Every installed binary's command line.
fn commands() -> Vec<clap::Command> {
    vec![
        labnet_daemon::command("labnet-dhcpd", labnet_dhcpd::ABOUT),
        labnet_daemon::command("labnet-dnsd", labnet_dnsd::ABOUT),
        labnet_daemon::command("labnet-tftpd", labnet_tftpd::ABOUT),
        labnetctl::command(),
    ]
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

fn dist_assets(out: &Path) -> anyhow::Result<()> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    for cmd in commands() {
        // One page per binary, and one per subcommand (labnetctl-zones.1, ...).
        clap_mangen::generate_to(cmd, &man)
            .with_context(|| format!("writing man pages into {}", man.display()))?;
    }
    for (shell, dir, file) in [
        (Shell::Bash, "bash", "{}"),
        (Shell::Zsh, "zsh", "_{}"),
        (Shell::Fish, "fish", "{}.fish"),
    ] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for mut cmd in commands() {
            let name = cmd.get_name().to_owned();
            let mut f = create(&dir.join(file.replace("{}", &name)))?;
            clap_complete::generate(shell, &mut cmd, name, &mut f);
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "dist-assets" => dist_assets(&PathBuf::from(dir)),
        _ => bail!("usage: labnet-xtask dist-assets DIR"),
    }
}
