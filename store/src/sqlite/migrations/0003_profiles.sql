-- Boot profiles (labnet-pxe): what a PXE-booting host loads, and which host
-- gets which profile.

CREATE TABLE boot_profiles (
    name          TEXT PRIMARY KEY NOT NULL,
    kernel        TEXT NOT NULL,           -- path under the TFTP root
    initrd        TEXT,                    -- path under the TFTP root
    cmdline       TEXT NOT NULL DEFAULT '',
    -- Per-arch loader overrides; NULL means the [pxe] config's loader.
    bios_loader   TEXT,
    uefi_loader   TEXT,
    uefi32_loader TEXT
);

-- A profile for a host that has no reservation (a host with a reservation
-- keeps its profile in reservations.profile, which wins over this table).
CREATE TABLE host_profiles (
    mac     TEXT PRIMARY KEY NOT NULL,     -- aa:bb:cc:dd:ee:ff
    profile TEXT NOT NULL REFERENCES boot_profiles (name)
);

INSERT INTO generations (topic) VALUES ('profiles');
