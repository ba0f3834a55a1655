// SPDX-License-Identifier: BSD-2-Clause
//! The whole serial subsystem on the sim backend: the generic driver over a model device, the Tx
//! and Rx virtualisers, and client PDs using the client library. Whole-line output of several
//! clients through a tiny driver queue (the FIFO path), colour and legend, lossless client
//! back-pressure, input switching, drops, driver Rx back-pressure, adversarial clients, and the
//! notification counts per PD.
//!
//! Clients are scripted: each has an IRQ channel (`CMD`) the test raises to make it run the
//! commands queued for it. The device is clocked by the test: each round its transmit FIFO gets
//! `fifo` bytes of room and its IRQ is raised while it has work.
#![allow(clippy::unwrap_used)]

use lions_os::sim::{Event, PdId, Shared, Sim};
use lions_os::{Channel, ChannelSet, Handler, sddf_magic};
use lions_serial::config::{BEGIN_STR_LENGTH, NAME_LENGTH};
use lions_serial::testkit::{Queue, ScriptedUart, pump};
use lions_serial::virt_tx::colour_code;
use lions_serial::{
    Error, SerialClient, SerialClientConfig, SerialDriver, SerialDriverConfig, SerialVirtRxConfig,
    SerialVirtTxConfig, VirtRx, VirtTx,
};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use zerocopy::FromZeros;

// Channel ids (the testkit's): driver IRQ 0, to the Tx virt 1, to the Rx virt 2; each virt: the
// driver 0, client c 1 + c; each client: Tx virt 0, Rx virt 1, the test's command IRQ 2.
use lions_serial::testkit::{
    CLIENT_CMD as C_CMD, CLIENT_RX as C_RX, CLIENT_TX as C_TX, DRIVER_IRQ as D_IRQ,
    DRIVER_RX as D_RX, DRIVER_TX as D_TX, VIRT_DRIVER as V_DRIVER,
};

const SWITCH: u8 = 0x1c;
const BEGIN: &[u8] = b"Begin input\r\n";

#[derive(Clone)]
struct Opts {
    clients: usize,
    driver_tx: u64,
    driver_rx: u64,
    client_tx: u64,
    client_rx: u64,
    colour: bool,
    rx: bool,
    fifo: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            clients: 2,
            driver_tx: 4096,
            driver_rx: 4096,
            client_tx: 4096,
            client_rx: 4096,
            colour: true,
            rx: true,
            fifo: 1 << 20,
        }
    }
}

/// What a client does on a command.
#[derive(Debug, Clone)]
enum Cmd {
    /// Write these bytes (lossless: what does not fit waits for the virt's signal).
    Write(Vec<u8>),
    /// Notify the Tx virt without writing (after the test corrupted the queue).
    Poke,
}

/// Everything the PDs share: queues, configs, the device, scripts and what clients received.
struct World {
    /// Owned here so the regions outlive every handle (the configs hold their addresses).
    _driver_tx: Queue,
    _driver_rx: Queue,
    client_tx: Vec<Queue>,
    client_rx: Vec<Queue>,
    drv: SerialDriverConfig,
    vtx: SerialVirtTxConfig,
    vrx: SerialVirtRxConfig,
    cli: Vec<SerialClientConfig>,
    dev: ScriptedUart,
    fifo: usize,
    scripts: RefCell<Vec<VecDeque<Cmd>>>,
    received: RefCell<Vec<Vec<u8>>>,
    /// Expected output per client (what it wrote, `\n` as `\r\n`).
    sent: RefCell<Vec<Vec<u8>>>,
}

impl World {
    fn new(o: &Opts) -> Self {
        let magic = sddf_magic(lions_os::ConfigClass::Serial);
        let driver_tx = Queue::new(o.driver_tx);
        let driver_rx = Queue::new(o.driver_rx);
        let client_tx: Vec<Queue> = (0..o.clients).map(|_| Queue::new(o.client_tx)).collect();
        let client_rx: Vec<Queue> = (0..o.clients).map(|_| Queue::new(o.client_rx)).collect();

        let mut drv = SerialDriverConfig::new_zeroed();
        drv.magic = magic;
        drv.tx = driver_tx.conn(D_TX);
        if o.rx {
            drv.rx = driver_rx.conn(D_RX);
            drv.rx_enabled = 1;
        }

        let mut vtx = SerialVirtTxConfig::new_zeroed();
        vtx.magic = magic;
        vtx.driver = driver_tx.conn(V_DRIVER);
        vtx.num_clients = u8::try_from(o.clients).unwrap();
        for (c, q) in client_tx.iter().enumerate() {
            let id = u8::try_from(1 + c).unwrap();
            vtx.clients[c].conn = q.conn(id);
            let name = format!("client{c}");
            assert!(name.len() < NAME_LENGTH);
            vtx.clients[c].name[..name.len()].copy_from_slice(name.as_bytes());
        }
        assert!(BEGIN.len() < BEGIN_STR_LENGTH);
        vtx.begin_str[..BEGIN.len()].copy_from_slice(BEGIN);
        vtx.enable_colour = o.colour.into();
        vtx.enable_rx = o.rx.into();

        let mut vrx = SerialVirtRxConfig::new_zeroed();
        vrx.magic = magic;
        vrx.driver = driver_rx.conn(V_DRIVER);
        vrx.num_clients = u8::try_from(o.clients).unwrap();
        for (c, q) in client_rx.iter().enumerate() {
            vrx.clients[c] = q.conn(u8::try_from(1 + c).unwrap());
        }
        vrx.switch_char = SWITCH;
        vrx.terminate_num_char = b'\r';

        let cli = (0..o.clients)
            .map(|c| {
                let mut cfg = SerialClientConfig::new_zeroed();
                cfg.magic = magic;
                cfg.tx = client_tx[c].conn(C_TX);
                if o.rx {
                    cfg.rx = client_rx[c].conn(C_RX);
                }
                cfg
            })
            .collect();

        Self {
            _driver_tx: driver_tx,
            _driver_rx: driver_rx,
            client_tx,
            client_rx,
            drv,
            vtx,
            vrx,
            cli,
            dev: ScriptedUart::default(),
            fifo: o.fifo,
            scripts: RefCell::new(vec![VecDeque::new(); o.clients]),
            received: RefCell::new(vec![Vec::new(); o.clients]),
            sent: RefCell::new(vec![Vec::new(); o.clients]),
        }
    }

    fn virt_tx(&self) -> VirtTx<'_> {
        VirtTx::new(mapped(&self.vtx)).unwrap()
    }

    fn virt_rx(&self) -> VirtRx<'_> {
        VirtRx::new(mapped(&self.vrx)).unwrap()
    }
}

/// A scripted client PD.
struct ClientPd<'a> {
    c: usize,
    w: &'a World,
    /// `None` when its queues were already broken at start.
    client: Option<SerialClient<'a>>,
    /// Output not yet taken by the queue (waits for the Tx virt's signal).
    pending: Vec<u8>,
}

impl Handler for ClientPd<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(C_CMD)) {
            let cmds: Vec<Cmd> = self.w.scripts.borrow_mut()[self.c].drain(..).collect();
            for cmd in cmds {
                match cmd {
                    Cmd::Write(bytes) => self.pending.extend_from_slice(&bytes),
                    Cmd::Poke => Channel::new(C_TX).notify()?,
                }
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        let Some(client) = &mut self.client else {
            return Ok(());
        };
        let received = &mut self.w.received.borrow_mut()[self.c];
        pump::<16>(client, &mut self.pending, received)
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    virt_tx: PdId,
    virt_rx: PdId,
    clients: Vec<PdId>,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World, vt: &'a RefCell<VirtTx<'a>>, vr: &'a RefCell<VirtRx<'a>>) -> Self {
        let n = w.cli.len();
        let rx = w.drv.rx_enabled();
        let mut sim = Sim::new();
        let drv = SerialDriver::new(&w.dev, mapped(&w.drv), Channel::new(D_IRQ)).unwrap();
        let driver = sim.add_pd("serial_driver", 200, false, drv);
        sim.irq(driver, D_IRQ).unwrap();
        let virt_tx = sim.add_pd("serial_virt_tx", 199, false, Shared::new(vt));
        sim.channel(driver, D_TX, virt_tx, V_DRIVER).unwrap();
        sim.init(virt_tx, || vt.borrow_mut().init());
        let virt_rx = sim.add_pd("serial_virt_rx", 198, false, Shared::new(vr));
        if rx {
            sim.channel(driver, D_RX, virt_rx, V_DRIVER).unwrap();
        }
        let clients = (0..n)
            .map(|c| {
                // SAFETY: the regions live in `w`, outliving the sim; one handle per role.
                let token = unsafe { lions_os::Mapped::check(&w.cli[c]) }.ok();
                let client = token.and_then(|t| SerialClient::new(t).ok());
                let pd = ClientPd {
                    c,
                    w,
                    client,
                    pending: Vec::new(),
                };
                let pd = sim.add_pd(&format!("client{c}"), 1, false, pd);
                let id = u8::try_from(1 + c).unwrap();
                sim.channel(pd, C_TX, virt_tx, id).unwrap();
                if rx {
                    sim.channel(pd, C_RX, virt_rx, id).unwrap();
                }
                sim.irq(pd, C_CMD).unwrap();
                pd
            })
            .collect();
        sim.record_trace(true);
        let mut rig = Self {
            sim,
            w,
            driver,
            virt_tx,
            virt_rx,
            clients,
        };
        rig.settle();
        rig
    }

    /// Run until nothing moves: clock the device (FIFO room, IRQ while it has work) and step.
    fn settle(&mut self) {
        let dev = &self.w.dev;
        for _ in 0..10_000 {
            self.sim.run_until_idle(100_000).unwrap();
            let tx = dev.tx_irq.get();
            let rx = dev.rx_irq.get() && !dev.input.borrow().is_empty();
            if !tx && !rx {
                assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
                return;
            }
            dev.room.set(self.w.fifo);
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        panic!("the subsystem never settled");
    }

    fn cmd(&mut self, c: usize, cmd: Cmd) {
        if let Cmd::Write(bytes) = &cmd {
            let mut sent = self.w.sent.borrow_mut();
            for &b in bytes {
                if b == b'\n' {
                    sent[c].push(b'\r');
                }
                sent[c].push(b);
            }
        }
        self.w.scripts.borrow_mut()[c].push_back(cmd);
        self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
    }

    fn type_input(&mut self, bytes: &[u8]) {
        self.w.dev.input.borrow_mut().extend(bytes);
        self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        self.settle();
    }

    /// Notifications `from` sent to `to` (on any channel) since the trace started.
    fn notes(&self, from: PdId, to: PdId) -> usize {
        self.sim
            .trace()
            .iter()
            .filter(|e| matches!(e, Event::Notify { from: f, to: t, .. } if *f == from && *t == to))
            .count()
    }

    fn output(&self) -> Vec<u8> {
        self.w.dev.out.borrow().clone()
    }
}

/// The banner `init` writes: begin string (Rx on), then the legend (colour on).
fn banner(o: &Opts) -> Vec<u8> {
    let mut b = Vec::new();
    if o.rx {
        b.extend_from_slice(BEGIN);
    }
    if o.colour {
        for c in 0..o.clients {
            b.extend_from_slice(&colour_code(c));
            b.extend_from_slice(format!("client{c}").as_bytes());
            b.extend_from_slice(b"\x1b[0m ");
        }
        b.extend_from_slice(b"\r\n");
    }
    b
}

/// Split coloured output into (client, bytes) segments; panics on anything that is not a
/// well-formed `ESC[3Xm … ESC[0m` segment.
fn segments(mut out: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut segs = Vec::new();
    while !out.is_empty() {
        assert!(
            out.len() >= 9 && out.starts_with(b"\x1b[3") && out[4] == b'm',
            "not a colour start: {:?}",
            String::from_utf8_lossy(out)
        );
        let c = usize::from(out[3] - b'1');
        let end = out
            .windows(4)
            .position(|w| w == b"\x1b[0m")
            .expect("colour reset");
        segs.push((c, out[5..end].to_vec()));
        out = &out[end + 4..];
    }
    segs
}

fn line(c: usize, i: usize, len: usize) -> Vec<u8> {
    let mut l = format!("c{c} line {i} ").into_bytes();
    let fill = b'a' + u8::try_from((c * 7 + i) % 26).unwrap();
    l.resize(len.max(l.len()), fill);
    l.push(b'\n');
    l
}

#[test]
fn banner_legend_and_coloured_whole_lines() {
    let o = Opts::default();
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    assert_eq!(rig.output(), banner(&o), "banner at init");
    rig.cmd(0, Cmd::Write(b"hello from 0\n".to_vec()));
    rig.cmd(1, Cmd::Write(b"hello from 1\n".to_vec()));
    rig.settle();
    let out = rig.output();
    let segs = segments(&out[banner(&o).len()..]);
    assert_eq!(
        segs,
        vec![
            (0, b"hello from 0\r\n".to_vec()),
            (1, b"hello from 1\r\n".to_vec())
        ]
    );
    assert!(
        out.ends_with(b"\x1b[32mhello from 1\r\n\x1b[0m"),
        "client 1 is green"
    );
}

#[test]
fn no_colour_no_rx_means_no_banner() {
    let o = Opts {
        colour: false,
        rx: false,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    assert!(rig.output().is_empty());
    rig.cmd(1, Cmd::Write(b"plain\nno newline yet".to_vec()));
    rig.settle();
    assert_eq!(
        rig.output(),
        b"plain\r\n",
        "the partial line stays staged in the client"
    );
    rig.cmd(1, Cmd::Write(b"\n".to_vec()));
    rig.settle();
    assert_eq!(rig.output(), b"plain\r\nno newline yet\r\n");
}

/// Both clients write many lines at once through a 64-byte driver queue and a 4-byte device FIFO:
/// most transfers find no room, so clients wait in the FIFO.
#[test]
fn tiny_driver_queue_keeps_lines_whole_and_loses_nothing() {
    let o = Opts {
        clients: 3,
        driver_tx: 64,
        fifo: 4,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let skip = rig.output().len();
    for c in 0..3 {
        let mut text = Vec::new();
        for i in 0..12 {
            text.extend(line(c, i, 10 + (i * 5 + c * 3) % 35));
        }
        rig.cmd(c, Cmd::Write(text));
    }
    rig.settle();
    let out = rig.output();
    let segs = segments(&out[skip..]);
    for c in 0..3 {
        let mine: Vec<u8> = segs
            .iter()
            .filter(|(s, _)| *s == c)
            .flat_map(|(_, b)| b.clone())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&mine),
            String::from_utf8_lossy(&w.sent.borrow()[c]),
            "client {c}"
        );
    }
    // Every line (at most 46 bytes + 9 of colour, so it fits the driver queue) arrived whole:
    // the backlog of 12 lines was cut after line ends.
    for (c, seg) in &segs {
        assert!(seg.ends_with(b"\r\n"), "client {c}: {seg:?}");
    }
    assert!(
        segs.len() >= 3 * 12 / 2,
        "cut into many transfers: {}",
        segs.len()
    );
    // The FIFO path really ran: the virt waited for the driver, which signalled it.
    assert!(rig.notes(rig.driver, rig.virt_tx) > 0);
    assert_eq!(vt.borrow().waiting(), 0);
    assert_eq!(vt.borrow().faulty(), 0);
    // Clients were notified only because they asked (their queues were large: never).
    for c in 0..3 {
        assert_eq!(rig.notes(rig.virt_tx, rig.clients[c]), 0);
    }
}

/// A line longer than the whole driver queue moves in pieces, and no other client's output
/// comes between the pieces.
#[test]
fn batch_larger_than_driver_queue_is_split_but_not_interleaved() {
    let o = Opts {
        driver_tx: 32,
        fifo: 3,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let skip = rig.output().len();
    let long = line(0, 0, 150);
    rig.cmd(0, Cmd::Write(long.clone()));
    rig.cmd(1, Cmd::Write(b"short 1\nshort 2\n".to_vec()));
    rig.settle();
    let out = rig.output();
    let segs = segments(&out[skip..]);
    let owners: Vec<usize> = segs.iter().map(|(c, _)| *c).collect();
    let first_one = owners.iter().position(|&c| c == 1).unwrap();
    assert!(
        owners[..first_one].iter().all(|&c| c == 0) && owners[first_one..].iter().all(|&c| c == 1),
        "pieces of client 0's line are consecutive: {owners:?}"
    );
    assert!(first_one > 1, "the long line was split");
    let zero: Vec<u8> = segs[..first_one]
        .iter()
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(zero, w.sent.borrow()[0]);
    let one: Vec<u8> = segs[first_one..]
        .iter()
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(one, b"short 1\r\nshort 2\r\n");
}

/// A client that notifies while others wait for room queues behind them even when its own short
/// batch would fit now: service is in arrival order, nobody starves.
#[test]
fn waiting_clients_are_served_in_order() {
    let o = Opts {
        driver_tx: 64,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let skip = rig.output().len();
    // The device takes nothing until the test clocks it.
    w.dev.room.set(0);
    rig.cmd(0, Cmd::Write(line(0, 0, 40)));
    rig.sim.run_until_idle(1000).unwrap();
    // 42 + 9 bytes in the driver queue, 13 free: client 1's 32 + 9 do not fit.
    rig.cmd(1, Cmd::Write(line(1, 0, 30)));
    rig.sim.run_until_idle(1000).unwrap();
    assert_eq!(vt.borrow().waiting(), 1);
    // "z\r\n" + 9 = 12 bytes would fit, but client 1 came first.
    rig.cmd(0, Cmd::Write(b"z\n".to_vec()));
    rig.sim.run_until_idle(1000).unwrap();
    assert_eq!(vt.borrow().waiting(), 2);
    rig.settle();
    let out = rig.output();
    let owners: Vec<usize> = segments(&out[skip..]).iter().map(|(c, _)| *c).collect();
    assert_eq!(owners, [0, 1, 0]);
}

/// A client with a 16-byte queue writes far more: it waits for the virt's signal, losslessly.
#[test]
fn client_back_pressure_is_lossless_and_signalled() {
    let o = Opts {
        client_tx: 16,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let skip = rig.output().len();
    let mut text = Vec::new();
    for i in 0..20 {
        text.extend(line(0, i, 5 + i % 9));
    }
    rig.cmd(0, Cmd::Write(text));
    rig.cmd(1, Cmd::Write(b"one\n".to_vec()));
    rig.settle();
    let out = rig.output();
    let segs = segments(&out[skip..]);
    let zero: Vec<u8> = segs
        .iter()
        .filter(|(c, _)| *c == 0)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(zero, w.sent.borrow()[0]);
    let waits = rig.notes(rig.virt_tx, rig.clients[0]);
    assert!(waits > 0, "the virt signalled the waiting client");
    assert_eq!(
        rig.notes(rig.virt_tx, rig.clients[1]),
        0,
        "client 1 never waited, never notified"
    );
}

#[test]
fn notification_counts() {
    let o = Opts::default();
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    // At init: the Tx virt notified the driver once (the banner), nobody else notified anyone.
    assert_eq!(rig.notes(rig.virt_tx, rig.driver), 1);
    assert_eq!(rig.sim.stats(rig.driver).notifies_sent, 0);
    rig.sim.record_trace(true);
    rig.cmd(0, Cmd::Write(b"a\nb\n".to_vec()));
    rig.settle();
    // Two lines, published one by one: two client notifications; the virt moved both in one
    // transfer or two and notified the driver after each.
    assert_eq!(rig.notes(rig.clients[0], rig.virt_tx), 2);
    let to_driver = rig.notes(rig.virt_tx, rig.driver);
    assert!((1..=2).contains(&to_driver), "{to_driver}");
    assert_eq!(
        rig.notes(rig.virt_tx, rig.clients[0]),
        0,
        "client did not ask"
    );
    assert_eq!(
        rig.notes(rig.driver, rig.virt_tx),
        0,
        "virt did not wait for space"
    );
    assert_eq!(rig.sim.stats(rig.virt_rx).notifies_sent, 0);
    assert_eq!(rig.sim.stats(rig.clients[1]).wakeups, 0);
    // One IRQ per device round, each acknowledged (deferred) and each seen by `ack_irq`.
    let irqs = rig.sim.stats(rig.driver).irqs;
    assert_eq!(rig.sim.stats(rig.driver).irq_acks, irqs);
    assert_eq!(u64::from(w.dev.acks.get()), irqs);
    assert!(
        !w.dev.tx_irq.get(),
        "tx interrupt off once the queue is empty"
    );
}

#[test]
fn input_switching() {
    let o = Opts::default();
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    rig.sim.record_trace(true);
    rig.type_input(b"ab\x1c1\rcd");
    assert_eq!(w.received.borrow()[0], b"ab");
    assert_eq!(w.received.borrow()[1], b"cd");
    // Each client was notified once for its bytes; the driver was never asked to be.
    assert_eq!(rig.notes(rig.virt_rx, rig.clients[0]), 1);
    assert_eq!(rig.notes(rig.virt_rx, rig.clients[1]), 1);
    assert_eq!(rig.notes(rig.virt_rx, rig.driver), 0);
    rig.type_input(b"\x1c\x1cx\x1c7\ry\x1cz\x1c0\ref");
    assert_eq!(
        w.received.borrow()[1],
        b"cd\x1cxy",
        "escaped switch char, no client 7, bad sequence dropped"
    );
    assert_eq!(w.received.borrow()[0], b"abef");
    assert_eq!(vr.borrow().drops(), 0);
    // Switch sequences split across driver batches still work.
    rig.type_input(b"\x1c");
    rig.type_input(b"1");
    rig.type_input(b"\rq");
    assert_eq!(w.received.borrow()[1], b"cd\x1cxyq");
}

/// A keystroke per interrupt (the virt's one-character path): each character reaches the
/// current client with one notification; a switch sequence typed a key at a time still switches.
#[test]
fn one_keystroke_per_event() {
    let o = Opts::default();
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    rig.sim.record_trace(true);
    for &b in b"abc" {
        rig.type_input(&[b]);
    }
    assert_eq!(w.received.borrow()[0], b"abc");
    assert_eq!(
        rig.notes(rig.virt_rx, rig.clients[0]),
        3,
        "one per character"
    );
    for &b in b"\x1c1\rxy\x1c\x1cz" {
        rig.type_input(&[b]);
    }
    assert_eq!(w.received.borrow()[0], b"abc", "nothing more for client 0");
    assert_eq!(
        w.received.borrow()[1],
        b"xy\x1cz",
        "switched; escaped switch char"
    );
    assert_eq!(rig.notes(rig.virt_rx, rig.clients[1]), 4);
    assert_eq!(rig.notes(rig.virt_rx, rig.driver), 0);
    assert_eq!(vr.borrow().drops(), 0);
}

#[test]
fn input_for_a_full_client_queue_is_dropped_and_counted() {
    let o = Opts {
        client_rx: 16,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let input: Vec<u8> = (0..40u8).map(|i| b'A' + i % 26).collect();
    rig.type_input(&input);
    // The virt (priority 198) moves the whole batch before the client (priority 1) reads.
    assert_eq!(w.received.borrow()[0], &input[..16]);
    assert_eq!(vr.borrow().drops(), 24);
    rig.type_input(b"more");
    assert_eq!(&w.received.borrow()[0][16..], b"more");
}

/// An 8-byte driver Rx queue: the driver masks Rx, asks the virt for a signal, and resumes when
/// the virt drained the queue. Nothing is lost.
#[test]
fn driver_rx_back_pressure() {
    let o = Opts {
        driver_rx: 8,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let input: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
    rig.type_input(&input);
    assert_eq!(w.received.borrow()[0], input);
    assert!(
        rig.notes(rig.virt_rx, rig.driver) >= 12,
        "one signal per refill"
    );
    assert!(w.dev.rx_irq.get(), "Rx interrupt back on");
    assert!(w.dev.input.borrow().is_empty());
}

/// Client 1 corrupts its Tx queue's tail; the Tx virt marks it faulty and serves client 0.
#[test]
fn adversarial_tx_client_is_isolated() {
    let o = Opts::default();
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    let skip = rig.output().len();
    let hdr = w.client_tx[1].header();
    hdr.tail.store(
        hdr.head.load(Ordering::Relaxed).wrapping_add(100_000),
        Ordering::Relaxed,
    );
    rig.cmd(1, Cmd::Poke);
    rig.cmd(0, Cmd::Write(b"still here\n".to_vec()));
    rig.settle();
    assert!(!rig.sim.is_faulted(rig.virt_tx));
    assert_eq!(vt.borrow().faulty(), 0b10);
    // Client 1 goes on writing: ignored, and no notification goes back to it.
    rig.cmd(1, Cmd::Write(b"ignored\n".to_vec()));
    rig.cmd(0, Cmd::Write(b"and here\n".to_vec()));
    rig.settle();
    let out = rig.output();
    assert_eq!(
        segments(&out[skip..]),
        vec![
            (0, b"still here\r\n".to_vec()),
            (0, b"and here\r\n".to_vec())
        ]
    );
    assert_eq!(rig.notes(rig.virt_tx, rig.clients[1]), 0);
    assert!(rig.sim.faults().is_empty());
}

/// The FIFO's head client rewinds its tail while it waits: it is dropped from the FIFO as
/// faulty, and the client queued behind it is served.
#[test]
fn faulty_client_at_the_head_of_the_fifo() {
    let o = Opts {
        driver_tx: 32,
        fifo: 1,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    rig.settle();
    let skip = rig.output().len();
    // Client 1's line is longer than the driver queue: 23 bytes move, the rest waits.
    let long = line(1, 0, 60);
    rig.cmd(1, Cmd::Write(long));
    rig.sim.run_until_idle(10_000).unwrap();
    rig.cmd(0, Cmd::Write(b"zero\n".to_vec()));
    rig.sim.run_until_idle(10_000).unwrap();
    assert_eq!(vt.borrow().waiting(), 2, "client 0 queued behind client 1");
    w.client_tx[1].header().tail.store(0, Ordering::Relaxed);
    rig.settle();
    assert_eq!(vt.borrow().faulty(), 0b10);
    assert_eq!(vt.borrow().waiting(), 0);
    assert!(rig.sim.faults().is_empty());
    let out = rig.output();
    let segs = segments(&out[skip..]);
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(segs[0].0, 1);
    assert_eq!(segs[0].1, w.sent.borrow()[1][..23]);
    assert_eq!(segs[1], (0, b"zero\r\n".to_vec()));
}

/// Client 1 corrupts the head of its Rx queue (the index it owns); the Rx virt marks it faulty
/// when it next needs the head, and input for client 0 still flows.
#[test]
fn adversarial_rx_client_is_isolated() {
    let o = Opts {
        client_rx: 16,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    w.client_rx[1].header().head.store(12345, Ordering::Relaxed);
    rig.type_input(b"\x1c1\r0123456789abcdefXYZ");
    assert!(!rig.sim.is_faulted(rig.virt_rx));
    assert_eq!(vr.borrow().faulty(), 0b10);
    // 16 bytes staged before the head was needed, then X, Y, Z dropped.
    assert_eq!(vr.borrow().drops(), 3);
    rig.type_input(b"\x1c0\rok");
    assert_eq!(w.received.borrow()[0], b"ok");
    assert!(rig.sim.faults().is_empty());
}

/// Queues already inconsistent when the virts start: that client starts faulty in both virts
/// (the legend still names it), the other is served.
#[test]
fn inconsistent_queues_at_start() {
    let o = Opts::default();
    let w = World::new(&o);
    w.client_tx[0].header().tail.store(9999, Ordering::Relaxed);
    w.client_rx[0].header().tail.store(9999, Ordering::Relaxed);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    assert_eq!(vt.borrow().faulty(), 0b01);
    assert_eq!(vr.borrow().faulty(), 0b01);
    let mut rig = Rig::new(&w, &vt, &vr);
    assert_eq!(rig.output(), banner(&o));
    rig.cmd(1, Cmd::Write(b"fine\n".to_vec()));
    rig.type_input(b"lost\x1c1\rkept");
    assert_eq!(vr.borrow().drops(), 4);
    assert_eq!(w.received.borrow()[1], b"kept");
    assert!(rig.output().ends_with(b"\x1b[32mfine\r\n\x1b[0m"));
    assert!(rig.sim.faults().is_empty());
}

#[test]
fn tiny_driver_queue_turns_colour_off() {
    // 8 bytes cannot hold 9 bytes of colour: the virt sends plain bytes instead of stalling.
    let o = Opts {
        driver_tx: 8,
        fifo: 2,
        rx: false,
        ..Opts::default()
    };
    let w = World::new(&o);
    let vt = RefCell::new(w.virt_tx());
    let vr = RefCell::new(w.virt_rx());
    let mut rig = Rig::new(&w, &vt, &vr);
    assert!(rig.output().is_empty(), "no legend without colour");
    rig.cmd(0, Cmd::Write(b"abcdefghijklmnop\n".to_vec()));
    rig.cmd(1, Cmd::Write(b"xy\n".to_vec()));
    rig.settle();
    assert_eq!(rig.output(), b"abcdefghijklmnop\r\nxy\r\n");
}

/// Item 7 on the sim backend: the serial Tx virt (tiny driver queue, three clients writing
/// backlogs, so its private FIFO of waiting clients is in use) and the Rx virt (input typed in
/// batches) are killed after every step of the run and restarted as their binaries restart them
/// (`VirtTx::resume`, `VirtRx::new`). Nothing a client published or the driver received may be
/// lost or repeated, lines stay whole and the banner is not written again.
#[test]
fn restart_at_every_step_loses_no_byte() {
    let o = Opts {
        clients: 3,
        driver_tx: 64,
        fifo: 4,
        ..Opts::default()
    };
    let run = |kill: Option<(bool, usize)>| {
        let w = World::new(&o);
        let vt = RefCell::new(w.virt_tx());
        let vr = RefCell::new(w.virt_rx());
        let mut rig = Rig::new(&w, &vt, &vr);
        let skip = rig.output().len();
        for c in 0..3 {
            let text: Vec<u8> = (0..6)
                .flat_map(|i| line(c, i, 10 + (i * 5 + c * 3) % 35))
                .collect();
            rig.cmd(c, Cmd::Write(text));
        }
        let mut input: VecDeque<&[u8]> = [&b"ab"[..], b"\x1c1\rc", b"d\x1c", b"2\ref"].into();
        let (mut steps, mut killed) = (0, false);
        let dev = &w.dev;
        for _ in 0..10_000 {
            while rig.sim.step().is_some() {
                steps += 1;
                if let Some((tx, at)) = kill
                    && at == steps
                {
                    let pd = if tx { rig.virt_tx } else { rig.virt_rx };
                    rig.sim.fault(pd, "killed by the test");
                    killed = true;
                    if tx {
                        *vt.borrow_mut() = w.virt_tx();
                        rig.sim
                            .restart_with(pd, Shared::new(&vt), || vt.borrow_mut().resume());
                    } else {
                        *vr.borrow_mut() = w.virt_rx();
                        rig.sim
                            .restart_with(pd, Shared::new(&vr), || vr.borrow_mut().resume());
                    }
                }
            }
            if dev.input.borrow().is_empty()
                && let Some(b) = input.pop_front()
            {
                dev.input.borrow_mut().extend(b);
            }
            let tx = dev.tx_irq.get();
            let rx = dev.rx_irq.get() && !dev.input.borrow().is_empty();
            if !tx && !rx {
                break;
            }
            dev.room.set(w.fifo);
            rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
        }
        let out = rig.output()[skip..].to_vec();
        let received: Vec<Vec<u8>> = w.received.borrow().clone();
        let faults = rig.sim.faults().len();
        (
            out,
            received,
            steps,
            killed,
            faults,
            w.sent.borrow().clone(),
        )
    };
    let (out0, recv0, steps, _, faults, sent) = run(None);
    assert_eq!(faults, 0);
    assert_eq!(recv0[0], b"ab");
    assert_eq!(recv0[1], b"cd");
    assert_eq!(recv0[2], b"ef");
    let mut runs = 0;
    for tx in [true, false] {
        for at in 1..=steps {
            let (out, recv, _, killed, faults, _) = run(Some((tx, at)));
            let what = format!("{} killed after step {at}", if tx { "Tx" } else { "Rx" });
            assert!(killed && faults == 1, "{what}");
            let segs = segments(&out);
            for (c, sent) in sent.iter().enumerate() {
                let mine: Vec<u8> = segs
                    .iter()
                    .filter(|(s, _)| *s == c)
                    .flat_map(|(_, b)| b.clone())
                    .collect();
                assert_eq!(
                    String::from_utf8_lossy(&mine),
                    String::from_utf8_lossy(sent),
                    "{what}: client {c}'s output"
                );
            }
            if tx {
                assert_eq!(recv, recv0, "{what}: input");
            } else {
                // The client input goes to is policy state and starts afresh (a half-typed
                // switch sequence then arrives as data): every data byte arrives exactly once,
                // at some client.
                let all: Vec<u8> = recv.concat();
                let mut data: Vec<u8> =
                    all.iter().copied().filter(u8::is_ascii_lowercase).collect();
                data.sort_unstable();
                assert_eq!(data, b"abcdef", "{what}: input {recv:?}");
                assert!(
                    all.iter()
                        .all(|b| b.is_ascii_lowercase() || b"12\r\x1c".contains(b)),
                    "{what}: input {recv:?}"
                );
            }
            if !tx {
                assert_eq!(out, out0, "{what}: output unchanged by an Rx restart");
            }
            runs += 1;
        }
    }
    println!("serial restart runs: {runs} ({steps} steps each)");
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
