//! Generated PXE files: labnet-pxe's [`BootFiles`] renders
//! `pxelinux.cfg/*` and the iPXE scripts from the boot profiles in the store.

use std::net::SocketAddr;

use async_trait::async_trait;
use labnet_pxe::BootFiles;

use crate::files::VirtualFiles;

#[async_trait]
impl VirtualFiles for BootFiles {
    /// Files are keyed by the MAC in their name (see labnet-pxe's `render`),
    /// so the client address is not needed.
    async fn get(&self, path: &str, _client: SocketAddr) -> Option<Vec<u8>> {
        self.file(path).await
    }
}
