// SPDX-License-Identifier: BSD-2-Clause
//! A seeded attack on the I²C virtualiser (`lions_os::sim::attack`): a well-behaved client that
//! owns bus address 0x50 and submits valid transactions, two attackers that PPC anything (claims
//! and releases of any address, 0x50 included, unknown labels, huge MR0), stage any command
//! (headers with lying batch lengths and addresses, bodies with unknown flags, pointers around and
//! outside their data region, `RSTART`/`WRRD` misuse), commit or not, and corrupt their queue
//! indices (staged tail, tail, head, response head), and a driver that pauses and resumes.
//!
//! After every step: the virt never faults; address 0x50 stays the good client's; everything the
//! driver receives is a whole transaction (a header, then `batch_len` bodies that decode) whose
//! every pointer lies in the driver-side data region of the client owning the header's address at
//! submission; each driver answer reaches the client that submitted it; the good client gets
//! exactly one `Ok` answer per transaction, in order, none of anybody else's. At the end, with the
//! attackers quiet and the driver running, every good transaction is answered (liveness).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{
    C_CMD, C_VIRT, CLIENT_BASE, D_CMD, D_VIRT, DATA, Pair, V_DRIVER, driver_base, virt_config,
};
use lions_i2c::{
    BusReply, BusRequest, CmdFlags, Command, I2cClientQueues, I2cCmd, I2cError, I2cResponse,
    I2cServerQueues, I2cVirt, I2cVirtConfig,
};
use lions_os::sim::attack::{Rng, Target};
use lions_os::sim::{End, PdId, Shared, Sim};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, OsError, get_mr, set_mr};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

const CLIENTS: usize = 3;
const GOOD_ADDR: u8 = 0x50;

#[derive(Debug, Clone)]
enum Evil {
    Ppc(u64, u64),
    /// Stage these, then commit (or leave them staged).
    Cmds(Vec<I2cCmd>, bool),
    Word {
        resp: bool,
        at: usize,
        value: u32,
    },
    /// Read its responses.
    Drain,
}

#[derive(Debug, Clone)]
enum Act {
    /// The good client submits a transaction of this many bodies (writes and reads).
    Good(Vec<(u16, u8, bool)>),
    Evil(usize, Evil, bool),
    Pause(bool),
}

fn gen_cmd(r: &mut Rng) -> I2cCmd {
    if r.chance(1, 3) {
        let batch = if r.chance(3, 4) {
            r.below(5) as u16
        } else {
            r.nasty() as u16
        };
        let addr = if r.chance(3, 4) {
            r.pick(&[GOOD_ADDR, 0x51, 0x52, 0x7f])
        } else {
            r.u32() as u8
        };
        let mut p = [0u8; 8];
        p[..2].copy_from_slice(&batch.to_ne_bytes());
        p[2] = addr;
        let flags = if r.chance(7, 8) { 1 } else { r.u32() as u8 };
        I2cCmd {
            payload: u64::from_ne_bytes(p),
            data_len: 0,
            flag_mask: flags,
            _pad: [0; 6],
        }
    } else {
        let ptr = match r.below(4) {
            0 | 1 => CLIENT_BASE + r.below(DATA),
            2 => CLIENT_BASE
                .wrapping_add(r.below(DATA + 64))
                .wrapping_sub(32),
            _ => r.nasty(),
        };
        let flags = if r.chance(3, 4) {
            r.pick(&[0u8, 2, 4, 8, 16, 18, 10, 20, 6])
        } else {
            r.u32() as u8
        };
        I2cCmd {
            payload: ptr,
            data_len: r.u32() as u8,
            flag_mask: flags,
            _pad: [0; 6],
        }
    }
}

fn gen_evil(r: &mut Rng) -> Evil {
    match r.below(20) {
        0..=2 => Evil::Ppc(
            if r.chance(3, 4) {
                r.below(3)
            } else {
                r.nasty()
            },
            if r.chance(3, 4) {
                u64::from(r.pick(&[GOOD_ADDR, 0x51, 0x52, 0x7f, 0x80]))
            } else {
                r.nasty()
            },
        ),
        3..=14 => {
            let n = 1 + r.index(8);
            let mut v: Vec<I2cCmd> = if r.chance(1, 2) {
                (0..n).map(|_| gen_cmd(r)).collect()
            } else {
                // Plausible bodies (in the region, known flags), sometimes one lie among them.
                (0..n)
                    .map(|_| {
                        if r.chance(1, 8) {
                            return gen_cmd(r);
                        }
                        let flags = CmdFlags::from_bits(r.pick(&[0u8, 2, 8, 10])).unwrap();
                        I2cCmd::body(CLIENT_BASE + r.below(DATA - 256), r.u32() as u8, flags)
                            .unwrap()
                    })
                    .collect()
            };
            if r.chance(3, 4) {
                // A well-formed header for what follows, sometimes on a claimed address.
                v.insert(
                    0,
                    I2cCmd::header(n as u16, r.pick(&[GOOD_ADDR, 0x51, 0x52])).unwrap(),
                );
            }
            Evil::Cmds(v, r.chance(7, 8))
        }
        15 | 16 => Evil::Word {
            resp: r.chance(1, 3),
            at: r.pick(&[0, 4, 8]),
            value: if r.chance(1, 2) {
                r.below(600) as u32
            } else {
                r.nasty() as u32
            },
        },
        _ => Evil::Drain,
    }
}

fn generate(r: &mut Rng) -> Vec<Act> {
    (0..20 + r.index(100))
        .map(|_| match r.below(10) {
            0..=2 => Act::Good(
                (0..1 + r.below(4))
                    .map(|_| (r.below(DATA - 300) as u16, r.u32() as u8, r.chance(1, 2)))
                    .collect(),
            ),
            3..=8 => Act::Evil(1 + r.index(CLIENTS - 1), gen_evil(r), r.chance(7, 8)),
            _ => Act::Pause(r.chance(1, 3)),
        })
        .collect()
}

struct World {
    driver: Pair,
    clients: Vec<Pair>,
    config: Box<I2cVirtConfig>,
    evil: RefCell<Vec<VecDeque<(Evil, bool)>>>,
    good: RefCell<VecDeque<Vec<(u16, u8, bool)>>>,
    /// Good transactions submitted and not answered: their body counts.
    good_wait: RefCell<VecDeque<usize>>,
    /// Transaction sequence number → (submitting client per the pointers, bodies).
    driven: RefCell<Vec<(usize, usize)>>,
    paused: RefCell<bool>,
    failure: RefCell<Option<String>>,
}

impl World {
    fn new() -> Self {
        let driver = Pair::new();
        let clients: Vec<Pair> = (0..CLIENTS).map(|_| Pair::new()).collect();
        let config = virt_config(&driver, &clients);
        Self {
            driver,
            clients,
            config,
            evil: RefCell::new(vec![VecDeque::new(); CLIENTS]),
            good: RefCell::new(VecDeque::new()),
            good_wait: RefCell::new(VecDeque::new()),
            driven: RefCell::new(Vec::new()),
            paused: RefCell::new(false),
            failure: RefCell::new(None),
        }
    }

    fn fail(&self, why: String) {
        self.failure.borrow_mut().get_or_insert(why);
    }
}

/// The driver: checks every transaction and answers it `Ok` with `err_cmd` = its sequence number.
struct DriverPd<'a> {
    w: &'a World,
    q: I2cServerQueues<'a>,
}

impl DriverPd<'_> {
    fn take(&mut self) -> Result<bool, String> {
        let Some(h) = self
            .q
            .requests
            .pop()
            .map_err(|e| format!("driver queue: {e:?}"))?
        else {
            return Ok(false);
        };
        let Ok(Command::Header { batch_len, address }) = h.decode() else {
            return Err(format!("driver got {h:?} where a header belongs"));
        };
        let mut owner = None;
        for i in 0..batch_len {
            let b = self
                .q
                .requests
                .pop()
                .map_err(|e| format!("driver queue: {e:?}"))?
                .ok_or_else(|| format!("transaction on {address:#x} cut at body {i}"))?;
            let Ok(Command::Body { ptr, len, .. }) = b.decode() else {
                return Err(format!("driver got {b:?} as a body"));
            };
            let c = (0..CLIENTS)
                .find(|&c| {
                    ptr >= driver_base(c) && ptr + u64::from(len.max(1)) <= driver_base(c) + DATA
                })
                .ok_or_else(|| format!("body {ptr:#x}+{len} outside every data region"))?;
            if *owner.get_or_insert(c) != c {
                return Err(format!("one transaction spans clients' regions: {ptr:#x}"));
            }
        }
        if address == GOOD_ADDR && owner.is_some_and(|c| c != 0) {
            return Err(format!(
                "a transaction on the good address with client {owner:?}'s data"
            ));
        }
        let mut driven = self.w.driven.borrow_mut();
        let seq = driven.len() as u64;
        driven.push((owner.unwrap_or(usize::MAX), usize::from(batch_len)));
        self.q
            .responses
            .push(I2cResponse::new(seq, address, I2cError::Ok))
            .map_err(|_| "driver response queue full".to_string())?;
        Ok(true)
    }
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
        loop {
            match self.take() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.w.fail(e);
                    break;
                }
            }
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

impl ClientPd<'_> {
    fn good(&mut self) -> Result<(), OsError> {
        let txs: Vec<_> = self.w.good.borrow_mut().drain(..).collect();
        let mut any = false;
        for tx in txs {
            let body: Vec<I2cCmd> = tx
                .iter()
                .map(|&(off, len, read)| {
                    let flags = if read {
                        CmdFlags::READ
                    } else {
                        CmdFlags::empty()
                    };
                    I2cCmd::body(CLIENT_BASE + u64::from(off), len, flags).unwrap()
                })
                .collect();
            if self.q.requests.stage_transaction(GOOD_ADDR, &body).is_ok() {
                self.w.good_wait.borrow_mut().push_back(body.len());
                any = true;
            }
        }
        if any {
            self.q.requests.commit();
            Channel::new(C_VIRT).notify()?;
        }
        Ok(())
    }

    fn evil(&mut self) -> Result<(), OsError> {
        let ws: Vec<_> = self.w.evil.borrow_mut()[self.c].drain(..).collect();
        for (e, notify) in ws {
            match e {
                Evil::Ppc(label, mr0) => {
                    set_mr(0, mr0);
                    let r = Channel::new(C_VIRT).pp_call(MessageInfo::new(label, 1))?;
                    if self.c != 0
                        && label == BusRequest::Claim as u64
                        && mr0 == u64::from(GOOD_ADDR)
                        && r.label() == BusReply::Success as u64
                    {
                        self.w
                            .fail(format!("client {} claimed the good address", self.c));
                    }
                    let _ = get_mr(0);
                }
                Evil::Cmds(cmds, commit) => {
                    for c in cmds {
                        let _ = self.q.requests.stage(c);
                    }
                    if commit {
                        self.q.requests.commit();
                    }
                }
                Evil::Word { resp, at, value } => {
                    let p = &self.w.clients[self.c];
                    p.word(resp, at).store(value, Ordering::Release);
                }
                Evil::Drain => {
                    let p = &self.w.clients[self.c];
                    let tail = p.word(true, 0).load(Ordering::Acquire);
                    p.word(true, 4).store(tail, Ordering::Release);
                }
            }
            if notify {
                Channel::new(C_VIRT).notify()?;
            }
        }
        Ok(())
    }

    fn responses(&mut self) {
        if self.c != 0 {
            return;
        }
        loop {
            let r = match self.q.responses.pop() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return self.w.fail(format!("good client's responses: {e:?}")),
            };
            let Some(bodies) = self.w.good_wait.borrow_mut().pop_front() else {
                return self
                    .w
                    .fail(format!("good client got an answer it never asked: {r:?}"));
            };
            if r.error() != Ok(I2cError::Ok) || r.bus_address != GOOD_ADDR {
                return self.w.fail(format!("good transaction answered {r:?}"));
            }
            let driven = self.w.driven.borrow();
            match driven.get(r.err_cmd as usize) {
                Some(&(0, n)) if n == bodies => {}
                other => {
                    return self.w.fail(format!(
                        "good client got transaction {}'s answer ({other:?}), wanted one of \
                         {bodies} bodies",
                        r.err_cmd
                    ));
                }
            }
        }
        self.q.responses.release();
    }
}

impl Handler for ClientPd<'_> {
    type Error = OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        self.responses();
        if set.contains(Channel::new(C_CMD)) {
            // Client 0's own PPC (its claim) goes through the same path as the attackers'.
            self.evil()?;
            if self.c == 0 {
                self.good()?;
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
    virt: &'a RefCell<I2cVirt<'a>>,
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
        let clients = (0..CLIENTS)
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
            virt,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        self.sim
            .run_until_idle(100_000)
            .map_err(|e| format!("{e:?}"))?;
        if let Some(f) = self
            .sim
            .faults()
            .into_iter()
            .find(|f| f.pd != "client1" && f.pd != "client2")
        {
            return Err(format!("fault: {f:?}"));
        }
        if let Some(f) = self.w.failure.borrow().clone() {
            return Err(f);
        }
        if self.virt.borrow().owner(GOOD_ADDR) != Some(0) {
            return Err(format!(
                "the good address is now {:?}'s",
                self.virt.borrow().owner(GOOD_ADDR)
            ));
        }
        if self.virt.borrow().faulty() & 1 != 0 {
            return Err("the virt marked the good client faulty".into());
        }
        Ok(())
    }

    fn step(&mut self, a: &Act) -> Result<(), String> {
        match a {
            Act::Good(tx) => {
                self.w.good.borrow_mut().push_back(tx.clone());
                self.sim.inject_irq(self.clients[0], C_CMD).unwrap();
            }
            Act::Evil(c, e, notify) => {
                self.w.evil.borrow_mut()[*c].push_back((e.clone(), *notify));
                self.sim.inject_irq(self.clients[*c], C_CMD).unwrap();
            }
            Act::Pause(p) => {
                *self.w.paused.borrow_mut() = *p;
                self.sim.inject_irq(self.driver, D_CMD).unwrap();
            }
        }
        self.run()
    }
}

fn execute(acts: &[Act]) -> Result<(), String> {
    let w = World::new();
    let virt = RefCell::new(I2cVirt::new(mapped(&w.config)).unwrap());
    let mut rig = Rig::new(&w, &virt);
    set_claim(&mut rig)?;
    for a in acts {
        rig.step(a)?;
    }
    // Liveness: the attackers stop, the driver runs, and one more transaction goes through.
    rig.step(&Act::Pause(false))?;
    rig.step(&Act::Good(vec![(0, 1, false)]))?;
    let left = rig.w.good_wait.borrow().len();
    if left != 0 {
        return Err(format!("liveness: {left} good transactions never answered"));
    }
    Ok(())
}

/// Client 0 claims the good address (a PPC from its PD), /// The attackers claim 0x51 and 0x52 (so their transactions can reach the driver).
fn set_claim(rig: &mut Rig<'_>) -> Result<(), String> {
    for (c, a) in [(0, GOOD_ADDR), (1, 0x51), (2, 0x52)] {
        rig.w.evil.borrow_mut()[c]
            .push_back((Evil::Ppc(BusRequest::Claim as u64, u64::from(a)), false));
        rig.sim.inject_irq(rig.clients[c], C_CMD).unwrap();
        rig.run()?;
    }
    Ok(())
}

#[test]
fn i2c_virt() {
    let t = Target {
        name: "i2c_virt",
        package: "lions-i2c",
        default_cases: 200,
    }
    .run(generate, execute);
    assert!(t.actions > 0);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
