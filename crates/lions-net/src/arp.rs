// SPDX-License-Identifier: BSD-2-Clause
//! An ARP responder client, as in the paper's first broadcast scheme: a small trusted component
//! answers ARP requests on behalf of the clients, from a table of their IPv4 and MAC addresses.
//!
//! It is an ordinary net client (config `.net_client_config`: Rx queues from its copier, Tx queues
//! to the Tx virtualiser, both data regions), so the Rx virtualiser must deliver broadcasts to it;
//! [`VirtRx::set_broadcast_clients`](crate::VirtRx::set_broadcast_clients) can make it the only
//! client that receives them.
//!
//! ## Protocol
//!
//! - A frame is an ARP request it answers when it is at least 42 bytes, has EtherType 0x0806,
//!   hardware type 1 (Ethernet), protocol type 0x0800 (IPv4), lengths 6 and 4, operation 1, and
//!   a target IP in the table. A request whose sender MAC is a group address or the owner's own
//!   MAC (the owner probing its address, RFC 5227) is ignored. Everything else is ignored.
//! - The reply ([`reply`]) goes to the requester's MAC from the table entry's MAC: operation 2,
//!   sender = (entry MAC, target IP), target = (requester MAC, requester IP), zero-padded to the
//!   60-byte Ethernet minimum.
//! - Each received buffer goes straight back to the copier; a reply takes one Tx buffer and is
//!   dropped (counted) when none is free. Start-up follows sDDF's client convention: the
//!   responder primes its Tx free queue and adopts its Rx free queue at the first frame.

use crate::queue::{NetBuffDesc, NetSink, NetSource};
use crate::region::DataRegion;
use crate::{Error, MacAddr, NetClientConfig, SetupError};
use lions_os::{Channel, ChannelSet, Config, ConfigError, Handler, MAX_CLIENTS, Mapped};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of an ARP request or reply for Ethernet and IPv4 (header 14 + ARP 28).
pub const ARP_LEN: u16 = 42;
/// Bytes of a reply frame: [`ARP_LEN`] zero-padded to the Ethernet minimum (without FCS).
pub const REPLY_LEN: u16 = 60;

/// One address the responder answers for (10 bytes in a [`NetArpConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ArpEntry {
    /// The IPv4 address, in network order.
    pub ip: [u8; 4],
    /// The MAC of the client that owns it.
    pub mac: MacAddr,
}

/// The responder's table, our own blob in section `.net_arp_config` of its image (sDDF has no
/// ARP component; `lions_meta`: `net.arp_responder(...)`), 656 bytes:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic `"lionsAR\x01"` |
/// | 8 | 1 | `count`: entries in use, at most 64 |
/// | 9 | 7 | zero |
/// | 16 | 64 x 10 | `entries`: IPv4 address (network order), then MAC |
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NetArpConfig {
    /// `"lionsAR\x01"` (offset 0).
    pub magic: [u8; 8],
    /// Entries in use (offset 8).
    pub count: u8,
    /// Zero (offset 9).
    pub _pad: [u8; 7],
    /// The addresses answered for (offset 16); only the first `count` count.
    pub entries: [ArpEntry; MAX_CLIENTS],
}

impl NetArpConfig {
    /// The entries in use (a validated config has `count` <= 64).
    pub fn table(&self) -> &[ArpEntry] {
        &self.entries[..usize::from(self.count).min(MAX_CLIENTS)]
    }
}

impl Config for NetArpConfig {
    const SECTION: &'static str = ".net_arp_config";
    const MAGIC: &'static [u8] = b"lionsAR\x01";
    const NAME: &'static str = "lions_net_arp";

    fn validate(&self) -> Result<(), ConfigError> {
        lions_os::check_count(Self::NAME, "count", self.count.into(), MAX_CLIENTS)
    }
}

/// EtherType ARP.
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
/// Hardware type Ethernet, protocol IPv4, lengths 6 and 4.
const ARP_ETH_IPV4: [u8; 6] = [0, 1, 0x08, 0x00, 6, 4];

/// The reply to `frame` if it is an ARP request for an address in `table` (see the module docs),
/// written into `out`; `None` for anything else. Reads only `frame`; never panics.
pub fn reply(table: &[ArpEntry], frame: &[u8], out: &mut [u8; REPLY_LEN as usize]) -> Option<u16> {
    let f: &[u8; ARP_LEN as usize] = frame.get(..usize::from(ARP_LEN))?.try_into().ok()?;
    let field = |at: usize, len: usize| &f[at..at + len];
    if field(12, 2) != ETHERTYPE_ARP || field(14, 6) != ARP_ETH_IPV4 || field(20, 2) != [0, 1] {
        return None;
    }
    let sha = MacAddr(field(22, 6).try_into().ok()?);
    let entry = table.iter().find(|e| e.ip == field(38, 4))?;
    if sha.is_multicast() || sha == entry.mac {
        return None;
    }
    out.fill(0);
    let parts: [&[u8]; 10] = [
        &sha.0,
        &entry.mac.0,
        &ETHERTYPE_ARP,
        &ARP_ETH_IPV4,
        &[0, 2],
        &entry.mac.0,
        &entry.ip,
        &sha.0,
        field(28, 4),
        &[],
    ];
    let mut at = 0;
    for p in parts {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    Some(REPLY_LEN)
}

/// What the responder did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ArpStats {
    /// Replies sent.
    pub replies: u64,
    /// Frames that were not requests for a table address (including bad descriptors).
    pub ignored: u64,
    /// Replies dropped for want of a free Tx buffer.
    pub no_buffer: u64,
}

/// The ARP responder component; see the module docs.
pub struct ArpResponder<'a> {
    table: &'a [ArpEntry],
    rx: NetSink<'a>,
    rx_ch: Channel,
    rx_data: DataRegion<'a>,
    tx: NetSource<'a>,
    tx_ch: Channel,
    tx_data: DataRegion<'a>,
    stats: ArpStats,
}

impl<'a> ArpResponder<'a> {
    /// The responder for `table` over the client queues and regions in `config`; primes its Tx
    /// free queue.
    ///
    /// The token says the config's regions are mapped here read-write for `'a`, and that this is
    /// the one component built from them.
    pub fn new(
        config: Mapped<'a, NetClientConfig>,
        table: &'a [ArpEntry],
    ) -> Result<Self, SetupError> {
        let config = config.config();
        let (rx_n, tx_n) = (config.rx.num_buffers.into(), config.tx.num_buffers.into());
        // SAFETY: the token: mapped here read-write for `'a`, each queue shared only with its
        // peer, and this component makes the only handles on them (here and below).
        let mut tx = unsafe { NetSource::from_connection(&config.tx) }?;
        tx.prime_free(0)?;
        Ok(Self {
            table,
            // SAFETY: as above.
            rx: unsafe { NetSink::from_connection(&config.rx) }?,
            rx_ch: config.rx.channel()?,
            // SAFETY: as above.
            rx_data: unsafe { DataRegion::from_resource(&config.rx_data, rx_n, false) }?,
            tx,
            tx_ch: config.tx.channel()?,
            // SAFETY: as above.
            tx_data: unsafe { DataRegion::from_resource(&config.tx_data, tx_n, true) }?,
            stats: ArpStats::default(),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> ArpStats {
        self.stats
    }

    /// Answer one received frame if it asks for a table address.
    fn answer(&mut self, buf: &NetBuffDesc) -> Result<(), Error> {
        let mut frame = [0u8; ARP_LEN as usize];
        let n = match self.rx_data.span(buf.io_or_offset, buf.len.min(ARP_LEN)) {
            Ok(span) => span.read(&mut frame),
            Err(_) => 0,
        };
        let mut out = [0u8; REPLY_LEN as usize];
        let Some(len) = reply(self.table, &frame[..n], &mut out) else {
            self.stats.ignored += 1;
            return Ok(());
        };
        let Some(tx) = self.tx.free.pop()? else {
            self.stats.no_buffer += 1;
            return Ok(());
        };
        match self.tx_data.span(tx.io_or_offset, len) {
            Ok(span) if span.write(&out) == usize::from(len) => {
                self.tx
                    .active
                    .push(NetBuffDesc::new(tx.io_or_offset, len))?;
                self.stats.replies += 1;
            }
            _ => self.stats.no_buffer += 1,
        }
        Ok(())
    }
}

impl Handler for ArpResponder<'_> {
    type Error = Error;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        while let Some(buf) = self.rx.next_active()? {
            self.rx.adopt_free_once()?;
            self.answer(&buf)?;
            self.rx.free.push(NetBuffDesc::new(buf.io_or_offset, 0))?;
        }
        self.tx.free.release();
        if self.tx.publish_active() {
            self.tx_ch.notify()?;
        }
        if self.rx.publish_free() {
            self.rx_ch.notify()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OWNER: MacAddr = MacAddr([0x52, 0x54, 1, 0, 0, 7]);
    const ASKER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
    const TABLE: &[ArpEntry] = &[
        ArpEntry {
            ip: [10, 0, 0, 7],
            mac: OWNER,
        },
        ArpEntry {
            ip: [10, 0, 0, 8],
            mac: MacAddr([0x52, 0x54, 1, 0, 0, 8]),
        },
    ];

    fn request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn config_layout_and_table() {
        use core::mem::{offset_of, size_of};
        assert_eq!(size_of::<ArpEntry>(), 10);
        assert_eq!(offset_of!(ArpEntry, mac), 4);
        assert_eq!(size_of::<NetArpConfig>(), 656);
        assert_eq!(offset_of!(NetArpConfig, count), 8);
        assert_eq!(offset_of!(NetArpConfig, entries), 16);
        let mut blob = vec![0u8; 656];
        blob[..8].copy_from_slice(b"lionsAR\x01");
        blob[8] = 2;
        blob[16..26].copy_from_slice(&[10, 0, 0, 7, 0x52, 0x54, 1, 0, 0, 7]);
        blob[26..36].copy_from_slice(&[10, 0, 0, 8, 0x52, 0x54, 1, 0, 0, 8]);
        let c = NetArpConfig::from_blob(&blob).unwrap();
        assert_eq!(c.table(), TABLE);
        blob[8] = 65;
        assert!(matches!(
            NetArpConfig::from_blob(&blob),
            Err(ConfigError::Count { value: 65, .. })
        ));
    }

    #[test]
    fn answers_for_table_addresses_with_the_owner_mac() {
        let mut out = [0xaa; REPLY_LEN as usize];
        let req = request(ASKER, [10, 0, 0, 1], [10, 0, 0, 7]);
        assert_eq!(reply(TABLE, &req, &mut out), Some(60));
        let mut want = Vec::new();
        want.extend_from_slice(&ASKER); // to the asker
        want.extend_from_slice(&OWNER.0); // from the owner
        want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
        want.extend_from_slice(&OWNER.0);
        want.extend_from_slice(&[10, 0, 0, 7]);
        want.extend_from_slice(&ASKER);
        want.extend_from_slice(&[10, 0, 0, 1]);
        want.resize(60, 0);
        assert_eq!(&out[..], &want[..]);
        // The second entry answers with its own MAC.
        let req = request(ASKER, [10, 0, 0, 1], [10, 0, 0, 8]);
        assert_eq!(reply(TABLE, &req, &mut out), Some(60));
        assert_eq!(&out[6..12], &[0x52, 0x54, 1, 0, 0, 8]);
        assert_eq!(&out[22..28], &[0x52, 0x54, 1, 0, 0, 8]);
    }

    #[test]
    fn ignores_everything_else() {
        let mut out = [0; REPLY_LEN as usize];
        let ok = request(ASKER, [10, 0, 0, 1], [10, 0, 0, 7]);
        assert!(
            reply(
                TABLE,
                &request(ASKER, [10, 0, 0, 1], [10, 0, 0, 9]),
                &mut out
            )
            .is_none()
        );
        assert!(reply(&[], &ok, &mut out).is_none());
        assert!(reply(TABLE, &ok[..41], &mut out).is_none(), "short");
        for (at, v) in [
            (12, 0x86),
            (13, 0x00),
            (15, 6),
            (16, 0x86),
            (19, 16),
            (21, 2),
        ] {
            let mut bad = ok.clone();
            bad[at] = v;
            assert!(reply(TABLE, &bad, &mut out).is_none(), "byte {at} = {v:#x}");
        }
        let probe = request(OWNER.0, [0; 4], [10, 0, 0, 7]);
        assert!(
            reply(TABLE, &probe, &mut out).is_none(),
            "the owner's own probe"
        );
        let group = request([0x01, 0, 0x5e, 0, 0, 1], [10, 0, 0, 1], [10, 0, 0, 7]);
        assert!(reply(TABLE, &group, &mut out).is_none(), "group sender");
        let mut long = ok.clone();
        long.extend_from_slice(&[0xee; 100]);
        assert_eq!(
            reply(TABLE, &long, &mut out),
            Some(60),
            "trailing bytes are padding"
        );
    }

    #[test]
    fn the_component_answers_through_its_queues() {
        use crate::testkit::{Mem, Pair, event, mapped};
        use lions_os::{ConfigClass, sddf_magic};
        use zerocopy::FromZeros;
        let (rx, tx) = (Pair::new(4), Pair::new(2));
        let (rx_data, tx_data) = (Mem::new(4 * 2048), Mem::new(2 * 2048));
        let mut cfg = NetClientConfig::new_zeroed();
        cfg.magic = sddf_magic(ConfigClass::Net);
        (cfg.rx, cfg.rx_data, cfg.tx, cfg.tx_data) =
            (rx.conn(0), rx_data.res(), tx.conn(1), tx_data.res());
        let mut arp = ArpResponder::new(mapped(&cfg), TABLE).unwrap();
        let (mut copier, mut virt) = (rx.source(), tx.sink());
        copier.prime_free(0).unwrap();
        let frames = [
            request(ASKER, [10, 0, 0, 1], [10, 0, 0, 8]),
            request(ASKER, [10, 0, 0, 1], [10, 0, 0, 99]),
            vec![0xff; 3],
            request(ASKER, [10, 0, 0, 2], [10, 0, 0, 7]),
            request(ASKER, [10, 0, 0, 3], [10, 0, 0, 7]),
        ];
        for f in &frames[..4] {
            let b = copier.free.pop().unwrap().unwrap();
            rx_data.write(usize::try_from(b.io_or_offset).unwrap(), f);
            copier
                .active
                .push(NetBuffDesc::new(
                    b.io_or_offset,
                    u16::try_from(f.len()).unwrap(),
                ))
                .unwrap();
        }
        copier.free.release();
        copier.active.publish();
        assert_eq!(
            event(&mut arp, ChannelSet::EMPTY),
            [1],
            "the Tx virt asked, the copier not"
        );
        let sent: Vec<_> = core::iter::from_fn(|| virt.active.pop().unwrap()).collect();
        assert_eq!(sent.len(), 2);
        let mut want = [0; REPLY_LEN as usize];
        for (d, f) in sent.iter().zip([&frames[0], &frames[3]]) {
            reply(TABLE, f, &mut want).unwrap();
            assert_eq!(
                tx_data.read(usize::try_from(d.io_or_offset).unwrap(), 60),
                want
            );
        }
        assert_eq!(
            core::iter::from_fn(|| copier.free.pop().unwrap()).count(),
            4,
            "all returned"
        );
        copier.free.release();
        // No Tx buffer left: the next reply is dropped and counted, the Rx buffer still returned.
        let b = NetBuffDesc::new(0, u16::try_from(frames[4].len()).unwrap());
        rx_data.write(0, &frames[4]);
        copier.active.push(b).unwrap();
        copier.active.publish();
        event(&mut arp, ChannelSet::EMPTY);
        assert_eq!(
            arp.stats(),
            ArpStats {
                replies: 2,
                ignored: 2,
                no_buffer: 1
            }
        );
        assert_eq!(copier.free.pop().unwrap().map(|d| d.io_or_offset), Some(0));
    }

    proptest! {
        #[test]
        fn garbage_never_panics_and_replies_only_to_requests(
            frame in prop::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut out = [0; REPLY_LEN as usize];
            if reply(TABLE, &frame, &mut out).is_some() {
                prop_assert_eq!(&frame[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
                prop_assert!(TABLE.iter().any(|e| e.ip == frame[38..42]));
            }
        }

        #[test]
        fn any_request_for_a_table_address_is_answered(
            sha in any::<[u8; 6]>(),
            spa in any::<[u8; 4]>(),
            which in 0usize..2,
        ) {
            prop_assume!(sha[0] & 1 == 0 && sha != TABLE[which].mac.0);
            let mut out = [0; REPLY_LEN as usize];
            prop_assert_eq!(reply(TABLE, &request(sha, spa, TABLE[which].ip), &mut out), Some(60));
            prop_assert_eq!(&out[0..6], &sha);
            prop_assert_eq!(&out[22..28], &TABLE[which].mac.0);
            prop_assert_eq!(&out[28..32], &TABLE[which].ip);
            prop_assert_eq!(&out[38..42], &spa);
        }
    }
}
