// SPDX-License-Identifier: BSD-2-Clause
//! Shared by the client library's tests: the queues and data regions of N clients, and a "wire"
//! that stands where the copier and the Tx virtualiser stand: it takes every client's sent frames
//! and delivers each to the client whose MAC it is addressed to (a broadcast to every other
//! client), copying into the destination's free Rx buffer or dropping the frame when it has none.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, dead_code)]

pub mod app;

use lions_net::queue::NetQueue;
use lions_net::{
    DataRegion, MacAddr, NetBuffDesc, NetClientConfig, NetConnectionResource, NetSink, NetSource,
};
use lions_os::sim::Region;
use lions_os::{Channel, RegionResource, sddf_magic};
use zerocopy::FromZeros;

/// Buffers per queue (and per data region) of each client.
pub const BUFS: u16 = 16;

pub fn mac(c: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x01, 0, 0, u8::try_from(c).unwrap()])
}

fn res(r: &Region) -> RegionResource {
    RegionResource {
        vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
        size: r.len() as u64,
    }
}

/// A free/active queue pair.
pub struct Pair {
    free: Region,
    active: Region,
}

impl Pair {
    fn new() -> Self {
        let n = NetQueue::bytes_for(usize::from(BUFS));
        Self {
            free: Region::new(n),
            active: Region::new(n),
        }
    }

    fn conn(&self, id: u8) -> NetConnectionResource {
        NetConnectionResource {
            free_queue: res(&self.free),
            active_queue: res(&self.active),
            num_buffers: BUFS,
            id,
            _pad: [0; 5],
        }
    }
}

/// One client's shared memory.
pub struct Mem {
    pub rx: Pair,
    pub rx_data: Region,
    pub tx: Pair,
    pub tx_data: Region,
}

impl Mem {
    pub fn new() -> Self {
        let data = usize::from(BUFS) * 2048;
        Self {
            rx: Pair::new(),
            rx_data: Region::new(data),
            tx: Pair::new(),
            tx_data: Region::new(data),
        }
    }

    /// The client's `.net_client_config`, with its channel ids to the Rx and Tx sides.
    pub fn config(&self, c: usize, rx_id: u8, tx_id: u8) -> NetClientConfig {
        let mut cfg = NetClientConfig::new_zeroed();
        cfg.magic = sddf_magic(lions_os::ConfigClass::Net);
        cfg.rx = self.rx.conn(rx_id);
        cfg.rx_data = res(&self.rx_data);
        cfg.tx = self.tx.conn(tx_id);
        cfg.tx_data = res(&self.tx_data);
        cfg.mac_addr = mac(c);
        cfg
    }
}

/// The wire's ends toward one client.
struct Port<'a> {
    rx: NetSource<'a>,
    rx_data: DataRegion<'a>,
    rx_ch: Channel,
    tx: NetSink<'a>,
    tx_data: DataRegion<'a>,
    tx_ch: Channel,
}

/// Every frame the wire carried: (sender, bytes, delivered to).
pub type Frame = (usize, Vec<u8>, Vec<usize>);

/// The wire; see the module docs.
pub struct Wire<'a> {
    ports: Vec<Port<'a>>,
    pub frames: Vec<Frame>,
    pub dropped: u64,
    /// Stop delivering (frames are taken and dropped) while set.
    pub cut: bool,
    /// Hold sent frames on the Tx active queues (do not take them) while set.
    pub hold_tx: bool,
}

impl<'a> Wire<'a> {
    /// The wire over `mems`; client `c`'s Rx side is channel `rx_id(c)` here, its Tx side
    /// `tx_id(c)`. Make it after the clients' devices (they prime their Tx free queues first).
    pub fn new(mems: &'a [Mem], rx_id: impl Fn(usize) -> u8, tx_id: impl Fn(usize) -> u8) -> Self {
        let ports = mems
            .iter()
            .enumerate()
            .map(|(c, m)| {
                let cfg = m.config(c, rx_id(c), tx_id(c));
                // SAFETY: the regions live as long as 'a; the wire is the one peer of each
                // client and makes one handle per role.
                unsafe {
                    let mut rx = NetSource::from_connection(&cfg.rx).unwrap();
                    rx.prime_free(0).unwrap();
                    Port {
                        rx,
                        rx_data: DataRegion::from_resource(&cfg.rx_data, u64::from(BUFS), true)
                            .unwrap(),
                        rx_ch: Channel::new(rx_id(c)),
                        tx: NetSink::from_connection(&cfg.tx).unwrap(),
                        tx_data: DataRegion::from_resource(&cfg.tx_data, u64::from(BUFS), false)
                            .unwrap(),
                        tx_ch: Channel::new(tx_id(c)),
                    }
                }
            })
            .collect();
        Self {
            ports,
            frames: Vec::new(),
            dropped: 0,
            cut: false,
            hold_tx: false,
        }
    }

    /// Move every sent frame; returns the channels to notify (the peer asked and got work).
    pub fn pump(&mut self) -> Vec<Channel> {
        let n = self.ports.len();
        loop {
            let mut moved = false;
            for i in 0..n {
                if self.hold_tx {
                    break;
                }
                while let Some(d) = self.ports[i].tx.active.pop().unwrap() {
                    moved = true;
                    let mut bytes = vec![0u8; usize::from(d.len)];
                    let span = self.ports[i].tx_data.span(d.io_or_offset, d.len).unwrap();
                    assert_eq!(span.read(&mut bytes), bytes.len());
                    let dst = MacAddr(bytes[..6].try_into().unwrap());
                    let dests: Vec<usize> = (0..n)
                        .filter(|&j| j != i && (dst.is_broadcast() || dst == mac(j)))
                        .collect();
                    let mut got = Vec::new();
                    for &j in &dests {
                        if self.cut {
                            self.dropped += 1;
                            continue;
                        }
                        let p = &mut self.ports[j];
                        match p.rx.free.pop().unwrap() {
                            Some(b) => {
                                let s = p.rx_data.span(b.io_or_offset, d.len).unwrap();
                                assert_eq!(s.write(&bytes), bytes.len());
                                p.rx.active
                                    .push(NetBuffDesc::new(b.io_or_offset, d.len))
                                    .unwrap();
                                got.push(j);
                            }
                            None => self.dropped += 1,
                        }
                    }
                    self.frames.push((i, bytes, got));
                    self.ports[i]
                        .tx
                        .free
                        .push(NetBuffDesc::new(d.io_or_offset, 0))
                        .unwrap();
                }
                self.ports[i].tx.active.release();
            }
            if !moved {
                let mut again = false;
                for p in &mut self.ports {
                    if !self.hold_tx {
                        again |= p.tx.park_active().unwrap();
                    }
                }
                if !again {
                    break;
                }
            }
        }
        let mut notify = Vec::new();
        for p in &mut self.ports {
            p.rx.free.release();
            let sent = p.rx.active.publish();
            if p.rx.should_notify_active(sent > 0) {
                notify.push(p.rx_ch);
            }
            let back = p.tx.free.publish();
            if p.tx.should_notify_free(back > 0) {
                notify.push(p.tx_ch);
            }
        }
        notify
    }

    /// Frames carried so far with this EtherType.
    pub fn count_ethertype(&self, ty: u16) -> usize {
        self.frames
            .iter()
            .filter(|(_, b, _)| b.len() >= 14 && u16::from_be_bytes([b[12], b[13]]) == ty)
            .count()
    }
}
