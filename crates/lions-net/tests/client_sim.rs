// SPDX-License-Identifier: BSD-2-Clause
//! The client library on the sim backend: two client PDs, each a [`NetStack`] over its own
//! queues, connected back to back through a "wire" PD (standing for copier + virtualisers +
//! driver, see `client_common`), with the generic timer driver over a model clock the test
//! advances.
//!
//! Covered: ARP resolution, ICMP echo (auto-reply), UDP echo, TCP echo of a stream larger than
//! the socket buffers and the queues, lost frames recovered by TCP retransmission on timer
//! expiries, Tx back-pressure (a wire that holds frames), and the notification rule (the wire
//! notifies a client only when it asked, the client notifies the wire only when it asked).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod client_common;

use client_common::app::{
    App, Cmd, DHCP_LEASE, Ids, Log, UDP_ECHO, UDP_SLOTS, ip, leak, make_app, make_app_with, step,
};
use client_common::{BUFS, Mem, Wire, mac};
use lions_net::client::IpConfig;
use lions_os::sim::{End, PdId, Sim};
use lions_os::{Channel, ChannelSet, Handler};
use lions_timer::{TimerDevice, TimerDriver};
use smoltcp::wire::{IpAddress, IpEndpoint};
use std::cell::{Cell, RefCell};

// Client channels: the wire's Rx side, its Tx side, the timer (PPC), the test's command IRQ.
const C_RX: u8 = 0;
const C_TX: u8 = 1;
const C_TIMER: u8 = 2;
const C_CMD: u8 = 3;
// Timer driver: its IRQ; client c is 1 + c.
const T_IRQ: u8 = 0;
// The wire: client c's Rx side is 2c, its Tx side 2c + 1; the test's kick IRQ.
const W_KICK: u8 = 60;

const MS: u64 = 1_000_000;
const IDS: Ids = Ids {
    rx: C_RX,
    tx: C_TX,
    timer: C_TIMER,
};

fn rx_id(c: usize) -> u8 {
    u8::try_from(2 * c).unwrap()
}

fn tx_id(c: usize) -> u8 {
    u8::try_from(2 * c + 1).unwrap()
}

/// The model timer: a ns counter the test sets and a compare register.
#[derive(Default)]
struct Clock {
    now: Cell<u64>,
    compare: Cell<Option<u64>>,
}

struct ClockDev<'a>(&'a Clock);

impl TimerDevice for ClockDev<'_> {
    fn freq_hz(&self) -> u64 {
        1_000_000_000
    }
    fn now_ticks(&mut self) -> u64 {
        self.0.now.get()
    }
    fn set_compare(&mut self, deadline: Option<u64>) {
        self.0.compare.set(deadline);
    }
}

/// A client PD: the stack is made by its init (it reads the time), then every event runs it.
struct ClientPd<'w> {
    c: usize,
    app: &'w RefCell<Option<App>>,
    log: &'w Log,
}

impl Handler for ClientPd<'_> {
    type Error = lions_net::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let mut slot = self.app.borrow_mut();
        let app = slot.as_mut().unwrap();
        assert!(
            app.stack.handles(channels) || channels.contains(Channel::new(C_CMD)),
            "client{}: unexpected {channels}",
            self.c
        );
        let s = &app.s;
        let log = self.log;
        app.stack.process(|iface, set| step(log, s, iface, set))?;
        if channels.contains(Channel::new(C_CMD)) {
            Channel::new(C_CMD).irq_ack()?;
        }
        Ok(())
    }
}

/// The wire as a PD: pump on every notification, notify the clients that asked.
struct WirePd<'w>(&'w RefCell<Option<Wire<'static>>>);

impl Handler for WirePd<'_> {
    type Error = lions_os::OsError;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        let chans = self.0.borrow_mut().as_mut().unwrap().pump();
        for ch in chans {
            ch.notify()?;
        }
        if set.contains(Channel::new(W_KICK)) {
            Channel::new(W_KICK).irq_ack()?;
        }
        Ok(())
    }
}

struct Rig {
    sim: Sim<'static>,
    clock: &'static Clock,
    timer: PdId,
    wire_pd: PdId,
    clients: Vec<PdId>,
    logs: &'static [Log],
    apps: &'static [RefCell<Option<App>>],
    wire: &'static RefCell<Option<Wire<'static>>>,
}

impl Rig {
    fn new(n: usize) -> Self {
        Self::with_dhcp(n, None)
    }

    /// `n` clients; with `Some(c)`, client `c` takes its address by DHCP from client 0, which
    /// then serves DHCP.
    fn with_dhcp(n: usize, dhcp: Option<usize>) -> Self {
        let clock: &'static Clock = leak(Clock::default());
        let mems: &'static [Mem] = leak((0..n).map(|_| Mem::new()).collect::<Vec<_>>());
        let logs: &'static [Log] = leak((0..n).map(|_| Log::default()).collect::<Vec<_>>());
        let apps: &'static [RefCell<Option<App>>] =
            leak((0..n).map(|_| RefCell::new(None)).collect::<Vec<_>>());
        let wire: &'static RefCell<Option<Wire<'static>>> = leak(RefCell::new(None));
        let mut sim = Sim::new();
        let drv = TimerDriver::new(ClockDev(clock), Channel::new(T_IRQ)).unwrap();
        let timer = sim.add_pd("timer_driver", 254, true, drv);
        sim.irq(timer, T_IRQ).unwrap();
        let wire_pd = sim.add_pd("wire", 100, false, WirePd(wire));
        sim.irq(wire_pd, W_KICK).unwrap();
        let mut clients = Vec::new();
        for c in 0..n {
            let pd = sim.add_pd(
                &format!("client{c}"),
                99,
                false,
                ClientPd {
                    c,
                    app: &apps[c],
                    log: &logs[c],
                },
            );
            sim.channel(pd, C_RX, wire_pd, rx_id(c)).unwrap();
            sim.channel(pd, C_TX, wire_pd, tx_id(c)).unwrap();
            let t = u8::try_from(1 + c).unwrap();
            sim.channel_with(End::new(pd, C_TIMER).pp().no_notify(), End::new(timer, t))
                .unwrap();
            sim.irq(pd, C_CMD).unwrap();
            let app = &apps[c];
            let mem = &mems[c];
            sim.init(pd, move || {
                *app.borrow_mut() = Some(match dhcp {
                    Some(d) if d == c => make_app_with(c, mem, IDS, IpConfig::Dhcp, false),
                    Some(_) if c == 0 => {
                        let ipc = IpConfig::Static {
                            address: smoltcp::wire::Ipv4Cidr::new(ip(0), 24),
                            gateway: None,
                        };
                        make_app_with(c, mem, IDS, ipc, true)
                    }
                    _ => make_app(c, mem, IDS),
                });
                Ok::<(), String>(())
            });
            clients.push(pd);
        }
        sim.start();
        // The clients primed their Tx free queues in their init: now the wire can be made.
        *wire.borrow_mut() = Some(Wire::new(mems, rx_id, tx_id));
        let mut rig = Self {
            sim,
            clock,
            timer,
            wire_pd,
            clients,
            logs,
            apps,
            wire,
        };
        rig.settle();
        rig
    }

    fn wire(&self) -> std::cell::RefMut<'_, Wire<'static>> {
        std::cell::RefMut::map(self.wire.borrow_mut(), |w| w.as_mut().unwrap())
    }

    fn settle(&mut self) {
        self.sim.run_until_idle(100_000).unwrap();
        assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
    }

    fn cmd(&mut self, c: usize, cmd: Cmd) {
        self.logs[c].cmds.borrow_mut().push_back(cmd);
        self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
        self.settle();
    }

    /// Advance the clock to the next armed timeout and deliver it; false if none is armed.
    fn tick(&mut self) -> bool {
        let Some(t) = self.clock.compare.get() else {
            return false;
        };
        self.clock.now.set(self.clock.now.get().max(t));
        self.sim.inject_irq(self.timer, T_IRQ).unwrap();
        self.settle();
        true
    }

    /// Run timeouts until `done`, at most `limit_ns` of model time.
    fn run_until(&mut self, limit_ns: u64, mut done: impl FnMut(&Self) -> bool) {
        let end = self.clock.now.get() + limit_ns;
        while !done(self) {
            assert!(self.clock.now.get() < end, "not done within {limit_ns} ns");
            if !self.tick() {
                self.clock.now.set(self.clock.now.get() + MS);
                self.wire_kick();
            }
        }
    }

    /// Notify the wire (as if its peer had), to make it pump.
    fn wire_kick(&mut self) {
        self.sim.inject_irq(self.wire_pd, W_KICK).unwrap();
        self.settle();
    }
}

#[test]
fn arp_then_icmp_echo() {
    let mut rig = Rig::new(2);
    assert!(
        rig.wire().frames.is_empty(),
        "a static stack sends nothing by itself"
    );
    rig.cmd(
        1,
        Cmd::Ping {
            to: 0,
            seq: 7,
            data: b"lions ping".to_vec(),
        },
    );
    rig.run_until(2_000 * MS, |r| !r.logs[1].pongs.borrow().is_empty());
    assert_eq!(*rig.logs[1].pongs.borrow(), [(7, b"lions ping".to_vec())]);
    let w = rig.wire();
    // One ARP request (broadcast, delivered to client 0 only) and its reply, then the ping pair.
    assert_eq!(w.count_ethertype(0x0806), 2);
    let (from, req, to) = w.frames.iter().find(|f| f.1[12..14] == [8, 6]).unwrap();
    assert_eq!(
        (*from, &req[..6], to.as_slice()),
        (1, &[0xff; 6][..], &[0][..])
    );
    assert_eq!(w.count_ethertype(0x0800), 2);
    assert!(
        w.frames.iter().all(|f| f.1[6..12] == mac(f.0).0),
        "source MACs"
    );
    drop(w);
    // Client 0 learnt client 1's address from the request: its ping goes out without ARP.
    rig.cmd(
        0,
        Cmd::Ping {
            to: 1,
            seq: 8,
            data: vec![0xa5; 1000],
        },
    );
    rig.run_until(2_000 * MS, |r| !r.logs[0].pongs.borrow().is_empty());
    assert_eq!(*rig.logs[0].pongs.borrow(), [(8, vec![0xa5; 1000])]);
    assert_eq!(rig.wire().count_ethertype(0x0806), 2, "no further ARP");
}

#[test]
fn udp_echo_both_ways() {
    let mut rig = Rig::new(2);
    for i in 0..5u8 {
        rig.cmd(
            1,
            Cmd::Udp {
                to: 0,
                data: vec![i; 100 + usize::from(i)],
            },
        );
    }
    rig.run_until(2_000 * MS, |r| r.logs[1].udp_replies.borrow().len() == 5);
    let replies = rig.logs[1].udp_replies.borrow().clone();
    for (i, (from, data)) in (0u8..).zip(&replies) {
        assert_eq!(*from, IpEndpoint::new(IpAddress::Ipv4(ip(0)), UDP_ECHO));
        assert_eq!(*data, vec![i; 100 + usize::from(i)], "in order, intact");
    }
    assert_eq!(rig.logs[0].udp_echoed.get(), 5);
    rig.cmd(
        0,
        Cmd::Udp {
            to: 1,
            data: b"back".to_vec(),
        },
    );
    rig.run_until(2_000 * MS, |r| !r.logs[0].udp_replies.borrow().is_empty());
    assert_eq!(rig.logs[0].udp_replies.borrow()[0].1, b"back");
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn tcp_echo_of_a_stream_larger_than_buffers_and_queues() {
    let mut rig = Rig::new(2);
    rig.cmd(1, Cmd::Connect { to: 0 });
    let data = pattern(100_000);
    rig.cmd(1, Cmd::TcpSend(data.clone()));
    rig.run_until(60_000 * MS, |r| {
        r.logs[1].tcp_reply.borrow().len() >= data.len()
    });
    assert_eq!(*rig.logs[1].tcp_reply.borrow(), data);
    assert_eq!(rig.logs[0].tcp_echoed.get(), data.len() as u64);
    // More frames than the queues hold passed each way.
    let w = rig.wire();
    assert!(w.frames.iter().filter(|f| f.0 == 1).count() > 2 * usize::from(BUFS));
    assert_eq!(w.dropped, 0, "flow control kept every frame");
}

#[test]
fn tcp_recovers_lost_frames_by_retransmission() {
    let mut rig = Rig::new(2);
    rig.cmd(1, Cmd::Connect { to: 0 });
    // ARP request and reply, SYN, SYN-ACK, ACK.
    rig.run_until(2_000 * MS, |r| r.wire().frames.len() >= 5);
    // Cut the wire: what the client sends now is lost.
    rig.wire().cut = true;
    rig.cmd(1, Cmd::TcpSend(b"lost once".to_vec()));
    let lost = rig.wire().dropped;
    assert!(lost > 0, "the segment was dropped");
    rig.wire().cut = false;
    // Only the retransmission timer, armed on the timer driver, can bring it back.
    rig.run_until(10_000 * MS, |r| r.logs[1].tcp_reply.borrow().len() == 9);
    assert_eq!(*rig.logs[1].tcp_reply.borrow(), b"lost once");
    assert!(rig.sim.stats(rig.clients[1]).ppcs_made > 0);
}

#[test]
fn tx_back_pressure_waits_for_buffers_and_loses_nothing() {
    let mut rig = Rig::new(2);
    // Resolve ARP first.
    rig.cmd(
        1,
        Cmd::Udp {
            to: 0,
            data: b"warm".to_vec(),
        },
    );
    rig.run_until(2_000 * MS, |r| r.logs[1].udp_replies.borrow().len() == 1);
    // The wire stops taking frames: client 1 runs out of Tx buffers.
    rig.wire().hold_tx = true;
    let n = usize::from(BUFS) + UDP_SLOTS + 4;
    for i in 0..n {
        rig.cmd(
            1,
            Cmd::Udp {
                to: 0,
                data: vec![u8::try_from(i).unwrap(); 8],
            },
        );
    }
    // More datagrams than Tx buffers: the first BUFS fill every Tx buffer, UDP_SLOTS more wait
    // in the socket, the rest are refused by the socket; none is lost on a queue.
    let starved = rig.apps[1]
        .borrow()
        .as_ref()
        .unwrap()
        .stack
        .device()
        .stats()
        .tx_starved;
    assert!(starved > 0, "the device found no free Tx buffer");
    let rejected = rig.logs[1].udp_rejected.get();
    assert_eq!(rejected, 4);
    rig.wire().hold_tx = false;
    rig.wire_kick();
    let sent = 1 + (n as u64 - rejected);
    rig.run_until(5_000 * MS, |r| {
        r.logs[1].udp_replies.borrow().len() as u64 == sent
    });
    assert_eq!(rig.logs[0].udp_echoed.get(), sent);
    assert_eq!(rig.wire().dropped, 0);
}

#[test]
fn notifications_only_when_asked() {
    let mut rig = Rig::new(2);
    rig.cmd(1, Cmd::Connect { to: 0 });
    rig.cmd(1, Cmd::TcpSend(pattern(20_000)));
    rig.run_until(60_000 * MS, |r| {
        r.logs[1].tcp_reply.borrow().len() >= 20_000
    });
    let frames = rig.wire().frames.len() as u64;
    let wire = rig.sim.stats(rig.wire_pd);
    let c1 = rig.sim.stats(rig.clients[1]);
    let c1_frames = rig.wire().frames.iter().filter(|f| f.0 == 1).count() as u64;
    // Frames are batched between notifications, each way.
    assert!(
        c1.notifies_sent < c1_frames,
        "{} notifications for {c1_frames} frames",
        c1.notifies_sent
    );
    assert!(
        wire.notifies_sent < frames,
        "{} notifications for {frames} frames",
        wire.notifies_sent
    );
}

#[test]
fn dhcp_lease_configures_the_interface_and_it_serves() {
    let mut rig = Rig::with_dhcp(2, Some(1));
    let cidr = |r: &Rig| r.apps[1].borrow().as_ref().unwrap().stack.ipv4_cidr();
    assert_eq!(cidr(&rig), None, "no address before the lease");
    // DISCOVER, OFFER, REQUEST, ACK: driven by the DHCP socket's timers on the timer driver.
    // The stack sends nothing until it first runs (an application polls it in its init).
    rig.sim.inject_irq(rig.clients[1], C_CMD).unwrap();
    rig.settle();
    rig.run_until(30_000 * MS, |r| cidr(r).is_some());
    assert_eq!(
        cidr(&rig),
        Some(smoltcp::wire::Ipv4Cidr::new(DHCP_LEASE, 24))
    );
    assert_eq!(rig.logs[0].dhcp_served.get(), 2, "one offer, one ack");
    // The leased address works: client 1 echoes from it and client 0's echo finds it.
    rig.cmd(
        1,
        Cmd::Udp {
            to: 0,
            data: b"from a lease".to_vec(),
        },
    );
    rig.run_until(2_000 * MS, |r| !r.logs[1].udp_replies.borrow().is_empty());
    assert_eq!(rig.logs[1].udp_replies.borrow()[0].1, b"from a lease");
}
