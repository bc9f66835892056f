//! [`BootFiles`]: the profile book kept fresh from the store, for dhcpd's
//! decisions and tftpd's generated files.

use std::sync::Arc;

use labnet_config::PxeConfig;
use labnet_store::{Current, Store, Topic};

use crate::{
    decide, generated_file, BootDecision, BootRequest, GeneratedPath, ProfileBook, PxeError,
};

/// The generations a book was loaded at: (profiles, reservations).
type Seen = (i64, i64);

/// Boot profiles and assignments in memory, reloaded when the store's
/// `profiles` or `reservations` generation moves.
///
/// Hot paths read [`BootFiles::current`] without touching the store
/// (dhcpd's decisions); [`BootFiles::refresh`] costs two one-row reads when
/// nothing moved. tftpd refreshes before each generated file it serves, so
/// a `labnetctl` change is in the very next file; dhcpd runs
/// [`BootFiles::follow`] beside its loop.
pub struct BootFiles {
    store: Arc<dyn Store>,
    cfg: PxeConfig,
    book: Current<ProfileBook>,
    /// Also serialises reloads, so a burst of requests loads once.
    seen: tokio::sync::Mutex<Option<Seen>>,
}

impl BootFiles {
    /// Load the book from `store`.
    pub async fn load(store: Arc<dyn Store>, cfg: PxeConfig) -> Result<BootFiles, PxeError> {
        let files = BootFiles {
            store,
            cfg,
            book: Current::new(ProfileBook::default()),
            seen: tokio::sync::Mutex::new(None),
        };
        files.refresh().await?;
        Ok(files)
    }

    pub fn config(&self) -> &PxeConfig {
        &self.cfg
    }

    /// The book as last loaded; no I/O.
    pub fn current(&self) -> Arc<ProfileBook> {
        self.book.get()
    }

    /// Reload the book if the store changed since it was loaded.
    pub async fn refresh(&self) -> Result<Arc<ProfileBook>, PxeError> {
        let mut seen = self.seen.lock().await;
        // Read the counters before the data: a write landing in between
        // moves them again and the next refresh reloads.
        let now: Seen = (
            self.store.generation(Topic::Profiles).await?,
            self.store.generation(Topic::Reservations).await?,
        );
        if *seen == Some(now) {
            return Ok(self.current());
        }
        let book = ProfileBook::new(
            self.store.profiles().await?,
            &self.store.reservations().await?,
            &self.store.host_profiles().await?,
            self.cfg.default_profile.clone(),
        );
        if let Some(name) = &self.cfg.default_profile {
            if book.default_profile().is_none() {
                tracing::warn!(profile = %name, "[pxe] default_profile is not in the store (labnetctl profiles add)");
            }
        }
        tracing::debug!(
            profiles_gen = now.0,
            reservations_gen = now.1,
            "boot profiles loaded"
        );
        self.book.replace(book);
        *seen = Some(now);
        Ok(self.book.get())
    }

    /// Refresh whenever the store's watcher says profiles or reservations
    /// moved, until the caller drops the future or the store is gone for
    /// good (the error is returned). A failed refresh is logged and the
    /// last book kept.
    pub async fn follow(&self) -> Result<(), PxeError> {
        let mut w =
            labnet_store::watch(self.store.clone(), &[Topic::Profiles, Topic::Reservations])
                .await?;
        loop {
            w.changed().await?;
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot reload boot profiles; keeping the last ones");
            }
        }
    }

    /// The boot decision for a request from the host `mac`
    /// (`aa:bb:cc:dd:ee:ff`), from the current book; no I/O.
    pub fn decide(&self, req: &BootRequest, mac: &str) -> Option<BootDecision> {
        let book = self.current();
        decide(req, &self.cfg, mac, book.profile_for(mac))
    }

    /// The generated file at `path`, or `None` if `path` is not one labnet
    /// generates (or the host has no profile). Paths that cannot be ours are
    /// answered without touching the store.
    pub async fn file(&self, path: &str) -> Option<Vec<u8>> {
        GeneratedPath::parse(path, &self.cfg)?;
        let book = match self.refresh().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload boot profiles; serving the last ones");
                self.current()
            }
        };
        generated_file(&book, &self.cfg, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cfg, profile};

    #[tokio::test]
    async fn a_store_change_is_in_the_next_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = labnet_store::open(&url).await.expect("open");
        let files = BootFiles::load(store.clone(), cfg()).await.expect("load");
        let host = "pxelinux.cfg/01-52-54-00-00-00-01";
        assert_eq!(files.file(host).await, None, "no profiles yet");

        store
            .put_profile(&profile("rescue", "one"), false)
            .await
            .expect("add");
        let text = files.file(host).await.expect("default profile");
        assert!(String::from_utf8_lossy(&text).contains("APPEND one"));

        store
            .put_profile(&profile("other", "two"), false)
            .await
            .expect("add");
        store
            .assign_profile("52:54:00:00:00:01", "other")
            .await
            .expect("assign");
        let text = files.file(host).await.expect("assigned profile");
        assert!(String::from_utf8_lossy(&text).contains("APPEND two"));
        // The decision reads the same book.
        assert_eq!(
            files
                .current()
                .profile_for("52:54:00:00:00:01")
                .map(|p| p.cmdline.as_str()),
            Some("two")
        );
        // Not ours: no store access needed, nothing served.
        assert_eq!(files.file("vmlinuz").await, None);
    }
}
