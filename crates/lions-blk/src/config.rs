// SPDX-License-Identifier: BSD-2-Clause
//! Block config blobs as `sdfgen` 0.35.1 writes them (magic `"sDDF\x02"`).
//!
//! Layouts are the C structs (LP64, natural alignment); every implicit C padding byte is an explicit
//! `_pad` field so the structs are `IntoBytes` (sdfgen fills padding with `0xaa`, which is fine:
//! nothing reads it). Counts, capacities and region sizes are checked by [`Config::check`], and
//! [`BlkVirtConfig::clients`] returns only the valid entries.

use crate::queue::{BLK_TRANSFER_SIZE, BlkReqQueue, BlkRequest, BlkRespQueue, BlkResponse};
use crate::storage_info::BlkStorageInfo;
use lions_os::{
    Access, Claim, Config, ConfigClass, ConfigError, DeviceRegionResource, MAX_CLIENTS,
    RegionResource, Regions, check_count, sddf_magic,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic of every blk config.
pub const BLK_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Blk);

/// One block connection as seen by one end: `blk_connection_resource_t` (56 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkConnectionResource {
    /// The storage-info page (offset 0).
    pub storage_info: RegionResource,
    /// The request queue region (offset 16).
    pub req_queue: RegionResource,
    /// The response queue region (offset 32).
    pub resp_queue: RegionResource,
    /// Capacity of both queues, a power of two (offset 48).
    pub num_buffers: u16,
    /// Microkit channel id to the peer (offset 50).
    pub id: u8,
    /// Explicit C padding (offset 51).
    pub _pad: [u8; 5],
}

impl BlkConnectionResource {
    /// Claim both queues read-write and the storage-info page with `info` (the writer, the
    /// driver or the virt toward a client, needs read-write; a reader, read) (entry `index` of a
    /// table, if any).
    pub fn claims(&self, info: Access, index: Option<usize>, claim: &mut dyn FnMut(Claim)) {
        let page = match info {
            Access::Read => Claim::ro("storage info", self.storage_info),
            Access::ReadWrite => Claim::rw("storage info", self.storage_info),
        };
        let queues = [
            Claim::rw("request queue", self.req_queue),
            Claim::rw("response queue", self.resp_queue),
        ];
        for c in [page].into_iter().chain(queues) {
            claim(index.map_or(c, |i| c.at(i)));
        }
    }

    /// The channel to the peer.
    pub fn channel(&self) -> Result<lions_os::Channel, crate::queue::QueueError> {
        lions_os::Channel::try_new(self.id).ok_or(crate::queue::QueueError::Channel(self.id))
    }

    /// Check that `num_buffers` is a non-zero power of two and that the storage info and both
    /// queues of that capacity fit their regions.
    pub fn validate(&self, config: &'static str) -> Result<(), ConfigError> {
        let n = u64::from(self.num_buffers);
        if !n.is_power_of_two() {
            return Err(ConfigError::Invalid {
                config,
                field: "num_buffers",
                value: n,
            });
        }
        let fits = |region: &RegionResource, header: usize, entry: usize| {
            region.size >= header as u64 + n * entry as u64
        };
        if !fits(&self.storage_info, size_of::<BlkStorageInfo>(), 0) {
            let value = self.storage_info.size;
            return Err(ConfigError::Invalid {
                config,
                field: "storage_info.size",
                value,
            });
        }
        if !fits(
            &self.req_queue,
            size_of::<BlkReqQueue>(),
            size_of::<BlkRequest>(),
        ) {
            let value = self.req_queue.size;
            return Err(ConfigError::Invalid {
                config,
                field: "req_queue.size",
                value,
            });
        }
        if !fits(
            &self.resp_queue,
            size_of::<BlkRespQueue>(),
            size_of::<BlkResponse>(),
        ) {
            let value = self.resp_queue.size;
            return Err(ConfigError::Invalid {
                config,
                field: "resp_queue.size",
                value,
            });
        }
        Ok(())
    }
}

/// Check that a data region holds whole transfer units.
fn check_data(config: &'static str, field: &'static str, size: u64) -> Result<(), ConfigError> {
    if !size.is_multiple_of(BLK_TRANSFER_SIZE as u64) {
        return Err(ConfigError::Invalid {
            config,
            field,
            value: size,
        });
    }
    Ok(())
}

/// The driver's config: `blk_driver_config_t` (64 B), section `.blk_driver_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkDriverConfig {
    /// `"sDDF\x02"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Connection to the virt; the driver serves it (offset 8).
    pub virt: BlkConnectionResource,
}

impl Regions for BlkDriverConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.virt.claims(Access::ReadWrite, None, claim);
    }
}

impl Config for BlkDriverConfig {
    const SECTION: &'static str = ".blk_driver_config";
    const MAGIC: &'static [u8] = &BLK_MAGIC;
    const NAME: &'static str = "blk_driver_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.virt.validate(Self::NAME)
    }
}

/// The virt's side toward the driver: `blk_virt_config_driver_t` (80 B).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkVirtDriver {
    /// Connection to the driver; the virt requests (offset 0).
    pub conn: BlkConnectionResource,
    /// The driver's data region: the virt's bounce area for partitioning reads (offset 56).
    pub data: DeviceRegionResource,
}

/// One client of the virt: `blk_virt_config_client_t` (88 B).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkVirtClient {
    /// Connection to the client; the virt serves it (offset 0).
    pub conn: BlkConnectionResource,
    /// The client's data region with its I/O address, for translation (offset 56).
    pub data: DeviceRegionResource,
    /// Partition of the disk this client sees (MBR or GPT entry index) (offset 80).
    pub partition: u32,
    /// Explicit C padding (offset 84).
    pub _pad: [u8; 4],
}

/// The virtualiser's config: `blk_virt_config_t` (5728 B), section `.blk_virt_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkVirtConfig {
    /// `"sDDF\x02"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Valid entries in `clients` (offset 8).
    pub num_clients: u64,
    /// The driver side (offset 16).
    pub driver: BlkVirtDriver,
    /// The clients (offset 96, 88 B each).
    pub clients: [BlkVirtClient; MAX_CLIENTS],
}

impl BlkVirtConfig {
    /// The clients that exist (count checked by [`Config::check`], clamped here too).
    pub fn clients(&self) -> &[BlkVirtClient] {
        let n = usize::try_from(self.num_clients)
            .unwrap_or(MAX_CLIENTS)
            .min(MAX_CLIENTS);
        &self.clients[..n]
    }
}

impl Regions for BlkVirtConfig {
    /// The driver's queues, its storage info (read) and data region (read: partition tables land
    /// there); each client's queues and storage info (written). Client data regions are not
    /// mapped in the virt (only their I/O addresses are used).
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.driver.conn.claims(Access::Read, None, claim);
        claim(Claim::ro("driver data region", self.driver.data.region).aligned(1));
        for (i, c) in self.clients().iter().enumerate() {
            c.conn.claims(Access::ReadWrite, Some(i), claim);
        }
    }
}

impl Config for BlkVirtConfig {
    const SECTION: &'static str = ".blk_virt_config";
    const MAGIC: &'static [u8] = &BLK_MAGIC;
    const NAME: &'static str = "blk_virt_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(Self::NAME, "num_clients", self.num_clients, MAX_CLIENTS)?;
        self.driver.conn.validate(Self::NAME)?;
        check_data(Self::NAME, "driver.data.size", self.driver.data.region.size)?;
        self.clients().iter().try_for_each(|c| {
            c.conn.validate(Self::NAME)?;
            check_data(Self::NAME, "clients.data.size", c.data.region.size)
        })
    }
}

/// A client's config: `blk_client_config_t` (80 B), section `.blk_client_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkClientConfig {
    /// `"sDDF\x02"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Connection to the virt; the client requests (offset 8).
    pub virt: BlkConnectionResource,
    /// The data region request offsets point into (offset 64).
    pub data: RegionResource,
}

impl Regions for BlkClientConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.virt.claims(Access::Read, None, claim);
        claim(Claim::rw("data region", self.data).aligned(1));
    }
}

impl Config for BlkClientConfig {
    const SECTION: &'static str = ".blk_client_config";
    const MAGIC: &'static [u8] = &BLK_MAGIC;
    const NAME: &'static str = "blk_client_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.virt.validate(Self::NAME)?;
        check_data(Self::NAME, "data.size", self.data.size)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    // Offsets from C natural alignment, LP64: the 5-byte magic is padded to 8 because the next
    // member holds u64s; every struct here has alignment 8 and a size rounded up to it.

    #[test]
    fn connection_layout() {
        // Three 16-byte regions = 48; u16 at 48; u8 at 50; 51 rounded to 56.
        assert_eq!(size_of::<BlkConnectionResource>(), 56);
        assert_eq!(align_of::<BlkConnectionResource>(), 8);
        assert_eq!(offset_of!(BlkConnectionResource, storage_info), 0);
        assert_eq!(offset_of!(BlkConnectionResource, req_queue), 16);
        assert_eq!(offset_of!(BlkConnectionResource, resp_queue), 32);
        assert_eq!(offset_of!(BlkConnectionResource, num_buffers), 48);
        assert_eq!(offset_of!(BlkConnectionResource, id), 50);
        assert_eq!(offset_of!(BlkConnectionResource, _pad), 51);
    }

    #[test]
    fn driver_and_client_layout() {
        // 8 + 56 = 64.
        assert_eq!(size_of::<BlkDriverConfig>(), 64);
        assert_eq!(offset_of!(BlkDriverConfig, virt), 8);
        // 8 + 56 = 64; region 16 → 80.
        assert_eq!(size_of::<BlkClientConfig>(), 80);
        assert_eq!(offset_of!(BlkClientConfig, virt), 8);
        assert_eq!(offset_of!(BlkClientConfig, data), 64);
    }

    #[test]
    fn virt_layout() {
        // Driver: 56 + 24 = 80.
        assert_eq!(size_of::<BlkVirtDriver>(), 80);
        assert_eq!(offset_of!(BlkVirtDriver, conn), 0);
        assert_eq!(offset_of!(BlkVirtDriver, data), 56);
        // Client: 56 + 24 = 80; u32 at 80; 84 rounded to 88.
        assert_eq!(size_of::<BlkVirtClient>(), 88);
        assert_eq!(offset_of!(BlkVirtClient, conn), 0);
        assert_eq!(offset_of!(BlkVirtClient, data), 56);
        assert_eq!(offset_of!(BlkVirtClient, partition), 80);
        assert_eq!(offset_of!(BlkVirtClient, _pad), 84);
        // magic 8; u64 at 8; driver at 16 (80) → 96; 64 × 88 = 5632 → 5728.
        assert_eq!(size_of::<BlkVirtConfig>(), 5728);
        assert_eq!(offset_of!(BlkVirtConfig, num_clients), 8);
        assert_eq!(offset_of!(BlkVirtConfig, driver), 16);
        assert_eq!(offset_of!(BlkVirtConfig, clients), 96);
    }

    fn conn(num_buffers: u16) -> BlkConnectionResource {
        BlkConnectionResource {
            storage_info: RegionResource {
                vaddr: 0x2000_0000,
                size: 0x1000,
            },
            req_queue: RegionResource {
                vaddr: 0x2000_1000,
                size: 0x4000,
            },
            resp_queue: RegionResource {
                vaddr: 0x2000_5000,
                size: 0x4000,
            },
            num_buffers,
            id: 0,
            _pad: [0xaa; 5],
        }
    }

    #[test]
    fn magic_is_checked() {
        let mut c = BlkDriverConfig::new_zeroed();
        c.virt = conn(128);
        assert_eq!(
            c.check(),
            Err(ConfigError::BadMagic {
                config: "blk_driver_config_t"
            })
        );
        c.magic = *b"sDDF\x03";
        assert!(
            matches!(c.check(), Err(ConfigError::BadMagic { .. })),
            "serial magic is not blk"
        );
        c.magic = BLK_MAGIC;
        assert_eq!(c.check(), Ok(()));
    }

    #[test]
    fn capacities_are_checked() {
        let mut c = BlkClientConfig::new_zeroed();
        c.magic = BLK_MAGIC;
        c.virt = conn(128);
        c.data = RegionResource {
            vaddr: 0x2020_0000,
            size: 0x20_0000,
        };
        assert_eq!(c.check(), Ok(()));
        for bad in [0, 3, 100] {
            c.virt.num_buffers = bad;
            assert_eq!(
                c.check(),
                Err(ConfigError::Invalid {
                    config: "blk_client_config_t",
                    field: "num_buffers",
                    value: bad.into()
                })
            );
        }
        // 16 + 32 × 512 = 16400 > 0x4000: the request queue no longer fits.
        c.virt.num_buffers = 512;
        assert!(matches!(
            c.check(),
            Err(ConfigError::Invalid {
                field: "req_queue.size",
                ..
            })
        ));
        c.virt.req_queue.size = 16400;
        assert_eq!(
            c.check(),
            Ok(()),
            "8 + 12 × 512 = 6152 fits the response region"
        );
        c.virt.resp_queue.size = 6151;
        assert!(matches!(
            c.check(),
            Err(ConfigError::Invalid {
                field: "resp_queue.size",
                ..
            })
        ));
        c.virt.resp_queue.size = 6152;
        c.virt.storage_info.size = 87;
        assert!(matches!(
            c.check(),
            Err(ConfigError::Invalid {
                field: "storage_info.size",
                ..
            })
        ));
        c.virt.storage_info.size = 0x1000;
        c.data.size = 0x1800;
        assert!(matches!(
            c.check(),
            Err(ConfigError::Invalid {
                field: "data.size",
                value: 0x1800,
                ..
            })
        ));
    }

    #[test]
    fn counts_are_checked_and_clamped() {
        let mut v = BlkVirtConfig::new_zeroed();
        v.magic = BLK_MAGIC;
        v.driver.conn = conn(256);
        v.driver.conn.req_queue.size = 0x8000;
        v.driver.conn.resp_queue.size = 0x8000;
        v.num_clients = 2;
        v.clients[0].conn = conn(128);
        v.clients[1].conn = conn(128);
        v.clients[2].conn = conn(3);
        assert_eq!(
            v.check(),
            Ok(()),
            "the bad entry past num_clients is never looked at"
        );
        assert_eq!(v.clients().len(), 2);
        v.num_clients = 3;
        assert!(matches!(
            v.check(),
            Err(ConfigError::Invalid {
                field: "num_buffers",
                value: 3,
                ..
            })
        ));
        for n in [65, u64::from(u32::MAX) + 1, u64::MAX] {
            v.num_clients = n;
            assert_eq!(
                v.check(),
                Err(ConfigError::Count {
                    config: "blk_virt_config_t",
                    field: "num_clients",
                    value: n,
                    max: 64
                })
            );
            assert_eq!(v.clients().len(), 64);
        }
        v.num_clients = 2;
        v.clients[1].data.region.size = 100;
        assert!(matches!(
            v.check(),
            Err(ConfigError::Invalid {
                field: "clients.data.size",
                ..
            })
        ));
    }

    #[test]
    fn from_blob_round_trip() {
        let mut c = BlkClientConfig::new_zeroed();
        c.magic = BLK_MAGIC;
        c.virt = conn(64);
        let mut buf = [0u64; 10];
        buf.as_mut_bytes().copy_from_slice(c.as_bytes());
        let parsed = BlkClientConfig::from_blob(buf.as_bytes()).unwrap();
        assert_eq!(parsed.virt, c.virt);
        assert_eq!(
            BlkClientConfig::from_blob(&buf.as_bytes()[..79]).err(),
            Some(ConfigError::TooShort {
                needed: 80,
                have: 79
            })
        );
    }
}
