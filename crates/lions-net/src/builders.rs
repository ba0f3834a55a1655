// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the network configs, so a test or a hand-written system builds them from
//! regions and channel ids, with the magic and the counts filled in, and no zerocopy or pointer
//! casts in user code. A built config passes [`Config::check`] whenever its buffer counts are
//! powers of two; builders that would exceed an array return the [`ConfigError`] the check would
//! have reported.
//!
//! ```
//! use lions_net::{MacAddr, NetClientConfig, NetConnectionResource, NetVirtRxConfig};
//! use lions_os::{Config, DeviceRegionResource, RegionResource};
//!
//! let r = |vaddr, size| RegionResource { vaddr, size };
//! let conn = |base: u64, id| NetConnectionResource::new(r(base, 0x4000), r(base + 0x4000, 0x4000), 512, id);
//! let data = DeviceRegionResource { region: r(0x100_0000, 0x20_0000), io_addr: 0x4000_0000 };
//! let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
//! let virt_rx = NetVirtRxConfig::new(conn(0x10_0000, 0), data, r(0x20_0000, 0x1000))
//!     .with_client(conn(0x30_0000, 1), &[mac])?;
//! virt_rx.check()?;
//! let client = NetClientConfig::new(
//!     conn(0x30_0000, 0), r(0x100_0000, 0x20_0000), conn(0x40_0000, 1), r(0x300_0000, 0x20_0000), mac);
//! client.check()?;
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    LibSddfLwipConfig, MacAddr, NetClientConfig, NetConnectionResource, NetCopyConfig,
    NetDriverConfig, NetVirtRxClient, NetVirtRxConfig, NetVirtTxClient, NetVirtTxConfig,
    NetVirtTxRegion, NetVswitchConfig, NetVswitchPort,
};
use lions_os::{
    Config, ConfigClass, ConfigError, DeviceRegionResource, MAX_CLIENTS, RegionResource, sddf_magic,
};
use zerocopy::FromZeros;

const NET_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Net);
const LWIP_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Lwip);

fn count_error(config: &'static str, field: &'static str, value: usize) -> ConfigError {
    ConfigError::Count {
        config,
        field,
        value: value as u64,
        max: MAX_CLIENTS as u64,
    }
}

/// Fill the first entries of a `MAX_CLIENTS` array from `items` and return the count.
fn fill<T: Copy>(
    config: &'static str,
    field: &'static str,
    out: &mut [T; MAX_CLIENTS],
    items: &[T],
) -> Result<u8, ConfigError> {
    if items.len() > MAX_CLIENTS {
        return Err(count_error(config, field, items.len()));
    }
    out[..items.len()].copy_from_slice(items);
    // At most MAX_CLIENTS (64): fits.
    Ok(u8::try_from(items.len()).unwrap_or(u8::MAX))
}

impl NetConnectionResource {
    /// One end of a queue pair: the free and active queue regions, the number of buffers (queue
    /// entries, a power of two) and the channel id to the peer at this end.
    pub const fn new(
        free_queue: RegionResource,
        active_queue: RegionResource,
        num_buffers: u16,
        id: u8,
    ) -> Self {
        Self {
            free_queue,
            active_queue,
            num_buffers,
            id,
            _pad: [0; 5],
        }
    }

    /// The same queue pair seen from the other end, whose channel to this end is `id`.
    pub const fn with_id(self, id: u8) -> Self {
        Self { id, ..self }
    }
}

impl NetDriverConfig {
    /// A driver producing received frames to the Rx virt over `virt_rx` and consuming frames to
    /// send from the Tx virt over `virt_tx`.
    pub fn new(virt_rx: NetConnectionResource, virt_tx: NetConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.virt_rx = virt_rx;
        c.virt_tx = virt_tx;
        c
    }
}

impl NetVirtRxConfig {
    /// An Rx virtualiser over the driver's queues (`driver`), the Rx DMA region (`data`, as the
    /// virt maps it, with the device's address) and the buffer metadata region, with no clients.
    pub fn new(
        driver: NetConnectionResource,
        data: DeviceRegionResource,
        buffer_metadata: RegionResource,
    ) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.driver = driver;
        c.data = data;
        c.buffer_metadata = buffer_metadata;
        c
    }

    /// Add the next client (a copier or a client PD): its queues and the MAC addresses it
    /// receives.
    pub fn with_client(
        mut self,
        conn: NetConnectionResource,
        macs: &[MacAddr],
    ) -> Result<Self, ConfigError> {
        let n = usize::from(self.num_clients);
        if n >= MAX_CLIENTS {
            return Err(count_error(Self::NAME, "num_clients", n + 1));
        }
        let mut client = NetVirtRxClient::new_zeroed();
        client.conn = conn;
        client.num_macs = fill(
            Self::NAME,
            "clients[].num_macs",
            &mut client.mac_addrs,
            macs,
        )?;
        self.clients[n] = client;
        self.num_clients += 1;
        Ok(self)
    }
}

impl NetVirtTxRegion {
    /// A client's Tx data region (as the virt maps it, with the device's address) holding
    /// `num_buffers` buffers.
    pub const fn new(data: DeviceRegionResource, num_buffers: u32) -> Self {
        Self {
            data,
            num_buffers,
            _pad: 0,
        }
    }
}

impl NetVirtTxConfig {
    /// A Tx virtualiser producing into the driver's queues (`driver`), with no clients.
    pub fn new(driver: NetConnectionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.driver = driver;
        c
    }

    /// Add the next client: its queues and the data regions its buffers live in.
    pub fn with_client(
        mut self,
        conn: NetConnectionResource,
        regions: &[NetVirtTxRegion],
    ) -> Result<Self, ConfigError> {
        let n = usize::from(self.num_clients);
        if n >= MAX_CLIENTS {
            return Err(count_error(Self::NAME, "num_clients", n + 1));
        }
        let mut client = NetVirtTxClient::new_zeroed();
        client.conn = conn;
        client.num_regions = fill(
            Self::NAME,
            "clients[].num_regions",
            &mut client.regions,
            regions,
        )?;
        self.clients[n] = client;
        self.num_clients += 1;
        Ok(self)
    }
}

impl NetCopyConfig {
    /// A copier between the Rx virt (`rx`) and its client (`client`, whose data region as the
    /// copier maps it is `client_data`), with no Rx data regions yet.
    pub fn new(
        rx: NetConnectionResource,
        client: NetConnectionResource,
        client_data: RegionResource,
    ) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.rx = rx;
        c.client = client;
        c.client_data = client_data;
        c
    }

    /// The Rx data region (as the copier maps it) that buffers of owner `oid` live in.
    pub fn with_rx_data(mut self, oid: u8, region: RegionResource) -> Result<Self, ConfigError> {
        let slot = self
            .rx_data
            .get_mut(usize::from(oid))
            .ok_or(ConfigError::Invalid {
                config: Self::NAME,
                field: "rx_data[oid]",
                value: oid.into(),
            })?;
        *slot = region;
        Ok(self)
    }
}

impl NetClientConfig {
    /// A client: its Rx queues and data region, its Tx queues and data region, and its MAC.
    pub fn new(
        rx: NetConnectionResource,
        rx_data: RegionResource,
        tx: NetConnectionResource,
        tx_data: RegionResource,
        mac_addr: MacAddr,
    ) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.rx = rx;
        c.rx_data = rx_data;
        c.tx = tx;
        c.tx_data = tx_data;
        c.mac_addr = mac_addr;
        c
    }
}

impl NetVswitchPort {
    /// A port: its Rx and Tx queues, its Tx data region, its MAC, and the ports it may send to
    /// (bit `i` of `acl`: port `i`).
    pub fn new(
        rx: NetConnectionResource,
        tx: NetConnectionResource,
        tx_data: RegionResource,
        mac_addr: MacAddr,
        acl: u64,
    ) -> Self {
        Self {
            rx,
            tx,
            tx_data,
            mac_addr,
            _pad: [0; 2],
            acl,
        }
    }
}

impl NetVswitchConfig {
    /// A virtual switch with the buffer metadata region and no ports.
    pub fn new(buffer_metadata: RegionResource) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = NET_MAGIC;
        c.buffer_metadata = buffer_metadata;
        c
    }

    /// Add the next port.
    pub fn with_port(mut self, port: NetVswitchPort) -> Result<Self, ConfigError> {
        let n = usize::from(self.num_ports);
        if n >= MAX_CLIENTS {
            return Err(count_error(Self::NAME, "num_ports", n + 1));
        }
        self.ports[n] = port;
        self.num_ports += 1;
        Ok(self)
    }
}

impl LibSddfLwipConfig {
    /// The client library's pbuf pool region and its number of pbufs.
    pub fn new(pbuf_pool: RegionResource, num_pbufs: u64) -> Self {
        let mut c = Self::new_zeroed();
        c.magic = LWIP_MAGIC;
        c.pbuf_pool = pbuf_pool;
        c.num_pbufs = num_pbufs;
        c
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(vaddr: u64, size: u64) -> RegionResource {
        RegionResource { vaddr, size }
    }

    fn conn(i: u64, id: u8) -> NetConnectionResource {
        NetConnectionResource::new(r(i << 24, 0x4000), r((i << 24) + 0x4000, 0x4000), 256, id)
    }

    fn dev(i: u64) -> DeviceRegionResource {
        DeviceRegionResource {
            region: r((i << 24) + 0x10_0000, 0x10_0000),
            io_addr: 0x4000_0000 + (i << 24),
        }
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, last])
    }

    #[test]
    fn connection_and_driver_round_trip() {
        let c = conn(2, 4);
        assert_eq!(
            (c.free_queue, c.active_queue),
            (r(2 << 24, 0x4000), r((2 << 24) + 0x4000, 0x4000))
        );
        assert_eq!((c.num_buffers, c.id), (256, 4));
        assert_eq!(c.with_id(1).free_queue, c.free_queue);
        let d = NetDriverConfig::new(conn(1, 1), conn(2, 2));
        d.check().unwrap();
        assert_eq!((d.virt_rx, d.virt_tx), (conn(1, 1), conn(2, 2)));
        let bad = NetConnectionResource::new(r(0, 0x1000), r(0, 0x1000), 3, 0);
        assert!(NetDriverConfig::new(bad, conn(2, 2)).check().is_err());
    }

    #[test]
    fn virt_rx_round_trips_and_refuses_overflow() {
        let v = NetVirtRxConfig::new(conn(0, 0), dev(0), r(0x9000_0000, 0x1000))
            .with_client(conn(1, 1), &[mac(1)])
            .unwrap()
            .with_client(conn(2, 2), &[mac(2), MacAddr::BROADCAST])
            .unwrap();
        v.check().unwrap();
        assert_eq!(v.driver, conn(0, 0));
        assert_eq!(v.data, dev(0));
        assert_eq!(v.buffer_metadata, r(0x9000_0000, 0x1000));
        assert_eq!(v.clients().len(), 2);
        assert_eq!(v.clients()[1].conn, conn(2, 2));
        assert_eq!(v.clients()[1].macs(), &[mac(2), MacAddr::BROADCAST]);
        let too_many = [mac(0); MAX_CLIENTS + 1];
        assert!(matches!(
            NetVirtRxConfig::new(conn(0, 0), dev(0), r(0, 0)).with_client(conn(1, 1), &too_many),
            Err(ConfigError::Count { value: 65, .. })
        ));
        let mut full = NetVirtRxConfig::new(conn(0, 0), dev(0), r(0, 0));
        for i in 0..MAX_CLIENTS {
            full = full
                .with_client(conn(1, 1), &[mac(u8::try_from(i).unwrap())])
                .unwrap();
        }
        full.check().unwrap();
        assert!(full.with_client(conn(1, 1), &[]).is_err());
    }

    #[test]
    fn virt_tx_round_trips() {
        let regions = [
            NetVirtTxRegion::new(dev(3), 512),
            NetVirtTxRegion::new(dev(4), 256),
        ];
        let v = NetVirtTxConfig::new(conn(0, 0))
            .with_client(conn(1, 1), &regions)
            .unwrap();
        v.check().unwrap();
        assert_eq!(v.driver, conn(0, 0));
        assert_eq!(v.clients()[0].conn, conn(1, 1));
        assert_eq!(v.clients()[0].regions(), &regions);
        assert_eq!(v.clients()[0].regions()[0].num_buffers, 512);
    }

    #[test]
    fn copy_client_vswitch_and_lwip_round_trip() {
        let c = NetCopyConfig::new(conn(1, 0), conn(2, 1), r(0x7000_0000, 0x20_0000))
            .with_rx_data(0, r(0x6000_0000, 0x20_0000))
            .unwrap();
        c.check().unwrap();
        assert_eq!((c.rx, c.client), (conn(1, 0), conn(2, 1)));
        assert_eq!(c.client_data, r(0x7000_0000, 0x20_0000));
        assert_eq!(c.rx_data(0), Some(&r(0x6000_0000, 0x20_0000)));
        assert_eq!(c.rx_data(1), None);
        assert!(c.with_rx_data(200, r(1, 1)).is_err());

        let k = NetClientConfig::new(
            conn(1, 0),
            r(0x100, 0x1000),
            conn(2, 1),
            r(0x200, 0x1000),
            mac(7),
        );
        k.check().unwrap();
        assert_eq!((k.rx, k.tx, k.mac_addr), (conn(1, 0), conn(2, 1), mac(7)));
        assert_eq!((k.rx_data, k.tx_data), (r(0x100, 0x1000), r(0x200, 0x1000)));

        let port = NetVswitchPort::new(conn(1, 0), conn(2, 1), r(0x300, 0x1000), mac(3), 0b10);
        let s = NetVswitchConfig::new(r(0x400, 0x1000))
            .with_port(port)
            .unwrap();
        s.check().unwrap();
        assert_eq!(s.ports().len(), 1);
        assert!(s.ports()[0].may_send_to(1) && !s.ports()[0].may_send_to(0));
        assert_eq!(s.buffer_metadata, r(0x400, 0x1000));

        let l = LibSddfLwipConfig::new(r(0x500, 0x10_000), 128);
        l.check().unwrap();
        assert_eq!((l.pbuf_pool, l.num_pbufs), (r(0x500, 0x10_000), 128));
    }
}
