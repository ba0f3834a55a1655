// SPDX-License-Identifier: BSD-2-Clause
//! Seeded attacks on the serial virtualisers (`lions_os::sim::attack`): the generic driver over a
//! model UART, both virts, two well-behaved clients on the client library and one attacker that
//! writes anything into its Tx and Rx queues (bytes anywhere in its data region, tails and heads
//! moved by any amount, near the wrap too, the signal flag flipped) and notifies or not.
//!
//! - `serial_tx_virt`: good clients write numbered lines `g<c>:<n>\n`; the attacker's bytes never
//!   contain `g` (the only thing it cannot forge is another client's text). After every step the
//!   device output holds, at every `g`, a whole line of a good client, each client's lines in
//!   order with none lost or repeated so far; no trusted PD faults, no good client is marked
//!   faulty. At the end every line has come out (liveness).
//! - `serial_rx_virt`: typed input with switch sequences (to every client, to clients that do not
//!   exist, cut short); after every step each good client has received a prefix of exactly the
//!   bytes typed while it was current; at the end all of them.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_os::sim::attack::{Rng, Target};
use lions_os::sim::{PdId, Shared, Sim};
use lions_os::{Channel, ChannelSet, Handler};
use lions_serial::testkit::{ScriptedUart, SerialMemory, SerialOptions, pump};
use lions_serial::{
    Error, SerialClient, SerialClientConfig, SerialDriver, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxConfig, VirtRx, VirtTx,
};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

// The channel ids of the testkit's wiring.
use lions_serial::testkit::{
    CLIENT_CMD as C_CMD, CLIENT_RX as C_RX, CLIENT_TX as C_TX, DRIVER_IRQ as D_IRQ,
    DRIVER_RX as D_RX, DRIVER_TX as D_TX, VIRT_DRIVER as V_DRIVER,
};
const SWITCH: u8 = 0x1c;
const BEGIN: &[u8] = b"Start\r\n";
const CLIENTS: usize = 3;
const GOOD: usize = 2;
const EVIL: usize = 2;
const QSIZE: u64 = 512;

/// One attacker write into one of its queues (`rx`: its Rx queue, else Tx).
#[derive(Debug, Clone)]
enum Evil {
    /// Bytes at `at` (mod the size) of the data region, then move the tail by `bump`.
    Bytes {
        at: u32,
        bytes: Vec<u8>,
        bump: u32,
    },
    Tail {
        rx: bool,
        value: u32,
    },
    Head {
        rx: bool,
        value: u32,
    },
    Signal {
        rx: bool,
        value: u32,
    },
    /// Consume all its input (as a well-behaved reader would).
    Drain,
}

#[derive(Debug, Clone)]
enum Act {
    /// Good client `c` writes `lines` lines.
    Write(usize, u8),
    Evil(Evil, bool),
    /// Type these bytes.
    Type(Vec<u8>),
    /// Device transmit room per clock (small: the FIFO path).
    Room(usize),
}

struct World {
    /// The queues and configs (testkit's); the configs below are copies of its.
    mem: SerialMemory,
    drv: SerialDriverConfig,
    vtx: SerialVirtTxConfig,
    vrx: SerialVirtRxConfig,
    cli: Vec<SerialClientConfig>,
    dev: ScriptedUart,
    room: Cell<usize>,
    scripts: RefCell<Vec<VecDeque<Act>>>,
    /// Lines written per good client.
    lines: RefCell<[u32; GOOD]>,
    received: RefCell<Vec<Vec<u8>>>,
    /// Bytes typed while each client was current.
    typed: RefCell<Vec<Vec<u8>>>,
}

impl World {
    fn new() -> Self {
        let mem = SerialMemory::new(&SerialOptions {
            clients: CLIENTS,
            driver_queue: 256,
            client_queue: QSIZE,
            rx: true,
            colour: true,
            begin_str: BEGIN.to_vec(),
            switch_char: SWITCH,
            terminate: b'\r',
            ..SerialOptions::default()
        })
        .unwrap();
        let cli = (0..CLIENTS).map(|c| *mem.client_config(c)).collect();
        Self {
            drv: *mem.driver_config(),
            vtx: *mem.virt_tx_config(),
            vrx: *mem.virt_rx_config(),
            cli,
            mem,
            dev: ScriptedUart::default(),
            room: Cell::new(1 << 20),
            scripts: RefCell::new(vec![VecDeque::new(); CLIENTS]),
            lines: RefCell::new([0; GOOD]),
            received: RefCell::new(vec![Vec::new(); CLIENTS]),
            typed: RefCell::new(vec![Vec::new(); CLIENTS]),
        }
    }

    /// Every `g` in the output starts a whole good line, each client's in order; returns how
    /// many lines of each came out.
    fn check_output(&self) -> Result<[u32; GOOD], String> {
        let out = self.dev.out.borrow();
        let mut next = [0u32; GOOD];
        let mut i = 0;
        while let Some(p) = out[i..].iter().position(|&b| b == b'g') {
            let at = i + p;
            let rest = &out[at..];
            let end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| format!("a good line cut at {at}: {:?}", lossy(rest)))?;
            let line = std::str::from_utf8(&rest[1..end]).map_err(|_| lossy(&rest[..end]))?;
            let (c, n) = line
                .split_once(':')
                .and_then(|(c, n)| Some((c.parse::<usize>().ok()?, n.parse::<u32>().ok()?)))
                .filter(|&(c, _)| c < GOOD)
                .ok_or_else(|| format!("garbled good line at {at}: {line:?}"))?;
            if n != next[c] {
                return Err(format!("client {c}'s line {n} where {} belongs", next[c]));
            }
            next[c] += 1;
            i = at + end + 2;
        }
        Ok(next)
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned()
}

struct ClientPd<'a> {
    c: usize,
    w: &'a World,
    client: Option<SerialClient<'a>>,
    pending: Vec<u8>,
}

impl ClientPd<'_> {
    fn evil(&self, e: &Evil) {
        let (tx, rx) = self.w.mem.client_queues(EVIL).unwrap();
        let q = |rx_side: bool| if rx_side { rx } else { tx };
        match e {
            Evil::Bytes { at, bytes, bump } => {
                let h = tx.header();
                let base = h.tail.load(Ordering::Relaxed).wrapping_add(*at);
                for (k, &b) in bytes.iter().enumerate() {
                    let i = base.wrapping_add(k as u32) as usize % QSIZE as usize;
                    // SAFETY: i < QSIZE, inside the attacker's own data region.
                    unsafe { tx.data().at(i).write_volatile(b) };
                }
                let tail = h.tail.load(Ordering::Relaxed);
                h.tail.store(tail.wrapping_add(*bump), Ordering::Release);
            }
            Evil::Tail { rx, value } => q(*rx).header().tail.store(*value, Ordering::Release),
            Evil::Head { rx, value } => q(*rx).header().head.store(*value, Ordering::Release),
            Evil::Signal { rx, value } => q(*rx)
                .header()
                .producer_signalled
                .store(*value, Ordering::Release),
            Evil::Drain => {
                let h = rx.header();
                h.head
                    .store(h.tail.load(Ordering::Acquire), Ordering::Release);
            }
        }
    }
}

impl Handler for ClientPd<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(C_CMD)) {
            let acts: Vec<Act> = self.w.scripts.borrow_mut()[self.c].drain(..).collect();
            for a in acts {
                match a {
                    Act::Write(c, n) => {
                        let mut lines = self.w.lines.borrow_mut();
                        for _ in 0..n {
                            let l = format!("g{c}:{}\n", lines[c]);
                            self.pending.extend_from_slice(l.as_bytes());
                            lines[c] += 1;
                        }
                    }
                    Act::Evil(e, notify) => {
                        self.evil(&e);
                        if notify {
                            Channel::new(C_TX).notify()?;
                            Channel::new(C_RX).notify()?;
                        }
                    }
                    _ => {}
                }
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        let Some(client) = &mut self.client else {
            return Ok(());
        };
        let received = &mut self.w.received.borrow_mut()[self.c];
        pump::<64>(client, &mut self.pending, received)
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    clients: Vec<PdId>,
    vt: &'a RefCell<VirtTx<'a>>,
    vr: &'a RefCell<VirtRx<'a>>,
    /// The client input goes to now.
    current: usize,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World, vt: &'a RefCell<VirtTx<'a>>, vr: &'a RefCell<VirtRx<'a>>) -> Self {
        let mut sim = Sim::new();
        let drv = SerialDriver::new(&w.dev, mapped(&w.drv), Channel::new(D_IRQ)).unwrap();
        let driver = sim.add_pd("serial_driver", 200, false, drv);
        sim.irq(driver, D_IRQ).unwrap();
        let virt_tx = sim.add_pd("serial_virt_tx", 199, false, Shared::new(vt));
        sim.channel(driver, D_TX, virt_tx, V_DRIVER).unwrap();
        sim.init(virt_tx, || vt.borrow_mut().init());
        let virt_rx = sim.add_pd("serial_virt_rx", 198, false, Shared::new(vr));
        sim.channel(driver, D_RX, virt_rx, V_DRIVER).unwrap();
        let clients = (0..CLIENTS)
            .map(|c| {
                let client = (c != EVIL).then(|| SerialClient::new(mapped(&w.cli[c])).unwrap());
                let pd = ClientPd {
                    c,
                    w,
                    client,
                    pending: Vec::new(),
                };
                let pd = sim.add_pd(&format!("client{c}"), 1, false, pd);
                sim.channel(pd, C_TX, virt_tx, 1 + c as u8).unwrap();
                sim.channel(pd, C_RX, virt_rx, 1 + c as u8).unwrap();
                sim.irq(pd, C_CMD).unwrap();
                pd
            })
            .collect();
        Self {
            sim,
            w,
            driver,
            clients,
            vt,
            vr,
            current: 0,
        }
    }

    /// Run until nothing moves, clocking the device; then check.
    fn settle(&mut self) -> Result<(), String> {
        let dev = &self.w.dev;
        for _ in 0..10_000 {
            self.sim
                .run_until_idle(100_000)
                .map_err(|e| format!("{e:?}"))?;
            let tx = dev.tx_irq.get();
            let rx = dev.rx_irq.get() && !dev.input.borrow().is_empty();
            if !tx && !rx {
                return self.check();
            }
            dev.room.set(self.w.room.get());
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        Err("the subsystem never settled".into())
    }

    fn check(&self) -> Result<(), String> {
        if let Some(f) = self.sim.faults().into_iter().find(|f| f.pd != "client2") {
            return Err(format!("fault: {f:?}"));
        }
        let (ft, fr) = (self.vt.borrow().faulty(), self.vr.borrow().faulty());
        if (ft | fr) & ((1 << GOOD) - 1) != 0 {
            return Err(format!(
                "a good client marked faulty: tx {ft:#x} rx {fr:#x}"
            ));
        }
        self.w.check_output()?;
        let (got, typed) = (self.w.received.borrow(), self.w.typed.borrow());
        for c in 0..GOOD {
            if !typed[c].starts_with(&got[c]) {
                return Err(format!(
                    "client {c} received {:?}, typed for it {:?}",
                    lossy(&got[c]),
                    lossy(&typed[c])
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, a: &Act) -> Result<(), String> {
        match a {
            Act::Write(c, _) => {
                self.w.scripts.borrow_mut()[*c].push_back(a.clone());
                self.sim.inject_irq(self.clients[*c], C_CMD).unwrap();
            }
            Act::Evil(..) => {
                self.w.scripts.borrow_mut()[EVIL].push_back(a.clone());
                self.sim.inject_irq(self.clients[EVIL], C_CMD).unwrap();
            }
            Act::Type(bytes) => {
                self.model_input(bytes);
                self.w.dev.input.borrow_mut().extend(bytes);
                self.sim.inject_irq(self.driver, D_IRQ).unwrap();
            }
            Act::Room(r) => self.w.room.set(*r),
        }
        self.settle()
    }

    /// Who gets which typed byte: the switch sequences `generate` writes are whole (switch,
    /// digits, `\r`) or a lone switch doubled.
    fn model_input(&mut self, bytes: &[u8]) {
        let mut typed = self.w.typed.borrow_mut();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == SWITCH {
                if bytes.get(i + 1) == Some(&SWITCH) {
                    typed[self.current].push(SWITCH);
                    i += 2;
                    continue;
                }
                let end = i + 1 + bytes[i + 1..].iter().position(|&b| b == b'\r').unwrap();
                let n: usize = std::str::from_utf8(&bytes[i + 1..end])
                    .unwrap()
                    .parse()
                    .unwrap();
                if n < CLIENTS {
                    self.current = n;
                }
                i = end + 1;
            } else {
                typed[self.current].push(bytes[i]);
                i += 1;
            }
        }
    }
}

fn gen_evil(r: &mut Rng) -> Evil {
    let index = |r: &mut Rng| match r.below(3) {
        0 => r.below(2 * QSIZE) as u32,
        1 => 0u32.wrapping_sub(r.below(2 * QSIZE) as u32),
        _ => r.nasty() as u32,
    };
    match r.below(16) {
        0..=9 => Evil::Bytes {
            at: if r.chance(3, 4) {
                0
            } else {
                r.below(QSIZE) as u32
            },
            bytes: (0..r.below(100))
                .map(|_| {
                    let b = r.u32() as u8;
                    if b == b'g' { b'\n' } else { b }
                })
                .collect(),
            bump: if r.chance(7, 8) {
                r.below(100) as u32
            } else {
                index(r)
            },
        },
        10 => Evil::Tail {
            rx: r.chance(1, 2),
            value: index(r),
        },
        11 => Evil::Head {
            rx: r.chance(1, 2),
            value: index(r),
        },
        12 => Evil::Signal {
            rx: r.chance(1, 2),
            value: r.nasty() as u32,
        },
        _ => Evil::Drain,
    }
}

fn gen_input(r: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..1 + r.below(4) {
        match r.below(6) {
            0 => {
                v.push(SWITCH);
                let n = r.pick(&[0u64, 1, 2, 2, 3, 9, 10, 9999]);
                v.extend_from_slice(n.to_string().as_bytes());
                v.push(b'\r');
            }
            1 => v.extend_from_slice(&[SWITCH, SWITCH]),
            _ => v.extend((0..r.below(40)).map(|_| b'a' + r.below(26) as u8)),
        }
    }
    v
}

fn generate(r: &mut Rng) -> Vec<Act> {
    (0..20 + r.index(80))
        .map(|_| match r.below(10) {
            0..=2 => Act::Write(r.index(GOOD), 1 + r.below(6) as u8),
            3..=6 => Act::Evil(gen_evil(r), r.chance(3, 4)),
            7 | 8 => Act::Type(gen_input(r)),
            _ => Act::Room(r.pick(&[1, 7, 64, 1 << 20])),
        })
        .collect()
}

fn execute(acts: &[Act]) -> Result<(), String> {
    let w = World::new();
    let vt = RefCell::new(VirtTx::new(mapped(&w.vtx)).unwrap());
    let vr = RefCell::new(VirtRx::new(mapped(&w.vrx)).unwrap());
    let mut rig = Rig::new(&w, &vt, &vr);
    rig.settle()?;
    for a in acts {
        rig.step(a)?;
    }
    // Liveness: full device room; every line out, every typed byte in.
    rig.step(&Act::Room(1 << 20))?;
    for c in 0..GOOD {
        rig.step(&Act::Write(c, 1))?;
    }
    let out = w.check_output()?;
    let lines = *w.lines.borrow();
    if out != lines {
        return Err(format!("liveness: {out:?} of {lines:?} lines came out"));
    }
    let (got, typed) = (w.received.borrow(), w.typed.borrow());
    for c in 0..GOOD {
        if got[c] != typed[c] {
            return Err(format!(
                "liveness: client {c} got {} of {} typed bytes",
                got[c].len(),
                typed[c].len()
            ));
        }
    }
    Ok(())
}

/// Both targets run the same mixed attack; each is reported under its own name so that
/// `cargo xtask fuzz` can run either. Tx-side checks and Rx-side checks hold in both.
#[test]
fn serial_tx_virt() {
    let t = Target {
        name: "serial_tx_virt",
        package: "lions-serial",
        default_cases: 200,
    }
    .run(generate, execute);
    assert!(t.actions > 0);
}

/// The Rx-weighted mix: mostly typing and Rx-queue corruption.
#[test]
fn serial_rx_virt() {
    let t = Target {
        name: "serial_rx_virt",
        package: "lions-serial",
        default_cases: 200,
    }
    .run(
        |r| {
            (0..20 + r.index(80))
                .map(|_| match r.below(10) {
                    0 => Act::Write(r.index(GOOD), 1 + r.below(3) as u8),
                    1..=4 => {
                        let e = if r.chance(1, 2) {
                            match r.below(4) {
                                0 => Evil::Tail {
                                    rx: true,
                                    value: r.nasty() as u32,
                                },
                                1 => Evil::Head {
                                    rx: true,
                                    value: r.below(2 * QSIZE) as u32,
                                },
                                2 => Evil::Signal {
                                    rx: true,
                                    value: r.nasty() as u32,
                                },
                                _ => Evil::Drain,
                            }
                        } else {
                            gen_evil(r)
                        };
                        Act::Evil(e, r.chance(3, 4))
                    }
                    _ => Act::Type(gen_input(r)),
                })
                .collect()
        },
        execute,
    );
    assert!(t.actions > 0);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
