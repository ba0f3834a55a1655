// SPDX-License-Identifier: BSD-2-Clause
//! The generic driver loop on the sim backend, with a raw requester in place of the virt: its
//! own checks, BARRIER held until the device is idle, a busy device, response room when the
//! requester does not consume, FLUSH in order, and a device that becomes ready late.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::sim::{BLK, Conn, DiskState, MemDisk, RawRequester, Seen};
use lions_blk::config::BLK_MAGIC;
use lions_blk::{
    BlkDriver, BlkDriverConfig, BlkRequest, BlkResponse, DeviceOp, Error, RequestCode,
    ResponseStatus, StorageInfoPage,
};
use lions_os::sim::{PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, Handler};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use zerocopy::FromZeros;

const D_IRQ: u8 = 0;
const D_VIRT: u8 = 1;
const V_DRIVER: u8 = 0;
const V_CMD: u8 = 1;

/// The stand-in virt: pushes what the test queues (bypassing the in-flight count) and records
/// responses while `consume` is on.
struct Virt<'a> {
    q: RawRequester<'a>,
    script: &'a RefCell<VecDeque<BlkRequest>>,
    got: &'a RefCell<Vec<BlkResponse>>,
    consume: &'a RefCell<bool>,
}

impl Handler for Virt<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(V_CMD)) {
            for r in self.script.borrow_mut().drain(..) {
                self.q.submit(r).unwrap();
            }
            Channel::new(V_CMD).irq_ack()?;
        }
        while *self.consume.borrow()
            && let Some(r) = self.q.response()?
        {
            self.got.borrow_mut().push(r);
        }
        if self.q.publish()? {
            Channel::new(V_DRIVER).notify()?;
        }
        Ok(())
    }
}

struct World {
    conn: Conn,
    _data: Region,
    cfg: BlkDriverConfig,
    disk: DiskState,
    script: RefCell<VecDeque<BlkRequest>>,
    got: RefCell<Vec<BlkResponse>>,
    consume: RefCell<bool>,
}

impl World {
    fn new(cap: u16) -> Self {
        let conn = Conn::new(cap);
        let data = Region::new(64 * 1024);
        let mut cfg = BlkDriverConfig::new_zeroed();
        cfg.magic = BLK_MAGIC;
        cfg.virt = conn.res(D_VIRT);
        let disk = DiskState::new(vec![0; 64 * BLK]);
        disk.window(&data);
        Self {
            conn,
            _data: data,
            cfg,
            disk,
            script: RefCell::new(VecDeque::new()),
            got: RefCell::new(Vec::new()),
            consume: RefCell::new(true),
        }
    }

    fn io(&self) -> u64 {
        self.disk.windows.borrow()[0].0
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    virt: PdId,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World) -> Self {
        let mut sim = Sim::new();
        let drv = BlkDriver::new(MemDisk(&w.disk), mapped(&w.cfg), Channel::new(D_IRQ)).unwrap();
        let driver = sim.add_pd("blk_driver", 200, false, drv);
        sim.irq(driver, D_IRQ).unwrap();
        // SAFETY: as above.
        let q = unsafe { RawRequester::from_connection(&w.conn.res(V_DRIVER)) };
        let virt = Virt {
            q,
            script: &w.script,
            got: &w.got,
            consume: &w.consume,
        };
        let virt = sim.add_pd("virt", 199, false, virt);
        sim.channel(driver, D_VIRT, virt, V_DRIVER).unwrap();
        sim.irq(virt, V_CMD).unwrap();
        let mut rig = Self {
            sim,
            w,
            driver,
            virt,
        };
        rig.run();
        rig
    }

    fn run(&mut self) {
        self.sim.run_until_idle(100_000).unwrap();
        assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
    }

    fn send(&mut self, reqs: impl IntoIterator<Item = BlkRequest>) {
        self.w.script.borrow_mut().extend(reqs);
        self.sim.inject_irq(self.virt, V_CMD).unwrap();
        self.run();
    }

    fn release(&mut self, pick: impl Fn(&lions_blk::DeviceRequest) -> bool) -> usize {
        let n = self.w.disk.complete_where(pick);
        self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        self.run();
        n
    }

    fn got(&self) -> Vec<(u32, ResponseStatus, u16)> {
        let got = self.w.got.borrow();
        got.iter()
            .map(|r| (r.id, r.status().unwrap(), r.success_count))
            .collect()
    }

    fn blocks(&self) -> Vec<u64> {
        self.w.disk.log.borrow().iter().map(|s| s.block).collect()
    }
}

fn req(code: RequestCode, io: u64, block: u64, count: u16, id: u32) -> BlkRequest {
    BlkRequest::new(code, io, block, count, id)
}

#[test]
fn refusals_never_reach_the_device() {
    let w = World::new(16);
    w.disk.read_only.set(true);
    let mut rig = Rig::new(&w);
    let io = w.io();
    let mut unknown = req(RequestCode::Read, io, 0, 1, 5);
    unknown.code = 77;
    rig.send([
        req(RequestCode::Read, io, 0, 0, 1),        // count 0
        req(RequestCode::Read, io, 64, 1, 2),       // past the capacity
        req(RequestCode::Read, io, u64::MAX, 2, 3), // overflow
        req(RequestCode::Write, io, 0, 1, 4),       // read-only device
        unknown,
        req(RequestCode::Read, io, 63, 1, 6), // fine: the last block
    ]);
    let bad = ResponseStatus::ErrInvalidParam;
    assert_eq!(
        &rig.got()[..5],
        [
            (1, bad, 0),
            (2, bad, 0),
            (3, bad, 0),
            (4, bad, 0),
            (5, bad, 0)
        ]
    );
    assert_eq!(rig.blocks(), [63]);
    rig.release(|_| true);
    assert_eq!(rig.got()[5], (6, ResponseStatus::Ok, 1));
}

#[test]
fn barrier_waits_for_everything_before_it() {
    let w = World::new(16);
    let mut rig = Rig::new(&w);
    let io = w.io();
    rig.send([
        req(RequestCode::Write, io, 1, 1, 1),
        req(RequestCode::Read, io + 4096, 2, 1, 2),
        req(RequestCode::Barrier, 0, 0, 0, 3),
        req(RequestCode::Write, io + 8192, 3, 1, 4),
        req(RequestCode::Flush, 0, 0, 0, 5),
    ]);
    assert_eq!(
        rig.blocks(),
        [1, 2],
        "nothing after the barrier was submitted"
    );
    rig.release(|r| r.block == 1);
    assert_eq!(rig.got(), [(1, ResponseStatus::Ok, 1)]);
    assert_eq!(rig.blocks(), [1, 2]);
    rig.release(|r| r.block == 2);
    // The barrier is answered (no device request) and only then are 4 and 5 submitted.
    assert_eq!(
        rig.got()[1..],
        [(2, ResponseStatus::Ok, 1), (3, ResponseStatus::Ok, 0)]
    );
    let log = w.disk.log.borrow().clone();
    assert_eq!(log.len(), 4);
    assert_eq!(
        log[2],
        Seen {
            op: DeviceOp::Write,
            block: 3,
            count: 1
        }
    );
    assert_eq!(log[3].op, DeviceOp::Flush);
    drop(log);
    rig.release(|_| true);
    assert_eq!(rig.got().len(), 5);
    assert_eq!(w.disk.flushes.get(), 1);
}

#[test]
fn busy_device_takes_requests_as_it_frees_up() {
    let w = World::new(16);
    w.disk.depth.set(1);
    let mut rig = Rig::new(&w);
    let io = w.io();
    rig.send((0..4).map(|i| req(RequestCode::Read, io, i, 1, i as u32)));
    for i in 0..4 {
        assert_eq!(w.disk.pending_len(), 1);
        assert_eq!(rig.blocks().len(), i + 1);
        rig.release(|_| true);
    }
    assert_eq!(
        rig.got().iter().map(|g| g.0).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

/// A requester that ignores its in-flight count and its responses: the driver never has more
/// responses owed than the response queue holds.
#[test]
fn response_queue_never_overflows() {
    let w = World::new(4);
    let mut rig = Rig::new(&w);
    let io = w.io();
    *w.consume.borrow_mut() = false;
    rig.send((0..4).map(|i| req(RequestCode::Read, io, i, 1, i as u32)));
    assert_eq!(rig.release(|_| true), 4);
    // Four responses sit unread; four more requests fit the request queue.
    rig.send((4..8).map(|i| req(RequestCode::Read, io, i, 1, i as u32)));
    assert_eq!(
        w.disk.pending_len(),
        0,
        "no room for their responses: none taken"
    );
    let h = w.conn.resp_header();
    let len = h
        .tail
        .load(Ordering::Relaxed)
        .wrapping_sub(h.head.load(Ordering::Relaxed));
    assert_eq!(len, 4);
    *w.consume.borrow_mut() = true;
    rig.sim.inject_irq(rig.virt, V_CMD).unwrap();
    rig.run();
    assert_eq!(
        w.disk.pending_len(),
        4,
        "taken once the requester made room"
    );
    rig.release(|_| true);
    assert_eq!(rig.got().len(), 8);
}

#[test]
fn device_ready_late() {
    let w = World::new(8);
    w.disk.ready.set(false);
    let mut rig = Rig::new(&w);
    // SAFETY: a read-only view of the live page.
    let page = unsafe { StorageInfoPage::from_region(&w.cfg.virt.storage_info) }.unwrap();
    assert!(!page.is_ready());
    rig.send([req(RequestCode::Read, w.io(), 0, 1, 1)]);
    assert!(rig.blocks().is_empty(), "nothing taken before ready");
    w.disk.ready.set(true);
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    rig.run();
    let info = page.read().unwrap();
    assert_eq!((info.capacity, info.sector_size), (64, 512));
    assert_eq!(rig.blocks(), [0]);
    let notified = rig.sim.stats(rig.virt).wakeups;
    assert!(notified >= 2, "the virt was told the driver is ready");
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
