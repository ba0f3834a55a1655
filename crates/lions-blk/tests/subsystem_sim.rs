// SPDX-License-Identifier: BSD-2-Clause
//! The whole block subsystem on the sim backend: the generic driver over an in-memory device,
//! the virtualiser, and client PDs (the client library, or a raw queue for adversarial ones) on
//! GPT and MBR disks. Partition info pages, translation and I/O; out-of-order completion;
//! adversarial clients (ranges, offsets, counts, codes, too many in flight, corrupt indices);
//! FLUSH and BARRIER ordering; a corrupt primary GPT with a good backup; bad CRCs; a driver that
//! becomes ready late.
//!
//! Clients are scripted: each has an IRQ channel (`CMD`) the test raises to make it run the
//! commands queued for it. The device holds every request until the test releases it: in
//! `settle`, all at once and last-submitted first (so completion order is never submission order),
//! or selectively.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::sim::{BLK, Conn, DiskState, MemDisk, RawRequester, Seen, addr};
use common::{gpt_image, mbr_image};
use lions_blk::partition::Scheme;
use lions_blk::{
    BlkClient, BlkClientConfig, BlkDriver, BlkDriverConfig, BlkRequest, BlkStorageInfo, BlkVirt,
    BlkVirtConfig, Completion, DeviceOp, Error, RequestCode, ResponseStatus,
};
use lions_os::sim::{PdId, Region, Shared, Sim};
use lions_os::{Channel, ChannelSet, Handler};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;

const MIB: usize = 1 << 20;
// Driver: IRQ 0, virt 1. Virt: driver 0, client c is 1 + c. Client: virt 0, command IRQ 1.
const D_IRQ: u8 = 0;
const D_VIRT: u8 = 1;
const V_DRIVER: u8 = 0;
const C_VIRT: u8 = 0;
const C_CMD: u8 = 1;

#[derive(Clone)]
struct Opts {
    image: Vec<u8>,
    /// Partition of each client.
    partitions: Vec<u32>,
    /// Clients that use a raw queue instead of the library.
    raw: Vec<usize>,
    driver_cap: u16,
    client_cap: u16,
    /// Data region per client, bytes.
    data: usize,
}

fn opts(image: Vec<u8>, partitions: &[u32]) -> Opts {
    Opts {
        image,
        partitions: partitions.to_vec(),
        raw: Vec::new(),
        driver_cap: 64,
        client_cap: 16,
        data: 64 * 1024,
    }
}

/// Two partitions of an 8 MiB disk: 512 blocks at block 256, 1024 blocks at block 768.
fn gpt_disk() -> Vec<u8> {
    gpt_image(512, 8 * MIB, &[(2048, 6143), (6144, 14335)])
}

#[derive(Debug, Clone)]
enum Cmd {
    Read {
        block: u64,
        count: u16,
        offset: usize,
    },
    Write {
        block: u64,
        offset: usize,
        bytes: Vec<u8>,
    },
    Flush,
    Barrier,
    /// Raw clients: push this request (bypassing every library check and count).
    Raw(BlkRequest),
    /// Stop or resume taking responses.
    Consume(bool),
    /// Notify the virt without queueing anything.
    Poke,
}

struct World {
    /// Owned here so the regions outlive every handle (the configs hold their addresses).
    _driver_conn: Conn,
    _bounce: Region,
    conns: Vec<Conn>,
    _data: Vec<Region>,
    drv: BlkDriverConfig,
    virt: BlkVirtConfig,
    cli: Vec<BlkClientConfig>,
    disk: DiskState,
    scripts: RefCell<Vec<VecDeque<Cmd>>>,
    /// Completions per client, in arrival order.
    got: RefCell<Vec<Vec<Completion>>>,
    /// Ids the library returned, in command order.
    ids: RefCell<Vec<Vec<u32>>>,
    /// Bytes of each completed library read, by id.
    reads: RefCell<Vec<BTreeMap<u32, Vec<u8>>>>,
}

impl World {
    fn new(o: &Opts) -> Self {
        let n = o.partitions.len();
        let driver_conn = Conn::new(o.driver_cap);
        let bounce = Region::new(40 * 1024);
        let conns: Vec<Conn> = (0..n).map(|_| Conn::new(o.client_cap)).collect();
        let data: Vec<Region> = (0..n).map(|_| Region::new(o.data)).collect();
        // Built with the config builders: magic and count filled in, no zeroed structs.
        let drv = BlkDriverConfig::new(driver_conn.res(D_VIRT));
        let dev_region = |r: &Region| r.device_resource(addr(r));
        let mut virt = BlkVirtConfig::new(driver_conn.res(V_DRIVER), dev_region(&bounce));
        let mut cli = Vec::new();
        for c in 0..n {
            virt = virt
                .with_client(
                    conns[c].res(1 + c as u8),
                    dev_region(&data[c]),
                    o.partitions[c],
                )
                .unwrap();
            cli.push(BlkClientConfig::new(
                conns[c].res(C_VIRT),
                data[c].resource(),
            ));
        }
        let disk = DiskState::new(o.image.clone());
        disk.window(&bounce);
        data.iter().for_each(|d| disk.window(d));
        Self {
            _driver_conn: driver_conn,
            _bounce: bounce,
            conns,
            _data: data,
            drv,
            virt,
            cli,
            disk,
            scripts: RefCell::new(vec![VecDeque::new(); n]),
            got: RefCell::new(vec![Vec::new(); n]),
            ids: RefCell::new(vec![Vec::new(); n]),
            reads: RefCell::new(vec![BTreeMap::new(); n]),
        }
    }

    fn blk_virt(&self) -> BlkVirt<'_> {
        BlkVirt::new(mapped(&self.virt)).unwrap()
    }
}

struct ClientPd<'a> {
    c: usize,
    w: &'a World,
    lib: Option<BlkClient<'a>>,
    raw: Option<RawRequester<'a>>,
    consume: bool,
    /// Library reads in flight: id → (offset, bytes).
    reading: BTreeMap<u32, (usize, usize)>,
}

impl ClientPd<'_> {
    fn run(&mut self, cmd: Cmd) -> Result<(), Error> {
        match cmd {
            Cmd::Consume(on) => self.consume = on,
            Cmd::Poke => Channel::new(C_VIRT).notify()?,
            _ => {}
        }
        if let Some(q) = &mut self.raw {
            if let Cmd::Raw(r) = cmd {
                q.submit(r).unwrap();
            }
            return Ok(());
        }
        let Some(c) = &mut self.lib else {
            return Ok(());
        };
        let id = match cmd {
            Cmd::Read {
                block,
                count,
                offset,
            } => {
                let id = c.submit_read(block, count, offset).unwrap();
                self.reading.insert(id, (offset, usize::from(count) * BLK));
                id
            }
            Cmd::Write {
                block,
                offset,
                bytes,
            } => {
                c.copy_to_data(offset, &bytes).unwrap();
                let count = (bytes.len() / BLK) as u16;
                c.submit_write(block, count, offset).unwrap()
            }
            Cmd::Flush => c.submit_flush().unwrap(),
            Cmd::Barrier => c.submit_barrier().unwrap(),
            Cmd::Raw(_) | Cmd::Consume(_) | Cmd::Poke => return Ok(()),
        };
        self.w.ids.borrow_mut()[self.c].push(id);
        Ok(())
    }
}

impl Handler for ClientPd<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(C_CMD)) {
            let cmds: Vec<Cmd> = self.w.scripts.borrow_mut()[self.c].drain(..).collect();
            for cmd in cmds {
                self.run(cmd)?;
            }
            if let Some(q) = &mut self.raw
                && q.publish()?
            {
                Channel::new(C_VIRT).notify()?;
            }
            if let Some(c) = &mut self.lib {
                c.publish().unwrap();
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        if !self.consume {
            return Ok(());
        }
        let mut got = self.w.got.borrow_mut();
        if let Some(q) = &mut self.raw {
            while let Some(r) = q.response()? {
                got[self.c].push(Completion {
                    id: r.id,
                    status: r.status().unwrap(),
                    blocks: r.success_count,
                });
            }
            // Slots handed back while requests wait mean a notification (`publish` says so).
            if q.publish()? {
                Channel::new(C_VIRT).notify()?;
            }
        }
        if let Some(c) = &mut self.lib {
            while let Some(done) = c.poll().unwrap() {
                if let Some((offset, len)) = self.reading.remove(&done.id) {
                    let mut bytes = vec![0; len];
                    c.copy_from_data(offset, &mut bytes).unwrap();
                    self.w.reads.borrow_mut()[self.c].insert(done.id, bytes);
                }
                got[self.c].push(done);
            }
            c.publish().unwrap();
        }
        Ok(())
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    virt: PdId,
    clients: Vec<PdId>,
    /// Release device completions automatically in `settle`.
    auto: bool,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World, o: &Opts, virt: &'a RefCell<BlkVirt<'a>>) -> Self {
        let mut sim = Sim::new();
        let drv = BlkDriver::new(MemDisk(&w.disk), mapped(&w.drv), Channel::new(D_IRQ)).unwrap();
        // Leaked so that its `init` closure and its handler can share it for the sim's life.
        let drv: &'a RefCell<_> = Box::leak(Box::new(RefCell::new(drv)));
        let driver = sim.add_pd("blk_driver", 200, false, Shared::new(drv));
        sim.irq(driver, D_IRQ).unwrap();
        sim.init(driver, || drv.borrow_mut().init());
        let v = sim.add_pd("blk_virt", 199, false, Shared::new(virt));
        sim.channel(driver, D_VIRT, v, V_DRIVER).unwrap();
        sim.init(v, || virt.borrow_mut().init());
        let clients = (0..o.partitions.len())
            .map(|c| {
                let raw = o.raw.contains(&c);
                // SAFETY: as above; each client makes one requester over its connection.
                let (lib, raw) = unsafe {
                    if raw {
                        (None, Some(RawRequester::from_connection(&w.cli[c].virt)))
                    } else {
                        let token = lions_os::Mapped::check(&w.cli[c]).ok();
                        (token.and_then(|t| BlkClient::new(t).ok()), None)
                    }
                };
                let pd = ClientPd {
                    c,
                    w,
                    lib,
                    raw,
                    consume: true,
                    reading: BTreeMap::new(),
                };
                let pd = sim.add_pd(&format!("client{c}"), 1, false, pd);
                sim.channel(pd, C_VIRT, v, 1 + c as u8).unwrap();
                sim.irq(pd, C_CMD).unwrap();
                pd
            })
            .collect();
        sim.record_trace(true);
        let mut rig = Self {
            sim,
            w,
            driver,
            virt: v,
            clients,
            auto: true,
        };
        rig.settle();
        rig
    }

    /// Run until nothing moves; with `auto`, release every held request (last first) each round.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.sim.run_until_idle(100_000).unwrap();
            assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
            if !self.auto || self.w.disk.pending_len() == 0 {
                return;
            }
            self.w.disk.complete_where(|_| true);
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        panic!("the subsystem never settled");
    }

    /// Release the held requests `pick` selects and run.
    fn release(&mut self, pick: impl Fn(&lions_blk::DeviceRequest) -> bool) -> usize {
        let n = self.w.disk.complete_where(pick);
        self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        self.settle();
        n
    }

    fn cmd(&mut self, c: usize, cmds: impl IntoIterator<Item = Cmd>) {
        self.w.scripts.borrow_mut()[c].extend(cmds);
        self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
        self.settle();
    }

    fn info(&self, c: usize) -> BlkStorageInfo {
        // SAFETY: the page lives in `w`; read-only view.
        let page = unsafe {
            lions_blk::StorageInfoPage::from_region(&self.w.cli[c].virt.storage_info).unwrap()
        };
        page.read().expect("client page published")
    }

    fn got(&self, c: usize) -> Vec<Completion> {
        self.w.got.borrow()[c].clone()
    }

    fn ids(&self, c: usize) -> Vec<u32> {
        self.w.ids.borrow()[c].clone()
    }

    fn log(&self) -> Vec<Seen> {
        self.w.disk.log.borrow().clone()
    }
}

fn ok(id: u32, blocks: u16) -> Completion {
    Completion {
        id,
        status: ResponseStatus::Ok,
        blocks,
    }
}

fn err(id: u32, status: ResponseStatus) -> Completion {
    Completion {
        id,
        status,
        blocks: 0,
    }
}

fn pattern(seed: u8, blocks: usize) -> Vec<u8> {
    (0..blocks * BLK)
        .map(|i| seed.wrapping_mul(31) ^ (i % 251) as u8)
        .collect()
}

fn raw(code: u32, offset: u64, block: u64, count: u16, id: u32) -> Cmd {
    let mut r = BlkRequest::new(RequestCode::Read, offset, block, count, id);
    r.code = code;
    Cmd::Raw(r)
}

#[test]
fn gpt_partitions_info_and_io() {
    let o = opts(gpt_disk(), &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert!(virt.borrow().is_ready());
    let scheme = virt.borrow().partitions().unwrap().unwrap().scheme;
    assert_eq!(
        scheme,
        Scheme::Gpt {
            primary: true,
            backup: true
        }
    );
    // Partition reads: MBR, primary header and array, backup header and array.
    assert_eq!(rig.log().len(), 5);
    let (i0, i1) = (rig.info(0), rig.info(1));
    assert_eq!((i0.capacity, i1.capacity), (512, 1024));
    assert_eq!((i0.sector_size, i0.block_size), (512, 1));
    assert_eq!(i0.serial_number(), b"MEMDISK1");
    // 64 driver ids shared by two clients; the client queues hold 16.
    assert_eq!((i0.queue_depth, i1.queue_depth), (16, 16));
    assert!(!i0.read_only());

    let (a, b) = (pattern(1, 2), pattern(2, 3));
    rig.cmd(
        0,
        [Cmd::Write {
            block: 0,
            offset: 0,
            bytes: a.clone(),
        }],
    );
    rig.cmd(
        1,
        [Cmd::Write {
            block: 1021,
            offset: 8192,
            bytes: b.clone(),
        }],
    );
    {
        let img = w.disk.image.borrow();
        assert_eq!(
            img[256 * BLK..258 * BLK],
            a[..],
            "client 0 block 0 is disk block 256"
        );
        assert_eq!(
            img[(768 + 1021) * BLK..1792 * BLK],
            b[..],
            "client 1's last 3 blocks"
        );
    }
    rig.cmd(
        0,
        [Cmd::Read {
            block: 1,
            count: 1,
            offset: 4 * BLK,
        }],
    );
    rig.cmd(
        1,
        [Cmd::Read {
            block: 1022,
            count: 2,
            offset: 0,
        }],
    );
    let r0 = w.reads.borrow()[0][&rig.ids(0)[1]].clone();
    let r1 = w.reads.borrow()[1][&rig.ids(1)[1]].clone();
    assert_eq!(r0, a[BLK..]);
    assert_eq!(r1, b[BLK..]);
    assert_eq!(rig.got(0), vec![ok(0, 2), ok(1, 1)]);
    assert_eq!(virt.borrow().faulty(), 0);
}

#[test]
fn gpt_with_4096_byte_sectors() {
    let o = opts(gpt_image(4096, 8 * MIB, &[(256, 767), (768, 1791)]), &[1]);
    let w = World::new(&o);
    w.disk.sector_size.set(4096);
    let virt = RefCell::new(w.blk_virt());
    let rig = Rig::new(&w, &o, &virt);
    assert_eq!(rig.info(0).capacity, 1024);
    assert_eq!(rig.info(0).sector_size, 4096);
}

#[test]
fn mbr_partitions_and_a_missing_one() {
    let img = mbr_image(4 * MIB, &[(0x83, 2048, 2048), (0x0c, 4096, 4096)]);
    let o = opts(img, &[1, 0, 2]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert_eq!(
        virt.borrow().partitions().unwrap().unwrap().scheme,
        Scheme::Mbr
    );
    assert_eq!(rig.info(0).capacity, 512);
    assert_eq!(rig.info(1).capacity, 256);
    assert_eq!(
        rig.info(2).capacity,
        0,
        "partition 2 does not exist: ready, capacity 0"
    );
    let data = pattern(7, 1);
    rig.cmd(
        0,
        [Cmd::Write {
            block: 511,
            offset: 0,
            bytes: data.clone(),
        }],
    );
    assert_eq!(
        w.disk.image.borrow()[(512 + 511) * BLK..1024 * BLK],
        data[..]
    );
    // The library refuses locally what the info page rules out; the virt answers the rest.
    rig.cmd(2, [Cmd::Flush]);
    assert_eq!(rig.got(2), vec![err(0, ResponseStatus::ErrNoDevice)]);
}

#[test]
fn completions_come_out_of_order_with_the_clients_ids() {
    let o = opts(gpt_disk(), &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    rig.auto = false;
    rig.cmd(
        0,
        (0..4).map(|i| Cmd::Read {
            block: i,
            count: 1,
            offset: i as usize * BLK,
        }),
    );
    assert_eq!(w.disk.pending_len(), 4, "all four at the device at once");
    assert!(rig.got(0).is_empty());
    rig.release(|r| r.block == 256 + 2);
    rig.release(|_| true);
    let ids: Vec<u32> = rig.got(0).iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [2, 3, 1, 0],
        "block 2 first, then the rest last-submitted first"
    );
    assert!(
        rig.got(0)
            .iter()
            .all(|c| c.status == ResponseStatus::Ok && c.blocks == 1)
    );
}

/// Client 1 sends everything the virt must refuse, mixed with one good request; client 0 keeps
/// working. Nothing bad reaches the device (its DMA check would fail the test).
#[test]
fn adversarial_requests_are_refused_one_by_one() {
    let mut o = opts(gpt_disk(), &[0, 1]);
    o.raw = vec![1];
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    let before = rig.log().len();
    let data = o.data as u64;
    let (read, write) = (RequestCode::Read as u32, RequestCode::Write as u32);
    rig.cmd(
        1,
        [
            raw(read, 0, 1024, 1, 100),            // first block past the partition
            raw(read, 0, 1023, 2, 101),            // range runs past the end
            raw(read, 0, u64::MAX, 2, 102),        // block + count overflows
            raw(write, 100, 0, 1, 103),            // unaligned offset
            raw(write, data, 0, 1, 104),           // offset at the end of the data region
            raw(read, data - 4096, 0, 2, 105),     // buffer runs past the data region
            raw(read, u64::MAX - 4095, 0, 1, 106), // offset + length overflows
            raw(read, 0, 0, 0, 107),               // count 0
            raw(9, 0, 0, 1, 108),                  // unknown code
            raw(read, 4096, 5, 1, 109),            // fine
        ],
    );
    rig.cmd(
        0,
        [Cmd::Read {
            block: 0,
            count: 1,
            offset: 0,
        }],
    );
    let bad = ResponseStatus::ErrInvalidParam;
    let mut want: Vec<Completion> = (100..109).map(|id| err(id, bad)).collect();
    want.push(ok(109, 1));
    assert_eq!(rig.got(1), want);
    assert_eq!(rig.got(0), vec![ok(0, 1)]);
    assert_eq!(
        rig.log()[before..],
        [
            Seen {
                op: DeviceOp::Read,
                block: 768 + 5,
                count: 1
            },
            Seen {
                op: DeviceOp::Read,
                block: 256,
                count: 1
            },
        ]
    );
    assert_eq!(virt.borrow().faulty(), 0);
}

/// A raw client that never consumes responses and keeps refilling its request queue: the virt
/// keeps at most its share at the driver and never more outstanding than its response queue can
/// take; the other client gets its share meanwhile.
#[test]
fn in_flight_limit_and_response_room() {
    let mut o = opts(gpt_disk(), &[0, 1]);
    o.raw = vec![1];
    o.driver_cap = 8; // a share of 4 per client
    o.client_cap = 8;
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert_eq!(rig.info(1).queue_depth, 4);
    rig.auto = false;
    let read = RequestCode::Read as u32;
    rig.cmd(1, [Cmd::Consume(false)]);
    rig.cmd(1, (0..8).map(|i| raw(read, 0, i, 1, i as u32)));
    let from = |c: usize| move |r: &lions_blk::DeviceRequest| (r.block >= 768) == (c == 1);
    let held = |c| {
        w.disk
            .pending
            .borrow()
            .iter()
            .filter(|r| from(c)(r))
            .count()
    };
    assert_eq!(held(1), 4, "client 1: its share, not its 8");
    rig.cmd(
        0,
        (0..6).map(|i| Cmd::Read {
            block: i,
            count: 1,
            offset: 0,
        }),
    );
    assert_eq!(held(0), 4, "client 0 still gets its share");
    // Client 1's four come back; it does not read them. The next four fill its response queue.
    assert_eq!(rig.release(from(1)), 4);
    assert_eq!(held(1), 4);
    assert_eq!(rig.release(from(1)), 4);
    // Its request slots were handed back, so it queues eight more: no room for any response.
    rig.cmd(1, (8..16).map(|i| raw(read, 0, i, 1, i as u32)));
    assert_eq!(held(1), 0, "no response room: nothing taken");
    let hdr = w.conns[1].resp_header();
    let (head, tail) = (
        hdr.head.load(Ordering::Relaxed),
        hdr.tail.load(Ordering::Relaxed),
    );
    assert_eq!(tail.wrapping_sub(head), 8, "exactly full, never over");
    // Client 0 finishes meanwhile.
    rig.auto = true;
    rig.release(from(0));
    assert_eq!(rig.got(0).len(), 6);
    // Client 1 reads its responses: the virt serves it again, in order of its ids 0..16.
    rig.cmd(1, [Cmd::Consume(true)]);
    rig.settle();
    let mut ids: Vec<u32> = rig.got(1).iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..16).collect::<Vec<_>>());
    assert_eq!(virt.borrow().faulty(), 0);
}

/// Client 1 corrupts its request queue's tail, then its response queue's head: it is dropped,
/// client 0 is unaffected, nothing panics.
#[test]
fn corrupt_indices_make_a_client_faulty() {
    for which in ["req tail", "resp head"] {
        let mut o = opts(gpt_disk(), &[0, 1]);
        o.raw = vec![1];
        let w = World::new(&o);
        let virt = RefCell::new(w.blk_virt());
        let mut rig = Rig::new(&w, &o, &virt);
        let read = RequestCode::Read as u32;
        rig.cmd(1, [raw(read, 0, 0, 1, 1)]);
        assert_eq!(rig.got(1), vec![ok(1, 1)]);
        if which == "req tail" {
            let h = w.conns[1].req_header();
            h.tail.store(
                h.head.load(Ordering::Relaxed).wrapping_add(1000),
                Ordering::Relaxed,
            );
        } else {
            w.conns[1].resp_header().head.store(7777, Ordering::Relaxed);
        }
        rig.cmd(1, [Cmd::Consume(false), Cmd::Poke]);
        assert_eq!(virt.borrow().faulty(), 0b10, "{which}");
        rig.cmd(
            0,
            [Cmd::Read {
                block: 3,
                count: 1,
                offset: 0,
            }],
        );
        assert_eq!(rig.got(0), vec![ok(0, 1)], "{which}");
        assert!(!rig.sim.is_faulted(rig.virt));
    }
}

/// Client 0: W1 W2 BARRIER W3 with the device holding everything. The BARRIER waits for W1 and
/// W2, W3 waits for the BARRIER; the driver answers the BARRIER only when client 1's read, still
/// at the device, has completed too. Client 1 is never held up.
#[test]
fn barrier_orders_a_clients_requests() {
    let o = opts(gpt_disk(), &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    rig.auto = false;
    let start = rig.log().len();
    let wr = |block| Cmd::Write {
        block,
        offset: 0,
        bytes: pattern(block as u8, 1),
    };
    rig.cmd(0, [wr(1), wr(2), Cmd::Barrier, wr(3)]);
    let seen = |rig: &Rig| {
        rig.log()[start..]
            .iter()
            .map(|s| s.block)
            .collect::<Vec<_>>()
    };
    assert_eq!(seen(&rig), [257, 258], "neither the barrier nor W3 passed");
    rig.cmd(
        1,
        [Cmd::Read {
            block: 0,
            count: 1,
            offset: 0,
        }],
    );
    assert_eq!(seen(&rig), [257, 258, 768], "client 1 is not held");
    rig.release(|r| r.block == 258);
    assert_eq!(seen(&rig), [257, 258, 768], "W1 still outstanding");
    rig.release(|r| r.block == 257);
    // The barrier is at the driver now, held there behind client 1's read.
    assert_eq!(seen(&rig), [257, 258, 768]);
    assert_eq!(rig.got(0), vec![ok(1, 1), ok(0, 1)]);
    rig.release(|r| r.block == 768);
    assert_eq!(rig.got(1), vec![ok(0, 1)]);
    assert_eq!(rig.got(0)[2], ok(2, 0), "the barrier completed");
    assert_eq!(
        seen(&rig),
        [257, 258, 768, 259],
        "W3 passed after the barrier"
    );
    rig.release(|_| true);
    assert_eq!(rig.got(0)[3], ok(3, 1));
    assert!(
        rig.log().iter().all(|s| s.op != DeviceOp::Flush),
        "a barrier is not a flush"
    );
}

/// FLUSH is passed on in queue order, without waiting for earlier writes.
#[test]
fn flush_is_passed_in_order() {
    let o = opts(gpt_disk(), &[0]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    rig.auto = false;
    let start = rig.log().len();
    rig.cmd(
        0,
        [
            Cmd::Write {
                block: 9,
                offset: 0,
                bytes: pattern(3, 1),
            },
            Cmd::Flush,
        ],
    );
    let ops: Vec<DeviceOp> = rig.log()[start..].iter().map(|s| s.op).collect();
    assert_eq!(ops, [DeviceOp::Write, DeviceOp::Flush]);
    rig.release(|_| true);
    assert_eq!(rig.got(0), vec![ok(1, 0), ok(0, 1)]);
    assert_eq!(w.disk.flushes.get(), 1);
}

#[test]
fn corrupt_primary_gpt_with_a_good_backup() {
    let mut img = gpt_disk();
    img[512 + 20] ^= 0x40; // in the primary header, CRC now wrong
    let o = opts(img, &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    let scheme = virt.borrow().partitions().unwrap().unwrap().scheme;
    assert_eq!(
        scheme,
        Scheme::Gpt {
            primary: false,
            backup: true
        }
    );
    assert_eq!((rig.info(0).capacity, rig.info(1).capacity), (512, 1024));
    rig.cmd(
        1,
        [Cmd::Write {
            block: 0,
            offset: 0,
            bytes: pattern(5, 1),
        }],
    );
    assert_eq!(
        w.disk.image.borrow()[768 * BLK..769 * BLK],
        pattern(5, 1)[..]
    );
}

#[test]
fn bad_crcs_leave_clients_without_a_device() {
    let mut img = gpt_disk();
    img[1024 + 40] ^= 1; // primary entry array
    let last = img.len() - 512;
    img[last + 88] ^= 1; // backup header's array CRC field: header CRC now wrong
    let o = opts(img, &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert_eq!(
        virt.borrow().partitions().unwrap().err(),
        Some(lions_blk::PartitionError::NoValidGpt)
    );
    assert_eq!(rig.info(0).capacity, 0);
    let before = rig.log().len();
    rig.cmd(0, [Cmd::Barrier]);
    assert_eq!(rig.got(0), vec![err(0, ResponseStatus::ErrNoDevice)]);
    assert_eq!(rig.log().len(), before);
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut o = opts(gpt_disk(), &[0]);
    o.raw = vec![0];
    let w = World::new(&o);
    w.disk.read_only.set(true);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert!(rig.info(0).read_only());
    let (read, write) = (RequestCode::Read as u32, RequestCode::Write as u32);
    rig.cmd(0, [raw(write, 0, 0, 1, 1), raw(read, 0, 0, 1, 2)]);
    assert_eq!(
        rig.got(0),
        vec![err(1, ResponseStatus::ErrInvalidParam), ok(2, 1)]
    );
}

#[test]
fn device_errors_reach_the_client() {
    let o = opts(gpt_disk(), &[0]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    w.disk.bad_block.set(Some(256 + 4));
    rig.cmd(
        0,
        [Cmd::Read {
            block: 3,
            count: 2,
            offset: 0,
        }],
    );
    assert_eq!(rig.got(0), vec![err(0, ResponseStatus::ErrIo)]);
}

/// The device is not ready when the system starts: the virt waits (no request reaches the
/// driver), clients' pages stay unpublished, and everything starts once the driver publishes.
#[test]
fn driver_ready_late() {
    let o = opts(gpt_disk(), &[0]);
    let w = World::new(&o);
    w.disk.ready.set(false);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    assert!(!virt.borrow().is_ready());
    assert!(rig.log().is_empty());
    // SAFETY: read-only view of a live page.
    let page =
        unsafe { lions_blk::StorageInfoPage::from_region(&w.cli[0].virt.storage_info).unwrap() };
    assert!(!page.is_ready());
    // A request queued before ready waits.
    rig.cmd(0, [Cmd::Consume(true)]);
    w.disk.ready.set(true);
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    rig.settle();
    assert!(virt.borrow().is_ready());
    assert_eq!(rig.info(0).capacity, 512);
}

/// Counting notifications: the driver is notified once per batch of requests, each client once
/// per batch of responses, and nobody else.
#[test]
fn notifications() {
    let o = opts(gpt_disk(), &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    rig.auto = false;
    rig.sim.record_trace(true);
    rig.cmd(
        0,
        (0..3).map(|i| Cmd::Read {
            block: i,
            count: 1,
            offset: 0,
        }),
    );
    let notes = |rig: &Rig, from: PdId, to: PdId| {
        rig.sim
            .trace()
            .iter()
            .filter(|e| matches!(e, lions_os::sim::Event::Notify { from: f, to: t, .. } if *f == from && *t == to))
            .count()
    };
    assert_eq!(notes(&rig, rig.clients[0], rig.virt), 1);
    assert_eq!(
        notes(&rig, rig.virt, rig.driver),
        1,
        "three requests, one notification"
    );
    rig.release(|_| true);
    assert_eq!(notes(&rig, rig.driver, rig.virt), 1);
    assert_eq!(notes(&rig, rig.virt, rig.clients[0]), 1);
    assert_eq!(notes(&rig, rig.virt, rig.clients[1]), 0);
}

/// The (trusted) driver writes an impossible head on its request queue: the virt stops with an
/// error when it next reads the head, instead of taking it for a full queue and stalling every
/// client silently. The corruption is renewed before each step, since the driver's own next
/// release would overwrite it; the virt reads the head when its cached view runs out (within one
/// queue's worth of requests) and when it hands response slots back while requests may wait.
#[test]
fn driver_peer_error_faults_the_virt_instead_of_stalling() {
    let o = opts(gpt_disk(), &[0]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    let head = &w._driver_conn.req_header().head;
    let corrupt = || {
        head.store(
            head.load(Ordering::Relaxed).wrapping_add(1000),
            Ordering::Relaxed,
        );
    };
    let mut reads = 0;
    while !rig.sim.is_faulted(rig.virt) && reads <= usize::from(o.driver_cap) {
        corrupt();
        w.scripts.borrow_mut()[0].push_back(Cmd::Read {
            block: 3,
            count: 1,
            offset: 0,
        });
        rig.sim.inject_irq(rig.clients[0], C_CMD).unwrap();
        // Run and complete at the device by hand: `settle` insists on no faults.
        for _ in 0..4 {
            rig.sim.run_until_idle(100_000).unwrap();
            w.disk.complete_where(|_| true);
            corrupt();
            rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
        }
        reads += 1;
    }
    assert!(
        rig.sim.is_faulted(rig.virt),
        "the virt never reported the driver's impossible head ({reads} reads)"
    );
    let faults = rig.sim.faults();
    assert!(
        faults
            .iter()
            .any(|f| f.pd == "blk_virt" && f.cause.contains("head")),
        "the virt's fault names the impossible head: {faults:?}"
    );
}

/// Item 7 on the sim backend: the blk virt is killed after every step of a run (two clients,
/// writes, reads, a flush and a barrier, the device completing in batches) and restarted as
/// its binary restarts it (`BlkVirt::resume`: driver ids rebuilt from the queues, the partition
/// table read again). Killed between events it has nothing in flight of its own: every request
/// is answered exactly once, `Ok`, and every read returns what the run without a kill read.
#[test]
fn restart_at_every_step_answers_every_request_once() {
    let o = opts(gpt_disk(), &[0, 1]);
    type Outcome = (
        Vec<Vec<Completion>>,
        Vec<Vec<u32>>,
        Vec<BTreeMap<u32, Vec<u8>>>,
    );
    let run = |kill: Option<usize>| -> (Outcome, usize, usize) {
        let w = World::new(&o);
        let virt = RefCell::new(w.blk_virt());
        let mut rig = Rig::new(&w, &o, &virt);
        let script = |c: usize| -> Vec<Cmd> {
            let seed = c as u8 + 1;
            vec![
                Cmd::Write {
                    block: 0,
                    offset: 0,
                    bytes: pattern(seed, 2),
                },
                Cmd::Read {
                    block: 8,
                    count: 3,
                    offset: 4 * BLK,
                },
                Cmd::Flush,
                Cmd::Read {
                    block: 16,
                    count: 1,
                    offset: 8 * BLK,
                },
                Cmd::Barrier,
                Cmd::Read {
                    block: 0,
                    count: 2,
                    offset: 12 * BLK,
                },
            ]
        };
        for c in 0..2 {
            w.scripts.borrow_mut()[c].extend(script(c));
            rig.sim.inject_irq(rig.clients[c], C_CMD).unwrap();
        }
        let (mut steps, mut killed) = (0, false);
        for _ in 0..10_000 {
            while rig.sim.step().is_some() {
                steps += 1;
                if kill == Some(steps) {
                    rig.sim.fault(rig.virt, "killed by the test");
                    killed = true;
                    *virt.borrow_mut() = w.blk_virt();
                    rig.sim.restart_with(rig.virt, Shared::new(&virt), || {
                        virt.borrow_mut().resume().map(drop)
                    });
                }
            }
            if w.disk.pending_len() == 0 {
                break;
            }
            // Two at a time, the last submitted first: out of order, in batches.
            let left = std::cell::Cell::new(2);
            w.disk.complete_where(|_| {
                left.set(left.get() - 1);
                left.get() >= 0
            });
            rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
        }
        assert_eq!(kill.is_some(), killed, "the run is deterministic");
        let faults = rig.sim.faults().len();
        let out = (
            w.got.borrow().clone(),
            w.ids.borrow().clone(),
            w.reads.borrow().clone(),
        );
        (out, steps, faults)
    };
    let ((got0, ids0, reads0), steps, faults) = run(None);
    assert_eq!(faults, 0);
    for (c, got) in got0.iter().enumerate() {
        assert_eq!(got.len(), 6, "baseline client {c}: {got:?}");
        assert!(got.iter().all(|d| d.status == ResponseStatus::Ok));
    }
    for kill in 1..=steps {
        let ((got, ids, reads), _, faults) = run(Some(kill));
        let what = format!("blk virt killed after step {kill}");
        assert_eq!(faults, 1, "{what}");
        for c in 0..2 {
            let mut answered: Vec<u32> = got[c].iter().map(|d| d.id).collect();
            answered.sort_unstable();
            let mut asked = ids[c].clone();
            asked.sort_unstable();
            assert_eq!(
                answered, asked,
                "{what}: client {c}: each request answered once"
            );
            assert!(
                got[c].iter().all(|d| d.status == ResponseStatus::Ok),
                "{what}: client {c}: {:?}",
                got[c]
            );
            assert_eq!(ids[c], ids0[c], "{what}");
        }
        assert_eq!(reads, reads0, "{what}: the same data read");
    }
    println!("blk restart runs: {steps}");
}

/// A crash inside a pass of the blk virt: it had taken a client's request off its queue but not
/// yet passed it on. The restarted virt finds the request owed and at no driver id, and answers
/// it `ErrUnspec` at once, so the client does not wait forever; the next request is served.
#[test]
fn restarted_blk_virt_answers_a_request_it_lost() {
    let o = opts(gpt_disk(), &[0, 1]);
    let w = World::new(&o);
    let virt = RefCell::new(w.blk_virt());
    let mut rig = Rig::new(&w, &o, &virt);
    rig.sim.fault(rig.virt, "down while the request arrives");
    w.scripts.borrow_mut()[0].push_back(Cmd::Read {
        block: 1,
        count: 1,
        offset: 0,
    });
    rig.sim.inject_irq(rig.clients[0], C_CMD).unwrap();
    rig.sim.run_until_idle(10_000).unwrap();
    // As if the virt had taken it (and released the slot) and died before passing it on.
    let q = &w.virt.clients[0].conn.req_queue;
    // SAFETY: the region lives in `w`; its first word is the consumer's (the virt's) head.
    let head = unsafe { &*(q.vaddr as *const std::sync::atomic::AtomicU32) };
    head.fetch_add(1, Ordering::Relaxed);
    *virt.borrow_mut() = w.blk_virt();
    let lost = std::cell::Cell::new(0);
    rig.sim.restart_with(rig.virt, Shared::new(&virt), || {
        virt.borrow_mut().resume().map(|n| lost.set(n))
    });
    assert_eq!(lost.get(), 1, "one owed request found nowhere");
    for _ in 0..100 {
        rig.sim.run_until_idle(100_000).unwrap();
        if w.disk.pending_len() == 0 {
            break;
        }
        w.disk.complete_where(|_| true);
        rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    }
    let id = rig.ids(0)[0];
    assert_eq!(rig.got(0), vec![err(id, ResponseStatus::ErrUnspec)]);
    w.scripts.borrow_mut()[0].push_back(Cmd::Read {
        block: 2,
        count: 1,
        offset: 0,
    });
    rig.sim.inject_irq(rig.clients[0], C_CMD).unwrap();
    for _ in 0..100 {
        rig.sim.run_until_idle(100_000).unwrap();
        if w.disk.pending_len() == 0 {
            break;
        }
        w.disk.complete_where(|_| true);
        rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    }
    assert_eq!(rig.got(0).len(), 2, "served again: {:?}", rig.got(0));
    assert_eq!(rig.got(0)[1], ok(rig.ids(0)[1], 1));
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
