// SPDX-License-Identifier: BSD-2-Clause
//! FS and NFS configuration structs as `sdfgen` 0.35.1 serialises them (`lions/fs/config.h`, NFS
//! component config). Offsets in the comments are the C ones (LP64), pinned by the tests.

use lions_os::{Claim, Config, ConfigError, RegionResource, Regions};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic of the FS connection configs.
pub const FS_MAGIC: [u8; 8] = *b"LionsOS\x01";

/// Magic of the NFS server config.
pub const NFS_MAGIC: [u8; 8] = *b"LionsOS\x02";

/// Bytes of each string field of [`NfsConfig`], terminator included.
pub const NFS_STRING_BYTES: usize = 4096;

/// One FS connection as mapped in this component: `fs_connection_resource_t` (56 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsConnectionResource {
    /// The command queue region, one 32 KiB `fs_queue_t` (offset 0).
    pub command_queue: RegionResource,
    /// The completion queue region (offset 16).
    pub completion_queue: RegionResource,
    /// The share region all buffers point into (offset 32).
    pub share: RegionResource,
    /// Written by sdfgen (512) but ignored on the wire: queues always hold 511 messages (offset 48).
    pub queue_len: u16,
    /// Microkit channel id to the peer (offset 50).
    pub id: u8,
    /// Explicit C padding (offset 51).
    pub _pad: [u8; 5],
}

impl FsConnectionResource {
    /// Claim both queues and the share region read-write (both ends write all three).
    pub fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        claim(Claim::rw("command queue", self.command_queue));
        claim(Claim::rw("completion queue", self.completion_queue));
        claim(Claim::rw("share region", self.share).aligned(1));
    }

    /// The channel to the peer, or `None` when `id` is above [`lions_os::MAX_CHANNEL`] (a
    /// config is data: a bad id is an error, never a panic).
    pub fn channel(&self) -> Option<lions_os::Channel> {
        lions_os::Channel::try_new(self.id)
    }

    /// Check what a component relies on before it uses the connection: the channel id is one
    /// Microkit has (at most 61).
    pub fn validate(&self, config: &'static str) -> Result<(), ConfigError> {
        match self.channel() {
            Some(_) => Ok(()),
            None => Err(ConfigError::Invalid {
                config,
                field: "id",
                value: u64::from(self.id),
            }),
        }
    }
}

/// FS server config: `fs_server_config_t` (64 B), section `.fs_server_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsServerConfig {
    /// `"LionsOS\x01"` (offset 0).
    pub magic: [u8; 8],
    /// The connection to the client (offset 8).
    pub client: FsConnectionResource,
}

impl Regions for FsServerConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.client.claims(claim);
    }
}

impl Config for FsServerConfig {
    const SECTION: &'static str = ".fs_server_config";
    const MAGIC: &'static [u8] = &FS_MAGIC;
    const NAME: &'static str = "fs_server_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.client.validate(Self::NAME)
    }
}

/// FS client config: `fs_client_config_t` (64 B), section `.fs_client_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsClientConfig {
    /// `"LionsOS\x01"` (offset 0).
    pub magic: [u8; 8],
    /// The connection to the server (offset 8).
    pub server: FsConnectionResource,
}

impl Regions for FsClientConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.server.claims(claim);
    }
}

impl Config for FsClientConfig {
    const SECTION: &'static str = ".fs_client_config";
    const MAGIC: &'static [u8] = &FS_MAGIC;
    const NAME: &'static str = "fs_client_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate(Self::NAME)
    }
}

/// Why a config string could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrError {
    /// No NUL terminator inside the field.
    NotTerminated,
    /// The bytes before the terminator are not UTF-8.
    NotUtf8,
}

impl core::fmt::Display for StrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotTerminated => write!(f, "config string is not NUL-terminated"),
            Self::NotUtf8 => write!(f, "config string is not UTF-8"),
        }
    }
}

impl core::error::Error for StrError {}

/// The text before the first NUL of a fixed-size C string field.
fn c_str(field: &[u8]) -> Result<&str, StrError> {
    let end = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(StrError::NotTerminated)?;
    core::str::from_utf8(&field[..end]).map_err(|_| StrError::NotUtf8)
}

/// NFS server config: `nfs_config_t` (8200 B), section `.nfs_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NfsConfig {
    /// `"LionsOS\x02"` (offset 0).
    pub magic: [u8; 8],
    /// NFS server address, NUL-terminated (offset 8).
    pub server: [u8; NFS_STRING_BYTES],
    /// Export path, NUL-terminated (offset 4104).
    pub export: [u8; NFS_STRING_BYTES],
}

impl NfsConfig {
    /// The server address.
    pub fn server(&self) -> Result<&str, StrError> {
        c_str(&self.server)
    }

    /// The export path.
    pub fn export(&self) -> Result<&str, StrError> {
        c_str(&self.export)
    }
}

impl Config for NfsConfig {
    const SECTION: &'static str = ".nfs_config";
    const MAGIC: &'static [u8] = &NFS_MAGIC;
    const NAME: &'static str = "nfs_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        for (field, r) in [("server", self.server()), ("export", self.export())] {
            if let Err(e) = r {
                return Err(ConfigError::Invalid {
                    config: Self::NAME,
                    field,
                    value: e as u64,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layouts_match_c() {
        assert_eq!(size_of::<FsConnectionResource>(), 56);
        assert_eq!(offset_of!(FsConnectionResource, command_queue), 0);
        assert_eq!(offset_of!(FsConnectionResource, completion_queue), 16);
        assert_eq!(offset_of!(FsConnectionResource, share), 32);
        assert_eq!(offset_of!(FsConnectionResource, queue_len), 48);
        assert_eq!(offset_of!(FsConnectionResource, id), 50);
        assert_eq!(offset_of!(FsConnectionResource, _pad), 51);
        assert_eq!(size_of::<FsServerConfig>(), 64);
        assert_eq!(offset_of!(FsServerConfig, client), 8);
        assert_eq!(size_of::<FsClientConfig>(), 64);
        assert_eq!(offset_of!(FsClientConfig, server), 8);
        assert_eq!(size_of::<NfsConfig>(), 8200);
        assert_eq!(offset_of!(NfsConfig, server), 8);
        assert_eq!(offset_of!(NfsConfig, export), 4104);
    }

    #[test]
    fn magics_are_checked() {
        let mut s = FsServerConfig::new_zeroed();
        assert!(matches!(
            s.check(),
            Err(ConfigError::BadMagic {
                config: "fs_server_config_t"
            })
        ));
        s.magic = NFS_MAGIC;
        assert!(s.check().is_err(), "an NFS magic is not an FS magic");
        s.magic = FS_MAGIC;
        assert!(s.check().is_ok());
        let mut c = FsClientConfig::new_zeroed();
        c.magic = *b"LionsOS\x00";
        assert!(c.check().is_err());
        c.magic = FS_MAGIC;
        assert!(c.check().is_ok());
        assert_eq!(
            [
                FsServerConfig::SECTION,
                FsClientConfig::SECTION,
                NfsConfig::SECTION
            ],
            [".fs_server_config", ".fs_client_config", ".nfs_config"]
        );
    }

    /// Issue 12 item 5: a channel id above 61 is a config error (and `channel()` is `None`), not
    /// a panic in `Channel::new` when the server or client is built.
    #[test]
    fn channel_ids_above_61_are_invalid() {
        let mut s = FsServerConfig::new_zeroed();
        s.magic = FS_MAGIC;
        let mut c = FsClientConfig::new_zeroed();
        c.magic = FS_MAGIC;
        for id in [0u8, 61] {
            s.client.id = id;
            c.server.id = id;
            assert!(s.check().is_ok() && c.check().is_ok(), "id {id}");
            assert_eq!(s.client.channel().map(lions_os::Channel::index), Some(id));
        }
        for id in [62u8, 63, 200, 255] {
            s.client.id = id;
            c.server.id = id;
            for r in [s.check(), c.check()] {
                assert!(
                    matches!(
                        r,
                        Err(ConfigError::Invalid { field: "id", value, .. }) if value == u64::from(id)
                    ),
                    "id {id}: {r:?}"
                );
            }
            assert_eq!(s.client.channel(), None);
        }
    }

    #[test]
    fn nfs_strings() {
        let mut n = Box::new(NfsConfig::new_zeroed());
        n.magic = NFS_MAGIC;
        assert_eq!(n.server(), Ok(""));
        n.server[..8].copy_from_slice(b"10.0.2.2");
        n.export[..6].copy_from_slice(b"/a/b\0x");
        assert_eq!((n.server(), n.export()), (Ok("10.0.2.2"), Ok("/a/b")));
        assert!(n.check().is_ok());
        n.export.fill(b'a');
        assert_eq!(n.export(), Err(StrError::NotTerminated));
        assert!(matches!(
            n.check(),
            Err(ConfigError::Invalid {
                field: "export",
                ..
            })
        ));
        n.export[0] = 0;
        n.server[0] = 0xff;
        assert_eq!(n.server(), Err(StrError::NotUtf8));
        assert!(matches!(
            n.check(),
            Err(ConfigError::Invalid {
                field: "server",
                ..
            })
        ));
    }
}
