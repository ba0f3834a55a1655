// SPDX-License-Identifier: BSD-2-Clause
//! The test world the I²C virtualiser tests share (`virt_sim`, `attack`): channel numbers, each
//! client's data region as the client and the driver see it, a connection's two queue pages
//! ([`Pair`], with raw access to its header words as a rogue peer has), and the virt's config
//! over a driver pair and client pairs.
#![allow(dead_code, clippy::cast_possible_truncation)]

use lions_i2c::{I2cConnectionResource, I2cVirtConfig};
use lions_os::RegionResource;
use lions_os::sim::Region;
use std::sync::atomic::AtomicU32;
use zerocopy::FromZeros;

/// The virt's channel to the driver.
pub const V_DRIVER: u8 = 0;
/// The driver's channel to the virt.
pub const D_VIRT: u8 = 1;
/// The driver's command channel (an IRQ the test injects).
pub const D_CMD: u8 = 2;
/// A client's channel to the virt (client `c` is the virt's channel `c + 1`).
pub const C_VIRT: u8 = 0;
/// A client's command channel (an IRQ the test injects).
pub const C_CMD: u8 = 1;
/// Bytes of each client's data region.
pub const DATA: u64 = 0x1000;
/// Client c's data region: at `CLIENT_BASE` in the client, [`driver_base`]`(c)` in the driver
/// (nobody dereferences them here).
pub const CLIENT_BASE: u64 = 0x2000_0000;
/// The driver's mapping of client 0's data region; client c's is `0x10000 * c` above.
pub const DRIVER_BASE: u64 = 0x3000_0000;

/// Client `c`'s data region in the driver.
pub fn driver_base(c: usize) -> u64 {
    DRIVER_BASE + c as u64 * 0x10000
}

/// The request and response queue pages of one connection.
pub struct Pair {
    /// The request queue.
    pub req: Region,
    /// The response queue.
    pub resp: Region,
}

impl Pair {
    /// Two zeroed pages.
    pub fn new() -> Self {
        Self {
            req: Region::new(Region::PAGE),
            resp: Region::new(Region::PAGE),
        }
    }

    /// The connection over the two pages, on channel `id`.
    pub fn conn(&self, id: u8) -> I2cConnectionResource {
        let r = |r: &Region| RegionResource {
            vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
            size: Region::PAGE as u64,
        };
        I2cConnectionResource {
            req_queue: r(&self.req),
            resp_queue: r(&self.resp),
            num_buffers: 254,
            id,
            _pad: [0; 5],
        }
    }

    /// A word of a queue header as a rogue peer sees it: request queue 0 staged tail, 4 tail,
    /// 8 head; response queue (`resp`) 0 tail, 4 head.
    pub fn word(&self, resp: bool, at: usize) -> &AtomicU32 {
        let r = if resp { &self.resp } else { &self.req };
        // SAFETY: page-aligned, inside the region, accessed only atomically.
        unsafe { r.at(at).cast::<AtomicU32>().as_ref() }
    }
}

/// The virt's config: the driver on [`V_DRIVER`], client c on channel `c + 1` with its data
/// region at [`CLIENT_BASE`] and [`driver_base`]`(c)`.
pub fn virt_config(driver: &Pair, clients: &[Pair]) -> Box<I2cVirtConfig> {
    let mut config = Box::new(I2cVirtConfig::new_zeroed());
    config.magic = *b"sDDF\x04";
    config.num_clients = clients.len() as u64;
    config.driver = driver.conn(V_DRIVER);
    for (c, p) in clients.iter().enumerate() {
        let e = &mut config.clients[c];
        e.conn = p.conn(u8::try_from(c + 1).unwrap_or(u8::MAX));
        e.data_size = DATA;
        e.client_data_vaddr = CLIENT_BASE;
        e.driver_data_vaddr = driver_base(c);
    }
    config
}
