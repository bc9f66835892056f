//! `labnetctl profiles add|list|remove|assign|unassign`: boot profiles
//! (labnet-pxe) and which host boots which.
//!
//! `assign MAC PROFILE` writes the profile on the host's reservation when it
//! has one, else in a MAC → profile mapping (so a pool client can get a
//! profile without a fixed address). Hosts with neither boot the config's
//! `[pxe] default_profile`. tftpd serves a change on the next request.

use anyhow::bail;
use clap::Subcommand;
use labnet_config::Config;
use labnet_pxe::check_profile;
use labnet_store::{Assignment, BootProfile, Store};

#[derive(Subcommand)]
pub enum Cmd {
    /// Add a boot profile (paths are relative to the TFTP root).
    Add {
        name: String,
        #[arg(long)]
        kernel: String,
        #[arg(long)]
        initrd: Option<String>,
        /// Kernel command line.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        cmdline: String,
        /// Loader for BIOS clients instead of [pxe] bios_boot_file.
        #[arg(long)]
        bios_loader: Option<String>,
        /// Loader for x64 UEFI clients instead of [pxe] uefi_boot_file.
        #[arg(long)]
        uefi_loader: Option<String>,
        /// Loader for IA32 UEFI clients instead of [pxe] uefi32_boot_file.
        #[arg(long)]
        uefi32_loader: Option<String>,
        /// Overwrite a profile of the same name.
        #[arg(long)]
        replace: bool,
    },
    /// All boot profiles, and the hosts assigned one without a reservation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a boot profile (refused while a host is assigned it).
    Remove { name: String },
    /// Boot the host with this MAC from PROFILE.
    Assign { mac: String, profile: String },
    /// Take a host's profile away (it boots the default profile again).
    Unassign { mac: String },
}

use crate::checks::ethernet_mac as mac;

pub async fn run(cmd: Cmd, store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    let default = config
        .pxe
        .as_ref()
        .and_then(|p| p.default_profile.as_deref());
    match cmd {
        Cmd::Add {
            name,
            kernel,
            initrd,
            cmdline,
            bios_loader,
            uefi_loader,
            uefi32_loader,
            replace,
        } => {
            let p = BootProfile {
                name,
                kernel,
                initrd,
                cmdline,
                bios_loader,
                uefi_loader,
                uefi32_loader,
            };
            check_profile(&p)?;
            store.put_profile(&p, replace).await?;
            println!("profile {} saved", p.name);
            Ok(())
        }
        Cmd::List { json } => {
            let profiles = store.profiles().await?;
            let hosts = store.host_profiles().await?;
            if json {
                let v = serde_json::json!({
                    "default": default,
                    "profiles": profiles,
                    "hosts": hosts,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("{:<16} {:<20} {:<20} CMDLINE", "NAME", "KERNEL", "INITRD");
            for p in &profiles {
                let mark = if Some(p.name.as_str()) == default {
                    " (default)"
                } else {
                    ""
                };
                println!(
                    "{:<16} {:<20} {:<20} {}{mark}",
                    p.name,
                    p.kernel,
                    p.initrd.as_deref().unwrap_or("-"),
                    p.cmdline
                );
            }
            if !hosts.is_empty() {
                println!("\n{:<20} PROFILE (hosts without a reservation)", "MAC");
                for h in hosts {
                    println!("{:<20} {}", h.mac, h.profile);
                }
            }
            Ok(())
        }
        Cmd::Remove { name } => {
            if !store.remove_profile(&name).await? {
                bail!("no boot profile named `{name}`");
            }
            if Some(name.as_str()) == default {
                eprintln!("labnetctl: note: `{name}` is still [pxe] default_profile in the config");
            }
            println!("removed");
            Ok(())
        }
        Cmd::Assign { mac: m, profile } => {
            let m = mac(&m)?;
            crate::checks::profile_exists(store, &profile).await?;
            match store.assign_profile(&m, &profile).await? {
                Assignment::Reservation => println!("{m} boots {profile} (on its reservation)"),
                _ => println!("{m} boots {profile}"),
            }
            Ok(())
        }
        Cmd::Unassign { mac: m } => {
            let m = mac(&m)?;
            if !store.unassign_profile(&m).await? {
                bail!("{m} has no profile assigned");
            }
            println!("{m} boots the default profile");
            Ok(())
        }
    }
}
