// SPDX-License-Identifier: BSD-2-Clause
//! The Ethernet segment between the guest's buffers and the gateway (smoltcp's [`Device`]), and
//! the gateway's own ARP requests for the guests it forwards to.

use super::{ARP_REFRESH, GATEWAY_IP, GATEWAY_MAC, WIRE_FRAMES};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};
use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Instant;

/// The Ethernet segment between the guest's buffers and the gateway.
#[derive(Default)]
pub(super) struct Wire {
    /// Frames from the guest, for the gateway.
    pub(super) to_gateway: VecDeque<Vec<u8>>,
    /// Frames from the gateway, for the guest.
    pub(super) to_guest: VecDeque<Vec<u8>>,
    /// Frames dropped for want of room toward the guest.
    pub(super) dropped: u64,
}

/// A frame from the guest, as smoltcp takes it.
pub(super) struct FrameRx(Vec<u8>);
/// Room for one frame toward the guest.
pub(super) struct FrameTx<'a>(&'a mut Wire);

impl phy::RxToken for FrameRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for FrameTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if self.0.to_guest.len() < WIRE_FRAMES {
            self.0.to_guest.push_back(frame);
        } else {
            self.0.dropped += 1;
        }
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = FrameRx;
    type TxToken<'a> = FrameTx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(FrameRx, FrameTx<'_>)> {
        let f = self.to_gateway.pop_front()?;
        Some((FrameRx(f), FrameTx(self)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<FrameTx<'_>> {
        Some(FrameTx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// Put the gateway's own ARP request for `guest` on the segment, unless `guest` lies outside the
/// gateway's subnet or was asked within [`ARP_REFRESH`] (`asked` records when).
pub(super) fn ask_neighbor(asked: &mut Vec<(Ipv4Addr, Instant)>, wire: &mut Wire, guest: Ipv4Addr) {
    if guest.octets()[..3] != GATEWAY_IP.octets()[..3] || guest == GATEWAY_IP {
        return;
    }
    let now = Instant::now();
    match asked.iter_mut().find(|(ip, _)| *ip == guest) {
        Some((_, at)) if now.duration_since(*at) < ARP_REFRESH => return,
        Some((_, at)) => *at = now,
        None => asked.push((guest, now)),
    }
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(GATEWAY_MAC),
        source_protocol_addr: GATEWAY_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: guest,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(GATEWAY_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    if wire.to_guest.len() < WIRE_FRAMES {
        wire.to_guest.push_back(frame);
    } else {
        wire.dropped += 1;
    }
}
