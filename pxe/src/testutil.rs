//! Builders shared by the unit tests of this crate.

use std::net::Ipv4Addr;

use labnet_config::PxeConfig;
use labnet_store::BootProfile;

/// The lab's `[pxe]` section: TFTP on 10.77.0.1, default profile "rescue".
pub fn cfg() -> PxeConfig {
    PxeConfig {
        tftp_server: Ipv4Addr::new(10, 77, 0, 1),
        bios_boot_file: "pxelinux.0".into(),
        uefi_boot_file: "ipxe.efi".into(),
        uefi32_boot_file: "ipxe-i386.efi".into(),
        ipxe_script: "boot.ipxe".into(),
        default_profile: Some("rescue".into()),
        http_boot_url: None,
        http_base: None,
    }
}

/// A profile booting vmlinuz + initrd.img with `cmdline`, no loader overrides.
pub fn profile(name: &str, cmdline: &str) -> BootProfile {
    BootProfile {
        name: name.into(),
        kernel: "vmlinuz".into(),
        initrd: Some("initrd.img".into()),
        cmdline: cmdline.into(),
        bios_loader: None,
        uefi_loader: None,
        uefi32_loader: None,
    }
}
