// SPDX-License-Identifier: BSD-2-Clause
//! Seeded attacks on the trusted block components (the `lions_os::sim::attack` engine).
//!
//! - `blk_virt`: the generic driver over an in-memory disk, the virtualiser, two well-behaved
//!   clients (a raw requester used by the book) and two malicious ones that write anything into
//!   their queues (entries with bogus codes, out-of-range or misaligned offsets, lying counts,
//!   blocks near 2^64, duplicate ids; head and tail jumps, near the wrap too; the plug flag) and
//!   notify or not, interleaved with device completions in any order. After every step: no fault
//!   of the driver, the virt or a good client; every response a good client gets answers one of
//!   its requests in flight, once, with `Ok` and the full count; a read returns what that client
//!   last wrote; the good clients' partitions on disk hold exactly what they wrote (nobody else's
//!   writes land there); the good clients' data regions change only where their own reads are in
//!   flight; the device only ever does DMA inside a data region. At the end: with the attackers
//!   quiet, every good request completes and a fresh one does too (liveness).
//! - `partition`: the partition reader on corrupted GPT and MBR images: no panic, and every
//!   partition of an accepted table lies inside the disk.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::sim::{BLK, Conn, DiskState, MemDisk, addr, res};
use common::{gpt_image, mbr_image, read_table};
use lions_blk::config::BLK_MAGIC;
use lions_blk::{
    BlkDriver, BlkDriverConfig, BlkReqQueue, BlkRequest, BlkRequester, BlkRespQueue, BlkVirt,
    BlkVirtConfig, RequestCode, ResponseStatus,
};
use lions_os::sim::attack::{Rng, Target};
use lions_os::sim::{PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, DeviceRegionResource, Handler};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use zerocopy::FromZeros;

const D_IRQ: u8 = 0;
const D_VIRT: u8 = 1;
const V_DRIVER: u8 = 0;
const C_VIRT: u8 = 0;
const C_CMD: u8 = 1;
/// Clients 0 and 1 are good, 2 and 3 attack.
const GOOD: usize = 2;
const CLIENTS: usize = 4;
/// Blocks a good client uses (its data region is as large).
const SPAN: u64 = 16;
/// Partition c: sectors 2048 + 512c ..= 2559 + 512c (64 blocks).
const PART_BLOCKS: u64 = 64;
const CAP: u16 = 8;

#[derive(Debug, Clone)]
enum GoodOp {
    Read { block: u64, count: u16 },
    Write { block: u64, count: u16, seed: u8 },
    Flush,
    Barrier,
}

#[derive(Debug, Clone)]
enum Evil {
    /// Write an entry at `tail + ahead` (mod capacity) and move the tail by `bump`.
    Entry {
        ahead: u32,
        req: BlkRequest,
        bump: u32,
        /// Bump even when the queue looks full (otherwise the attacker keeps to the capacity,
        /// so its requests reach the virt instead of just getting it marked faulty at once).
        force: bool,
    },
    ReqTail(u32),
    ReqHead(u32),
    RespHead(u32),
    RespTail(u32),
    Plug(u8),
    /// Read responses as a good client would (to keep the virt giving it slots).
    Drain,
}

#[derive(Debug, Clone)]
enum Act {
    Good(usize, GoodOp),
    Evil {
        c: usize,
        w: Evil,
        notify: bool,
    },
    /// Complete pending device requests: those whose bit in `mask` (by position) is set.
    Device(u64),
    /// Change how many requests the device holds at once.
    Depth(usize),
}

/// A request that is valid except, sometimes, for one or more lying fields.
fn gen_request(r: &mut Rng) -> BlkRequest {
    let lie = |r: &mut Rng| r.chance(1, 10);
    let code = if lie(r) {
        r.nasty() as u32
    } else if r.chance(7, 8) {
        r.below(2) as u32
    } else {
        2 + r.below(2) as u32
    };
    let offset = if lie(r) {
        if r.chance(1, 2) {
            r.below(SPAN * BLK as u64 + 2 * BLK as u64)
        } else {
            r.nasty()
        }
    } else {
        r.below(SPAN) * BLK as u64
    };
    let block = if lie(r) {
        if r.chance(1, 2) {
            PART_BLOCKS - r.below(4)
        } else {
            r.nasty()
        }
    } else {
        r.below(PART_BLOCKS)
    };
    let count = if lie(r) {
        r.nasty() as u16
    } else {
        1 + r.below(4) as u16
    };
    let id = if r.chance(1, 2) {
        r.below(4) as u32
    } else {
        r.u32()
    };
    let mut q = BlkRequest::new(RequestCode::Read, offset, block, count, id);
    q.code = code;
    q
}

/// With `indices` off, the attacker lies only in entries (so it stays served and its requests
/// reach the driver); with it on, it also corrupts queue indices (and is soon marked faulty).
fn gen_evil(r: &mut Rng, indices: bool) -> Evil {
    let index = |r: &mut Rng| match r.below(3) {
        0 => r.below(2 * u64::from(CAP)) as u32,
        1 => (u32::MAX - r.below(2 * u64::from(CAP)) as u32).wrapping_add(1),
        _ => r.nasty() as u32,
    };
    let pick = r.below(96);
    if !indices && (70..77).contains(&pick) {
        return Evil::Drain;
    }
    match pick {
        0..=69 => Evil::Entry {
            ahead: if r.chance(7, 8) {
                0
            } else {
                r.below(u64::from(CAP)) as u32
            },
            req: gen_request(r),
            bump: if !indices || r.chance(63, 64) {
                u32::from(r.chance(7, 8))
            } else {
                index(r)
            },
            force: indices && r.chance(1, 64),
        },
        70 => Evil::ReqTail(index(r)),
        71 => Evil::ReqHead(index(r)),
        72 => Evil::RespHead(index(r)),
        73 => Evil::RespTail(index(r)),
        74..=76 => Evil::Plug(r.pick(&[0, 0, 1, 0xff])),
        _ => Evil::Drain,
    }
}

fn generate(r: &mut Rng) -> Vec<Act> {
    let n = 20 + r.index(120);
    let indices = r.chance(1, 3);
    (0..n)
        .map(|_| match r.below(12) {
            0..=3 => {
                let c = r.index(GOOD);
                let block = r.below(SPAN);
                let count = 1 + r.below((SPAN - block).min(4)) as u16;
                let op = match r.below(8) {
                    0..=3 => GoodOp::Read { block, count },
                    4..=5 => GoodOp::Write {
                        block,
                        count,
                        seed: r.u32() as u8,
                    },
                    6 => GoodOp::Flush,
                    _ => GoodOp::Barrier,
                };
                Act::Good(c, op)
            }
            4..=7 => Act::Evil {
                c: GOOD + r.index(CLIENTS - GOOD),
                w: gen_evil(r, indices),
                notify: r.chance(3, 4),
            },
            8..=10 => Act::Device(if r.chance(1, 2) { u64::MAX } else { r.u64() }),
            _ => Act::Depth(1 + r.index(12)),
        })
        .collect()
}

/// One good request in flight.
#[derive(Debug, Clone)]
struct Flight {
    op: GoodOp,
}

/// What the test knows about the good clients.
struct Book {
    /// The next id of each good client.
    next_id: [u32; GOOD],
    flights: [BTreeMap<u32, Flight>; GOOD],
    /// Expected content of each good client's first `SPAN` blocks (as written and completed).
    model: [Vec<u8>; GOOD],
    /// Expected content of each good client's data region.
    shadow: [Vec<u8>; GOOD],
    /// Good ops waiting for the client PD to run.
    todo: [Vec<GoodOp>; GOOD],
    /// Evil writes waiting for their PD.
    evil: [Vec<(Evil, bool)>; CLIENTS - GOOD],
    completed: u64,
    failure: Option<String>,
}

impl Book {
    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }
}

struct World {
    _driver_conn: Conn,
    _bounce: Region,
    conns: Vec<Conn>,
    data: Vec<Region>,
    drv: BlkDriverConfig,
    virt: BlkVirtConfig,
    disk: DiskState,
    book: RefCell<Book>,
}

fn pattern(seed: u8, block: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(29) ^ (block as u8).wrapping_mul(7) ^ (i % 253) as u8)
        .collect()
}

fn part_first_block(c: usize) -> u64 {
    (2048 + 512 * c as u64) / 8
}

impl World {
    fn new() -> Self {
        let parts: Vec<(u64, u64)> = (0..CLIENTS as u64)
            .map(|c| (2048 + 512 * c, 2559 + 512 * c))
            .collect();
        let image = gpt_image(512, 4 << 20, &parts);
        let driver_conn = Conn::new(64);
        let bounce = Region::new(40 * 1024);
        let conns: Vec<Conn> = (0..CLIENTS).map(|_| Conn::new(CAP)).collect();
        let data: Vec<Region> = (0..CLIENTS)
            .map(|_| Region::new(SPAN as usize * BLK))
            .collect();
        let mut drv = BlkDriverConfig::new_zeroed();
        drv.magic = BLK_MAGIC;
        drv.virt = driver_conn.res(D_VIRT);
        let mut virt = BlkVirtConfig::new_zeroed();
        virt.magic = BLK_MAGIC;
        virt.num_clients = CLIENTS as u64;
        virt.driver.conn = driver_conn.res(V_DRIVER);
        virt.driver.data = DeviceRegionResource {
            region: res(&bounce),
            io_addr: addr(&bounce),
        };
        for c in 0..CLIENTS {
            virt.clients[c].conn = conns[c].res(1 + c as u8);
            virt.clients[c].data = DeviceRegionResource {
                region: res(&data[c]),
                io_addr: addr(&data[c]),
            };
            virt.clients[c].partition = c as u32;
        }
        for d in &data[GOOD..] {
            // The attackers' buffers hold junk, so their writes show wherever they land.
            // SAFETY: the region is live and nothing else refers to it yet.
            unsafe { d.as_ptr().as_ptr().write_bytes(0xee, d.len()) };
        }
        let disk = DiskState::new(image);
        disk.window(&bounce);
        data.iter().for_each(|d| disk.window(d));
        let span = SPAN as usize * BLK;
        Self {
            _driver_conn: driver_conn,
            _bounce: bounce,
            conns,
            data,
            drv,
            virt,
            disk,
            book: RefCell::new(Book {
                next_id: [0; GOOD],
                flights: Default::default(),
                model: [vec![0; span], vec![0; span]],
                shadow: [vec![0; span], vec![0; span]],
                todo: Default::default(),
                evil: Default::default(),
                completed: 0,
                failure: None,
            }),
        }
    }

    /// A copy of client `c`'s data region.
    fn data(&self, c: usize) -> Vec<u8> {
        let r = &self.data[c];
        // SAFETY: the region lives in `self`; the sim is single-threaded, nothing writes it now.
        unsafe { std::slice::from_raw_parts(r.as_ptr().as_ptr(), r.len()) }.to_vec()
    }

    /// Write `bytes` at `at` in client `c`'s data region (as the client does).
    fn data_write(&self, c: usize, at: usize, bytes: &[u8]) {
        let r = &self.data[c];
        assert!(at + bytes.len() <= r.len());
        // SAFETY: inside the live region (checked above); nothing else accesses it now.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), r.at(at).as_ptr(), bytes.len());
        }
    }

    /// Check the invariants that hold between steps.
    fn check(&self) -> Result<(), String> {
        let book = self.book.borrow();
        if let Some(f) = &book.failure {
            return Err(f.clone());
        }
        let image = self.disk.image.borrow();
        for c in 0..GOOD {
            let at = part_first_block(c) as usize * BLK;
            if image[at..][..book.model[c].len()] != book.model[c][..] {
                // A write may be done on disk before its response: allow blocks in flight.
                for b in 0..SPAN as usize {
                    let disk = &image[at + b * BLK..][..BLK];
                    let want = &book.model[c][b * BLK..][..BLK];
                    let busy = book.flights[c].values().any(|f| {
                        matches!(f.op, GoodOp::Write { block, count, .. }
                            if (block..block + u64::from(count)).contains(&(b as u64)))
                    });
                    if disk != want && !busy {
                        return Err(format!("client {c}'s block {b} on disk changed by someone"));
                    }
                }
            }
            let rest = at + book.model[c].len()..at + PART_BLOCKS as usize * BLK;
            if image[rest].iter().any(|&b| b != 0) {
                return Err(format!("client {c}'s partition written beyond its span"));
            }
            let data = self.data(c);
            if data[..] != book.shadow[c][..] {
                for b in 0..SPAN as usize {
                    let busy = book.flights[c].values().any(|f| {
                        matches!(f.op, GoodOp::Read { block, count }
                            if (block..block + u64::from(count)).contains(&(b as u64)))
                    });
                    if !busy && data[b * BLK..][..BLK] != book.shadow[c][b * BLK..][..BLK] {
                        return Err(format!("client {c}'s data block {b} changed by someone"));
                    }
                }
            }
        }
        Ok(())
    }
}

struct Shared<'a, H>(&'a RefCell<H>);

impl<H: Handler> Handler for Shared<'_, H> {
    type Error = H::Error;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), H::Error> {
        self.0.borrow_mut().notified(channels)
    }
}

struct GoodPd<'a> {
    c: usize,
    w: &'a World,
    q: BlkRequester<'a>,
}

impl GoodPd<'_> {
    fn submit(&mut self, op: GoodOp) {
        let w = self.w;
        let mut book = w.book.borrow_mut();
        let c = self.c;
        let (code, block, count) = match op {
            GoodOp::Read { block, count } => (RequestCode::Read, block, count),
            GoodOp::Write { block, count, .. } => (RequestCode::Write, block, count),
            GoodOp::Flush => (RequestCode::Flush, 0, 0),
            GoodOp::Barrier => (RequestCode::Barrier, 0, 0),
        };
        // A well-behaved client never has two requests on one block at once.
        let range = block..block + u64::from(count);
        let clash = book.flights[c].values().any(|f| match f.op {
            GoodOp::Read { block, count } | GoodOp::Write { block, count, .. } => {
                range.start < block + u64::from(count) && block < range.end
            }
            _ => false,
        });
        if clash {
            return;
        }
        let id = book.next_id[c];
        let offset = block * BLK as u64;
        let req = BlkRequest::new(code, offset, block, count, id);
        if self.q.submit(req).is_err() {
            return;
        }
        if let GoodOp::Write { seed, .. } = op {
            let bytes = pattern(seed, block, usize::from(count) * BLK);
            w.data_write(c, offset as usize, &bytes);
            book.shadow[c][offset as usize..][..bytes.len()].copy_from_slice(&bytes);
        }
        book.next_id[c] = id.wrapping_add(1);
        book.flights[c].insert(id, Flight { op });
    }

    fn take_responses(&mut self) -> Result<(), lions_os::OsError> {
        let w = self.w;
        let c = self.c;
        loop {
            let r = match self.q.response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    w.book.borrow_mut().fail(format!("good client {c}: {e:?}"));
                    break;
                }
            };
            let mut book = w.book.borrow_mut();
            let Some(f) = book.flights[c].remove(&r.id) else {
                book.fail(format!("good client {c}: response to no request: {r:?}"));
                break;
            };
            book.completed += 1;
            let want = match f.op {
                GoodOp::Read { count, .. } | GoodOp::Write { count, .. } => count,
                _ => 0,
            };
            if r.status() != Ok(ResponseStatus::Ok) || (want > 0 && r.success_count != want) {
                book.fail(format!("good client {c}: {:?} answered {r:?}", f.op));
                break;
            }
            match f.op {
                GoodOp::Read { block, count } => {
                    let at = block as usize * BLK;
                    let len = usize::from(count) * BLK;
                    let got = w.data(c)[at..][..len].to_vec();
                    if got[..] != book.model[c][at..][..len] {
                        book.fail(format!("good client {c}: read {block}+{count} wrong data"));
                    }
                    book.shadow[c][at..][..len].copy_from_slice(&got);
                }
                GoodOp::Write {
                    block, count, seed, ..
                } => {
                    let at = block as usize * BLK;
                    let len = usize::from(count) * BLK;
                    book.model[c][at..][..len].copy_from_slice(&pattern(seed, block, len));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Handler for GoodPd<'_> {
    type Error = lions_os::OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        self.take_responses()?;
        if set.contains(Channel::new(C_CMD)) {
            let ops = std::mem::take(&mut self.w.book.borrow_mut().todo[self.c]);
            for op in ops {
                self.submit(op);
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        if self
            .q
            .publish()
            .expect("the virt keeps its queue heads sane")
        {
            Channel::new(C_VIRT).notify()?;
        }
        Ok(())
    }
}

struct EvilPd<'a> {
    e: usize,
    w: &'a World,
}

impl EvilPd<'_> {
    fn req(&self) -> &BlkReqQueue {
        self.w.conns[GOOD + self.e].req_header()
    }
    fn resp(&self) -> &BlkRespQueue {
        self.w.conns[GOOD + self.e].resp_header()
    }

    fn apply(&self, w: &Evil) {
        let conn = &self.w.conns[GOOD + self.e];
        match *w {
            Evil::Entry {
                ahead,
                req,
                bump,
                force,
            } => {
                let tail = self.req().tail.load(Ordering::Relaxed);
                let head = self.req().head.load(Ordering::Acquire);
                if !force {
                    self.apply(&Evil::Drain);
                    if tail.wrapping_sub(head) >= u32::from(CAP) {
                        return;
                    }
                }
                let slot = (tail.wrapping_add(ahead) % u32::from(CAP)) as usize;
                // SAFETY: slot < CAP and the region holds 16 + 32 * CAP bytes; plain bytes.
                unsafe {
                    conn.req
                        .at(16 + 32 * slot)
                        .cast::<BlkRequest>()
                        .write_volatile(req);
                }
                self.req()
                    .tail
                    .store(tail.wrapping_add(bump), Ordering::Release);
            }
            Evil::ReqTail(v) => self.req().tail.store(v, Ordering::Release),
            Evil::ReqHead(v) => self.req().head.store(v, Ordering::Release),
            Evil::RespHead(v) => self.resp().head.store(v, Ordering::Release),
            Evil::RespTail(v) => self.resp().tail.store(v, Ordering::Release),
            Evil::Plug(v) => self.req().plugged.store(v, Ordering::Release),
            Evil::Drain => {
                let tail = self.resp().tail.load(Ordering::Acquire);
                self.resp().head.store(tail, Ordering::Release);
            }
        }
    }
}

impl Handler for EvilPd<'_> {
    type Error = lions_os::OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        if set.contains(Channel::new(C_CMD)) {
            let ws = std::mem::take(&mut self.w.book.borrow_mut().evil[self.e]);
            let mut notify = false;
            for (w, n) in ws {
                self.apply(&w);
                notify |= n;
            }
            if notify {
                Channel::new(C_VIRT).notify()?;
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        Ok(())
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    clients: Vec<PdId>,
    trusted: Vec<String>,
    virt: &'a RefCell<BlkVirt<'a>>,
}

impl<'a> Rig<'a> {
    fn new(
        w: &'a World,
        drv: &'a RefCell<BlkDriver<'a, MemDisk<'a>>>,
        virt: &'a RefCell<BlkVirt<'a>>,
    ) -> Self {
        let mut sim = Sim::new();
        let driver = sim.add_pd("blk_driver", 200, false, Shared(drv));
        sim.irq(driver, D_IRQ).unwrap();
        sim.init(driver, || drv.borrow_mut().init());
        let v = sim.add_pd("blk_virt", 199, false, Shared(virt));
        sim.channel(driver, D_VIRT, v, V_DRIVER).unwrap();
        sim.init(v, || virt.borrow_mut().init());
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let pd = if c < GOOD {
                // SAFETY: as above; one requester per connection.
                let q = unsafe { BlkRequester::from_connection(&w.virt.clients[c].conn) }.unwrap();
                sim.add_pd(&format!("good{c}"), 2, false, GoodPd { c, w, q })
            } else {
                sim.add_pd(&format!("evil{c}"), 1, false, EvilPd { e: c - GOOD, w })
            };
            sim.channel(pd, C_VIRT, v, 1 + c as u8).unwrap();
            sim.irq(pd, C_CMD).unwrap();
            clients.push(pd);
        }
        Self {
            sim,
            w,
            driver,
            clients,
            trusted: vec![
                "blk_driver".into(),
                "blk_virt".into(),
                "good0".into(),
                "good1".into(),
            ],
            virt,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        self.sim
            .run_until_idle(100_000)
            .map_err(|e| format!("{e:?}"))?;
        let faults = self.sim.faults();
        if let Some(f) = faults.iter().find(|f| self.trusted.contains(&f.pd)) {
            return Err(format!("fault: {f:?}"));
        }
        let faulty = self.virt.borrow().faulty();
        if faulty & ((1 << GOOD) - 1) != 0 {
            return Err(format!(
                "the virt marked a good client faulty ({faulty:#x})"
            ));
        }
        self.w.check()
    }

    fn device(&mut self, mask: u64) -> Result<(), String> {
        let i = std::cell::Cell::new(0u32);
        self.w.disk.complete_where(|_| {
            i.set(i.get() + 1);
            mask & (1 << (i.get() % 64)) != 0
        });
        self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        self.run()
    }

    fn step(&mut self, a: &Act) -> Result<(), String> {
        match a {
            Act::Good(c, op) => {
                self.w.book.borrow_mut().todo[*c].push(op.clone());
                self.sim.inject_irq(self.clients[*c], C_CMD).unwrap();
            }
            Act::Evil { c, w, notify } => {
                self.w.book.borrow_mut().evil[c - GOOD].push((w.clone(), *notify));
                self.sim.inject_irq(self.clients[*c], C_CMD).unwrap();
            }
            Act::Device(mask) => return self.device(*mask),
            Act::Depth(d) => self.w.disk.depth.set(*d),
        }
        self.run()
    }

    /// Attackers quiet: everything good in flight completes, then a fresh read and write too.
    fn finish(&mut self) -> Result<(), String> {
        self.w.disk.depth.set(usize::MAX);
        for round in 0..3 {
            if round > 0 {
                for c in 0..GOOD {
                    let mut book = self.w.book.borrow_mut();
                    book.todo[c].push(GoodOp::Write {
                        block: SPAN - 1,
                        count: 1,
                        seed: round,
                    });
                    book.todo[c].push(GoodOp::Read { block: 0, count: 2 });
                    drop(book);
                    self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
                }
                self.run()?;
            }
            for _ in 0..64 {
                if self.w.book.borrow().flights.iter().all(BTreeMap::is_empty) {
                    break;
                }
                self.device(u64::MAX)?;
            }
            let book = self.w.book.borrow();
            if let Some(c) = (0..GOOD).find(|&c| !book.flights[c].is_empty()) {
                return Err(format!(
                    "liveness: good client {c} still waits for {:?}",
                    book.flights[c]
                ));
            }
        }
        Ok(())
    }
}

fn execute(acts: &[Act]) -> Result<(), String> {
    let w = World::new();
    let drv = BlkDriver::new(MemDisk(&w.disk), mapped(&w.drv), Channel::new(D_IRQ)).unwrap();
    let drv = RefCell::new(drv);
    let virt = RefCell::new(BlkVirt::new(mapped(&w.virt)).unwrap());
    let mut rig = Rig::new(&w, &drv, &virt);
    rig.run()?;
    for a in acts {
        rig.step(a)?;
    }
    rig.finish()?;
    Ok(())
}

#[test]
fn blk_virt() {
    let t = Target {
        name: "blk_virt",
        package: "lions-blk",
        default_cases: 12,
    }
    .run(generate, execute);
    assert!(t.actions > 0);
}

/// An image: a valid GPT or MBR disk with `flips` bytes changed in its first and last 64 KiB
/// (headers, entry arrays, the MBR), and the disk size in blocks.
#[derive(Debug, Clone)]
enum Corrupt {
    /// Set byte `at` (from the start, or from the end when `from_end`) to `value`.
    Byte {
        at: usize,
        from_end: bool,
        value: u8,
    },
    /// Write a nasty little-endian u64 at `at` in the first 64 KiB and fix the GPT header CRCs.
    Field { at: usize, value: u64, reseal: bool },
}

#[derive(Debug, Clone)]
enum PartAct {
    /// The base disk: GPT (512 or 4096-byte sectors) or MBR, with some random partitions.
    Base {
        gpt: bool,
        ss4k: bool,
        parts: Vec<(u64, u64)>,
    },
    Corrupt(Corrupt),
}

fn gen_partition(r: &mut Rng) -> Vec<PartAct> {
    let gpt = r.chance(2, 3);
    let ss4k = gpt && r.chance(1, 4);
    let parts = (0..r.below(5))
        .map(|_| {
            let a = r.below(40_000);
            (a, a + r.below(20_000))
        })
        .collect();
    let mut v = vec![PartAct::Base { gpt, ss4k, parts }];
    for _ in 0..1 + r.below(12) {
        v.push(PartAct::Corrupt(if r.chance(1, 2) {
            let near = r.chance(1, 2);
            Corrupt::Byte {
                at: r.index(if near { 1024 } else { 64 * 1024 }),
                from_end: r.chance(1, 4),
                value: r.u32() as u8,
            }
        } else {
            Corrupt::Field {
                at: r.pick(&[
                    512 + 24,
                    512 + 32,
                    512 + 40,
                    512 + 48,
                    512 + 72,
                    512 + 80,
                    512 + 84,
                    512 + 12,
                    1024 + 32,
                    1024 + 40,
                    1024 + 128 + 32,
                    1024 + 128 + 40,
                    446 + 8,
                    446 + 12,
                    462 + 8,
                    462 + 12,
                    4096 + 72,
                    4096 + 80,
                    4096 + 84,
                    8192 + 32,
                    8192 + 40,
                ]),
                value: r.nasty(),
                reseal: r.chance(3, 4),
            }
        }));
    }
    v
}

fn exec_partition(acts: &[PartAct]) -> Result<(), String> {
    const BYTES: usize = 32 << 20;
    let Some(PartAct::Base { gpt, ss4k, parts }) = acts.first().cloned() else {
        return Ok(());
    };
    let ss = if ss4k { 4096 } else { 512 };
    let mut img = if gpt {
        let l = common::GptLayout::new(ss, BYTES);
        let parts: Vec<(u64, u64)> = parts
            .iter()
            .map(|&(a, b)| {
                let a = l.first_usable() + a % (l.last_usable() - l.first_usable());
                (a, b.max(a).min(l.last_usable()))
            })
            .collect();
        gpt_image(ss, BYTES, &parts)
    } else {
        let parts: Vec<(u8, u32, u32)> = parts
            .iter()
            .take(4)
            .map(|&(a, b)| (0x83, a as u32 + 1, (b - a) as u32 + 1))
            .collect();
        mbr_image(BYTES, &parts)
    };
    let len = img.len();
    for a in &acts[1..] {
        match *a {
            PartAct::Corrupt(Corrupt::Byte {
                at,
                from_end,
                value,
            }) => {
                let i = if from_end { len - 1 - at } else { at };
                img[i] = value;
            }
            PartAct::Corrupt(Corrupt::Field { at, value, reseal }) => {
                let at = if ss4k && (512..1024).contains(&at) {
                    at - 512 + 4096
                } else {
                    at
                };
                img[at..at + 8].copy_from_slice(&value.to_le_bytes());
                if reseal && gpt {
                    let h = ss;
                    common::seal_header(&mut img[h..h + ss]);
                }
            }
            PartAct::Base { .. } => {}
        }
    }
    let blocks = (len / BLK) as u64;
    let mut buf = vec![0u8; 32 * 1024];
    let table = read_table(ss as u16, blocks, &mut buf, |off, out| {
        let Ok(off) = usize::try_from(off) else {
            return false;
        };
        match img.get(off..off.saturating_add(out.len())) {
            Some(src) => {
                out.copy_from_slice(src);
                true
            }
            None => false,
        }
    });
    if let Ok(t) = table {
        for i in 0..128 {
            if let Some(e) = t.get(i) {
                let end = e.start.checked_add(e.blocks);
                if end.is_none_or(|end| end > blocks) {
                    return Err(format!(
                        "partition {i} {e:?} outside a disk of {blocks} blocks"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn partition() {
    let t = Target {
        name: "partition",
        package: "lions-blk",
        default_cases: 300,
    }
    .run(gen_partition, exec_partition);
    assert!(t.cases > 0);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
