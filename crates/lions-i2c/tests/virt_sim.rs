// SPDX-License-Identifier: BSD-2-Clause
//! The I²C virtualiser on the sim backend, between a scripted driver PD and scripted clients that
//! write raw commands into their queues (so they can break every rule): bus claiming, pointer
//! translation, every validation rule with its error and `err_cmd`, the deferred-work FIFO under a
//! flooding client, a release in the middle of a transaction, corrupt queue indices, and a
//! pseudo-random command storm. Throughout: the virt never faults, nothing unvalidated reaches
//! the driver, and the well-behaved client keeps being served.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{
    C_CMD, C_VIRT, CLIENT_BASE, D_CMD, D_VIRT, DATA, Pair, V_DRIVER, driver_base, virt_config,
};
use lions_i2c::{
    BusReply, BusRequest, CmdFlags, Command, I2cClientQueues, I2cCmd, I2cError, I2cResponse,
    I2cServerQueues, I2cVirt, I2cVirtConfig,
};
use lions_os::sim::{End, PdId, Shared, Sim};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, OsError, get_mr, set_mr};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone)]
enum Cmd {
    Claim(u8),
    Release(u8),
    /// A raw PPC: label and MR0.
    Ppc(u64, u64),
    /// Stage these commands, commit, notify.
    Raw(Vec<I2cCmd>),
}

struct World {
    driver: Pair,
    clients: Vec<Pair>,
    config: Box<I2cVirtConfig>,
    scripts: RefCell<Vec<VecDeque<Cmd>>>,
    /// PPC replies (label) per client.
    replies: RefCell<Vec<Vec<u64>>>,
    responses: RefCell<Vec<Vec<I2cResponse>>>,
    /// Transactions the driver received: (header address, bodies).
    seen: RefCell<Vec<(u8, Vec<Command>)>>,
    /// While true the driver takes nothing from its queue.
    paused: RefCell<bool>,
    /// The driver's answer to each transaction.
    answer: RefCell<I2cError>,
}

impl World {
    fn new(n: usize) -> Self {
        let driver = Pair::new();
        let clients: Vec<Pair> = (0..n).map(|_| Pair::new()).collect();
        let config = virt_config(&driver, &clients);
        Self {
            driver,
            clients,
            config,
            scripts: RefCell::new(vec![VecDeque::new(); n]),
            replies: RefCell::new(vec![Vec::new(); n]),
            responses: RefCell::new(vec![Vec::new(); n]),
            seen: RefCell::new(Vec::new()),
            paused: RefCell::new(false),
            answer: RefCell::new(I2cError::Ok),
        }
    }
}

/// The scripted driver: answers every whole transaction with `answer`, unless paused.
struct DriverPd<'a> {
    w: &'a World,
    q: I2cServerQueues<'a>,
}

impl Handler for DriverPd<'_> {
    type Error = OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        if set.contains(Channel::new(D_CMD)) {
            Channel::new(D_CMD).irq_ack()?;
        }
        if *self.w.paused.borrow() {
            return Ok(());
        }
        while let Some(h) = self.q.requests.pop().unwrap() {
            let Ok(Command::Header { batch_len, address }) = h.decode() else {
                panic!("driver got a non-header first: {h:?}");
            };
            let bodies: Vec<Command> = (0..batch_len)
                .map(|_| self.q.requests.pop().unwrap().unwrap().decode().unwrap())
                .collect();
            self.w.seen.borrow_mut().push((address, bodies));
            let e = *self.w.answer.borrow();
            self.q
                .responses
                .push(I2cResponse::new(0, address, e))
                .unwrap();
        }
        self.q.requests.release();
        if self.q.responses.publish() > 0 {
            Channel::new(D_VIRT).notify()?;
        }
        Ok(())
    }
}

struct ClientPd<'a> {
    c: usize,
    w: &'a World,
    q: I2cClientQueues<'a>,
}

impl Handler for ClientPd<'_> {
    type Error = OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        if set.contains(Channel::new(C_CMD)) {
            let cmds: Vec<Cmd> = self.w.scripts.borrow_mut()[self.c].drain(..).collect();
            for cmd in cmds {
                let (label, mr0) = match cmd {
                    Cmd::Claim(a) => (BusRequest::Claim as u64, u64::from(a)),
                    Cmd::Release(a) => (BusRequest::Release as u64, u64::from(a)),
                    Cmd::Ppc(l, a) => (l, a),
                    Cmd::Raw(cmds) => {
                        for c in cmds {
                            // Past a full queue the rest is dropped (the client floods).
                            let _ = self.q.requests.stage(c);
                        }
                        self.q.requests.commit();
                        Channel::new(C_VIRT).notify()?;
                        continue;
                    }
                };
                set_mr(0, mr0);
                let r = Channel::new(C_VIRT).pp_call(MessageInfo::new(label, 1))?;
                self.w.replies.borrow_mut()[self.c].push(r.label());
                let _ = get_mr(0);
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        if let Ok(resp) = &mut self.q.responses.pop_all() {
            self.w.responses.borrow_mut()[self.c].append(resp);
        }
        Ok(())
    }
}

/// Popping every response there is.
trait PopAll {
    fn pop_all(&mut self) -> Result<Vec<I2cResponse>, lions_queue::PeerError>;
}

impl PopAll for lions_queue::Consumer<'_, u32, I2cResponse> {
    fn pop_all(&mut self) -> Result<Vec<I2cResponse>, lions_queue::PeerError> {
        let mut v = Vec::new();
        while let Some(r) = self.pop()? {
            v.push(r);
        }
        self.release();
        Ok(v)
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    clients: Vec<PdId>,
    virt_pd: PdId,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World, virt: &'a RefCell<I2cVirt<'a>>) -> Self {
        let mut sim = Sim::new();
        let conn = w.driver.conn(0);
        // SAFETY: the regions live in `w`; one handle per role.
        let q = unsafe { I2cServerQueues::from_connection(&conn) }.unwrap();
        let driver = sim.add_pd("i2c_driver", 200, false, DriverPd { w, q });
        sim.irq(driver, D_CMD).unwrap();
        let virt_pd = sim.add_pd("i2c_virt", 199, false, Shared::new(virt));
        sim.channel(driver, D_VIRT, virt_pd, V_DRIVER).unwrap();
        let clients = (0..w.clients.len())
            .map(|c| {
                let conn = w.clients[c].conn(0);
                // SAFETY: as above.
                let q = unsafe { I2cClientQueues::from_connection(&conn) }.unwrap();
                let pd = sim.add_pd(&format!("client{c}"), 1, false, ClientPd { c, w, q });
                let id = u8::try_from(c + 1).unwrap();
                sim.channel_with(End::new(pd, C_VIRT).pp(), End::new(virt_pd, id))
                    .unwrap();
                sim.irq(pd, C_CMD).unwrap();
                pd
            })
            .collect();
        Self {
            sim,
            w,
            driver,
            clients,
            virt_pd,
        }
    }

    fn run(&mut self) {
        self.sim.run_until_idle(10_000).unwrap();
        assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
    }

    fn cmd(&mut self, c: usize, cmds: impl IntoIterator<Item = Cmd>) {
        self.w.scripts.borrow_mut()[c].extend(cmds);
        self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
        self.run();
    }

    fn raw(&mut self, c: usize, cmds: Vec<I2cCmd>) {
        self.cmd(c, [Cmd::Raw(cmds)]);
    }

    fn resume_driver(&mut self) {
        *self.w.paused.borrow_mut() = false;
        self.sim.inject_irq(self.driver, D_CMD).unwrap();
        self.run();
    }

    fn responses(&self, c: usize) -> Vec<(u64, u8, I2cError)> {
        let v = std::mem::take(&mut self.w.responses.borrow_mut()[c]);
        v.iter()
            .map(|r| (r.err_cmd, r.bus_address, r.error().unwrap()))
            .collect()
    }

    fn seen(&self) -> Vec<(u8, Vec<Command>)> {
        std::mem::take(&mut self.w.seen.borrow_mut())
    }
}

fn hdr(n: u16, a: u8) -> I2cCmd {
    I2cCmd::header(n, a).unwrap()
}

fn wr(off: u64, len: u8) -> I2cCmd {
    I2cCmd::body(CLIENT_BASE + off, len, CmdFlags::empty()).unwrap()
}

fn r(off: u64, len: u8, extra: CmdFlags) -> I2cCmd {
    I2cCmd::body(CLIENT_BASE + off, len, CmdFlags::READ | extra).unwrap()
}

fn raw(ptr: u64, len: u8, flags: u8) -> I2cCmd {
    I2cCmd {
        payload: ptr,
        data_len: len,
        flag_mask: flags,
        _pad: [0; 6],
    }
}

macro_rules! rig {
    ($w:ident, $virt:ident, $rig:ident, $n:expr) => {
        let $w = World::new($n);
        let $virt = RefCell::new(I2cVirt::new(mapped(&$w.config)).unwrap());
        let mut $rig = Rig::new(&$w, &$virt);
    };
}

/// A response as (err_cmd, bus address, error).
type Answer = (u64, u8, I2cError);

const OK: u64 = BusReply::Success as u64;
const FAIL: u64 = BusReply::Failure as u64;

#[test]
fn claiming_and_releasing_addresses() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50), Cmd::Claim(0x50), Cmd::Claim(0x7f)]);
    rig.cmd(
        1,
        [
            Cmd::Claim(0x50),
            Cmd::Release(0x50),
            Cmd::Claim(0x80),
            Cmd::Ppc(BusRequest::Claim as u64, u64::MAX),
            Cmd::Ppc(0, 0x10),
            Cmd::Ppc(3, 0x10),
            Cmd::Claim(0x68),
        ],
    );
    assert_eq!(w.replies.borrow()[0], [OK, OK, OK]);
    assert_eq!(
        w.replies.borrow()[1],
        [FAIL, FAIL, FAIL, FAIL, FAIL, FAIL, OK]
    );
    assert_eq!(virt.borrow().owner(0x50), Some(0));
    assert_eq!(virt.borrow().owner(0x68), Some(1));
    assert_eq!(virt.borrow().owner(0x10), None);
    rig.cmd(0, [Cmd::Release(0x50), Cmd::Release(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x50)]);
    assert_eq!(w.replies.borrow()[0][3..], [OK, FAIL]);
    assert_eq!(w.replies.borrow()[1][7..], [OK]);
    assert_eq!(virt.borrow().owner(0x50), Some(1));
}

#[test]
fn valid_transactions_reach_the_driver_translated_and_whole() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x68)]);
    // A write, a read continued with RSTART (same direction), a WRRD, with STOP at the end; the
    // last byte of the region is the last byte used.
    let t0 = vec![
        hdr(4, 0x50),
        wr(0, 2),
        r(0x10, 255, CmdFlags::empty()),
        r(0x10f, 3, CmdFlags::RSTART),
        r(DATA - 1, 1, CmdFlags::WRRD | CmdFlags::STOP),
    ];
    rig.raw(0, t0);
    rig.raw(1, vec![hdr(1, 0x68), wr(0, 0)]);
    let seen = rig.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, 0x50);
    let ptrs: Vec<u64> = seen[0]
        .1
        .iter()
        .map(|c| match c {
            Command::Body { ptr, .. } => *ptr,
            Command::Header { .. } => panic!("header in a body"),
        })
        .collect();
    let d = driver_base(0);
    assert_eq!(ptrs, [d, d + 0x10, d + 0x10f, d + DATA - 1]);
    assert_eq!(
        seen[1],
        (
            0x68,
            vec![Command::Body {
                ptr: driver_base(1),
                len: 0,
                flags: CmdFlags::empty()
            }]
        )
    );
    assert_eq!(rig.responses(0), [(0, 0x50, I2cError::Ok)]);
    assert_eq!(rig.responses(1), [(0, 0x68, I2cError::Ok)]);
    // Driver errors come back to the submitter as they are.
    *w.answer.borrow_mut() = I2cError::Nack;
    rig.raw(0, vec![hdr(1, 0x50), wr(0, 1)]);
    assert_eq!(rig.responses(0), [(0, 0x50, I2cError::Nack)]);
    assert_eq!(virt.borrow().faulty(), 0);
}

#[test]
fn every_rule_is_checked_before_the_driver_sees_anything() {
    use I2cError::{MalformedHeader as MH, MalformedTransaction as MT, UnpermittedAddr as UA};
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x51)]);
    let read = CmdFlags::READ.bits();
    let cases: Vec<(&str, Vec<I2cCmd>, Answer)> = vec![
        (
            "unowned address",
            vec![hdr(1, 0x51), wr(0, 1)],
            (0, 0x51, UA),
        ),
        (
            "unclaimed address",
            vec![hdr(1, 0x52), wr(0, 1)],
            (0, 0x52, UA),
        ),
        ("body first", vec![wr(0, 1)], (0, 0, MH)),
        (
            "bad header flags",
            vec![raw(0x50 << 16 | 1, 0, 1 | 2)],
            (0, 0, MH),
        ),
        ("empty batch", vec![hdr(0, 0x50)], (0, 0x50, MH)),
        (
            "short batch",
            vec![hdr(3, 0x50), wr(0, 1), wr(1, 1)],
            (0, 0x50, MH),
        ),
        (
            "batch beyond the driver queue",
            vec![hdr(252, 0x50)],
            (0, 0x50, MH),
        ),
        (
            "HEAD in a body",
            vec![hdr(2, 0x50), wr(0, 1), hdr(1, 0x50)],
            (2, 0x50, MT),
        ),
        (
            "unknown flag",
            vec![hdr(1, 0x50), raw(CLIENT_BASE, 1, 0x40)],
            (1, 0x50, MT),
        ),
        (
            "below the region",
            vec![hdr(1, 0x50), raw(CLIENT_BASE - 1, 1, 0)],
            (1, 0x50, MT),
        ),
        (
            "past the region",
            vec![hdr(1, 0x50), wr(DATA, 1)],
            (1, 0x50, MT),
        ),
        (
            "a bad body before good ones",
            vec![hdr(3, 0x50), wr(0, 1), raw(CLIENT_BASE - 1, 1, 0), wr(1, 1)],
            (2, 0x50, MT),
        ),
        (
            "end past the region",
            vec![hdr(2, 0x50), wr(0, 1), wr(DATA - 4, 5)],
            (2, 0x50, MT),
        ),
        (
            "zero length at the end",
            vec![hdr(1, 0x50), wr(DATA, 0)],
            (1, 0x50, MT),
        ),
        (
            "null pointer",
            vec![hdr(1, 0x50), raw(0, 1, read)],
            (1, 0x50, MT),
        ),
        (
            "RSTART first",
            vec![hdr(1, 0x50), r(0, 1, CmdFlags::RSTART)],
            (1, 0x50, MT),
        ),
        (
            "RSTART changes direction",
            vec![hdr(2, 0x50), wr(0, 1), r(0, 1, CmdFlags::RSTART)],
            (2, 0x50, MT),
        ),
        (
            "RSTART after a read, as a write",
            vec![
                hdr(3, 0x50),
                r(0, 1, CmdFlags::empty()),
                r(1, 1, CmdFlags::RSTART),
                raw(CLIENT_BASE, 1, 16),
            ],
            (3, 0x50, MT),
        ),
        (
            "WRRD with RSTART",
            vec![
                hdr(2, 0x50),
                r(0, 1, CmdFlags::WRRD),
                r(1, 1, CmdFlags::WRRD | CmdFlags::RSTART),
            ],
            (2, 0x50, MT),
        ),
        (
            "WRRD without data",
            vec![hdr(1, 0x50), raw(CLIENT_BASE + DATA, 0, 4)],
            (1, 0x50, MT),
        ),
    ];
    for (what, cmds, want) in cases {
        rig.raw(0, cmds);
        assert_eq!(rig.responses(0), [want], "{what}");
        assert!(rig.seen().is_empty(), "{what}: reached the driver");
        // The very next transaction is read from the right place and goes through.
        rig.raw(0, vec![hdr(1, 0x50), wr(7, 1)]);
        assert_eq!(rig.responses(0), [(0, 0x50, I2cError::Ok)], "after {what}");
        assert_eq!(rig.seen().len(), 1, "after {what}");
        // So does the other client's.
        rig.raw(1, vec![hdr(1, 0x51), r(0, 4, CmdFlags::STOP)]);
        assert_eq!(
            rig.responses(1),
            [(0, 0x51, I2cError::Ok)],
            "{what}: client1"
        );
        assert_eq!(rig.seen().len(), 1);
    }
    assert_eq!(virt.borrow().faulty(), 0);
}

#[test]
fn a_flooding_client_is_deferred_in_order_and_others_keep_their_turn() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x51)]);
    *w.paused.borrow_mut() = true;
    // Client 1 fills its whole queue: 84 transactions of 2 bodies (252 commands) + 1 spare.
    let flood: Vec<I2cCmd> = (0..84u64)
        .flat_map(|i| [hdr(2, 0x51), wr(i, 1), r(i, 1, CmdFlags::STOP)])
        .collect();
    rig.raw(1, flood.clone());
    // 253 slots in the driver queue: 84 transactions fit (252); client 0's must wait.
    rig.raw(0, vec![hdr(1, 0x50), wr(0, 1)]);
    rig.raw(1, vec![]);
    assert!(rig.seen().is_empty());
    rig.raw(1, flood[..30].to_vec()); // client 1 refills behind client 0
    rig.resume_driver();
    let seen = rig.seen();
    // All of client 1's first flood, then client 0's, then client 1's ten more, in that order.
    assert_eq!(seen.len(), 84 + 1 + 10);
    assert!(seen[..84].iter().all(|(a, b)| *a == 0x51 && b.len() == 2));
    assert_eq!(seen[84].0, 0x50);
    assert!(seen[85..].iter().all(|(a, _)| *a == 0x51));
    let ptrs: Vec<u64> = seen[..84]
        .iter()
        .map(|(_, b)| match b[0] {
            Command::Body { ptr, .. } => ptr,
            Command::Header { .. } => 0,
        })
        .collect();
    assert_eq!(
        ptrs,
        (0..84).map(|i| driver_base(1) + i).collect::<Vec<_>>()
    );
    assert_eq!(rig.responses(0), [(0, 0x50, I2cError::Ok)]);
    assert_eq!(rig.responses(1).len(), 94);
    assert_eq!(virt.borrow().faulty(), 0);
}

#[test]
fn releasing_an_address_mid_transaction_keeps_the_answer_with_its_submitter() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    *w.paused.borrow_mut() = true;
    rig.raw(0, vec![hdr(1, 0x50), r(0, 2, CmdFlags::STOP)]);
    rig.cmd(0, [Cmd::Release(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x50)]);
    assert_eq!(w.replies.borrow()[1], [OK]);
    // Client 0 no longer owns the address: a new transaction is refused at once.
    rig.raw(0, vec![hdr(1, 0x50), wr(0, 1)]);
    assert_eq!(rig.responses(0), [(0, 0x50, I2cError::UnpermittedAddr)]);
    rig.raw(1, vec![hdr(1, 0x50), wr(0, 1)]);
    rig.resume_driver();
    assert_eq!(rig.seen().len(), 2);
    assert_eq!(
        rig.responses(0),
        [(0, 0x50, I2cError::Ok)],
        "the submitter's answer"
    );
    assert_eq!(
        rig.responses(1),
        [(0, 0x50, I2cError::Ok)],
        "exactly one, its own"
    );
}

#[test]
fn a_client_with_corrupt_indices_is_cut_off_and_its_addresses_freed() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x51)]);
    w.clients[1].word(false, 4).store(1000, Ordering::Relaxed);
    w.scripts.borrow_mut()[1].push_back(Cmd::Raw(vec![]));
    rig.sim.inject_irq(rig.clients[1], C_CMD).unwrap();
    rig.sim.run_until_idle(1000).unwrap();
    assert!(!rig.sim.is_faulted(rig.virt_pd));
    assert_eq!(virt.borrow().faulty(), 0b10);
    assert_eq!(virt.borrow().owner(0x51), None);
    rig.cmd(0, [Cmd::Claim(0x51)]);
    rig.raw(0, vec![hdr(1, 0x51), wr(0, 1)]);
    assert_eq!(rig.responses(0), [(0, 0x51, I2cError::Ok)]);
}

#[test]
fn a_command_storm_never_reaches_the_driver_unvalidated() {
    rig!(w, virt, rig, 2);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    rig.cmd(1, [Cmd::Claim(0x51)]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut good = 0;
    for round in 0..200 {
        // Plausible-looking garbage: headers and bodies with random fields near the region.
        let cmds: Vec<I2cCmd> = (0..next() % 12)
            .map(|_| {
                let v = next();
                let flags = (v & 0x1f) as u8 | if v >> 60 == 0 { 0x20 } else { 0 };
                if v & 1 == 1 {
                    hdr((v >> 8) as u16 % 5, 0x4f + (v >> 16) as u8 % 4)
                } else {
                    raw(
                        CLIENT_BASE - 8 + (v >> 20) % (DATA + 16),
                        (v >> 40) as u8,
                        flags & !1,
                    )
                }
            })
            .collect();
        rig.raw(1, cmds);
        if round % 3 == 0 {
            rig.raw(0, vec![hdr(1, 0x50), wr(round, 1)]);
            good += 1;
        }
    }
    let base = driver_base(1);
    let seen = rig.seen();
    let forwarded = seen.iter().filter(|(a, _)| *a == 0x51).count();
    assert!(forwarded > 0, "the storm tests nothing if nothing passes");
    for (addr, bodies) in seen {
        let c = if addr == 0x50 { 0 } else { 1 };
        assert!(addr == 0x50 || addr == 0x51);
        let base = if c == 0 { driver_base(0) } else { base };
        let mut prev = None;
        for b in bodies {
            let Command::Body { ptr, len, flags } = b else {
                panic!("header as a body");
            };
            assert!(
                ptr >= base && ptr + u64::from(len.max(1)) <= base + DATA,
                "{b:?}"
            );
            let read = flags.intersects(CmdFlags::READ | CmdFlags::WRRD);
            if flags.contains(CmdFlags::RSTART) {
                assert_eq!(prev, Some(read));
                assert!(!flags.contains(CmdFlags::WRRD));
            }
            prev = Some(read);
        }
    }
    let ok0 = rig.responses(0);
    assert_eq!(ok0.len(), good);
    assert!(ok0.iter().all(|r| *r == (0, 0x50, I2cError::Ok)));
    assert_eq!(virt.borrow().faulty(), 0);
}

#[test]
fn the_driver_is_notified_once_per_event_however_much_it_was_given() {
    rig!(w, virt, rig, 1);
    rig.cmd(0, [Cmd::Claim(0x50)]);
    *w.paused.borrow_mut() = true;
    let before = rig.sim.stats(rig.virt_pd).notifies_sent;
    rig.raw(0, (0..5).flat_map(|i| [hdr(1, 0x50), wr(i, 1)]).collect());
    assert_eq!(
        rig.sim.stats(rig.virt_pd).notifies_sent - before,
        1,
        "five transactions committed in one event, one notification"
    );
    rig.resume_driver();
    assert_eq!(rig.seen().len(), 5);
    assert_eq!(rig.responses(0), [(0, 0x50, I2cError::Ok); 5]);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
