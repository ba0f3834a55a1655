// SPDX-License-Identifier: BSD-2-Clause
//! The sim backend: coalescing, priorities, PPCs, deferred actions, rights, faults, IRQs, livelock
//! bound, and a lions-queue ring between two simulated PDs.

use lions_os::sim::{End, Event, PdStats, Region, Sim, SimError, SimFault};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, OsErrorKind, get_mr, set_mr};
use lions_queue::atomic::AtomicU32;
use lions_queue::signal::park;
use lions_queue::{Capacity, Consumer, Producer, PushError, QueueHeader, QueueMemory, Signal};
use std::cell::{Cell, RefCell};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// A handler made of two closures.
struct Fns<N, P>(N, P);

impl<N, P> Handler for Fns<N, P>
where
    N: FnMut(ChannelSet) -> R<()>,
    P: FnMut(Channel, MessageInfo) -> R<MessageInfo>,
{
    type Error = Box<dyn std::error::Error>;
    fn notified(&mut self, channels: ChannelSet) -> R<()> {
        (self.0)(channels)
    }
    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> R<MessageInfo> {
        (self.1)(channel, msg)
    }
}

fn on_notify(f: impl FnMut(ChannelSet) -> R<()>) -> impl Handler {
    Fns(f, |ch: Channel, _| {
        Err(format!("unexpected PPC on {ch}").into())
    })
}

fn on_ppc(f: impl FnMut(Channel, MessageInfo) -> R<MessageInfo>) -> impl Handler {
    Fns(
        |s: ChannelSet| Err(format!("unexpected notification {s}").into()),
        f,
    )
}

fn idle() -> impl Handler {
    on_notify(|_| Ok(()))
}

fn ch(i: u8) -> Channel {
    Channel::new(i)
}

fn set(ids: &[u8]) -> ChannelSet {
    ids.iter().map(|&i| ch(i)).collect()
}

#[test]
fn notifications_coalesce_into_one_wakeup() {
    let seen = RefCell::new(Vec::new());
    let mut sim = Sim::new();
    let a = sim.add_pd(
        "a",
        10,
        false,
        on_notify(|_| {
            ch(1).notify()?;
            ch(2).notify()?;
            ch(1).notify()?;
            Ok(())
        }),
    );
    let b = sim.add_pd(
        "b",
        20,
        true,
        on_notify(|s| {
            seen.borrow_mut().push(s);
            Ok(())
        }),
    );
    sim.channel(a, 1, b, 3).unwrap();
    sim.channel(a, 2, b, 4).unwrap();
    sim.irq(a, 0).unwrap();
    sim.init(a, || -> R<()> {
        for _ in 0..3 {
            ch(1).notify()?;
        }
        Ok(())
    });
    assert_eq!(sim.run_until_idle(10), Ok(1));
    assert_eq!(*seen.borrow(), [set(&[3])], "three notifies, one wake-up");
    assert_eq!(sim.stats(a).notifies_sent, 3);
    assert_eq!(sim.stats(b).wakeups, 1);

    sim.inject_irq(a, 0).unwrap();
    assert_eq!(sim.run_until_idle(10), Ok(2));
    assert_eq!(
        seen.borrow()[1],
        set(&[3, 4]),
        "two channels, one wake-up with both bits"
    );
    assert_eq!(sim.stats(b).wakeups, 2);
    assert!(sim.is_passive(b) && !sim.is_passive(a));
}

#[test]
fn higher_priority_runs_next_after_the_current_handler() {
    let order = RefCell::new(Vec::new());
    let log = |name: &'static str| {
        let order = &order;
        on_notify(move |_| {
            order.borrow_mut().push(name);
            Ok(())
        })
    };
    let mut sim = Sim::new();
    let low = sim.add_pd(
        "low",
        10,
        false,
        on_notify(|_| {
            order.borrow_mut().push("low start");
            ch(2).notify()?; // mid
            ch(1).notify()?; // high
            order.borrow_mut().push("low end");
            ch(0).irq_ack()?;
            Ok(())
        }),
    );
    let low2 = sim.add_pd("low2", 10, false, log("low2"));
    let high = sim.add_pd("high", 50, false, log("high"));
    let mid = sim.add_pd("mid", 30, false, log("mid"));
    sim.channel(low, 1, high, 1).unwrap();
    sim.channel(low, 2, mid, 1).unwrap();
    sim.irq(low, 0).unwrap();
    sim.irq(low2, 0).unwrap();
    // Raised before start: latched, delivered by the start-up acknowledgement.
    sim.inject_irq(low2, 0).unwrap();
    sim.inject_irq(low, 0).unwrap();
    assert_eq!(sim.step(), Some(low), "equal priority: lowest PdId first");
    assert_eq!(sim.step(), Some(high));
    assert_eq!(sim.step(), Some(mid));
    assert_eq!(sim.step(), Some(low2));
    assert_eq!(sim.step(), None);
    assert_eq!(
        *order.borrow(),
        ["low start", "low end", "high", "mid", "low2"],
        "run to completion, then by priority"
    );
}

#[test]
fn ppc_round_trip_carries_registers_and_label() {
    let got = RefCell::new(None);
    let mut sim = Sim::new();
    let client = sim.add_pd("client", 10, false, idle());
    let server = sim.add_pd(
        "server",
        20,
        true,
        on_ppc(|ch, msg| {
            assert_eq!(ch, Channel::new(7), "the callee sees its own channel id");
            assert_eq!((msg.label(), msg.count()), (3, 5));
            let args: Vec<u64> = (0..6).map(get_mr).collect();
            assert_eq!(args, [1, 2, 3, 4, 5, 0], "count registers copied, no more");
            for (i, a) in args.iter().enumerate().take(5) {
                set_mr(i, a * 100);
            }
            Ok(MessageInfo::new(42, 5))
        }),
    );
    sim.channel_with(End::new(client, 2).pp(), End::new(server, 7))
        .unwrap();
    sim.init(client, || -> R<()> {
        for i in 0..6 {
            set_mr(i, i as u64 + 1);
        }
        let reply = ch(2).pp_call(MessageInfo::new(3, 5))?;
        *got.borrow_mut() = Some((reply, (0..6).map(get_mr).collect::<Vec<_>>()));
        Ok(())
    });
    sim.record_trace(true);
    sim.start();
    let (reply, regs) = got.borrow_mut().take().unwrap();
    assert_eq!((reply.label(), reply.count()), (42, 5));
    assert_eq!(regs, [100, 200, 300, 400, 500, 6]);
    assert_eq!(sim.stats(client).ppcs_made, 1);
    assert_eq!(sim.stats(server).ppcs_served, 1);
    assert_eq!(
        sim.trace(),
        [Event::PpCall {
            from: client,
            channel: ch(2),
            to: server,
            label: 3
        }]
    );
    assert!(sim.faults().is_empty());
}

#[test]
fn deferred_actions_one_slot_end_of_event_nested_ppc() {
    let mut sim = Sim::new();
    let x = sim.add_pd("x", 5, false, idle());
    let c = sim.add_pd("c", 10, false, idle());
    let s = sim.add_pd(
        "s",
        20,
        false,
        on_ppc(|_, _| {
            ch(4).deferred_notify()?;
            Ok(MessageInfo::default())
        }),
    );
    sim.channel(c, 1, x, 1).unwrap();
    sim.channel(c, 2, x, 2).unwrap();
    sim.channel(s, 4, x, 4).unwrap();
    sim.channel_with(End::new(c, 3).pp(), End::new(s, 3))
        .unwrap();
    sim.init(c, || -> R<()> {
        ch(1).deferred_notify()?;
        ch(2).deferred_notify()?; // performs the first at once
        ch(3).pp_call(MessageInfo::default())?;
        Ok(())
    });
    sim.record_trace(true);
    assert_eq!(sim.run_until_idle(10), Ok(1));
    let notify = |from, i, to| Event::Notify {
        from,
        channel: ch(i),
        to,
    };
    assert_eq!(
        sim.trace(),
        [
            notify(c, 1, x),
            Event::PpCall {
                from: c,
                channel: ch(3),
                to: s,
                label: 0
            },
            notify(s, 4, x), // the callee's deferral, at the end of its `protected`
            notify(c, 2, x), // the caller's slot survived the nested call
            Event::Woken {
                pd: x,
                channels: set(&[1, 2, 4])
            },
        ]
    );
}

#[test]
fn rights_are_checked_against_the_declared_channels() {
    let errors = RefCell::new(Vec::new());
    let mut sim = Sim::new();
    let a = sim.add_pd("a", 10, false, idle());
    let b = sim.add_pd("b", 20, false, idle());
    sim.channel_with(End::new(a, 1).no_notify(), End::new(b, 1))
        .unwrap();
    sim.channel(a, 2, b, 2).unwrap();
    sim.irq(a, 5).unwrap();
    sim.init(a, || -> R<()> {
        let mut e = errors.borrow_mut();
        e.push(ch(1).notify().unwrap_err());
        e.push(ch(9).notify().unwrap_err());
        e.push(ch(5).notify().unwrap_err());
        e.push(ch(2).pp_call(MessageInfo::default()).unwrap_err());
        e.push(ch(2).irq_ack().unwrap_err());
        ch(2).notify()?;
        Ok(())
    });
    sim.init(b, || ch(1).notify());
    sim.run_until_idle(10).unwrap();
    let errors = errors.take();
    assert!(
        errors
            .iter()
            .all(|e| e.kind == OsErrorKind::NotPermitted && e.pd() == "a")
    );
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "a: notify on channel 1: not permitted by the system description",
            "a: notify on channel 9: not permitted by the system description",
            "a: notify on channel 5: not permitted by the system description",
            "a: pp_call on channel 2: not permitted by the system description",
            "a: irq_ack on channel 2: not permitted by the system description",
        ]
    );
    assert_eq!(sim.stats(a).notifies_sent, 1);
    assert_eq!(
        sim.stats(b).notifies_sent,
        1,
        "notify=false on a's end only"
    );
    assert_eq!(sim.stats(a).wakeups, 1);
}

#[test]
fn the_system_description_is_checked() {
    let mut sim = Sim::new();
    let lo = sim.add_pd("driver", 10, false, idle());
    let hi = sim.add_pd("virt", 20, false, idle());
    let err = sim
        .channel_with(End::new(hi, 1).pp(), End::new(lo, 1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "PPCs must be to protection domains of strictly higher priorities; channel with PPC \
         exists from virt (priority: 20) to driver (priority: 10)"
    );
    let same = sim.add_pd("peer", 10, false, idle());
    assert!(
        sim.channel_with(End::new(lo, 1).pp(), End::new(same, 1))
            .is_err(),
        "equal priority is refused too"
    );
    sim.channel(lo, 1, hi, 1).unwrap();
    assert_eq!(
        sim.channel(lo, 1, same, 2),
        Err(SimError::Config("driver: channel id 1 already used".into()))
    );
    assert!(sim.irq(hi, 1).is_err());
    assert!(sim.channel(lo, 62, hi, 3).is_err());
    assert!(sim.channel(lo, 3, lo, 4).is_err());
    assert!(sim.inject_irq(lo, 1).is_err(), "not an IRQ channel");
    assert_eq!(sim.pd("virt"), Some(hi));
    assert_eq!(sim.name(hi), "virt");
}

#[test]
fn faults_are_reported_and_a_restarted_pd_runs_again() {
    let round = Cell::new(0);
    let ppc_error = RefCell::new(None);
    let ok_seen = Cell::new(0);
    let mut sim = Sim::new();
    let src = sim.add_pd(
        "src",
        1,
        false,
        on_notify(|_| {
            round.set(round.get() + 1);
            for i in 1..=3 {
                ch(i).notify()?;
            }
            if round.get() == 2 {
                *ppc_error.borrow_mut() = ch(4).pp_call(MessageInfo::default()).err();
            }
            ch(0).irq_ack()?;
            Ok(())
        }),
    );
    let panicky = sim.add_pd("panicky", 30, false, on_notify(|_| panic!("boom")));
    let erring = sim.add_pd(
        "erring",
        20,
        false,
        on_notify(|_| {
            ch(1).deferred_notify()?; // dropped: the PD faults
            Err("bad descriptor".into())
        }),
    );
    let ok = sim.add_pd(
        "ok",
        10,
        false,
        on_notify(|_| {
            ok_seen.set(ok_seen.get() + 1);
            Ok(())
        }),
    );
    sim.irq(src, 0).unwrap();
    sim.channel(src, 1, panicky, 1).unwrap();
    sim.channel(src, 2, erring, 2).unwrap();
    sim.channel(src, 3, ok, 3).unwrap();
    sim.channel(erring, 1, ok, 1).unwrap();
    sim.channel_with(End::new(src, 4).pp(), End::new(panicky, 4))
        .unwrap();

    sim.inject_irq(src, 0).unwrap();
    assert_eq!(sim.run_until_idle(10), Ok(4));
    let fault = |pd: &str, cause: &str| SimFault {
        pd: pd.into(),
        cause: cause.into(),
    };
    assert_eq!(
        sim.faults(),
        [fault("panicky", "boom"), fault("erring", "bad descriptor")]
    );
    assert_eq!(ok_seen.get(), 1, "the others keep running");
    assert_eq!(
        sim.stats(ok).wakeups,
        1,
        "the faulted PD's deferral is dropped"
    );

    sim.inject_irq(src, 0).unwrap();
    assert_eq!(sim.run_until_idle(10), Ok(2));
    assert_eq!(sim.stats(panicky).dropped, 1);
    assert_eq!(sim.stats(erring).dropped, 1);
    assert_eq!(sim.stats(panicky).wakeups, 1);
    let e = ppc_error.borrow_mut().take().unwrap();
    assert_eq!(e.kind, OsErrorKind::PeerGone);
    assert_eq!(
        e.to_string(),
        "src: pp_call on channel 4: the peer is not running"
    );
    assert_eq!(ok_seen.get(), 2);

    sim.restart(panicky, idle());
    assert!(!sim.is_faulted(panicky) && sim.is_faulted(erring));
    sim.fault(ok, "watchdog");
    sim.inject_irq(src, 0).unwrap();
    assert_eq!(sim.run_until_idle(10), Ok(2));
    assert_eq!(sim.stats(panicky).wakeups, 2, "restarted PD runs again");
    assert_eq!(sim.stats(ok).dropped, 1, "injected fault");
    assert_eq!(sim.faults().last(), Some(&fault("ok", "watchdog")));
    assert_eq!(ok_seen.get(), 2);
}

#[test]
fn irqs_stay_pending_until_acked_without_duplicates() {
    let mut sim = Sim::new();
    let drv = sim.add_pd(
        "drv",
        50,
        false,
        on_notify(|s| {
            assert_eq!(s, set(&[0]));
            ch(0).deferred_irq_ack()?;
            Ok(())
        }),
    );
    sim.irq(drv, 0).unwrap();
    sim.record_trace(true);
    sim.start();
    for _ in 0..3 {
        sim.inject_irq(drv, 0).unwrap();
    }
    assert_eq!(sim.pending(drv), set(&[0]));
    assert_eq!(sim.step(), Some(drv));
    assert_eq!(
        sim.pending(drv),
        set(&[0]),
        "the IRQ raised while masked is delivered at the ack"
    );
    assert_eq!(sim.step(), Some(drv));
    assert_eq!(sim.step(), None, "two raised while masked are one IRQ");
    assert_eq!(
        sim.stats(drv),
        PdStats {
            wakeups: 2,
            irq_acks: 2,
            irqs: 2,
            ..PdStats::default()
        }
    );
    let irq = Event::Irq {
        pd: drv,
        channel: ch(0),
    };
    let ack = Event::IrqAck {
        pd: drv,
        channel: ch(0),
    };
    let woken = Event::Woken {
        pd: drv,
        channels: set(&[0]),
    };
    assert_eq!(sim.trace(), [irq, woken, ack, irq, woken, ack]);
}

#[test]
fn run_until_idle_bounds_a_livelock() {
    let mut sim = Sim::new();
    let bounce = || on_notify(|_| ch(1).notify().map_err(Into::into));
    let a = sim.add_pd("a", 10, false, bounce());
    let b = sim.add_pd("b", 10, false, bounce());
    sim.channel(a, 1, b, 1).unwrap();
    sim.init(a, || ch(1).notify());
    let err = sim.run_until_idle(100).unwrap_err();
    assert_eq!(
        err,
        SimError::Livelock {
            steps: 100,
            busy: vec!["b".into()]
        }
    );
    assert_eq!(err.to_string(), "not idle after 100 steps; pending: b");
    assert_eq!(sim.stats(a).wakeups + sim.stats(b).wakeups, 100);
}

#[test]
fn region_is_zeroed_and_page_aligned() {
    let r = Region::new(100);
    assert_eq!(r.len(), Region::PAGE);
    assert_eq!(r.as_ptr().as_ptr() as usize % Region::PAGE, 0);
    // SAFETY: the region is `len` bytes, owned by this test.
    let bytes = unsafe { std::slice::from_raw_parts(r.as_ptr().as_ptr(), r.len()) };
    assert!(bytes.iter().all(|&b| b == 0));
    assert_eq!(Region::new(4097).len(), 2 * Region::PAGE);
}

/// A net-style ring: indices, the consumer's "signal me" flag (data) and the producer's (space).
#[repr(C)]
struct Ring {
    tail: AtomicU32,
    head: AtomicU32,
    data_flag: AtomicU32,
    space_flag: AtomicU32,
}

// SAFETY: `head`/`tail` are fields; u64 entries start at 16, 8-aligned.
unsafe impl QueueHeader for Ring {
    type Index = u32;
    type Entry = u64;
    const ENTRIES_OFFSET: usize = 16;
    fn head(&self) -> &AtomicU32 {
        &self.head
    }
    fn tail(&self) -> &AtomicU32 {
        &self.tail
    }
}

const SLOTS: usize = 64;
const ITEMS: u64 = 10_000;

fn ring(region: &Region) -> QueueMemory<'_, Ring> {
    let cap = Capacity::new::<u32>(SLOTS as u64).expect("capacity");
    // SAFETY: the region outlives the handles; one producer and one consumer are made over it.
    unsafe { QueueMemory::inline(region.as_ptr(), region.len(), cap) }.expect("ring fits")
}

struct Source<'r> {
    tx: Producer<'r, u32, u64>,
    ring: &'r Ring,
    next: u64,
}

impl Handler for Source<'_> {
    type Error = Box<dyn std::error::Error>;
    fn notified(&mut self, s: ChannelSet) -> R<()> {
        if s.contains(ch(0)) {
            ch(0).irq_ack()?; // the kick
        }
        loop {
            let mut did_work = false;
            while self.next < ITEMS {
                match self.tx.push(self.next) {
                    Ok(()) => (self.next, did_work) = (self.next + 1, true),
                    Err(PushError::Full(_)) => break,
                    Err(PushError::Peer(e, _)) => return Err(e.into()),
                }
            }
            self.tx.publish();
            if Signal::new(&self.ring.data_flag).should_notify(did_work) {
                ch(1).notify()?;
            }
            let tx = &mut self.tx;
            if self.next == ITEMS
                || !park(Signal::new(&self.ring.space_flag), || {
                    !tx.is_full().unwrap_or(true)
                })
            {
                return Ok(());
            }
        }
    }
}

struct Sink<'r> {
    rx: Consumer<'r, u32, u64>,
    ring: &'r Ring,
    expect: u64,
}

impl Handler for Sink<'_> {
    type Error = Box<dyn std::error::Error>;
    fn notified(&mut self, _: ChannelSet) -> R<()> {
        loop {
            let mut did_work = false;
            while let Some(v) = self.rx.pop()? {
                if v != self.expect {
                    return Err(format!("got {v}, expected {}", self.expect).into());
                }
                (self.expect, did_work) = (self.expect + 1, true);
            }
            self.rx.release();
            if Signal::new(&self.ring.space_flag).should_notify(did_work) {
                ch(1).notify()?;
            }
            let rx = &mut self.rx;
            if !park(Signal::new(&self.ring.data_flag), || {
                !rx.is_empty().unwrap_or(false)
            }) {
                return Ok(());
            }
        }
    }
}

#[test]
fn ring_ping_pong_moves_every_item_with_predicted_notifications() {
    let region = Region::new(16 + 8 * SLOTS);
    let received = Cell::new(0);
    let mut sim = Sim::new();
    let mem = ring(&region);
    let shared = mem.header();
    let src = sim.add_pd(
        "src",
        10,
        false,
        Source {
            tx: mem.producer().unwrap(),
            ring: shared,
            next: 0,
        },
    );
    let mem = ring(&region);
    let sink = Sink {
        rx: mem.consumer().unwrap(),
        ring: shared,
        expect: 0,
    };
    // Report progress through a wrapper so the test can read it after the run.
    let dst = sim.add_pd("dst", 20, false, {
        let received = &received;
        let mut sink = sink;
        on_notify(move |s| {
            sink.notified(s)?;
            received.set(sink.expect);
            Ok(())
        })
    });
    sim.channel(src, 1, dst, 1).unwrap();
    sim.irq(src, 0).unwrap();
    sim.inject_irq(src, 0).unwrap();

    // Zeroed memory means both flags start "signal me". Each full batch of 64: src pushes, notifies
    // (the sink asked), parks on "full"; the sink drains, notifies (src asked), parks on "empty".
    // The last batch (10_000 = 156 * 64 + 16) does not fill the ring, so src does not park.
    let batches = ITEMS.div_ceil(SLOTS as u64);
    assert_eq!(batches, 157);
    let steps = sim.run_until_idle(1_000).unwrap();
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert_eq!(received.get(), ITEMS);
    assert_eq!(sim.stats(src).notifies_sent, batches);
    assert_eq!(sim.stats(dst).notifies_sent, batches - 1);
    assert_eq!(sim.stats(dst).wakeups, batches);
    assert_eq!(
        sim.stats(src).wakeups,
        1 + (batches - 1),
        "the kick, then space"
    );
    assert_eq!(steps as u64, 2 * batches);
}
