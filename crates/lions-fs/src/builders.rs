// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the file-system configs (magic filled in), so a test or a hand-written
//! system builds them from regions and channel ids, with no zerocopy or pointer casts in user
//! code. A built config passes [`Config::check`] whenever its channel id is a channel.
//!
//! ```
//! use lions_fs::{FsClientConfig, FsConnectionResource, FsServerConfig};
//! use lions_os::{Config, RegionResource};
//!
//! let r = |vaddr, size| RegionResource { vaddr, size };
//! let conn = FsConnectionResource::new(r(0x10_0000, 0x8000), r(0x20_0000, 0x8000), r(0x30_0000, 0x10_0000), 512, 1);
//! FsServerConfig::new(conn).check()?;
//! FsClientConfig::new(conn.with_id(0)).check()?;
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    FS_MAGIC, FsClientConfig, FsConnectionResource, FsServerConfig, NFS_MAGIC, NFS_STRING_BYTES,
    NfsConfig,
};
use lions_os::{Config, ConfigError, RegionResource};
use zerocopy::FromZeros;

impl FsConnectionResource {
    /// One end of a file-system connection: the command and completion queue regions, the share
    /// (data) region, the queue length in entries and the channel id to the peer at this end.
    pub const fn new(
        command_queue: RegionResource,
        completion_queue: RegionResource,
        share: RegionResource,
        queue_len: u16,
        id: u8,
    ) -> Self {
        Self {
            command_queue,
            completion_queue,
            share,
            queue_len,
            id,
            _pad: [0; 5],
        }
    }

    /// The same connection seen from the other end, whose channel to this end is `id`.
    pub const fn with_id(self, id: u8) -> Self {
        Self { id, ..self }
    }
}

impl FsServerConfig {
    /// A server for the client over `client`.
    pub const fn new(client: FsConnectionResource) -> Self {
        Self {
            magic: FS_MAGIC,
            client,
        }
    }
}

impl FsClientConfig {
    /// A client of the server over `server`.
    pub const fn new(server: FsConnectionResource) -> Self {
        Self {
            magic: FS_MAGIC,
            server,
        }
    }
}

impl NfsConfig {
    /// The NFS server's address and the export path (each without NUL, shorter than
    /// [`NFS_STRING_BYTES`]).
    pub fn new(server: &str, export: &str) -> Result<Self, ConfigError> {
        let mut c = Self::new_zeroed();
        c.magic = NFS_MAGIC;
        for (field, text, out) in [
            ("server", server, &mut c.server),
            ("export", export, &mut c.export),
        ] {
            if text.len() >= NFS_STRING_BYTES || text.as_bytes().contains(&0) {
                return Err(ConfigError::Invalid {
                    config: Self::NAME,
                    field,
                    value: text.len() as u64,
                });
            }
            out[..text.len()].copy_from_slice(text.as_bytes());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(vaddr: u64, size: u64) -> RegionResource {
        RegionResource { vaddr, size }
    }

    fn conn(id: u8) -> FsConnectionResource {
        FsConnectionResource::new(
            r(0x1000, 0x4000),
            r(0x5000, 0x4000),
            r(0x9000, 0x8000),
            256,
            id,
        )
    }

    #[test]
    fn connection_round_trips() {
        let c = conn(3);
        assert_eq!(c.command_queue, r(0x1000, 0x4000));
        assert_eq!(c.completion_queue, r(0x5000, 0x4000));
        assert_eq!(c.share, r(0x9000, 0x8000));
        assert_eq!((c.queue_len, c.id), (256, 3));
        assert_eq!(c.with_id(0).share, c.share);
    }

    #[test]
    fn server_and_client_round_trip_and_check_the_channel() {
        let s = FsServerConfig::new(conn(1));
        s.check().unwrap();
        assert_eq!(s.client, conn(1));
        let c = FsClientConfig::new(conn(0));
        c.check().unwrap();
        assert_eq!(c.server, conn(0));
        assert!(FsClientConfig::new(conn(200)).check().is_err());
    }

    #[test]
    fn nfs_round_trips_and_refuses_long_strings() {
        let n = NfsConfig::new("10.0.2.2", "/srv/export").unwrap();
        n.check().unwrap();
        assert_eq!(n.server(), Ok("10.0.2.2"));
        assert_eq!(n.export(), Ok("/srv/export"));
        let long = "x".repeat(NFS_STRING_BYTES);
        assert!(NfsConfig::new(&long, "/").is_err());
        assert!(NfsConfig::new("a\0b", "/").is_err());
    }
}
