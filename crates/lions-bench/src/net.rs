// SPDX-License-Identifier: BSD-2-Clause
//! Net workloads: the Rx virt, the copier and the Tx virt, each alone, with the bench playing the
//! driver and the clients (or copiers, or the Rx virt).
//!
//! Topology as in sDDF's echo system: 512-entry queues, 2048-byte buffers, two clients whose MACs
//! alternate frame by frame, [`FRAME_LEN`]-byte frames, `batch` frames per round (32 or 1). Every
//! peer's notification is an event of its own, run at once (the component has the higher
//! priority, as in sDDF's systems): a round of the Rx virt is the driver's event (`batch` new
//! frames) and one event per copier that returned buffers; of the Tx virt, one event per client
//! that sent frames and the driver's (the buffers it transmitted); of the copiers, one event per
//! copier that got frames. The peers consume and check everything the component produced.
//!
//! Peer signalling, as the sDDF peers behave: a consumer peer drains its queue and then asks for
//! a signal; the driver keeps every Rx buffer it is given (its ring is as large as the queue), so
//! it asks for a signal on its free queue too; a client never runs out of Tx buffers, so it does
//! not ask on its free queue.

use crate::os::{Mem, Ring, Shim, Width, event_fns, set, start};
use lions_net::{
    Coherent, Copier, InOrder, MacAddr, NetBuffDesc, NetConnectionResource, NetCopyConfig,
    NetQueue, NetVirtRxConfig, NetVirtTxConfig, NetVirtTxRegion, RoundRobin, VirtRx, VirtTx,
};
use lions_os::{ConfigClass, DeviceRegionResource, Mapped, sddf_magic};
use zerocopy::FromZeros;

/// Queue capacity (descriptors).
pub const QUEUE: u16 = 512;
/// Buffer size.
const BUF: u64 = 2048;
/// Bytes per frame (a full-size Ethernet frame without FCS).
pub const FRAME_LEN: u16 = 1514;
/// The two clients' MAC addresses.
const MAC: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])];
/// IO address of the Rx DMA region, and of the clients' Tx regions.
const IO_RX: u64 = 0x1000_0000;
const IO_TX: [u64; 2] = [0x2000_0000, 0x3000_0000];

event_fns!(
    /// One measured event of the net Rx virtualiser.
    insns_net_virt_rx,
    warm_net_virt_rx,
    VirtRx<'_, Coherent>
);
event_fns!(
    /// One measured event of a net copier.
    insns_net_copier,
    warm_net_copier,
    Copier<'_>
);
event_fns!(
    /// One measured event of the net Tx virtualiser, round-robin policy.
    insns_net_virt_tx_rr,
    warm_net_virt_tx_rr,
    VirtTx<'_, RoundRobin, Coherent>
);
event_fns!(
    /// One measured event of the net Tx virtualiser, in-order policy (sDDF's).
    insns_net_virt_tx_inorder,
    warm_net_virt_tx_inorder,
    VirtTx<'_, InOrder, Coherent>
);

/// A free/active queue pair in plain memory.
struct Pair {
    free: Mem,
    active: Mem,
}

impl Pair {
    fn new() -> Self {
        let n = NetQueue::bytes_for(usize::from(QUEUE));
        Self {
            free: Mem::new(n),
            active: Mem::new(n),
        }
    }

    fn conn(&self, id: u8) -> NetConnectionResource {
        NetConnectionResource {
            free_queue: self.free.res(),
            active_queue: self.active.res(),
            num_buffers: QUEUE,
            id,
            _pad: [0; 5],
        }
    }

    fn free(&self) -> Ring<'_, NetBuffDesc> {
        ring(&self.free)
    }

    fn active(&self) -> Ring<'_, NetBuffDesc> {
        ring(&self.active)
    }
}

fn ring(m: &Mem) -> Ring<'_, NetBuffDesc> {
    Ring::new(
        m,
        (2, 0),
        m,
        NetQueue::ENTRIES_OFFSET,
        u32::from(QUEUE),
        Width::U16,
    )
}

/// The consumer of `q` asks to be signalled (`consumer_signalled = 0`).
fn request(q: &Mem) {
    q.store32(4, 0);
}

/// A producer published to `q`: whether it notifies (the consumer asked; the request is consumed).
fn should_notify(q: &Mem) -> bool {
    let asked = q.load32(4) == 0;
    if asked {
        q.store32(4, 1);
    }
    asked
}

/// The frame header the bench writes and checks: destination MAC, then the sequence number, and
/// the sequence number's low byte as the frame's last byte.
fn write_frame(m: &Mem, at: usize, mac: MacAddr, seq: u64) {
    m.write(at, &mac.0);
    m.write(at + 6, &seq.to_le_bytes());
    m.write(at + usize::from(FRAME_LEN) - 1, &[seq.to_le_bytes()[0]]);
}

/// The (MAC, sequence number) of the frame at `at`; panics if its last byte disagrees.
fn read_frame(m: &Mem, at: usize) -> (MacAddr, u64) {
    let (mut mac, mut seq, mut last) = (MacAddr::default(), [0; 8], [0]);
    m.read(at, &mut mac.0);
    m.read(at + 6, &mut seq);
    m.read(at + usize::from(FRAME_LEN) - 1, &mut last);
    assert_eq!(last[0], seq[0], "frame {seq:?}: last byte not copied");
    (mac, u64::from_le_bytes(seq))
}

/// Which client frame `seq` is for.
fn client_of(seq: u64) -> usize {
    (seq % 2) as usize
}

/// Rounds of `batch` frames: warm-up rounds, then measured ones; the outcome is frames measured.
fn rounds(units: u64, warmup: u64, batch: u64) -> (u64, u64) {
    (warmup.div_ceil(batch), units.div_ceil(batch))
}

/// The Rx virt: the bench is the driver and both copiers.
pub fn virt_rx(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    let (driver, clients) = (Pair::new(), [Pair::new(), Pair::new()]);
    let n = usize::from(QUEUE);
    let (dma, meta) = (Mem::new(n * BUF as usize), Mem::new(n));
    let mut cfg = Box::new(NetVirtRxConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::Net);
    cfg.driver = driver.conn(0);
    cfg.data = DeviceRegionResource {
        region: dma.res(),
        io_addr: IO_RX,
    };
    cfg.buffer_metadata = meta.res();
    cfg.num_clients = 2;
    for (c, q) in clients.iter().enumerate() {
        cfg.clients[c].conn = q.conn(c as u8 + 1);
        cfg.clients[c].mac_addrs[0] = MAC[c];
        cfg.clients[c].num_macs = 1;
    }
    // SAFETY: every region named in `cfg` is a live `Mem` of this frame, outliving `virt`; the
    // bench touches them only between events, as the peers.
    // (These are the bench's own memories, which no mapping table knows: `assume`.)
    let mut virt = VirtRx::new(unsafe { Mapped::assume(&cfg) }, Coherent).expect("VirtRx::new");
    start(|| virt.init());
    let (drv_free, drv_active) = (driver.free(), driver.active());
    let mut stash = std::collections::VecDeque::new();
    let (mut seq, mut got, mut next) = (0u64, [0u64; 2], [0u64, 1]);
    let (warm, measured) = rounds(units, warmup, batch);
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        let event = |v: &mut VirtRx<'_, Coherent>, ch: u8| {
            if round < warm {
                warm_net_virt_rx(v, set(&[ch]));
            } else {
                insns_net_virt_rx(v, set(&[ch]));
            }
        };
        // Driver: take every free buffer (into its "hardware ring"), ask for more, receive.
        while let Some(d) = drv_free.pop() {
            stash.push_back(d.io_or_offset);
        }
        request(&driver.free);
        for _ in 0..batch {
            let io = stash.pop_front().expect("driver ran out of Rx buffers");
            let at = usize::try_from(io - IO_RX).expect("offset");
            write_frame(&dma, at, MAC[client_of(seq)], seq);
            drv_active.push(NetBuffDesc::new(io, FRAME_LEN));
            seq += 1;
        }
        assert!(
            should_notify(&driver.active),
            "the Rx virt did not ask the driver"
        );
        event(&mut virt, 0);
        // Each copier: take the frames, check them, return the buffers at once and notify.
        for (c, q) in clients.iter().enumerate() {
            let (active, free) = (q.active(), q.free());
            let mut returned = false;
            while let Some(d) = active.pop() {
                let at = usize::try_from(d.io_or_offset).expect("offset");
                assert_eq!(d.len, FRAME_LEN, "frame length");
                let (mac, s) = read_frame(&dma, at);
                assert_eq!((mac, s), (MAC[c], next[c]), "client {c}: wrong frame");
                (next[c], got[c]) = (next[c] + 2, got[c] + 1);
                free.push(d);
                returned = true;
            }
            request(&q.active);
            if returned && should_notify(&q.free) {
                event(&mut virt, c as u8 + 1);
            }
        }
    }
    let total = (warm + measured) * batch;
    assert_eq!(got[0] + got[1], total, "frames lost: {:?}", virt.stats());
    assert_eq!(got[0], total.div_ceil(2), "client 0 frame count");
    assert_eq!(virt.stats(), lions_net::RxStats::default(), "Rx virt stats");
    assert_eq!(virt.faulty(), 0);
    measured * batch
}

/// Both copiers (one per client): the bench is the Rx virt and both clients. A round's `batch`
/// frames alternate between the copiers; each copier with frames runs one event.
pub fn copier(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    let n = usize::from(QUEUE);
    let dma = Mem::new(n * BUF as usize);
    let rx = [Pair::new(), Pair::new()];
    let client = [Pair::new(), Pair::new()];
    let client_data = [Mem::new(n * BUF as usize), Mem::new(n * BUF as usize)];
    let cfgs: Vec<Box<NetCopyConfig>> = (0..2)
        .map(|c| {
            let mut cfg = Box::new(NetCopyConfig::new_zeroed());
            cfg.magic = sddf_magic(ConfigClass::Net);
            cfg.rx = rx[c].conn(0);
            cfg.rx_data[0] = dma.res();
            cfg.client = client[c].conn(1);
            cfg.client_data = client_data[c].res();
            cfg
        })
        .collect();
    // SAFETY: as in `virt_rx`: the regions are live `Mem`s of this frame, touched by the bench
    // only between events.
    let mut copiers: Vec<Copier<'_>> = cfgs
        .iter()
        .map(|cfg| Copier::new(unsafe { Mapped::assume(cfg) }).expect("Copier::new"))
        .collect();
    let mut stash: std::collections::VecDeque<u64> =
        (0..u64::from(QUEUE)).map(|i| i * BUF).collect();
    let (mut seq, mut got, mut next) = (0u64, [0u64; 2], [0u64, 1]);
    let (warm, measured) = rounds(units, warmup, batch);
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        // Rx virt: hand on `batch` frames, alternating between the copiers.
        let mut fed = [false; 2];
        for _ in 0..batch {
            let c = client_of(seq);
            let off = stash.pop_front().expect("virt ran out of Rx buffers");
            write_frame(&dma, off as usize, MAC[c], seq);
            rx[c].active().push(NetBuffDesc::new(off, FRAME_LEN));
            fed[c] = true;
            seq += 1;
        }
        for c in 0..2 {
            // The virt notifies only if the copier asked; a copier without frames is not run.
            if !fed[c] {
                continue;
            }
            assert!(should_notify(&rx[c].active), "copier {c} did not ask");
            if round < warm {
                warm_net_copier(&mut copiers[c], set(&[0]));
            } else {
                insns_net_copier(&mut copiers[c], set(&[0]));
            }
            // Rx virt: take the DMA buffers back, ask for more.
            while let Some(d) = rx[c].free().pop() {
                assert_eq!(d.len, FRAME_LEN, "copier changed the descriptor");
                stash.push_back(d.io_or_offset);
            }
            request(&rx[c].free);
            // Client: take the frames, check them, return the buffers.
            let (active, free) = (client[c].active(), client[c].free());
            while let Some(d) = active.pop() {
                assert_eq!(d.len, FRAME_LEN, "frame length");
                let (mac, s) = read_frame(&client_data[c], d.io_or_offset as usize);
                assert_eq!((mac, s), (MAC[c], next[c]), "client {c}: wrong frame");
                (next[c], got[c]) = (next[c] + 2, got[c] + 1);
                free.push(NetBuffDesc::new(d.io_or_offset, 0));
            }
            request(&client[c].active);
        }
    }
    let total = (warm + measured) * batch;
    assert_eq!(got[0] + got[1], total, "frames lost");
    for c in copiers.iter() {
        let s = c.stats();
        assert_eq!(
            (s.dropped, s.bad_client, s.bad_from_virt),
            (0, 0, 0),
            "{s:?}"
        );
    }
    measured * batch
}

/// The Tx virt with policy `P`: the bench is both clients and the driver.
fn virt_tx<P: lions_net::TxPolicy>(
    shim: &Shim,
    units: u64,
    warmup: u64,
    batch: u64,
    policy: P,
    measured_fn: fn(&mut VirtTx<'_, P, Coherent>, lions_os::ChannelSet),
    warm_fn: fn(&mut VirtTx<'_, P, Coherent>, lions_os::ChannelSet),
) -> u64 {
    let n = usize::from(QUEUE);
    let (driver, clients) = (Pair::new(), [Pair::new(), Pair::new()]);
    let data = [Mem::new(n * BUF as usize), Mem::new(n * BUF as usize)];
    let mut cfg = Box::new(NetVirtTxConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::Net);
    cfg.driver = driver.conn(0);
    cfg.num_clients = 2;
    for c in 0..2 {
        cfg.clients[c].conn = clients[c].conn(c as u8 + 1);
        cfg.clients[c].regions[0] = NetVirtTxRegion {
            data: DeviceRegionResource {
                region: data[c].res(),
                io_addr: IO_TX[c],
            },
            num_buffers: u32::from(QUEUE),
            _pad: 0,
        };
        cfg.clients[c].num_regions = 1;
        // The client primes its own free queue and does not ask for a signal on it.
        let free = clients[c].free();
        (0..u64::from(QUEUE)).for_each(|i| free.push(NetBuffDesc::new(i * BUF, 0)));
        clients[c].free.store32(4, 1);
    }
    // SAFETY: as in `virt_rx`.
    let mut virt =
        VirtTx::new(unsafe { Mapped::assume(&cfg) }, policy, Coherent).expect("VirtTx::new");
    let (mut seq, mut got, mut next) = (0u64, [0u64; 2], [0u64, 1]);
    let (warm, measured) = rounds(units, warmup, batch);
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        let event = |v: &mut VirtTx<'_, P, Coherent>, ch: u8| {
            if round < warm {
                warm_fn(v, set(&[ch]));
            } else {
                measured_fn(v, set(&[ch]));
            }
        };
        // Clients: `batch` frames between them, alternating; each client with frames notifies
        // (the virt runs at once: it has the higher priority).
        let mut frames: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..batch {
            frames[client_of(seq)].push(seq);
            seq += 1;
        }
        for (c, q) in clients.iter().enumerate() {
            if frames[c].is_empty() {
                continue;
            }
            for &s in &frames[c] {
                let d = q.free().pop().expect("client ran out of Tx buffers");
                write_frame(&data[c], d.io_or_offset as usize, MAC[c], s);
                q.active().push(NetBuffDesc::new(d.io_or_offset, FRAME_LEN));
            }
            if should_notify(&q.active) {
                event(&mut virt, c as u8 + 1);
            }
        }
        // Driver: transmit everything, return the buffers at once, ask for more, notify.
        let (active, free) = (driver.active(), driver.free());
        let mut returned = false;
        while let Some(d) = active.pop() {
            assert_eq!(d.len, FRAME_LEN, "frame length");
            let c = IO_TX
                .iter()
                .rposition(|&io| d.io_or_offset >= io)
                .expect("io");
            let (mac, s) = read_frame(&data[c], (d.io_or_offset - IO_TX[c]) as usize);
            assert_eq!((mac, s), (MAC[c], next[c]), "client {c}: wrong frame");
            (next[c], got[c]) = (next[c] + 2, got[c] + 1);
            free.push(NetBuffDesc::new(d.io_or_offset, 0));
            returned = true;
        }
        request(&driver.active);
        if returned && should_notify(&driver.free) {
            event(&mut virt, 0);
        }
    }
    let total = (warm + measured) * batch;
    assert_eq!(got[0] + got[1], total, "frames lost: {:?}", virt.stats());
    assert_eq!(virt.stats(), lions_net::TxStats::default(), "Tx virt stats");
    measured * batch
}

/// The Tx virt, round-robin policy.
pub fn virt_tx_rr(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    virt_tx(
        shim,
        units,
        warmup,
        batch,
        RoundRobin::default(),
        insns_net_virt_tx_rr,
        warm_net_virt_tx_rr,
    )
}

/// The Tx virt, in-order policy.
pub fn virt_tx_inorder(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    virt_tx(
        shim,
        units,
        warmup,
        batch,
        InOrder,
        insns_net_virt_tx_inorder,
        warm_net_virt_tx_inorder,
    )
}
