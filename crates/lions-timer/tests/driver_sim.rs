// SPDX-License-Identifier: BSD-2-Clause
//! The generic timer driver and the client library on the sim backend, with a model device whose
//! clock the test advances: several clients, replaced deadlines, ordering, simultaneous expiries,
//! saturating far-future deadlines, monotonic time, refused calls.
//!
//! Clients are scripted: each has an IRQ channel (`CMD`) the test raises to make it run the
//! commands queued for it, so every PPC comes from a real client PD.
#![allow(clippy::unwrap_used)]

use lions_os::sim::{End, PdId, Sim};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, OsError, OsErrorKind, get_mr, set_mr};
use lions_timer::driver::{REPLY_ERROR, REPLY_OK, ZeroFrequency};
use lions_timer::{Alarm, TimerClient, TimerDevice, TimerDriver, ns_to_ticks_ceil, ticks_to_ns};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// The driver's IRQ channel.
const IRQ: u8 = 0;
/// A client's channel to the driver.
const TIMER: u8 = 0;
/// A client's command "IRQ".
const CMD: u8 = 1;

/// A counter at `freq` Hz and one compare register; the IRQ line is high while the compare is
/// armed and reached.
struct Model {
    freq: u64,
    now: Cell<u64>,
    compare: Cell<Option<u64>>,
    acks: Cell<u32>,
}

impl Model {
    fn new(freq: u64) -> Self {
        Self {
            freq,
            now: Cell::new(0),
            compare: Cell::new(None),
            acks: Cell::new(0),
        }
    }

    fn line(&self) -> bool {
        self.compare.get().is_some_and(|c| c <= self.now.get())
    }
}

struct Dev<'a>(&'a Model);

impl TimerDevice for Dev<'_> {
    fn freq_hz(&self) -> u64 {
        self.0.freq
    }
    fn now_ticks(&mut self) -> u64 {
        self.0.now.get()
    }
    fn set_compare(&mut self, deadline: Option<u64>) {
        self.0.compare.set(deadline);
    }
    fn ack(&mut self) {
        self.0.acks.set(self.0.acks.get() + 1);
    }
}

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Set(u64),
    Now,
    /// Arm the client's [`Alarm`] for this instant.
    At(Option<u64>),
    Raw {
        label: u64,
        count: usize,
        mr0: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// Client `c` was notified at counter value `at`.
    Expired { c: usize, at: u64 },
    /// Client `c` read the time.
    Time { c: usize, ns: u64 },
    /// Client `c`'s raw call got this reply.
    Reply { c: usize, label: u64, count: usize },
}

struct World {
    model: Model,
    scripts: RefCell<Vec<VecDeque<Cmd>>>,
    log: RefCell<Vec<Ev>>,
    /// Per client: on each expiry, set these timeouts in order, from the notification handler
    /// (one is a periodic re-arm; two is an alarm that sets one and replaces it at once).
    on_expiry: RefCell<Vec<Vec<u64>>>,
}

struct Client<'a> {
    c: usize,
    w: &'a World,
    timer: TimerClient,
    alarm: Alarm,
}

impl Handler for Client<'_> {
    type Error = OsError;

    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        if set.contains(self.timer.channel()) {
            let at = self.w.model.now.get();
            self.w.log.borrow_mut().push(Ev::Expired { c: self.c, at });
            let rearm = self.w.on_expiry.borrow()[self.c].clone();
            for ns in rearm {
                self.timer.set_timeout(ns)?;
            }
        }
        if set.contains(Channel::new(CMD)) {
            let cmds: Vec<Cmd> = self.w.scripts.borrow_mut()[self.c].drain(..).collect();
            for cmd in cmds {
                match cmd {
                    Cmd::Set(ns) => self.timer.set_timeout(ns)?,
                    Cmd::At(at) => self.alarm.arm(at)?,
                    Cmd::Now => {
                        let ns = self.timer.time_now()?;
                        self.w.log.borrow_mut().push(Ev::Time { c: self.c, ns });
                    }
                    Cmd::Raw { label, count, mr0 } => {
                        set_mr(0, mr0);
                        let r = self
                            .timer
                            .channel()
                            .pp_call(MessageInfo::new(label, count))?;
                        let (label, count) = (r.label(), r.count());
                        self.w.log.borrow_mut().push(Ev::Reply {
                            c: self.c,
                            label,
                            count,
                        });
                    }
                }
            }
            Channel::new(CMD).irq_ack()?;
        }
        Ok(())
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    clients: Vec<PdId>,
}

impl<'a> Rig<'a> {
    /// The driver (priority 254, passive, IRQ on 0) and `n` clients; client `c` is channel `c + 1`
    /// of the driver.
    fn new(w: &'a World, n: usize) -> Self {
        w.scripts.borrow_mut().resize(n, VecDeque::new());
        w.on_expiry.borrow_mut().resize(n, Vec::new());
        let mut sim = Sim::new();
        let drv = TimerDriver::new(Dev(&w.model), Channel::new(IRQ)).unwrap();
        let driver = sim.add_pd("timer_driver", 254, true, drv);
        sim.irq(driver, IRQ).unwrap();
        let clients = (0..n)
            .map(|c| {
                let timer = TimerClient::new(Channel::new(TIMER));
                let pd = sim.add_pd(
                    &format!("client{c}"),
                    1,
                    false,
                    Client {
                        c,
                        w,
                        timer,
                        alarm: timer.alarm(),
                    },
                );
                let id = u8::try_from(c + 1).unwrap();
                sim.channel_with(End::new(pd, TIMER).pp().no_notify(), End::new(driver, id))
                    .unwrap();
                sim.irq(pd, CMD).unwrap();
                pd
            })
            .collect();
        let mut rig = Self {
            sim,
            w,
            driver,
            clients,
        };
        rig.settle();
        rig
    }

    /// Run until idle, raising the driver's IRQ while its line is high.
    fn settle(&mut self) {
        for _ in 0..100 {
            if self.w.model.line() {
                self.sim.inject_irq(self.driver, IRQ).unwrap();
            }
            self.sim.run_until_idle(1000).unwrap();
            if !self.w.model.line() {
                assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
                return;
            }
        }
        panic!("IRQ line stuck high");
    }

    fn cmd(&mut self, c: usize, cmd: Cmd) {
        self.w.scripts.borrow_mut()[c].push_back(cmd);
        self.sim.inject_irq(self.clients[c], CMD).unwrap();
        self.settle();
    }

    fn advance_to(&mut self, ticks: u64) {
        self.w.model.now.set(ticks);
        self.settle();
    }

    fn take_log(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.w.log.borrow_mut())
    }
}

fn world(freq: u64) -> World {
    World {
        model: Model::new(freq),
        scripts: RefCell::new(Vec::new()),
        log: RefCell::new(Vec::new()),
        on_expiry: RefCell::new(Vec::new()),
    }
}

const MS: u64 = 1_000_000;

#[test]
fn get_time_is_exact_and_monotonic() {
    let w = world(24_000_000);
    let mut rig = Rig::new(&w, 1);
    let mut last = 0;
    for ticks in [
        0,
        1,
        23,
        24,
        24_000_000,
        123_456_789_012,
        u64::MAX / 3,
        u64::MAX,
    ] {
        rig.advance_to(ticks);
        rig.cmd(0, Cmd::Now);
        let [Ev::Time { c: 0, ns }] = rig.take_log()[..] else {
            panic!("one time reading")
        };
        let exact = u128::from(ticks) * 1_000_000_000 / 24_000_000;
        assert_eq!(u128::from(ns), exact.min(u128::from(u64::MAX)));
        assert!(ns >= last, "monotonic");
        last = ns;
    }
}

#[test]
fn several_clients_expire_in_deadline_order_once_each() {
    let w = world(1_000_000); // 1 MHz: 1 tick = 1 us.
    let mut rig = Rig::new(&w, 3);
    rig.cmd(0, Cmd::Set(30 * MS));
    rig.cmd(1, Cmd::Set(10 * MS));
    rig.cmd(2, Cmd::Set(20 * MS));
    assert_eq!(w.model.compare.get(), Some(10_000), "earliest programmed");
    for t in (0..=40_000).step_by(2_500) {
        rig.advance_to(t);
    }
    assert_eq!(
        rig.take_log(),
        [
            Ev::Expired { c: 1, at: 10_000 },
            Ev::Expired { c: 2, at: 20_000 },
            Ev::Expired { c: 0, at: 30_000 }
        ]
    );
    assert_eq!(w.model.compare.get(), None, "nothing left to arm");
    assert_eq!(rig.sim.stats(rig.driver).irqs, 3);
    assert_eq!(w.model.acks.get(), 3);
    rig.advance_to(1_000_000);
    assert!(rig.take_log().is_empty(), "no second notification");
}

#[test]
fn a_new_timeout_replaces_the_clients_earlier_one() {
    let w = world(1_000_000_000);
    let mut rig = Rig::new(&w, 2);
    // Longer replaces shorter: nothing at 10 ms, and the compare moves from 10 ms to 50 ms.
    rig.cmd(0, Cmd::Set(10 * MS));
    assert_eq!(w.model.compare.get(), Some(10 * MS));
    rig.cmd(0, Cmd::Set(50 * MS));
    assert_eq!(
        w.model.compare.get(),
        Some(50 * MS),
        "the replaced earliest is gone"
    );
    // Shorter replaces longer: client 1 fires at 5 ms, not again at 100 ms.
    rig.cmd(1, Cmd::Set(100 * MS));
    assert_eq!(
        w.model.compare.get(),
        Some(50 * MS),
        "client 0's is still the earliest"
    );
    rig.cmd(1, Cmd::Set(5 * MS));
    assert_eq!(w.model.compare.get(), Some(5 * MS));
    for t in [5 * MS, 10 * MS, 49 * MS, 50 * MS, 100 * MS, 200 * MS] {
        rig.advance_to(t);
    }
    assert_eq!(
        rig.take_log(),
        [
            Ev::Expired { c: 1, at: 5 * MS },
            Ev::Expired { c: 0, at: 50 * MS }
        ]
    );
}

#[test]
fn simultaneous_expiries_share_one_irq() {
    let w = world(19_200_000);
    let mut rig = Rig::new(&w, 3);
    for c in 0..3 {
        rig.cmd(c, Cmd::Set(MS));
    }
    // One tick short of the deadline: nothing yet.
    let deadline = ns_to_ticks_ceil(MS, 19_200_000).unwrap();
    rig.advance_to(deadline - 1);
    assert!(rig.take_log().is_empty());
    // Far past it: all three, once, in one IRQ.
    rig.advance_to(deadline + 1_000_000);
    let log = rig.take_log();
    assert_eq!(log.len(), 3);
    for (c, ev) in log.iter().enumerate() {
        assert_eq!(
            *ev,
            Ev::Expired {
                c,
                at: deadline + 1_000_000
            }
        );
    }
    assert_eq!(rig.sim.stats(rig.driver).irqs, 1);
}

#[test]
fn deadlines_never_fire_early() {
    // 3 Hz: one tick is 333_333_333.3 ns; deadlines round up to whole ticks.
    let w = world(3);
    let mut rig = Rig::new(&w, 1);
    rig.advance_to(7);
    rig.cmd(0, Cmd::Now);
    let [Ev::Time { ns: start, .. }] = rig.take_log()[..] else {
        panic!()
    };
    rig.cmd(0, Cmd::Set(1)); // 1 ns: the next tick.
    rig.advance_to(8);
    let [Ev::Expired { at, .. }] = rig.take_log()[..] else {
        panic!("expired at the next tick")
    };
    assert!(ticks_to_ns(at, 3).unwrap() > start);
    // One nanosecond more than a tick needs two ticks; rounding down would fire after one, when
    // `time_now` has moved only 333_333_333 ns.
    rig.cmd(0, Cmd::Now);
    rig.cmd(0, Cmd::Set(333_333_334));
    rig.advance_to(9);
    let [Ev::Time { ns: set_at, .. }] = rig.take_log()[..] else {
        panic!("no expiry one tick later")
    };
    rig.advance_to(10);
    rig.cmd(0, Cmd::Now);
    let [Ev::Expired { at: 10, .. }, Ev::Time { ns: now, .. }] = rig.take_log()[..] else {
        panic!("expired at the second tick")
    };
    assert!(now - set_at >= 333_333_334, "{set_at} -> {now}");
}

#[test]
fn clients_rearm_from_their_notification_handler() {
    // The example's clock (every 1 s) and alarm (sets 2 s, replaces it by 300 ms, on each
    // expiry): the re-arm is a PPC made while handling the expiry notification.
    let w = world(1_000_000_000);
    let mut rig = Rig::new(&w, 2);
    w.on_expiry.borrow_mut()[0] = vec![1_000 * MS];
    w.on_expiry.borrow_mut()[1] = vec![2_000 * MS, 300 * MS];
    rig.cmd(0, Cmd::Set(1_000 * MS));
    rig.cmd(1, Cmd::Set(2_000 * MS));
    rig.cmd(1, Cmd::Set(300 * MS));
    for t in (0..=4_000).step_by(50) {
        rig.advance_to(t * MS);
    }
    let mut log = rig.take_log();
    log.sort_by_key(|e| match e {
        Ev::Expired { c, at } => (*at, *c),
        _ => (0, usize::MAX),
    });
    let clock: Vec<Ev> = (1..=4)
        .map(|k| Ev::Expired {
            c: 0,
            at: k * 1_000 * MS,
        })
        .collect();
    let alarm: Vec<Ev> = (1..=13)
        .map(|k| Ev::Expired {
            c: 1,
            at: k * 300 * MS,
        })
        .collect();
    let mut want: Vec<Ev> = clock.into_iter().chain(alarm).collect();
    want.sort_by_key(|e| match e {
        Ev::Expired { c, at } => (*at, *c),
        _ => (0, usize::MAX),
    });
    // The alarm's replaced 2 s deadlines never fire: only multiples of 300 ms appear for it.
    assert_eq!(log, want);
    assert_eq!(
        rig.sim.stats(rig.driver).irqs,
        4 + 13 - 1,
        "3 s is one IRQ for both"
    );
}

#[test]
fn zero_timeout_expires_at_once() {
    let w = world(62_500_000);
    let mut rig = Rig::new(&w, 1);
    rig.advance_to(1_000);
    rig.cmd(0, Cmd::Set(0));
    assert_eq!(rig.take_log(), [Ev::Expired { c: 0, at: 1_000 }]);
}

#[test]
fn far_future_deadlines_saturate_and_do_not_block_others() {
    let w = world(10_000_000_000);
    let mut rig = Rig::new(&w, 2);
    rig.advance_to(u64::MAX - 1_000);
    // u64::MAX ns at 10 GHz overflows the tick count; now + that saturates at u64::MAX.
    rig.cmd(0, Cmd::Set(u64::MAX));
    assert_eq!(w.model.compare.get(), Some(u64::MAX));
    // A short timeout of another client is programmed first and fires.
    rig.cmd(1, Cmd::Set(10)); // 100 ticks.
    assert_eq!(w.model.compare.get(), Some(u64::MAX - 900));
    rig.advance_to(u64::MAX - 900);
    assert_eq!(
        rig.take_log(),
        [Ev::Expired {
            c: 1,
            at: u64::MAX - 900
        }]
    );
    // The saturated deadline is still armed and not wrapped into the past.
    assert_eq!(w.model.compare.get(), Some(u64::MAX));
    rig.advance_to(u64::MAX - 1);
    assert!(rig.take_log().is_empty());
    rig.advance_to(u64::MAX);
    assert_eq!(rig.take_log(), [Ev::Expired { c: 0, at: u64::MAX }]);
}

#[test]
fn refused_calls_get_an_error_reply_and_change_nothing() {
    let w = world(1_000_000);
    let mut rig = Rig::new(&w, 1);
    for (label, count) in [(2, 1), (7, 0), (u64::from(u32::MAX), 3), (1, 0)] {
        rig.cmd(
            0,
            Cmd::Raw {
                label,
                count,
                mr0: 5,
            },
        );
        assert_eq!(
            rig.take_log(),
            [Ev::Reply {
                c: 0,
                label: REPLY_ERROR,
                count: 0
            }],
            "label {label} count {count}"
        );
        assert_eq!(w.model.compare.get(), None);
    }
    rig.cmd(
        0,
        Cmd::Raw {
            label: 1,
            count: 1,
            mr0: 5_000,
        },
    );
    assert_eq!(
        rig.take_log(),
        [Ev::Reply {
            c: 0,
            label: REPLY_OK,
            count: 0
        }]
    );
    assert_eq!(w.model.compare.get(), Some(5));
    assert!(!rig.sim.is_faulted(rig.driver));
}

#[test]
fn spurious_irq_is_acked_and_notifies_nobody() {
    let w = world(1_000_000);
    let mut rig = Rig::new(&w, 1);
    rig.cmd(0, Cmd::Set(10 * MS));
    rig.sim.inject_irq(rig.driver, IRQ).unwrap();
    rig.settle();
    assert!(rig.take_log().is_empty());
    assert_eq!(rig.sim.stats(rig.driver).irq_acks, 1);
    assert_eq!(w.model.compare.get(), Some(10_000), "deadline kept");
}

#[test]
fn zero_frequency_is_refused() {
    let m = Model::new(0);
    assert_eq!(
        TimerDriver::new(Dev(&m), Channel::new(0)).err(),
        Some(ZeroFrequency)
    );
}

#[test]
fn client_reports_a_refusal_as_an_error() {
    let got = RefCell::new(None);
    let mut sim = Sim::new();
    struct Refuser;
    impl Handler for Refuser {
        type Error = OsError;
        fn notified(&mut self, _: ChannelSet) -> Result<(), OsError> {
            Ok(())
        }
        fn protected(&mut self, _: Channel, _: MessageInfo) -> Result<MessageInfo, OsError> {
            Ok(MessageInfo::new(REPLY_ERROR, 0))
        }
    }
    let server = sim.add_pd("server", 10, true, Refuser);
    let client = sim.add_pd("client", 1, false, lions_os::NullHandler);
    sim.channel_with(End::new(client, 3).pp(), End::new(server, 0))
        .unwrap();
    sim.init(client, || -> Result<(), OsError> {
        let t = TimerClient::new(Channel::new(3));
        *got.borrow_mut() = Some((t.time_now(), t.set_timeout(1), get_mr(0)));
        Ok(())
    });
    sim.start();
    let (now, set, _) = got.borrow_mut().take().unwrap();
    for r in [now.map(|_| ()), set] {
        let e = r.unwrap_err();
        assert_eq!(
            (e.kind, e.channel),
            (OsErrorKind::Failed, Some(Channel::new(3)))
        );
        assert_eq!(e.pd(), "client");
    }
}

#[test]
fn client_from_config() {
    let cfg = lions_timer::TimerClientConfig::new(4);
    assert_eq!(cfg.magic, *b"sDDF\x06");
    assert_eq!(
        TimerClient::from_config(&cfg).map(|c| c.channel()),
        Some(Channel::new(4))
    );
    let bad = lions_timer::TimerClientConfig::new(62);
    assert_eq!(TimerClient::from_config(&bad), None);
}

/// An alarm re-arms only when its deadline moves, for the instant asked (relative to now), and
/// a past deadline expires at once.
#[test]
fn an_alarm_arms_only_when_its_deadline_moves() {
    let w = world(1_000_000_000);
    let mut rig = Rig::new(&w, 1);
    let ppcs = |rig: &Rig<'_>| rig.sim.stats(rig.clients[0]).ppcs_made;
    rig.cmd(0, Cmd::At(Some(500 * MS)));
    assert_eq!(ppcs(&rig), 2, "time_now and set_timeout");
    rig.advance_to(200 * MS);
    rig.cmd(0, Cmd::At(Some(500 * MS)));
    assert_eq!(ppcs(&rig), 2, "the same deadline: no call");
    rig.cmd(0, Cmd::At(None));
    rig.cmd(0, Cmd::At(Some(700 * MS)));
    assert_eq!(ppcs(&rig), 4, "a new deadline");
    rig.advance_to(500 * MS);
    assert_eq!(rig.take_log(), [], "the replaced deadline does not fire");
    rig.advance_to(700 * MS);
    assert_eq!(rig.take_log(), [Ev::Expired { c: 0, at: 700 * MS }]);
    rig.cmd(0, Cmd::At(Some(100 * MS)));
    assert_eq!(
        rig.take_log(),
        [Ev::Expired { c: 0, at: 700 * MS }],
        "past: at once"
    );
}
