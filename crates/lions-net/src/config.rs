// SPDX-License-Identifier: BSD-2-Clause
//! Net configuration structs as `sdfgen` 0.35.1 serialises them (`sddf/network/config.h`, magic
//! `"sDDF\x05"`; `lib_sddf_lwip`: `"sDDF\x08"`). Offsets in the comments are the C ones (LP64) and
//! are pinned by the tests; every implicit C padding is an explicit `_pad` field.

use crate::SetupError;
use crate::region::DataRegion;
use lions_os::{
    Channel, Claim, Config, ConfigClass, ConfigError, DeviceRegionResource, MAX_CLIENTS,
    RegionResource, Regions, check_count, sddf_magic,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

const NET_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Net);
const LWIP_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Lwip);

/// An Ethernet MAC address (6 bytes, wire order).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// Whether this is the broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit (bit 0 of the first byte) is set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl core::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// One free/active queue pair as mapped in this component: `net_connection_resource_t` (40 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetConnectionResource {
    /// The free queue region (offset 0).
    pub free_queue: RegionResource,
    /// The active queue region (offset 16).
    pub active_queue: RegionResource,
    /// Capacity of both queues, a power of two; 0 for an unused direction (offset 32).
    pub num_buffers: u16,
    /// Microkit channel id to the peer (offset 34).
    pub id: u8,
    /// Explicit C padding (offset 35).
    pub _pad: [u8; 5],
}

impl NetConnectionResource {
    /// Check the capacity: 0 (unused) or a power of two (the `u16` index wraps consistently only
    /// then).
    pub fn validate(&self, config: &'static str, field: &'static str) -> Result<(), ConfigError> {
        if self.num_buffers != 0 && !self.num_buffers.is_power_of_two() {
            return Err(ConfigError::Invalid {
                config,
                field,
                value: self.num_buffers.into(),
            });
        }
        Ok(())
    }

    /// Claim both queue regions read-write (entry `index` of a table, if any); nothing for an
    /// unused direction (`num_buffers = 0`).
    pub fn claims(
        &self,
        what: [&'static str; 2],
        index: Option<usize>,
        claim: &mut dyn FnMut(Claim),
    ) {
        if self.num_buffers == 0 {
            return;
        }
        for (w, r) in what.into_iter().zip([self.free_queue, self.active_queue]) {
            let c = Claim::rw(w, r);
            claim(index.map_or(c, |i| c.at(i)));
        }
    }

    /// The channel to the peer, refused above Microkit's 61.
    pub fn channel(&self) -> Result<Channel, SetupError> {
        Channel::try_new(self.id).ok_or(SetupError::Channel(self.id))
    }
}

/// Ethernet driver config: `net_driver_config_t` (88 B), section `.net_driver_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetDriverConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Queues to the Rx virtualiser (offset 8).
    pub virt_rx: NetConnectionResource,
    /// Queues to the Tx virtualiser (offset 48).
    pub virt_tx: NetConnectionResource,
}

impl Config for NetDriverConfig {
    const SECTION: &'static str = ".net_driver_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_driver_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.virt_rx.validate(Self::NAME, "virt_rx.num_buffers")?;
        self.virt_tx.validate(Self::NAME, "virt_tx.num_buffers")
    }
}

impl Regions for NetDriverConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.virt_rx
            .claims(["virt rx free queue", "virt rx active queue"], None, claim);
        self.virt_tx
            .claims(["virt tx free queue", "virt tx active queue"], None, claim);
    }
}

/// One client of the Rx virtualiser: `net_virt_rx_client_config_t` (432 B).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVirtRxClient {
    /// Queues to the client (or its copier) (offset 0).
    pub conn: NetConnectionResource,
    /// MAC addresses delivered to this client (offset 40).
    pub mac_addrs: [MacAddr; MAX_CLIENTS],
    /// Valid entries in `mac_addrs` (offset 424).
    pub num_macs: u8,
    /// Explicit C padding (offset 425).
    pub _pad: [u8; 7],
}

impl NetVirtRxClient {
    /// The valid MAC addresses (clamped to the array).
    #[inline]
    pub fn macs(&self) -> &[MacAddr] {
        &self.mac_addrs[..usize::from(self.num_macs).min(MAX_CLIENTS)]
    }
}

/// Rx virtualiser config: `net_virt_rx_config_t` (27 744 B), section `.net_virt_rx_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVirtRxConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Queues to the driver (offset 8).
    pub driver: NetConnectionResource,
    /// The Rx DMA region, with its IO address (offset 48).
    pub data: DeviceRegionResource,
    /// Zeroed scratch region, one refcount byte per driver buffer (offset 72).
    pub buffer_metadata: RegionResource,
    /// Clients in the order they were added (offset 88).
    pub clients: [NetVirtRxClient; MAX_CLIENTS],
    /// Valid entries in `clients` (offset 27 736).
    pub num_clients: u8,
    /// Explicit C padding (offset 27 737).
    pub _pad1: [u8; 7],
}

impl NetVirtRxConfig {
    /// The valid clients (clamped to the array).
    #[inline]
    pub fn clients(&self) -> &[NetVirtRxClient] {
        &self.clients[..usize::from(self.num_clients).min(MAX_CLIENTS)]
    }
}

impl Config for NetVirtRxConfig {
    const SECTION: &'static str = ".net_virt_rx_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_virt_rx_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            Self::NAME,
            "num_clients",
            self.num_clients.into(),
            MAX_CLIENTS,
        )?;
        self.driver.validate(Self::NAME, "driver.num_buffers")?;
        for c in self.clients() {
            check_count(
                Self::NAME,
                "clients[].num_macs",
                c.num_macs.into(),
                MAX_CLIENTS,
            )?;
            c.conn.validate(Self::NAME, "clients[].conn.num_buffers")?;
        }
        Ok(())
    }
}

impl Regions for NetVirtRxConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.driver
            .claims(["driver free queue", "driver active queue"], None, claim);
        // sdfgen maps it read-only here: the virt only reads the headers (and invalidates).
        claim(Claim::ro("rx dma region", self.data.region).aligned(1));
        claim(Claim::rw("buffer metadata", self.buffer_metadata));
        for (i, c) in self.clients().iter().enumerate() {
            c.conn
                .claims(["client free queue", "client active queue"], Some(i), claim);
        }
    }
}

/// One data region a Tx client may send from (32 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVirtTxRegion {
    /// The region as mapped in the Tx virt, with its IO address (offset 0).
    pub data: DeviceRegionResource,
    /// Number of 2048-byte buffers in it (offset 24).
    pub num_buffers: u32,
    /// Explicit C padding (offset 28).
    pub _pad: u32,
}

impl NetVirtTxRegion {
    /// The region's buffers as mapped in this component.
    ///
    /// # Safety
    /// The region describes this component's real mapping, readable for `'a`.
    pub unsafe fn buffers<'a>(&self) -> Result<DataRegion<'a>, SetupError> {
        // SAFETY: forwarded from the caller.
        unsafe { DataRegion::from_resource(&self.data.region, self.num_buffers.into(), false) }
    }
}

/// One client of the Tx virtualiser (2096 B).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVirtTxClient {
    /// Queues to the client (offset 0).
    pub conn: NetConnectionResource,
    /// Data regions, indexed by a descriptor's `oid` (offset 40).
    pub regions: [NetVirtTxRegion; MAX_CLIENTS],
    /// Valid entries in `regions` (offset 2088).
    pub num_regions: u8,
    /// Explicit C padding (offset 2089).
    pub _pad: [u8; 7],
}

impl NetVirtTxClient {
    /// The valid regions (clamped to the array); index = oid.
    #[inline]
    pub fn regions(&self) -> &[NetVirtTxRegion] {
        &self.regions[..usize::from(self.num_regions).min(MAX_CLIENTS)]
    }
}

/// Tx virtualiser config: `net_virt_tx_config_t` (134 200 B), section `.net_virt_tx_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVirtTxConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Queues to the driver (offset 8).
    pub driver: NetConnectionResource,
    /// Clients in the order they were added (offset 48).
    pub clients: [NetVirtTxClient; MAX_CLIENTS],
    /// Valid entries in `clients` (offset 134 192).
    pub num_clients: u8,
    /// Explicit C padding (offset 134 193).
    pub _pad1: [u8; 7],
}

impl NetVirtTxConfig {
    /// The valid clients (clamped to the array).
    #[inline]
    pub fn clients(&self) -> &[NetVirtTxClient] {
        &self.clients[..usize::from(self.num_clients).min(MAX_CLIENTS)]
    }
}

impl Config for NetVirtTxConfig {
    const SECTION: &'static str = ".net_virt_tx_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_virt_tx_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            Self::NAME,
            "num_clients",
            self.num_clients.into(),
            MAX_CLIENTS,
        )?;
        self.driver.validate(Self::NAME, "driver.num_buffers")?;
        for c in self.clients() {
            check_count(
                Self::NAME,
                "clients[].num_regions",
                c.num_regions.into(),
                MAX_CLIENTS,
            )?;
            c.conn.validate(Self::NAME, "clients[].conn.num_buffers")?;
        }
        Ok(())
    }
}

impl Regions for NetVirtTxConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.driver
            .claims(["driver free queue", "driver active queue"], None, claim);
        for (i, c) in self.clients().iter().enumerate() {
            c.conn
                .claims(["client free queue", "client active queue"], Some(i), claim);
            for r in c.regions() {
                claim(
                    Claim::ro("client tx data region", r.data.region)
                        .aligned(1)
                        .at(i),
                );
            }
        }
    }
}

/// Copier config: `net_copy_config_t` (1128 B), section `.net_copy_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetCopyConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Queues to the Rx virtualiser or vswitch (offset 8).
    pub rx: NetConnectionResource,
    /// Source data regions indexed by a descriptor's `oid`; unused entries are zero (offset 48).
    pub rx_data: [RegionResource; MAX_CLIENTS],
    /// Queues to the client (offset 1072).
    pub client: NetConnectionResource,
    /// The client's Rx data region (offset 1112).
    pub client_data: RegionResource,
}

impl NetCopyConfig {
    /// The source region for `oid`, if one is mapped.
    pub fn rx_data(&self, oid: u8) -> Option<&RegionResource> {
        self.rx_data.get(usize::from(oid)).filter(|r| r.vaddr != 0)
    }
}

impl Config for NetCopyConfig {
    const SECTION: &'static str = ".net_copy_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_copy_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.rx.validate(Self::NAME, "rx.num_buffers")?;
        self.client.validate(Self::NAME, "client.num_buffers")
    }
}

impl Regions for NetCopyConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.rx
            .claims(["rx free queue", "rx active queue"], None, claim);
        for (oid, r) in self.rx_data.iter().enumerate() {
            if r.vaddr != 0 {
                claim(Claim::ro("rx data region", *r).aligned(1).at(oid));
            }
        }
        self.client
            .claims(["client free queue", "client active queue"], None, claim);
        if self.client.num_buffers != 0 {
            claim(Claim::rw("client data region", self.client_data).aligned(1));
        }
    }
}

/// Client config: `net_client_config_t` (128 B), section `.net_client_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetClientConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Rx queues, to the copier (offset 8); `num_buffers = 0` for a Tx-only client.
    pub rx: NetConnectionResource,
    /// Rx data region (offset 48).
    pub rx_data: RegionResource,
    /// Tx queues, to the Tx virt (offset 64); `num_buffers = 0` for an Rx-only client.
    pub tx: NetConnectionResource,
    /// Tx data region (offset 104).
    pub tx_data: RegionResource,
    /// This client's MAC address (offset 120).
    pub mac_addr: MacAddr,
    /// Explicit C padding (offset 126).
    pub _pad1: [u8; 2],
}

impl Config for NetClientConfig {
    const SECTION: &'static str = ".net_client_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_client_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        self.rx.validate(Self::NAME, "rx.num_buffers")?;
        self.tx.validate(Self::NAME, "tx.num_buffers")
    }
}

impl Regions for NetClientConfig {
    fn claims(&self, claim: &mut dyn FnMut(Claim)) {
        self.rx
            .claims(["rx free queue", "rx active queue"], None, claim);
        if self.rx.num_buffers != 0 {
            claim(Claim::rw("rx data region", self.rx_data).aligned(1));
        }
        self.tx
            .claims(["tx free queue", "tx active queue"], None, claim);
        if self.tx.num_buffers != 0 {
            claim(Claim::rw("tx data region", self.tx_data).aligned(1));
        }
    }
}

/// One vswitch port (112 B). The last valid port is the virtualiser port, with its connections
/// crossed (`rx` toward the Tx virt, `tx` toward the Rx virt).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVswitchPort {
    /// Queues on which frames go out to the port's receiver (offset 0).
    pub rx: NetConnectionResource,
    /// Queues on which the port sends frames to the vswitch (offset 40).
    pub tx: NetConnectionResource,
    /// The port's Tx data region as mapped in the vswitch (offset 80).
    pub tx_data: RegionResource,
    /// The port's MAC address (offset 96).
    pub mac_addr: MacAddr,
    /// Explicit C padding (offset 102).
    pub _pad: [u8; 2],
    /// Bit `i` set: this port may send to port `i` (offset 104).
    pub acl: u64,
}

impl NetVswitchPort {
    /// Whether the ACL lets this port send to port `dest`.
    pub fn may_send_to(&self, dest: usize) -> bool {
        dest < 64 && self.acl & (1u64 << dest) != 0
    }
}

/// VSwitch config: `net_vswitch_config_t` (7200 B), section `.net_vswitch_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetVswitchConfig {
    /// `"sDDF\x05"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad0: [u8; 3],
    /// Ports; the last valid one is the virtualiser port (offset 8).
    pub ports: [NetVswitchPort; MAX_CLIENTS],
    /// Valid entries in `ports` (offset 7176).
    pub num_ports: u8,
    /// Explicit C padding (offset 7177).
    pub _pad1: [u8; 7],
    /// Refcount bytes, one per Tx buffer of every port (offset 7184).
    pub buffer_metadata: RegionResource,
}

impl NetVswitchConfig {
    /// The valid ports (clamped to the array).
    pub fn ports(&self) -> &[NetVswitchPort] {
        &self.ports[..usize::from(self.num_ports).min(MAX_CLIENTS)]
    }
}

impl Config for NetVswitchConfig {
    const SECTION: &'static str = ".net_vswitch_config";
    const MAGIC: &'static [u8] = &NET_MAGIC;
    const NAME: &'static str = "net_vswitch_config_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(Self::NAME, "num_ports", self.num_ports.into(), MAX_CLIENTS)?;
        for p in self.ports() {
            p.rx.validate(Self::NAME, "ports[].rx.num_buffers")?;
            p.tx.validate(Self::NAME, "ports[].tx.num_buffers")?;
        }
        Ok(())
    }
}

/// Client-library buffer pool: `lib_sddf_lwip_config_t` (32 B), section `.lib_sddf_lwip_config`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct LibSddfLwipConfig {
    /// `"sDDF\x08"` (offset 0).
    pub magic: [u8; 5],
    /// Explicit C padding (offset 5).
    pub _pad: [u8; 3],
    /// Memory for the pbuf pool (offset 8).
    pub pbuf_pool: RegionResource,
    /// Number of pbufs the pool holds (offset 24).
    pub num_pbufs: u64,
}

impl Config for LibSddfLwipConfig {
    const SECTION: &'static str = ".lib_sddf_lwip_config";
    const MAGIC: &'static [u8] = &LWIP_MAGIC;
    const NAME: &'static str = "lib_sddf_lwip_config_t";
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layouts_match_c() {
        assert_eq!(size_of::<MacAddr>(), 6);
        assert_eq!(align_of::<MacAddr>(), 1);

        assert_eq!(size_of::<NetConnectionResource>(), 40);
        assert_eq!(offset_of!(NetConnectionResource, free_queue), 0);
        assert_eq!(offset_of!(NetConnectionResource, active_queue), 16);
        assert_eq!(offset_of!(NetConnectionResource, num_buffers), 32);
        assert_eq!(offset_of!(NetConnectionResource, id), 34);
        assert_eq!(offset_of!(NetConnectionResource, _pad), 35);

        assert_eq!(size_of::<NetDriverConfig>(), 88);
        assert_eq!(offset_of!(NetDriverConfig, virt_rx), 8);
        assert_eq!(offset_of!(NetDriverConfig, virt_tx), 48);

        assert_eq!(size_of::<NetVirtRxClient>(), 432);
        assert_eq!(offset_of!(NetVirtRxClient, conn), 0);
        assert_eq!(offset_of!(NetVirtRxClient, mac_addrs), 40);
        assert_eq!(offset_of!(NetVirtRxClient, num_macs), 424);
        assert_eq!(offset_of!(NetVirtRxClient, _pad), 425);
        assert_eq!(size_of::<NetVirtRxConfig>(), 27_744);
        assert_eq!(offset_of!(NetVirtRxConfig, driver), 8);
        assert_eq!(offset_of!(NetVirtRxConfig, data), 48);
        assert_eq!(offset_of!(NetVirtRxConfig, buffer_metadata), 72);
        assert_eq!(offset_of!(NetVirtRxConfig, clients), 88);
        assert_eq!(offset_of!(NetVirtRxConfig, num_clients), 27_736);
        assert_eq!(offset_of!(NetVirtRxConfig, _pad1), 27_737);

        assert_eq!(size_of::<NetVirtTxRegion>(), 32);
        assert_eq!(offset_of!(NetVirtTxRegion, data), 0);
        assert_eq!(offset_of!(NetVirtTxRegion, num_buffers), 24);
        assert_eq!(offset_of!(NetVirtTxRegion, _pad), 28);
        assert_eq!(size_of::<NetVirtTxClient>(), 2096);
        assert_eq!(offset_of!(NetVirtTxClient, regions), 40);
        assert_eq!(offset_of!(NetVirtTxClient, num_regions), 2088);
        assert_eq!(size_of::<NetVirtTxConfig>(), 134_200);
        assert_eq!(offset_of!(NetVirtTxConfig, driver), 8);
        assert_eq!(offset_of!(NetVirtTxConfig, clients), 48);
        assert_eq!(offset_of!(NetVirtTxConfig, num_clients), 134_192);

        assert_eq!(size_of::<NetCopyConfig>(), 1128);
        assert_eq!(offset_of!(NetCopyConfig, rx), 8);
        assert_eq!(offset_of!(NetCopyConfig, rx_data), 48);
        assert_eq!(offset_of!(NetCopyConfig, client), 1072);
        assert_eq!(offset_of!(NetCopyConfig, client_data), 1112);

        assert_eq!(size_of::<NetClientConfig>(), 128);
        assert_eq!(offset_of!(NetClientConfig, rx), 8);
        assert_eq!(offset_of!(NetClientConfig, rx_data), 48);
        assert_eq!(offset_of!(NetClientConfig, tx), 64);
        assert_eq!(offset_of!(NetClientConfig, tx_data), 104);
        assert_eq!(offset_of!(NetClientConfig, mac_addr), 120);
        assert_eq!(offset_of!(NetClientConfig, _pad1), 126);

        assert_eq!(size_of::<NetVswitchPort>(), 112);
        assert_eq!(offset_of!(NetVswitchPort, rx), 0);
        assert_eq!(offset_of!(NetVswitchPort, tx), 40);
        assert_eq!(offset_of!(NetVswitchPort, tx_data), 80);
        assert_eq!(offset_of!(NetVswitchPort, mac_addr), 96);
        assert_eq!(offset_of!(NetVswitchPort, _pad), 102);
        assert_eq!(offset_of!(NetVswitchPort, acl), 104);
        assert_eq!(size_of::<NetVswitchConfig>(), 7200);
        assert_eq!(offset_of!(NetVswitchConfig, ports), 8);
        assert_eq!(offset_of!(NetVswitchConfig, num_ports), 7176);
        assert_eq!(offset_of!(NetVswitchConfig, buffer_metadata), 7184);

        assert_eq!(size_of::<LibSddfLwipConfig>(), 32);
        assert_eq!(offset_of!(LibSddfLwipConfig, pbuf_pool), 8);
        assert_eq!(offset_of!(LibSddfLwipConfig, num_pbufs), 24);
    }

    #[test]
    fn magics_and_sections() {
        assert_eq!(NetDriverConfig::MAGIC, b"sDDF\x05");
        assert_eq!(LibSddfLwipConfig::MAGIC, b"sDDF\x08");
        let mut c = LibSddfLwipConfig::new_zeroed();
        assert_eq!(
            c.check(),
            Err(ConfigError::BadMagic {
                config: "lib_sddf_lwip_config_t"
            })
        );
        c.magic = *b"sDDF\x05";
        assert!(c.check().is_err(), "a net magic is not an lwip magic");
        c.magic = *b"sDDF\x08";
        assert!(c.check().is_ok());
        for (section, want) in [
            (NetDriverConfig::SECTION, ".net_driver_config"),
            (NetVirtRxConfig::SECTION, ".net_virt_rx_config"),
            (NetVirtTxConfig::SECTION, ".net_virt_tx_config"),
            (NetCopyConfig::SECTION, ".net_copy_config"),
            (NetVswitchConfig::SECTION, ".net_vswitch_config"),
            (NetClientConfig::SECTION, ".net_client_config"),
            (LibSddfLwipConfig::SECTION, ".lib_sddf_lwip_config"),
        ] {
            assert_eq!(section, want);
        }
    }

    #[test]
    fn counts_and_capacities_are_checked() {
        let mut rx = Box::new(NetVirtRxConfig::new_zeroed());
        rx.magic = NET_MAGIC;
        assert!(rx.check().is_ok());
        rx.num_clients = 65;
        assert!(matches!(
            rx.check(),
            Err(ConfigError::Count {
                field: "num_clients",
                value: 65,
                ..
            })
        ));
        assert_eq!(
            rx.clients().len(),
            64,
            "accessors clamp even unchecked counts"
        );
        rx.num_clients = 2;
        rx.clients[1].num_macs = 70;
        assert!(matches!(
            rx.check(),
            Err(ConfigError::Count {
                field: "clients[].num_macs",
                ..
            })
        ));
        assert_eq!(rx.clients[1].macs().len(), 64);
        rx.clients[1].num_macs = 1;
        rx.clients[1].conn.num_buffers = 500;
        assert!(matches!(
            rx.check(),
            Err(ConfigError::Invalid { value: 500, .. })
        ));
        rx.clients[1].conn.num_buffers = 512;
        rx.driver.num_buffers = 3;
        assert!(matches!(
            rx.check(),
            Err(ConfigError::Invalid {
                field: "driver.num_buffers",
                ..
            })
        ));
        rx.driver.num_buffers = 0;
        rx.clients[5].conn.num_buffers = 3; // beyond num_clients: not looked at
        assert!(rx.check().is_ok());

        let mut tx = Box::new(NetVirtTxConfig::new_zeroed());
        tx.magic = NET_MAGIC;
        tx.num_clients = 1;
        tx.clients[0].num_regions = 65;
        assert!(matches!(
            tx.check(),
            Err(ConfigError::Count {
                field: "clients[].num_regions",
                ..
            })
        ));
        tx.clients[0].num_regions = 64;
        assert!(tx.check().is_ok());
        tx.num_clients = 200;
        assert!(tx.check().is_err());

        let mut vs = Box::new(NetVswitchConfig::new_zeroed());
        vs.magic = NET_MAGIC;
        vs.num_ports = 65;
        assert!(vs.check().is_err());
        vs.num_ports = 2;
        vs.ports[1].tx.num_buffers = 6;
        assert!(vs.check().is_err());
        vs.ports[1].tx.num_buffers = 0;
        vs.ports[0].acl = 0b110;
        assert!(vs.check().is_ok());
        assert!(vs.ports[0].may_send_to(1) && vs.ports[0].may_send_to(2));
        assert!(!vs.ports[0].may_send_to(0) && !vs.ports[0].may_send_to(64));

        let mut client = NetClientConfig::new_zeroed();
        client.magic = NET_MAGIC;
        client.tx.num_buffers = 12;
        assert!(client.check().is_err());
        let mut drv = NetDriverConfig::new_zeroed();
        drv.magic = NET_MAGIC;
        drv.virt_tx.num_buffers = 1000;
        assert!(drv.check().is_err());
        let mut copy = NetCopyConfig::new_zeroed();
        copy.magic = NET_MAGIC;
        copy.rx.num_buffers = 7;
        assert!(copy.check().is_err());
        copy.rx.num_buffers = 8;
        assert!(copy.check().is_ok());
        assert!(copy.rx_data(0).is_none(), "unmapped oid");
        copy.rx_data[3].vaddr = 0x1000;
        assert!(copy.rx_data(3).is_some());
        assert!(copy.rx_data(64).is_none());
    }

    #[test]
    fn mac_addr() {
        let m = MacAddr([0x52, 0x54, 1, 0, 0, 0x0a]);
        assert_eq!(std::format!("{m}"), "52:54:01:00:00:0a");
        assert!(!m.is_broadcast() && !m.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
    }
}
