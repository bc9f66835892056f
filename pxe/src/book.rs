//! An in-memory view of boot profiles and who gets which.

use std::collections::HashMap;

use labnet_store::{BootProfile, HostProfile, Reservation, ReservationKey};

/// Profiles by name and the host (MAC) → profile assignments, as loaded
/// from the store.
///
/// A host's profile, in order: its reservation's profile, then its entry in
/// the host → profile mapping (hosts without a reservation), then the default
/// profile (`[pxe] default_profile`). An assignment naming a profile that
/// does not exist falls back to the default rather than leaving the host
/// unbootable. Reservations keyed by client-id cannot be matched to a MAC
/// (which is all a loader tells us) and are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileBook {
    profiles: HashMap<String, BootProfile>,
    /// `aa:bb:cc:dd:ee:ff` → profile name.
    assigned: HashMap<String, String>,
    default: Option<String>,
}

impl ProfileBook {
    pub fn new(
        profiles: Vec<BootProfile>,
        reservations: &[Reservation],
        hosts: &[HostProfile],
        default: Option<String>,
    ) -> ProfileBook {
        let mut assigned: HashMap<String, String> = hosts
            .iter()
            .map(|h| (h.mac.to_ascii_lowercase(), h.profile.clone()))
            .collect();
        // Reservations win over the mapping.
        for r in reservations {
            if let (ReservationKey::Mac(mac), Some(p)) = (&r.key, &r.profile) {
                assigned.insert(mac.to_ascii_lowercase(), p.clone());
            }
        }
        ProfileBook {
            profiles: profiles.into_iter().map(|p| (p.name.clone(), p)).collect(),
            assigned,
            default,
        }
    }

    /// The profile named `name`.
    pub fn get(&self, name: &str) -> Option<&BootProfile> {
        self.profiles.get(name)
    }

    /// The default profile, if configured and present in the store.
    pub fn default_profile(&self) -> Option<&BootProfile> {
        self.default.as_deref().and_then(|n| self.profiles.get(n))
    }

    /// The profile of the host with hardware address `mac`
    /// (`aa:bb:cc:dd:ee:ff`, any case).
    pub fn profile_for(&self, mac: &str) -> Option<&BootProfile> {
        self.assigned
            .get(&mac.to_ascii_lowercase())
            .and_then(|n| self.profiles.get(n))
            .or_else(|| self.default_profile())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> BootProfile {
        BootProfile {
            name: name.into(),
            kernel: "vmlinuz".into(),
            initrd: None,
            cmdline: name.into(),
            bios_loader: None,
            uefi_loader: None,
            uefi32_loader: None,
        }
    }

    fn res(mac: &str, profile: Option<&str>) -> Reservation {
        Reservation {
            key: ReservationKey::Mac(mac.into()),
            ip: "10.77.0.10".parse().expect("ip"),
            hostname: None,
            profile: profile.map(Into::into),
        }
    }

    fn host(mac: &str, profile: &str) -> HostProfile {
        HostProfile {
            mac: mac.into(),
            profile: profile.into(),
        }
    }

    #[test]
    fn reservation_then_mapping_then_default() {
        let book = ProfileBook::new(
            vec![p("a"), p("b"), p("rescue")],
            &[
                res("52:54:00:00:00:01", Some("a")),
                res("52:54:00:00:00:03", None),
            ],
            &[
                host("52:54:00:00:00:01", "b"),
                host("52:54:00:00:00:02", "b"),
            ],
            Some("rescue".into()),
        );
        let name = |m: &str| book.profile_for(m).map(|p| p.name.as_str());
        assert_eq!(name("52:54:00:00:00:01"), Some("a"));
        assert_eq!(name("52:54:00:00:00:02"), Some("b"));
        assert_eq!(name("52:54:00:00:00:03"), Some("rescue"));
        assert_eq!(name("52:54:00:00:00:99"), Some("rescue"));
        assert_eq!(name("52:54:00:00:00:0A"), Some("rescue"));
    }

    #[test]
    fn missing_profiles_fall_back_or_give_none() {
        let book = ProfileBook::new(
            vec![p("rescue")],
            &[],
            &[host("52:54:00:00:00:01", "gone")],
            Some("rescue".into()),
        );
        assert_eq!(
            book.profile_for("52:54:00:00:00:01")
                .map(|p| p.name.as_str()),
            Some("rescue")
        );
        let none = ProfileBook::new(vec![p("a")], &[], &[], Some("missing".into()));
        assert_eq!(none.profile_for("52:54:00:00:00:01"), None);
        assert_eq!(none.default_profile(), None);
    }
}
