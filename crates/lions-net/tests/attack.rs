// SPDX-License-Identifier: BSD-2-Clause
//! Seeded attacks on the net Rx virtualiser (`lions_os::sim::attack`).
//!
//! The virt sits between a scripted driver PD (it takes free buffers from its free queue, writes
//! a numbered frame into each, unicast to a client, broadcast, or to nobody, and hands it up) and
//! three copier-side clients: two well-behaved ones that hold what they receive for a while and
//! return it, and an attacker that returns anything on its free queue (offsets of buffers it
//! holds, held before, never held, misaligned, past the region; duplicates), moves its indices by
//! any amount and flips its signal flag.
//!
//! After every step: the virt never faults and marks no good client faulty; every descriptor the
//! driver gets back names a whole buffer of the region that the driver does not already own and
//! **that no good client still holds**; a good client receives only frames for its MAC or
//! broadcast, each with the bytes the driver wrote, and a frame it holds is not overwritten before
//! it returns it. At the end (attacker quiet, everything good returned) frames still reach the
//! good clients (liveness).
//!
//! `net_rx_virt` runs the whole mix; before the per-buffer holder set it found issue 12 defect 1
//! (a broadcast buffer's count decremented by a client that did not hold it), whose minimised
//! reproducer stays pinned in `net_rx_virt_defect_broadcast_refcount`. `net_rx_virt_unicast` runs
//! the same attack without broadcast frames.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_net::{Coherent, MacAddr, NetConnectionResource, NetVirtRxConfig, VirtRx};
use lions_os::sim::attack::{Rng, Target};
use lions_os::sim::{PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, ConfigClass, DeviceRegionResource, Handler, RegionResource};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use zerocopy::FromZeros;

const D_IRQ: u8 = 0;
const D_VIRT: u8 = 1;
const V_DRIVER: u8 = 0;
const C_VIRT: u8 = 0;
const C_CMD: u8 = 1;
const CLIENTS: usize = 3;
const GOOD: usize = 2;
const EVIL: usize = 2;
const BUFS: u16 = 16;
const BUF: u64 = 2048;
const RX_IO: u64 = 0x1000_0000;
const BROADCAST: MacAddr = MacAddr([0xff; 6]);

fn mac(c: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x01, 0, 0, c as u8])
}

fn res(r: &Region) -> RegionResource {
    RegionResource {
        vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
        size: r.len() as u64,
    }
}

/// One `net_queue_t` seen raw: tail u16 @0, head u16 @2, signal flag u32 @4, 16-byte
/// descriptors (`io_or_offset` u64, `len` u16) from 8.
struct RawQ {
    r: Region,
}

impl RawQ {
    fn new() -> Self {
        Self {
            r: Region::new(8 + 16 * usize::from(BUFS)),
        }
    }
    fn u16(&self, at: usize) -> &AtomicU16 {
        // SAFETY: page-aligned region holding the header; atomics valid for any bits.
        unsafe { self.r.at(at).cast::<AtomicU16>().as_ref() }
    }
    fn tail(&self) -> &AtomicU16 {
        self.u16(0)
    }
    fn head(&self) -> &AtomicU16 {
        self.u16(2)
    }
    fn signal(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.r.at(4).cast::<AtomicU32>().as_ref() }
    }
    fn slot(&self, i: u16) -> usize {
        8 + 16 * usize::from(i % BUFS)
    }
    fn write(&self, i: u16, io: u64, len: u16) {
        let at = self.slot(i);
        // SAFETY: inside the region; plain bytes.
        unsafe {
            self.r.at(at).cast::<u64>().write_volatile(io);
            self.r
                .at(at + 8)
                .cast::<u64>()
                .write_volatile(u64::from(len));
        }
    }
    fn read(&self, i: u16) -> (u64, u16) {
        let at = self.slot(i);
        // SAFETY: as above.
        unsafe {
            (
                self.r.at(at).cast::<u64>().read_volatile(),
                self.r.at(at + 8).cast::<u16>().read_volatile(),
            )
        }
    }
    /// Produce one descriptor, if there is room (a well-behaved producer).
    fn push(&self, io: u64, len: u16) -> bool {
        let t = self.tail().load(Ordering::Relaxed);
        if t.wrapping_sub(self.head().load(Ordering::Acquire)) >= BUFS {
            return false;
        }
        self.write(t, io, len);
        self.tail().store(t.wrapping_add(1), Ordering::Release);
        true
    }
    /// Consume one descriptor.
    fn pop(&self) -> Option<(u64, u16)> {
        let h = self.head().load(Ordering::Relaxed);
        if h == self.tail().load(Ordering::Acquire) {
            return None;
        }
        let d = self.read(h);
        self.head().store(h.wrapping_add(1), Ordering::Release);
        Some(d)
    }
}

struct Pair {
    free: RawQ,
    active: RawQ,
}

impl Pair {
    fn new() -> Self {
        Self {
            free: RawQ::new(),
            active: RawQ::new(),
        }
    }
    fn conn(&self, id: u8) -> NetConnectionResource {
        NetConnectionResource {
            free_queue: res(&self.free.r),
            active_queue: res(&self.active.r),
            num_buffers: BUFS,
            id,
            _pad: [0; 5],
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Dst {
    Client(usize),
    Broadcast,
    Nobody,
}

#[derive(Debug, Clone)]
enum Evil {
    /// Return this offset (`Held(k)`: the k-th buffer it holds or held, if any).
    Return(Ret),
    FreeTail(u16),
    ActiveHead(u16),
    Signal(u32),
}

#[derive(Debug, Clone, Copy)]
enum Ret {
    Held(usize),
    Index(u64),
    Raw(u64),
}

#[derive(Debug, Clone)]
enum Act {
    Frame(Dst),
    /// Good client returns its `n` oldest buffers.
    Return(usize, usize),
    Evil(Evil, bool),
}

struct World {
    driver: Pair,
    clients: Vec<Pair>,
    dma: Region,
    _meta: Region,
    cfg: Box<NetVirtRxConfig>,
    /// Buffers the driver owns (taken from its free queue, not yet handed up): index → nothing.
    driver_owns: RefCell<Vec<bool>>,
    /// Per good client, buffers held: index → frame number, in arrival order.
    held: RefCell<[VecDeque<(u64, u32)>; GOOD]>,
    /// Every buffer index the attacker ever received.
    evil_seen: RefCell<Vec<u64>>,
    frames: RefCell<u32>,
    todo: RefCell<VecDeque<Act>>,
    failure: RefCell<Option<String>>,
    /// Frames each good client received.
    got: RefCell<[u32; GOOD]>,
}

impl World {
    fn new() -> Self {
        let driver = Pair::new();
        let clients: Vec<Pair> = (0..CLIENTS).map(|_| Pair::new()).collect();
        let dma = Region::new(usize::from(BUFS) * BUF as usize);
        let meta = Region::new(usize::from(BUFS));
        let mut cfg = Box::new(NetVirtRxConfig::new_zeroed());
        cfg.magic = lions_os::sddf_magic(ConfigClass::Net);
        cfg.driver = driver.conn(V_DRIVER);
        cfg.data = DeviceRegionResource {
            region: res(&dma),
            io_addr: RX_IO,
        };
        cfg.buffer_metadata = res(&meta);
        cfg.num_clients = CLIENTS as u8;
        for (c, p) in clients.iter().enumerate() {
            cfg.clients[c].conn = p.conn(1 + c as u8);
            cfg.clients[c].mac_addrs[0] = mac(c);
            cfg.clients[c].num_macs = 1;
        }
        Self {
            driver,
            clients,
            dma,
            _meta: meta,
            cfg,
            driver_owns: RefCell::new(vec![false; usize::from(BUFS)]),
            held: RefCell::default(),
            evil_seen: RefCell::default(),
            frames: RefCell::new(0),
            todo: RefCell::default(),
            failure: RefCell::new(None),
            got: RefCell::default(),
        }
    }

    fn fail(&self, why: String) {
        self.failure.borrow_mut().get_or_insert(why);
    }

    /// The frame number stamped in buffer `i`.
    fn stamp(&self, i: u64) -> (MacAddr, u32) {
        let at = (i * BUF) as usize;
        // SAFETY: i < BUFS; inside the DMA region.
        unsafe {
            let p = self.dma.at(at);
            let mut m = [0u8; 6];
            std::ptr::copy_nonoverlapping(p.as_ptr(), m.as_mut_ptr(), 6);
            (MacAddr(m), p.add(12).cast::<u32>().read_unaligned())
        }
    }

    fn set_stamp(&self, i: u64, dst: MacAddr, n: u32) {
        let at = (i * BUF) as usize;
        // SAFETY: as above.
        unsafe {
            let p = self.dma.at(at);
            std::ptr::copy_nonoverlapping(dst.0.as_ptr(), p.as_ptr(), 6);
            p.add(12).cast::<u32>().write_unaligned(n);
        }
    }
}

struct DriverPd<'a> {
    w: &'a World,
}

impl DriverPd<'_> {
    /// Take every free buffer the virt gave back, checking each.
    fn take_free(&self) {
        let w = self.w;
        w.driver.free.signal().store(0, Ordering::SeqCst);
        while let Some((io, _)) = w.driver.free.pop() {
            let off = io.wrapping_sub(RX_IO);
            if off % BUF != 0 || off / BUF >= u64::from(BUFS) {
                return w.fail(format!("the driver got a bad buffer {io:#x}"));
            }
            let i = off / BUF;
            if w.driver_owns.borrow()[i as usize] {
                return w.fail(format!("the driver got buffer {i} twice"));
            }
            let held = w.held.borrow();
            if let Some(c) = (0..GOOD).find(|&c| held[c].iter().any(|h| h.0 == i)) {
                return w.fail(format!(
                    "buffer {i} went back to the driver while good client {c} holds it"
                ));
            }
            w.driver_owns.borrow_mut()[i as usize] = true;
        }
    }
}

impl Handler for DriverPd<'_> {
    type Error = lions_os::OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        self.take_free();
        if set.contains(Channel::new(D_IRQ)) {
            let w = self.w;
            let acts: Vec<Act> = w.todo.borrow_mut().drain(..).collect();
            let mut any = false;
            for a in acts {
                let Act::Frame(dst) = a else { continue };
                let Some(i) = w.driver_owns.borrow().iter().position(|&o| o) else {
                    continue;
                };
                let mac = match dst {
                    Dst::Client(c) => mac(c),
                    Dst::Broadcast => BROADCAST,
                    Dst::Nobody => MacAddr([2, 0, 0, 0, 0, 0x99]),
                };
                let n = {
                    let mut f = w.frames.borrow_mut();
                    *f += 1;
                    *f
                };
                w.set_stamp(i as u64, mac, n);
                w.driver_owns.borrow_mut()[i] = false;
                assert!(
                    w.driver.active.push(RX_IO + i as u64 * BUF, 64),
                    "16 buffers fit"
                );
                any = true;
            }
            if any {
                Channel::new(D_VIRT).notify()?;
            }
            Channel::new(D_IRQ).irq_ack()?;
        }
        Ok(())
    }
}

struct ClientPd<'a> {
    c: usize,
    w: &'a World,
}

impl ClientPd<'_> {
    fn receive(&self) {
        let w = self.w;
        let q = &w.clients[self.c];
        if self.c != EVIL {
            q.active.signal().store(0, Ordering::SeqCst);
        }
        while let Some((off, len)) = q.active.pop() {
            if self.c == EVIL {
                // Its own corrupt head makes it read anything: not the virt's doing.
                if off % BUF == 0 && off / BUF < u64::from(BUFS) {
                    w.evil_seen.borrow_mut().push(off / BUF);
                }
                continue;
            }
            if off % BUF != 0 || off / BUF >= u64::from(BUFS) || len != 64 {
                return w.fail(format!("client {} got descriptor {off:#x}+{len}", self.c));
            }
            let i = off / BUF;
            let (dst, n) = w.stamp(i);
            if dst != mac(self.c) && dst != BROADCAST {
                return w.fail(format!("client {} got a frame for {dst:?}", self.c));
            }
            let mut held = w.held.borrow_mut();
            if held[self.c].iter().any(|h| h.0 == i) {
                return w.fail(format!("client {} got buffer {i} it already holds", self.c));
            }
            held[self.c].push_back((i, n));
            w.got.borrow_mut()[self.c] += 1;
        }
    }

    fn give_back(&self, n: usize) {
        let w = self.w;
        let q = &w.clients[self.c];
        for _ in 0..n {
            let Some((i, stamp)) = w.held.borrow_mut()[self.c].pop_front() else {
                break;
            };
            if w.stamp(i).1 != stamp {
                return w.fail(format!(
                    "buffer {i} held by client {} was overwritten",
                    self.c
                ));
            }
            assert!(
                q.free.push(i * BUF, 0),
                "a client returns no more than it holds"
            );
        }
    }

    fn evil(&self, e: &Evil) {
        let w = self.w;
        let q = &w.clients[EVIL];
        match *e {
            Evil::Return(r) => {
                let off = match r {
                    Ret::Held(k) => {
                        let seen = w.evil_seen.borrow();
                        if seen.is_empty() {
                            return;
                        }
                        seen[k % seen.len()] * BUF
                    }
                    Ret::Index(i) => i * BUF,
                    Ret::Raw(v) => v,
                };
                q.free.push(off, 0);
            }
            Evil::FreeTail(v) => q.free.tail().store(v, Ordering::Release),
            Evil::ActiveHead(v) => q.active.head().store(v, Ordering::Release),
            Evil::Signal(v) => q.free.signal().store(v, Ordering::Release),
        }
    }
}

impl Handler for ClientPd<'_> {
    type Error = lions_os::OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        self.receive();
        if set.contains(Channel::new(C_CMD)) {
            let acts: Vec<Act> = self.w.todo.borrow_mut().drain(..).collect();
            let mut notify = false;
            for a in acts {
                match a {
                    Act::Return(_, n) => {
                        self.give_back(n);
                        notify = true;
                    }
                    Act::Evil(e, n) => {
                        self.evil(&e);
                        notify |= n;
                    }
                    Act::Frame(_) => {}
                }
            }
            if notify {
                Channel::new(C_VIRT).notify()?;
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        Ok(())
    }
}

struct Shared<'a>(&'a RefCell<VirtRx<'a, Coherent>>);

impl Handler for Shared<'_> {
    type Error = lions_net::Error;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        self.0.borrow_mut().notified(set)
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    clients: Vec<PdId>,
    virt: &'a RefCell<VirtRx<'a, Coherent>>,
}

impl Rig<'_> {
    fn run(&mut self) -> Result<(), String> {
        self.sim
            .run_until_idle(100_000)
            .map_err(|e| format!("{e:?}"))?;
        if let Some(f) = self.sim.faults().into_iter().find(|f| f.pd != "evil") {
            return Err(format!("fault: {f:?}"));
        }
        if let Some(f) = self.w.failure.borrow().clone() {
            return Err(f);
        }
        let faulty = self.virt.borrow().faulty();
        if faulty & ((1 << GOOD) - 1) != 0 {
            return Err(format!("a good client marked faulty: {faulty:#x}"));
        }
        Ok(())
    }

    fn step(&mut self, a: &Act) -> Result<(), String> {
        let pd = match a {
            Act::Frame(_) => self.driver,
            Act::Return(c, _) => self.clients[*c],
            Act::Evil(..) => self.clients[EVIL],
        };
        self.w.todo.borrow_mut().push_back(a.clone());
        self.sim
            .inject_irq(pd, if pd == self.driver { D_IRQ } else { C_CMD })
            .unwrap();
        self.run()
    }
}

fn execute(acts: &[Act]) -> Result<(), String> {
    let w = World::new();
    let virt = RefCell::new(VirtRx::new(mapped(&w.cfg), Coherent).unwrap());
    let mut sim = Sim::new();
    let driver = sim.add_pd("driver", 200, false, DriverPd { w: &w });
    sim.irq(driver, D_IRQ).unwrap();
    let v = sim.add_pd("net_virt_rx", 199, false, Shared(&virt));
    sim.channel(driver, D_VIRT, v, V_DRIVER).unwrap();
    sim.init(v, || virt.borrow_mut().init());
    let clients = (0..CLIENTS)
        .map(|c| {
            let name = if c == EVIL {
                "evil".into()
            } else {
                format!("good{c}")
            };
            let pd = sim.add_pd(&name, 100, false, ClientPd { c, w: &w });
            sim.channel(pd, C_VIRT, v, 1 + c as u8).unwrap();
            sim.irq(pd, C_CMD).unwrap();
            pd
        })
        .collect();
    let mut rig = Rig {
        sim,
        w: &w,
        driver,
        clients,
        virt: &virt,
    };
    rig.run()?;
    // The driver takes what init gave it.
    rig.sim.inject_irq(driver, D_IRQ).unwrap();
    rig.run()?;
    for a in acts {
        rig.step(a)?;
    }
    // Liveness: the good clients return everything, then each still gets a unicast frame.
    for c in 0..GOOD {
        rig.step(&Act::Return(c, usize::from(BUFS)))?;
    }
    for c in 0..GOOD {
        let before = w.got.borrow()[c];
        rig.step(&Act::Frame(Dst::Client(c)))?;
        rig.step(&Act::Return(c, usize::from(BUFS)))?;
        if w.got.borrow()[c] == before {
            return Err(format!("liveness: good client {c} gets no more frames"));
        }
    }
    Ok(())
}

fn generate(r: &mut Rng, broadcast: bool) -> Vec<Act> {
    (0..20 + r.index(100))
        .map(|_| match r.below(10) {
            0..=3 => Act::Frame(match r.below(if broadcast { 8 } else { 7 }) {
                0..=2 => Dst::Client(r.index(GOOD)),
                3..=4 => Dst::Client(EVIL),
                5 | 6 => Dst::Nobody,
                _ => Dst::Broadcast,
            }),
            4 | 5 => Act::Return(r.index(GOOD), r.index(4)),
            _ => Act::Evil(
                match r.below(12) {
                    0..=4 => Evil::Return(Ret::Held(r.index(64))),
                    5 | 6 => Evil::Return(Ret::Index(r.below(u64::from(BUFS) + 2))),
                    7 => Evil::Return(Ret::Raw(r.nasty())),
                    8 => Evil::FreeTail(r.nasty() as u16),
                    9 => Evil::ActiveHead(r.nasty() as u16),
                    _ => Evil::Signal(r.nasty() as u32),
                },
                r.chance(7, 8),
            ),
        })
        .collect()
}

#[test]
fn net_rx_virt() {
    let t = Target {
        name: "net_rx_virt",
        package: "lions-net",
        default_cases: 64,
    }
    .run(|r| generate(r, true), execute);
    assert!(t.actions > 0);
}

#[test]
fn net_rx_virt_unicast() {
    let t = Target {
        name: "net_rx_virt_unicast",
        package: "lions-net",
        default_cases: 64,
    }
    .run(|r| generate(r, false), execute);
    assert!(t.actions > 0);
}

/// Issue 12 defect 1, minimised by the attacker (seed 0x8b7adc2996ba88c4): a broadcast frame
/// reaches both good clients and the attacker; the attacker returns it twice; good client 1
/// returns it; the virt hands it to the driver while good client 0 still holds it.
#[test]
fn net_rx_virt_defect_broadcast_refcount() {
    let acts = [
        Act::Frame(Dst::Broadcast),
        Act::Evil(Evil::Return(Ret::Held(0)), true),
        Act::Evil(Evil::Return(Ret::Held(0)), true),
        Act::Return(1, 1),
        Act::Frame(Dst::Client(1)),
    ];
    assert_eq!(execute(&acts), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// The Tx virtualiser.

mod tx {
    //! The Tx virt between three clients (two good, one attacker) and a scripted driver. Good
    //! clients prime their free queues (sDDF's start-up), stamp each frame with (client, number)
    //! and send it; the driver checks every frame it gets and returns buffers when told. The
    //! attacker sends descriptors of any offset, `oid` and length (its own buffers, another
    //! client's, duplicates) and corrupts its indices. With `forge`, the driver itself also
    //! returns device addresses nobody sent (issue 12 defect 2's trigger): a client's buffer it
    //! does not have (one the client holds, a misaligned address, any address). A forged address
    //! that *is* at the driver is the driver finishing that buffer out of order, which a driver
    //! may do and no virt can tell from a real completion: the model counts it as finished.
    //!
    //! After every step: no fault; no good client marked faulty; every frame the driver gets lies
    //! in a client's region, whole and 2048-aligned, and if it is in a good client's region it is
    //! not already at the driver and is that client's next frame in order with the stamp it wrote;
    //! a good client gets back on its free queue only buffers it sent that the driver finished
    //! with, once. At the end every good frame has reached the driver and every good buffer is
    //! home (liveness).
    use super::*;
    use lions_net::{NetVirtTxConfig, RoundRobin, VirtTx};

    const TXB: u16 = 8;

    fn tx_io(c: usize) -> u64 {
        0x2000_0000 + c as u64 * 0x10_0000
    }

    /// The client and buffer of device address `io`, if it names a whole buffer.
    fn owner(io: u64) -> Option<(usize, u64)> {
        (0..CLIENTS).find_map(|c| {
            let off = io.checked_sub(tx_io(c))?;
            (off % BUF == 0 && off / BUF < u64::from(TXB)).then_some((c, off / BUF))
        })
    }

    #[derive(Debug, Clone)]
    pub(super) enum TxAct {
        /// Good client sends up to `n` frames.
        Send(usize, u8),
        /// The driver finishes `n` frames (oldest first).
        Complete(u8),
        /// The attacker sends a descriptor.
        EvilSend { off: u64, len: u16, oid: u8 },
        EvilIndex {
            active: bool,
            tail: bool,
            value: u16,
        },
        /// The driver returns a device address it never got.
        Forge(u64),
    }

    struct TxWorld {
        driver: Pair,
        clients: Vec<Pair>,
        data: Vec<Region>,
        cfg: Box<NetVirtTxConfig>,
        /// Per good client: buffers it holds (free), frames in flight (buffer → number), next
        /// number, last number the driver saw.
        free: RefCell<[Vec<u64>; GOOD]>,
        flight: RefCell<[BTreeSet<u64>; GOOD]>,
        next: RefCell<[u32; GOOD]>,
        seen: RefCell<[u32; GOOD]>,
        /// At the driver, in arrival order: device addresses.
        at_driver: RefCell<VecDeque<u64>>,
        /// Good buffers the driver finished and returned.
        done: RefCell<[BTreeSet<u64>; GOOD]>,
        todo: RefCell<VecDeque<TxAct>>,
        failure: RefCell<Option<String>>,
    }

    impl TxWorld {
        fn new() -> Self {
            let driver = Pair::new();
            let clients: Vec<Pair> = (0..CLIENTS).map(|_| Pair::new()).collect();
            let data: Vec<Region> = (0..CLIENTS)
                .map(|_| Region::new(usize::from(TXB) * BUF as usize))
                .collect();
            let mut cfg = Box::new(NetVirtTxConfig::new_zeroed());
            cfg.magic = lions_os::sddf_magic(ConfigClass::Net);
            cfg.driver = driver.conn(V_DRIVER);
            cfg.num_clients = CLIENTS as u8;
            for c in 0..CLIENTS {
                cfg.clients[c].conn = clients[c].conn(1 + c as u8);
                cfg.clients[c].regions[0].data = DeviceRegionResource {
                    region: res(&data[c]),
                    io_addr: tx_io(c),
                };
                cfg.clients[c].regions[0].num_buffers = TXB.into();
                cfg.clients[c].num_regions = 1;
            }
            Self {
                driver,
                clients,
                data,
                cfg,
                free: RefCell::new(std::array::from_fn(|_| (0..u64::from(TXB)).collect())),
                flight: RefCell::default(),
                next: RefCell::default(),
                seen: RefCell::default(),
                at_driver: RefCell::default(),
                done: RefCell::default(),
                todo: RefCell::default(),
                failure: RefCell::new(None),
            }
        }

        fn fail(&self, why: String) {
            self.failure.borrow_mut().get_or_insert(why);
        }

        fn stamp(&self, c: usize, b: u64) -> (u32, u32) {
            // SAFETY: b < TXB; inside client c's region.
            unsafe {
                let p = self.data[c].at((b * BUF) as usize).cast::<u32>();
                (p.read(), p.add(1).read())
            }
        }

        fn set_stamp(&self, c: usize, b: u64, n: u32) {
            // SAFETY: as above.
            unsafe {
                let p = self.data[c].at((b * BUF) as usize).cast::<u32>();
                p.write(c as u32);
                p.add(1).write(n);
            }
        }
    }

    /// A descriptor's second word: `len`, and `oid` in bits 16..22.
    fn word(len: u16, oid: u8) -> u16 {
        let _ = oid;
        len
    }

    struct TxDriver<'a> {
        w: &'a TxWorld,
    }

    impl Handler for TxDriver<'_> {
        type Error = lions_os::OsError;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            let w = self.w;
            w.driver.active.signal().store(0, Ordering::SeqCst);
            while let Some((io, len)) = w.driver.active.pop() {
                let Some((c, b)) = owner(io) else {
                    w.fail(format!("the driver got {io:#x}, no client's buffer"));
                    break;
                };
                if len == 0 || u64::from(len) > BUF {
                    w.fail(format!("the driver got length {len}"));
                }
                // The attacker may send its own buffer twice (only its own frames suffer).
                if c < GOOD && w.at_driver.borrow().contains(&io) {
                    w.fail(format!("the driver got {io:#x} twice"));
                }
                if c < GOOD {
                    if !w.flight.borrow()[c].contains(&b) {
                        w.fail(format!(
                            "the driver got good client {c}'s buffer {b}, not sent"
                        ));
                    }
                    let (who, n) = w.stamp(c, b);
                    let want = w.seen.borrow()[c];
                    if who != c as u32 || n != want {
                        w.fail(format!(
                            "client {c}'s frame {n} (of {who}) where frame {want} belongs"
                        ));
                    }
                    w.seen.borrow_mut()[c] = n + 1;
                }
                w.at_driver.borrow_mut().push_back(io);
            }
            if set.contains(Channel::new(D_IRQ)) {
                let acts: Vec<TxAct> = w.todo.borrow_mut().drain(..).collect();
                let mut any = false;
                for a in acts {
                    match a {
                        TxAct::Complete(n) => {
                            for _ in 0..n {
                                let Some(io) = w.at_driver.borrow().front().copied() else {
                                    break;
                                };
                                if !w.driver.free.push(io, 0) {
                                    break;
                                }
                                w.at_driver.borrow_mut().pop_front();
                                if let Some((c, b)) = owner(io)
                                    && c < GOOD
                                {
                                    w.done.borrow_mut()[c].insert(b);
                                }
                                any = true;
                            }
                        }
                        TxAct::Forge(io) => {
                            let at = w.at_driver.borrow().iter().position(|&a| a == io);
                            if !w.driver.free.push(io, 0) {
                                continue;
                            }
                            any = true;
                            // At the driver: finished out of order (see the module docs).
                            if let Some(i) = at {
                                w.at_driver.borrow_mut().remove(i);
                                if let Some((c, b)) = owner(io)
                                    && c < GOOD
                                {
                                    w.done.borrow_mut()[c].insert(b);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if any {
                    Channel::new(D_VIRT).notify()?;
                }
                Channel::new(D_IRQ).irq_ack()?;
            }
            Ok(())
        }
    }

    struct TxClient<'a> {
        c: usize,
        w: &'a TxWorld,
    }

    impl TxClient<'_> {
        fn take_back(&self) {
            let (w, c) = (self.w, self.c);
            let q = &w.clients[c];
            while let Some((off, _)) = q.free.pop() {
                if c == EVIL {
                    continue;
                }
                let b = off / BUF;
                if off % BUF != 0 || b >= u64::from(TXB) {
                    return w.fail(format!("client {c} got back offset {off:#x}"));
                }
                if !w.done.borrow_mut()[c].remove(&b) {
                    return w.fail(format!(
                        "client {c} got back buffer {b}, which the driver never finished"
                    ));
                }
                w.flight.borrow_mut()[c].remove(&b);
                w.free.borrow_mut()[c].push(b);
            }
        }
    }

    impl Handler for TxClient<'_> {
        type Error = lions_os::OsError;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            // Take, ask for a signal again, re-check (the signalling protocol).
            self.take_back();
            self.w.clients[self.c]
                .free
                .signal()
                .store(0, Ordering::SeqCst);
            self.take_back();
            let (w, c) = (self.w, self.c);
            if set.contains(Channel::new(C_CMD)) {
                let acts: Vec<TxAct> = w.todo.borrow_mut().drain(..).collect();
                let q = &w.clients[c].active;
                for a in acts {
                    match a {
                        TxAct::Send(_, n) => {
                            for _ in 0..n {
                                let Some(b) = w.free.borrow_mut()[c].pop() else {
                                    break;
                                };
                                let k = w.next.borrow()[c];
                                w.next.borrow_mut()[c] = k + 1;
                                w.set_stamp(c, b, k);
                                w.flight.borrow_mut()[c].insert(b);
                                assert!(q.push(b * BUF, 64), "8 buffers fit");
                            }
                        }
                        TxAct::EvilSend { off, len, oid } => {
                            let t = q.tail().load(Ordering::Relaxed);
                            q.write(t, off, word(len, oid));
                            // The oid byte sits at 10 in the descriptor.
                            // SAFETY: inside the queue region.
                            unsafe { q.r.at(q.slot(t) + 10).write(oid) };
                            q.tail().store(t.wrapping_add(1), Ordering::Release);
                        }
                        TxAct::EvilIndex {
                            active,
                            tail,
                            value,
                        } => {
                            let rq = if active { q } else { &w.clients[c].free };
                            let ix = if tail { rq.tail() } else { rq.head() };
                            ix.store(value, Ordering::Release);
                        }
                        _ => {}
                    }
                }
                Channel::new(C_VIRT).notify()?;
                Channel::new(C_CMD).irq_ack()?;
            }
            Ok(())
        }
    }

    struct SharedTx<'a>(&'a RefCell<VirtTx<'a, RoundRobin, Coherent>>);

    impl Handler for SharedTx<'_> {
        type Error = lions_net::Error;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            self.0.borrow_mut().notified(set)
        }
    }

    pub(super) fn execute(acts: &[TxAct]) -> Result<(), String> {
        let w = TxWorld::new();
        // sDDF start-up: each client primes its own free queue with all its buffers.
        for q in &w.clients {
            for b in 0..u64::from(TXB) {
                assert!(q.free.push(b * BUF, 0));
            }
        }
        // SAFETY: the regions live in `w`, outliving the virt; one handle per role.
        let virt =
            RefCell::new(VirtTx::new(mapped(&w.cfg), RoundRobin::default(), Coherent).unwrap());
        // The good clients' own view: they took every primed buffer (the `free` book).
        for c in 0..GOOD {
            let q = &w.clients[c].free;
            q.head()
                .store(q.tail().load(Ordering::Relaxed), Ordering::Release);
        }
        let mut sim = Sim::new();
        let driver = sim.add_pd("driver", 200, false, TxDriver { w: &w });
        sim.irq(driver, D_IRQ).unwrap();
        let v = sim.add_pd("net_virt_tx", 199, false, SharedTx(&virt));
        sim.channel(driver, D_VIRT, v, V_DRIVER).unwrap();
        let pds: Vec<PdId> = (0..CLIENTS)
            .map(|c| {
                let name = if c == EVIL {
                    "evil".into()
                } else {
                    format!("good{c}")
                };
                let pd = sim.add_pd(&name, 100, false, TxClient { c, w: &w });
                sim.channel(pd, C_VIRT, v, 1 + c as u8).unwrap();
                sim.irq(pd, C_CMD).unwrap();
                pd
            })
            .collect();
        let run = |sim: &mut Sim<'_>, a: &TxAct| -> Result<(), String> {
            let pd = match a {
                TxAct::Send(c, _) => pds[*c],
                TxAct::EvilSend { .. } | TxAct::EvilIndex { .. } => pds[EVIL],
                TxAct::Complete(_) | TxAct::Forge(_) => driver,
            };
            w.todo.borrow_mut().push_back(a.clone());
            let ch = if pd == driver { D_IRQ } else { C_CMD };
            sim.inject_irq(pd, ch).unwrap();
            sim.run_until_idle(100_000).map_err(|e| format!("{e:?}"))?;
            if let Some(f) = sim.faults().into_iter().find(|f| f.pd != "evil") {
                return Err(format!("fault: {f:?}"));
            }
            if let Some(f) = w.failure.borrow().clone() {
                return Err(f);
            }
            let faulty = virt.borrow().stats().faulty;
            if faulty & ((1 << GOOD) - 1) != 0 {
                return Err(format!("a good client marked faulty: {faulty:#x}"));
            }
            Ok(())
        };
        for a in acts {
            run(&mut sim, a)?;
        }
        // Liveness: each good client sends once more; the driver finishes everything.
        for c in 0..GOOD {
            run(&mut sim, &TxAct::Send(c, 1))?;
        }
        for _ in 0..4 {
            run(&mut sim, &TxAct::Complete(u8::MAX))?;
        }
        for c in 0..GOOD {
            run(&mut sim, &TxAct::Send(c, 0))?;
        }
        for c in 0..GOOD {
            let (sent, seen) = (w.next.borrow()[c], w.seen.borrow()[c]);
            if sent != seen {
                return Err(format!(
                    "liveness: client {c} sent {sent} frames, {seen} arrived"
                ));
            }
            let home = w.free.borrow()[c].len();
            if home != usize::from(TXB) {
                return Err(format!(
                    "liveness: client {c} has {home} of {TXB} buffers home"
                ));
            }
        }
        Ok(())
    }

    pub(super) fn generate(r: &mut Rng, forge: bool) -> Vec<TxAct> {
        (0..20 + r.index(100))
            .map(|_| match r.below(if forge { 11 } else { 10 }) {
                0..=2 => TxAct::Send(r.index(GOOD), 1 + r.below(4) as u8),
                3 | 4 => TxAct::Complete(r.below(6) as u8),
                5..=7 => TxAct::EvilSend {
                    off: if r.chance(3, 4) {
                        r.below(u64::from(TXB) + 2) * BUF
                    } else {
                        r.nasty()
                    },
                    len: if r.chance(3, 4) { 64 } else { r.nasty() as u16 },
                    oid: if r.chance(3, 4) { 0 } else { r.u32() as u8 },
                },
                8 | 9 => TxAct::EvilIndex {
                    active: r.chance(1, 2),
                    tail: r.chance(1, 2),
                    value: r.nasty() as u16,
                },
                _ => TxAct::Forge(match r.below(3) {
                    0 => tx_io(r.index(CLIENTS)) + r.below(u64::from(TXB)) * BUF,
                    1 => tx_io(r.index(CLIENTS)) + r.below(u64::from(TXB) * BUF),
                    _ => r.nasty(),
                }),
            })
            .collect()
    }
}

#[test]
fn net_tx_virt() {
    let t = Target {
        name: "net_tx_virt",
        package: "lions-net",
        default_cases: 64,
    }
    .run(|r| tx::generate(r, false), tx::execute);
    assert!(t.actions > 0);
}

#[test]
fn net_tx_virt_forging_driver() {
    let t = Target {
        name: "net_tx_virt_forging_driver",
        package: "lions-net",
        default_cases: 64,
    }
    .run(|r| tx::generate(r, true), tx::execute);
    assert!(t.actions > 0);
}

/// Issue 12 defect 2's class, minimised by the attacker (seed 0x4244f7aae1ede059): the driver
/// returns the device address of good client 0's buffer 2, which the client holds and never sent;
/// the virt hands it to the client's free queue as if it came back from transmission.
#[test]
fn net_tx_virt_defect_forged_return() {
    assert_eq!(tx::execute(&[tx::TxAct::Forge(0x2000_1000)]), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// The copier.

mod copy {
    //! The copier between a scripted Rx virt (trusted: it stamps each frame and hands it over) and
    //! a client that behaves (takes frames, checks them, returns its buffers) until it attacks:
    //! returns any offset (duplicates, another buffer, misaligned, past the region), corrupts its
    //! indices and flips its signal flag.
    //!
    //! After every step: the copier never faults; every DMA buffer it returns to the virt is one
    //! the virt gave it, once, with its descriptor unchanged; until the client first misbehaves,
    //! the client receives exactly the frames sent (in order, bytes intact) except those dropped
    //! for want of a client buffer. At the end every DMA buffer is home (the copier never keeps
    //! one, whatever the client did) and, if the client never misbehaved, it still gets frames.
    use super::*;
    use lions_net::{Copier, NetCopyConfig};

    #[derive(Debug, Clone)]
    pub(super) enum CAct {
        /// The virt sends a frame of this length.
        Frame(u16),
        /// The client takes its frames and returns `n` buffers.
        Take(u8),
        EvilReturn(u64, u16),
        EvilIndex {
            free: bool,
            tail: bool,
            value: u16,
        },
        EvilSignal(u32),
    }

    struct CWorld {
        rx: Pair,
        cl: Pair,
        dma: Region,
        cdata: Region,
        cfg: NetCopyConfig,
        /// DMA buffers the virt owns / lent to the copier (index → frame number and length).
        home: RefCell<Vec<bool>>,
        lent: RefCell<BTreeMap<u64, (u32, u16)>>,
        sent: RefCell<u32>,
        /// Frames sent while the client was good (number, length), in order.
        expect: RefCell<VecDeque<(u32, u16)>>,
        /// Client buffers held by the good client, to return.
        held: RefCell<VecDeque<u64>>,
        evil: RefCell<bool>,
        got: RefCell<u32>,
        todo: RefCell<VecDeque<CAct>>,
        failure: RefCell<Option<String>>,
    }

    fn fill(n: u32, i: usize) -> u8 {
        (n as usize * 31 + i) as u8
    }

    impl CWorld {
        fn new() -> Self {
            let rx = Pair::new();
            let cl = Pair::new();
            let dma = Region::new(usize::from(BUFS) * BUF as usize);
            let cdata = Region::new(usize::from(BUFS) * BUF as usize);
            let mut cfg = NetCopyConfig::new_zeroed();
            cfg.magic = lions_os::sddf_magic(ConfigClass::Net);
            cfg.rx = rx.conn(0);
            cfg.rx_data[0] = res(&dma);
            cfg.client = cl.conn(1);
            cfg.client_data = res(&cdata);
            Self {
                rx,
                cl,
                dma,
                cdata,
                cfg,
                home: RefCell::new(vec![true; usize::from(BUFS)]),
                lent: RefCell::default(),
                sent: RefCell::new(0),
                expect: RefCell::default(),
                held: RefCell::default(),
                evil: RefCell::new(false),
                got: RefCell::new(0),
                todo: RefCell::default(),
                failure: RefCell::new(None),
            }
        }
        fn fail(&self, why: String) {
            self.failure.borrow_mut().get_or_insert(why);
        }
    }

    struct VirtPd<'a> {
        w: &'a CWorld,
    }

    impl Handler for VirtPd<'_> {
        type Error = lions_os::OsError;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            let w = self.w;
            w.rx.free.signal().store(0, Ordering::SeqCst);
            while let Some((off, len)) = w.rx.free.pop() {
                match w.lent.borrow_mut().remove(&(off / BUF)) {
                    Some((_, l)) if off % BUF == 0 && l == len => {
                        w.home.borrow_mut()[(off / BUF) as usize] = true;
                    }
                    other => w.fail(format!("the virt got back {off:#x}+{len} ({other:?})")),
                }
            }
            if set.contains(Channel::new(D_IRQ)) {
                let acts: Vec<CAct> = w.todo.borrow_mut().drain(..).collect();
                let mut any = false;
                for a in acts {
                    let CAct::Frame(len) = a else { continue };
                    let Some(i) = w.home.borrow().iter().position(|&h| h) else {
                        continue;
                    };
                    let n = *w.sent.borrow();
                    *w.sent.borrow_mut() += 1;
                    for k in 0..usize::from(len) {
                        // SAFETY: i < BUFS and len <= 2048: inside the DMA region.
                        unsafe { w.dma.at(i * BUF as usize + k).write(fill(n, k)) };
                    }
                    w.home.borrow_mut()[i] = false;
                    w.lent.borrow_mut().insert(i as u64, (n, len));
                    if !*w.evil.borrow() {
                        w.expect.borrow_mut().push_back((n, len));
                    }
                    assert!(w.rx.active.push(i as u64 * BUF, len));
                    any = true;
                }
                if any {
                    Channel::new(D_VIRT).notify()?;
                }
                Channel::new(D_IRQ).irq_ack()?;
            }
            Ok(())
        }
    }

    struct ClientPd<'a> {
        w: &'a CWorld,
    }

    impl ClientPd<'_> {
        fn take(&self) {
            let w = self.w;
            w.cl.active.signal().store(0, Ordering::SeqCst);
            while let Some((off, len)) = w.cl.active.pop() {
                if *w.evil.borrow() {
                    continue;
                }
                if off % BUF != 0 || off / BUF >= u64::from(BUFS) {
                    return w.fail(format!("the client got offset {off:#x}"));
                }
                // Frames may be dropped (no client buffer): skip expectations up to this one.
                let bytes: Vec<u8> = (0..usize::from(len))
                    // SAFETY: inside the client data region (checked above; len <= 2048).
                    .map(|k| unsafe { w.cdata.at(off as usize + k).read() })
                    .collect();
                let mut expect = w.expect.borrow_mut();
                let found = loop {
                    let Some((n, l)) = expect.pop_front() else {
                        break false;
                    };
                    if l == len && bytes.iter().enumerate().all(|(k, &b)| b == fill(n, k)) {
                        break true;
                    }
                };
                if !found {
                    return w.fail(format!("the client got a frame nobody sent ({len} B)"));
                }
                *w.got.borrow_mut() += 1;
                w.held.borrow_mut().push_back(off);
            }
        }
    }

    impl Handler for ClientPd<'_> {
        type Error = lions_os::OsError;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            let w = self.w;
            self.take();
            if set.contains(Channel::new(C_CMD)) {
                let acts: Vec<CAct> = w.todo.borrow_mut().drain(..).collect();
                for a in acts {
                    match a {
                        CAct::Take(n) => {
                            for _ in 0..n {
                                let Some(off) = w.held.borrow_mut().pop_front() else {
                                    break;
                                };
                                // Full only after the client's own index corruption.
                                if !w.cl.free.push(off, 0) {
                                    break;
                                }
                            }
                        }
                        CAct::EvilReturn(off, len) => {
                            *w.evil.borrow_mut() = true;
                            w.cl.free.push(off, len);
                        }
                        CAct::EvilIndex { free, tail, value } => {
                            *w.evil.borrow_mut() = true;
                            let q = if free { &w.cl.free } else { &w.cl.active };
                            let ix = if tail { q.tail() } else { q.head() };
                            ix.store(value, Ordering::Release);
                        }
                        CAct::EvilSignal(v) => w.cl.active.signal().store(v, Ordering::Release),
                        CAct::Frame(_) => {}
                    }
                }
                Channel::new(C_VIRT).notify()?;
                Channel::new(C_CMD).irq_ack()?;
            }
            Ok(())
        }
    }

    struct SharedCopy<'a>(&'a RefCell<Copier<'a>>);

    impl Handler for SharedCopy<'_> {
        type Error = lions_net::Error;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            self.0.borrow_mut().notified(set)
        }
    }

    pub(super) fn execute(acts: &[CAct]) -> Result<(), String> {
        let w = CWorld::new();
        let copier = RefCell::new(Copier::new(mapped(&w.cfg)).unwrap());
        // The client adopts its primed free queue: it holds none of those buffers.
        let mut sim = Sim::new();
        let virt = sim.add_pd("virt", 200, false, VirtPd { w: &w });
        sim.irq(virt, D_IRQ).unwrap();
        let k = sim.add_pd("net_copy", 150, false, SharedCopy(&copier));
        sim.channel(virt, D_VIRT, k, 0).unwrap();
        let client = sim.add_pd("client", 100, false, ClientPd { w: &w });
        sim.channel(client, C_VIRT, k, 1).unwrap();
        sim.irq(client, C_CMD).unwrap();
        let run = |sim: &mut Sim<'_>, a: &CAct| -> Result<(), String> {
            let (pd, ch) = match a {
                CAct::Frame(_) => (virt, D_IRQ),
                _ => (client, C_CMD),
            };
            w.todo.borrow_mut().push_back(a.clone());
            sim.inject_irq(pd, ch).unwrap();
            sim.run_until_idle(100_000).map_err(|e| format!("{e:?}"))?;
            if let Some(f) = sim.faults().into_iter().find(|f| f.pd != "client") {
                return Err(format!("fault: {f:?}"));
            }
            w.failure.borrow().clone().map_or(Ok(()), Err)
        };
        for a in acts {
            run(&mut sim, a)?;
        }
        run(&mut sim, &CAct::Take(u8::MAX))?;
        let before = *w.got.borrow();
        for _ in 0..3 {
            run(&mut sim, &CAct::Frame(60))?;
        }
        let home = w.home.borrow().iter().filter(|&&h| h).count();
        if home != usize::from(BUFS) {
            return Err(format!("liveness: {home} of {BUFS} DMA buffers home"));
        }
        if !*w.evil.borrow() && *w.got.borrow() == before {
            return Err("liveness: the good client gets no more frames".into());
        }
        Ok(())
    }

    pub(super) fn generate(r: &mut Rng) -> Vec<CAct> {
        let attack = r.chance(2, 3);
        (0..20 + r.index(100))
            .map(|_| match r.below(if attack { 10 } else { 6 }) {
                0..=2 => CAct::Frame(if r.chance(7, 8) {
                    1 + r.below(BUF) as u16
                } else {
                    r.pick(&[1, 14, 2048])
                }),
                3..=5 => CAct::Take(r.below(5) as u8),
                6 | 7 => CAct::EvilReturn(
                    if r.chance(1, 2) {
                        r.below(u64::from(BUFS) + 2) * BUF
                    } else {
                        r.nasty()
                    },
                    r.nasty() as u16,
                ),
                8 => CAct::EvilIndex {
                    free: r.chance(1, 2),
                    tail: r.chance(1, 2),
                    value: r.nasty() as u16,
                },
                _ => CAct::EvilSignal(r.nasty() as u32),
            })
            .collect()
    }
}

#[test]
fn net_copy() {
    let t = Target {
        name: "net_copy",
        package: "lions-net",
        default_cases: 64,
    }
    .run(copy::generate, copy::execute);
    assert!(t.actions > 0);
}

/// The ARP responder's decision on mutated and random frames (network input anyone can send):
/// no panic; a reply only to a well-formed request for a table address from a unicast sender
/// other than the owner, and then exactly the RFC 826 reply.
#[derive(Debug, Clone)]
enum ArpMut {
    /// Start from a valid request for table entry `k`, or from random bytes.
    Base(Option<usize>, u16),
    Byte(usize, u8),
    Len(u16),
}

fn arp_execute(acts: &[ArpMut]) -> Result<(), String> {
    use lions_net::ArpEntry;
    let table = [
        ArpEntry {
            ip: [10, 0, 0, 1],
            mac: mac(0),
        },
        ArpEntry {
            ip: [10, 0, 0, 2],
            mac: mac(1),
        },
    ];
    let mut f = vec![0u8; 60];
    for a in acts {
        match *a {
            ArpMut::Base(Some(k), seed) => {
                f = vec![0u8; 60];
                f[..6].copy_from_slice(&[0xff; 6]);
                f[6..12].copy_from_slice(&[2, 0, 0, 0, (seed >> 8) as u8, seed as u8]);
                f[12..14].copy_from_slice(&[8, 6]);
                f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                f.copy_within(6..12, 22);
                f[28..32].copy_from_slice(&[10, 0, 0, 99]);
                f[38..42].copy_from_slice(&table[k % 2].ip);
            }
            ArpMut::Base(None, seed) => {
                let mut r = Rng::new(u64::from(seed));
                f = (0..60).map(|_| r.u32() as u8).collect();
            }
            ArpMut::Byte(at, v) => {
                if let Some(b) = f.get_mut(at) {
                    *b = v;
                }
            }
            ArpMut::Len(n) => f.resize(usize::from(n), 0),
        }
    }
    let mut out = [0u8; lions_net::arp::REPLY_LEN as usize];
    let Some(n) = lions_net::arp::reply(&table, &f, &mut out) else {
        return Ok(());
    };
    let ok = f.len() >= 42
        && f[12..14] == [8, 6]
        && f[14..22] == [0, 1, 8, 0, 6, 4, 0, 1]
        && f[22] & 1 == 0;
    let entry = table.iter().find(|e| f.len() >= 42 && e.ip == f[38..42]);
    let Some(e) = entry.filter(|_| ok) else {
        return Err(format!(
            "a reply to a frame that is no request for us: {f:?}"
        ));
    };
    if f[22..28] == e.mac.0 {
        return Err("a reply to the owner's own probe".into());
    }
    let want: Vec<u8> = [
        &f[22..28],
        &e.mac.0[..],
        &[8, 6, 0, 1, 8, 0, 6, 4, 0, 2],
        &e.mac.0[..],
        &e.ip[..],
        &f[22..28],
        &f[28..32],
    ]
    .concat();
    if usize::from(n) != out.len() || out[..42] != want[..] || out[42..].iter().any(|&b| b != 0) {
        return Err(format!("wrong reply {out:?} to {f:?}"));
    }
    Ok(())
}

#[test]
fn net_arp() {
    let t = Target {
        name: "net_arp",
        package: "lions-net",
        default_cases: 5000,
    }
    .run(
        |r| {
            let mut v = vec![ArpMut::Base(
                r.chance(4, 5).then(|| r.index(3)),
                r.u32() as u16,
            )];
            for _ in 0..r.below(4) {
                v.push(match r.below(5) {
                    0 => ArpMut::Len(r.below(70) as u16),
                    _ => ArpMut::Byte(r.index(44), if r.chance(1, 2) { r.u32() as u8 } else { 1 }),
                });
            }
            v
        },
        arp_execute,
    );
    assert!(t.actions > 0);
}

/// The same defect found by `cargo xtask fuzz net_tx_virt_forging_driver` (seed 0x5eed0001): the
/// driver returns a misaligned address inside good client 0's region; the client gets offset
/// 0x1545 on its free queue, a buffer that does not exist.
#[test]
fn net_tx_virt_defect_forged_misaligned_return() {
    assert_eq!(tx::execute(&[tx::TxAct::Forge(0x2000_1545)]), Ok(()));
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
