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
//! `net_rx_virt` runs the whole mix and finds issue 12 defect 1 (a broadcast buffer's count can
//! be decremented by a client that does not hold it): it is ignored until that fix lands, with
//! its minimised reproducer pinned in `net_rx_virt_defect_broadcast_refcount`. `net_rx_virt_unicast`
//! runs the same attack without broadcast frames and stays on in CI.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_net::{Coherent, MacAddr, NetConnectionResource, NetVirtRxConfig, VirtRx};
use lions_os::sim::attack::{Rng, Target};
use lions_os::sim::{PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, ConfigClass, DeviceRegionResource, Handler, RegionResource};
use std::cell::RefCell;
use std::collections::VecDeque;
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
    /// Produce one descriptor.
    fn push(&self, io: u64, len: u16) {
        let t = self.tail().load(Ordering::Relaxed);
        self.write(t, io, len);
        self.tail().store(t.wrapping_add(1), Ordering::Release);
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
                w.driver.active.push(RX_IO + i as u64 * BUF, 64);
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
            q.free.push(i * BUF, 0);
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
    // SAFETY: the regions live in `w`, outliving the virt; one handle per role.
    let virt = RefCell::new(unsafe { VirtRx::new(&w.cfg, Coherent) }.unwrap());
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
#[ignore = "defect: issue 12 #1, the Rx virt frees a broadcast buffer a good client still holds \
            (pinned by net_rx_virt_defect_broadcast_refcount)"]
fn net_rx_virt() {
    let t = Target {
        name: "net_rx_virt",
        package: "lions-net",
        default_cases: 200,
    }
    .run(|r| generate(r, true), execute);
    assert!(t.actions > 0);
}

#[test]
fn net_rx_virt_unicast() {
    let t = Target {
        name: "net_rx_virt_unicast",
        package: "lions-net",
        default_cases: 200,
    }
    .run(|r| generate(r, false), execute);
    assert!(t.actions > 0);
}

/// Issue 12 defect 1, minimised by the attacker (seed 0x8b7adc2996ba88c4): a broadcast frame
/// reaches both good clients and the attacker; the attacker returns it twice; good client 1
/// returns it; the virt hands it to the driver while good client 0 still holds it.
#[test]
#[ignore = "defect: issue 12 #1, a client returning a broadcast buffer it does not hold (twice) \
            frees it under a good client that still holds it"]
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
