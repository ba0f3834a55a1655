// SPDX-License-Identifier: BSD-2-Clause
//! The `sim` backend: every PD of a system in one process, under a deterministic scheduler that
//! follows seL4 priorities on one core. For subsystem tests: whole pipelines, notification
//! counting, fault injection.
//!
//! ## Model
//!
//! - A PD is any [`Handler`] (boxed, type-erased) with a name, a priority and a passive flag. The
//!   handler is built by the caller, so building it *is* the PD's `init`; [`Sim::init`] adds an
//!   optional closure that runs as the PD at [`Sim::start`] (highest priority first), where it may
//!   notify, PPC and defer like libmicrokit's `init`. After a PD's `init`, each of its IRQ channels
//!   is acknowledged once, as libmicrokit does.
//! - Rights come from the declared channels ([`Sim::channel`], [`End`], [`Sim::irq`]), with the
//!   Microkit SDF meaning: `pp` on the caller's end, `notify` per direction, PPC only to a strictly
//!   higher priority. A refused operation returns [`OsError`] with [`OsErrorKind::NotPermitted`].
//! - A notification sets the channel's bit in the receiver's pending word (OR-coalesced). Each
//!   [`Sim::step`] runs the highest-priority PD with pending bits (ties: lowest [`PdId`]) and calls
//!   `notified` once with everything pending. Passive PDs are scheduled for notifications like any
//!   other (Microkit binds their scheduling context to their notification).
//! - A PPC runs the callee's `protected` at once, nested in the caller's handler, copying `count`
//!   message registers (120 per PD) to the callee and the reply's back.
//! - Every handler invocation has its own deferred slot ([`runtime::with_backend`]); the deferred
//!   action is performed when the handler returns (for a PPC: before the reply reaches the caller).
//! - An IRQ ([`Sim::inject_irq`]) is delivered as a notification on its channel and masked until
//!   `irq_ack`; one raised while masked stays latched (once) and is delivered at the ack.
//! - A handler that returns `Err` or panics faults its PD ([`SimFault`]): it receives nothing
//!   further, notifications to it are dropped and counted, PPCs into it fail with
//!   [`OsErrorKind::PeerGone`]. [`Sim::restart`] installs a new handler (component restart).
//!
//! ## Where it differs from seL4
//!
//! - Run to completion: a higher-priority PD signalled in the middle of a handler runs right after
//!   that handler returns, not preemptively at the signal. Every `init` runs before any event.
//! - A faulted callee makes the caller's PPC return `PeerGone` instead of blocking it forever.
//! - No child PDs (the `fault` entry point is never called), no budgets or periods, one core.

use crate::runtime::{self, Backend};
use crate::{Channel, ChannelSet, Handler, MAX_CHANNEL, MAX_MESSAGE_REGISTERS, MessageInfo};
use crate::{Op, OsError, OsErrorKind};
use std::cell::RefCell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub mod attack;
mod region;
mod shared;
mod types;

pub use region::Region;
pub(crate) use region::lookup;
pub use shared::{Shared, SharedError};
pub use types::{End, Event, PdId, PdStats, SimError, SimFault};

const CHANNELS: usize = MAX_CHANNEL as usize + 1;

/// A `Handler` with its error rendered as text.
trait Erased {
    fn notified(&mut self, set: ChannelSet) -> Result<(), String>;
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, String>;
}

impl<H: Handler> Erased for H {
    fn notified(&mut self, set: ChannelSet) -> Result<(), String> {
        Handler::notified(self, set).map_err(|e| e.to_string())
    }
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, String> {
        Handler::protected(self, ch, msg).map_err(|e| e.to_string())
    }
}

type Init<'a> = Box<dyn FnOnce() -> Result<(), String> + 'a>;

/// Where one channel id of a PD leads.
#[derive(Clone, Copy)]
struct Link {
    peer: usize,
    peer_id: u8,
    notify: bool,
    pp: bool,
}

struct Pd<'a> {
    priority: u8,
    passive: bool,
    /// `None` while the handler runs (it is taken out) or after a fault.
    handler: Option<Box<dyn Erased + 'a>>,
    init: Option<Init<'a>>,
    links: [Option<Link>; CHANNELS],
    irqs: u64,
    irq_masked: u64,
    irq_latched: u64,
    pending: u64,
    faulted: bool,
    mrs: [u64; MAX_MESSAGE_REGISTERS],
    stats: PdStats,
}

struct State<'a> {
    pds: Vec<Pd<'a>>,
    faults: Vec<SimFault>,
    trace: Option<Vec<Event>>,
    started: bool,
}

impl State<'_> {
    fn log(&mut self, e: Event) {
        if let Some(t) = &mut self.trace {
            t.push(e);
        }
    }

    /// Set `to`'s pending bit `id`, or drop it when `to` is faulted.
    fn signal(&mut self, to: usize, id: u8) {
        let pd = &mut self.pds[to];
        if pd.faulted {
            pd.stats.dropped += 1;
            self.log(Event::Dropped {
                to: PdId(to),
                channel: Channel::new(id),
            });
        } else {
            pd.pending |= 1 << id;
        }
    }

    /// Unmask IRQ `id` of `pd`, delivering a latched one.
    fn unmask(&mut self, pd: usize, id: u8) {
        let bit = 1 << id;
        let p = &mut self.pds[pd];
        if p.irq_latched & bit != 0 {
            p.irq_latched &= !bit;
            self.deliver_irq(pd, id);
        } else {
            p.irq_masked &= !bit;
        }
    }

    fn deliver_irq(&mut self, pd: usize, id: u8) {
        let p = &mut self.pds[pd];
        p.irq_masked |= 1 << id;
        if !p.faulted {
            p.stats.irqs += 1;
            self.log(Event::Irq {
                pd: PdId(pd),
                channel: Channel::new(id),
            });
        }
        self.signal(pd, id);
    }
}

/// A simulated system: PDs, channels, IRQs and a deterministic priority scheduler. Handlers may
/// borrow anything that outlives `'a` (shared [`Region`]s, recorders).
pub struct Sim<'a> {
    names: Vec<String>,
    st: RefCell<State<'a>>,
}

impl Default for Sim<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Sim<'a> {
    /// An empty system.
    pub fn new() -> Self {
        Self {
            names: Vec::new(),
            st: RefCell::new(State {
                pds: Vec::new(),
                faults: Vec::new(),
                trace: None,
                started: false,
            }),
        }
    }

    /// Add a PD running `handler` at `priority` (0..=254, higher runs first).
    ///
    /// # Panics
    /// If a PD of that name exists or the system has started.
    pub fn add_pd(
        &mut self,
        name: &str,
        priority: u8,
        passive: bool,
        handler: impl Handler + 'a,
    ) -> PdId {
        let st = self.st.get_mut();
        assert!(!st.started, "{name}: PDs are added before start");
        assert!(
            !self.names.iter().any(|n| n == name),
            "duplicate PD name {name}"
        );
        self.names.push(name.into());
        st.pds.push(Pd {
            priority,
            passive,
            handler: Some(Box::new(handler)),
            init: None,
            links: [None; CHANNELS],
            irqs: 0,
            irq_masked: 0,
            irq_latched: 0,
            pending: 0,
            faulted: false,
            mrs: [0; MAX_MESSAGE_REGISTERS],
            stats: PdStats::default(),
        });
        PdId(st.pds.len() - 1)
    }

    /// Run `init` as `pd` at [`start`](Self::start), before any event (`Err` or panic faults it).
    /// Set it before the system starts; a later one never runs.
    pub fn init<E: fmt::Display>(&mut self, pd: PdId, init: impl FnOnce() -> Result<(), E> + 'a) {
        self.st.get_mut().pds[pd.0].init = Some(Box::new(|| init().map_err(|e| e.to_string())));
    }

    /// A channel between `a` and `b` that both may notify and neither may PPC.
    pub fn channel(&mut self, a: PdId, a_id: u8, b: PdId, b_id: u8) -> Result<(), SimError> {
        self.channel_with(End::new(a, a_id), End::new(b, b_id))
    }

    /// A channel with the rights the two ends give. Refused like the Microkit tool refuses it: ids
    /// above 61 or already used, both ends in one PD, or `pp` towards a PD whose priority is not
    /// strictly higher.
    pub fn channel_with(&mut self, a: End, b: End) -> Result<(), SimError> {
        if a.pd == b.pd {
            return Err(SimError::Config(format!(
                "{}: channel to itself",
                self.name(a.pd)
            )));
        }
        for (caller, callee) in [(a, b), (b, a)] {
            self.check_id(caller.pd, caller.id)?;
            let st = self.st.get_mut();
            let (p, q) = (st.pds[caller.pd.0].priority, st.pds[callee.pd.0].priority);
            if caller.pp && q <= p {
                return Err(SimError::Config(format!(
                    "PPCs must be to protection domains of strictly higher priorities; channel \
                     with PPC exists from {} (priority: {p}) to {} (priority: {q})",
                    self.name(caller.pd),
                    self.name(callee.pd)
                )));
            }
        }
        let st = self.st.get_mut();
        for (from, to) in [(a, b), (b, a)] {
            st.pds[from.pd.0].links[usize::from(from.id)] = Some(Link {
                peer: to.pd.0,
                peer_id: to.id,
                notify: from.notify,
                pp: from.pp,
            });
        }
        Ok(())
    }

    /// Declare channel `id` of `pd` as an IRQ channel.
    pub fn irq(&mut self, pd: PdId, id: u8) -> Result<(), SimError> {
        self.check_id(pd, id)?;
        let p = &mut self.st.get_mut().pds[pd.0];
        p.irqs |= 1 << id;
        p.irq_masked |= 1 << id;
        Ok(())
    }

    fn check_id(&self, pd: PdId, id: u8) -> Result<(), SimError> {
        let st = self.st.borrow();
        let p = &st.pds[pd.0];
        if id > MAX_CHANNEL {
            Err(SimError::Config(format!(
                "{}: channel id {id} above 61",
                self.name(pd)
            )))
        } else if p.links[usize::from(id)].is_some() || p.irqs & (1 << id) != 0 {
            Err(SimError::Config(format!(
                "{}: channel id {id} already used",
                self.name(pd)
            )))
        } else {
            Ok(())
        }
    }

    /// Raise the IRQ on `pd`'s channel `id`: delivered now, or latched until the pending one is
    /// acknowledged (a second IRQ while one is latched is the same IRQ).
    pub fn inject_irq(&mut self, pd: PdId, id: u8) -> Result<(), SimError> {
        let st = self.st.get_mut();
        if id > MAX_CHANNEL || st.pds[pd.0].irqs & (1 << id) == 0 {
            return Err(SimError::Config(format!(
                "{}: channel {id} is not an IRQ",
                self.name(pd)
            )));
        }
        if st.pds[pd.0].irq_masked & (1 << id) != 0 {
            st.pds[pd.0].irq_latched |= 1 << id;
        } else {
            st.deliver_irq(pd.0, id);
        }
        Ok(())
    }

    /// Run every PD's `init` (highest priority first, ties by [`PdId`]) and acknowledge its IRQs
    /// once. Called by [`step`](Self::step) when needed; later calls do nothing.
    pub fn start(&mut self) {
        let st = self.st.get_mut();
        if st.started {
            return;
        }
        st.started = true;
        let mut order: Vec<usize> = (0..st.pds.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(st.pds[i].priority));
        for pd in order {
            if let Some(init) = self.st.get_mut().pds[pd].init.take()
                && let Err(cause) = self.run_as(pd, init)
            {
                self.mark_fault(pd, cause);
            }
            self.ack_all(pd);
        }
    }

    fn ack_all(&mut self, pd: usize) {
        let st = self.st.get_mut();
        let irqs = ChannelSet::from_bits(st.pds[pd].irqs);
        for ch in irqs.iter() {
            st.unmask(pd, ch.index());
        }
    }

    /// Run the highest-priority PD with pending notifications (ties: lowest [`PdId`]) once, with
    /// everything pending. Returns which PD ran, `None` when the system is idle.
    pub fn step(&mut self) -> Option<PdId> {
        self.start();
        let st = self.st.get_mut();
        let pd = (0..st.pds.len())
            .filter(|&i| st.pds[i].pending != 0)
            .max_by_key(|&i| (st.pds[i].priority, std::cmp::Reverse(i)))?;
        let p = &mut st.pds[pd];
        let set = ChannelSet::from_bits(std::mem::take(&mut p.pending));
        p.stats.wakeups += 1;
        st.log(Event::Woken {
            pd: PdId(pd),
            channels: set,
        });
        self.invoke(pd, |h| h.notified(set));
        Some(PdId(pd))
    }

    /// Step until idle; returns the number of steps. More than `max_steps` is a livelock.
    pub fn run_until_idle(&mut self, max_steps: usize) -> Result<usize, SimError> {
        for steps in 0..max_steps {
            if self.step().is_none() {
                return Ok(steps);
            }
        }
        let st = self.st.get_mut();
        let busy: Vec<String> = (0..st.pds.len())
            .filter(|&i| st.pds[i].pending != 0)
            .map(|i| self.names[i].clone())
            .collect();
        if busy.is_empty() {
            Ok(max_steps)
        } else {
            Err(SimError::Livelock {
                steps: max_steps,
                busy,
            })
        }
    }

    /// Fault `pd` with `cause` (fault injection).
    pub fn fault(&mut self, pd: PdId, cause: &str) {
        self.mark_fault(pd.0, cause.into());
    }

    /// Replace `pd`'s handler (component restart): the fault is cleared, pending notifications and
    /// message registers are reset and, once started, its IRQs are acknowledged once, as at start.
    /// Its [`init`](Self::init) closure does not run again: building the new handler is its init.
    pub fn restart(&mut self, pd: PdId, handler: impl Handler + 'a) {
        let p = &mut self.st.get_mut().pds[pd.0];
        p.handler = Some(Box::new(handler));
        p.faulted = false;
        p.pending = 0;
        p.mrs = [0; MAX_MESSAGE_REGISTERS];
        if self.st.get_mut().started {
            self.ack_all(pd.0);
        }
    }

    /// [`restart`](Self::restart) `pd` with `handler`, then run `resume` as `pd` (with its backend,
    /// so it may notify, PPC and defer): a restarted component's rebuild from shared memory and
    /// its first pass, as its `init` runs on a real board. `Err` or a panic faults it again.
    pub fn restart_with<E: fmt::Display>(
        &mut self,
        pd: PdId,
        handler: impl Handler + 'a,
        resume: impl FnOnce() -> Result<(), E>,
    ) {
        self.restart(pd, handler);
        if let Err(cause) = self.run_as(pd.0, || resume().map_err(|e| e.to_string())) {
            self.mark_fault(pd.0, cause);
        }
    }

    /// Every fault so far, oldest first.
    pub fn faults(&self) -> Vec<SimFault> {
        self.st.borrow().faults.clone()
    }

    /// Whether `pd` is faulted now.
    pub fn is_faulted(&self, pd: PdId) -> bool {
        self.st.borrow().pds[pd.0].faulted
    }

    /// `pd`'s counters.
    pub fn stats(&self, pd: PdId) -> PdStats {
        self.st.borrow().pds[pd.0].stats
    }

    /// `pd`'s pending notifications.
    pub fn pending(&self, pd: PdId) -> ChannelSet {
        ChannelSet::from_bits(self.st.borrow().pds[pd.0].pending)
    }

    /// `pd`'s name.
    pub fn name(&self, pd: PdId) -> &str {
        &self.names[pd.0]
    }

    /// Whether `pd` was declared passive.
    pub fn is_passive(&self, pd: PdId) -> bool {
        self.st.borrow().pds[pd.0].passive
    }

    /// The PD called `name`.
    pub fn pd(&self, name: &str) -> Option<PdId> {
        self.names.iter().position(|n| n == name).map(PdId)
    }

    /// Start (or stop and clear) recording the [`trace`](Self::trace).
    pub fn record_trace(&mut self, on: bool) {
        self.st.get_mut().trace = on.then(Vec::new);
    }

    /// Events recorded so far.
    pub fn trace(&self) -> Vec<Event> {
        self.st.borrow().trace.clone().unwrap_or_default()
    }

    fn mark_fault(&self, pd: usize, cause: String) {
        let mut st = self.st.borrow_mut();
        let p = &mut st.pds[pd];
        p.faulted = true;
        p.handler = None;
        p.pending = 0;
        st.faults.push(SimFault {
            pd: self.names[pd].clone(),
            cause,
        });
        st.log(Event::Fault { pd: PdId(pd) });
    }

    /// Run `f` as `pd`: its backend installed with a fresh deferred slot, the deferred action
    /// performed at the end, a panic caught. An error in any of these is the PD's fault cause.
    fn run_as<R>(&self, pd: usize, f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
        let backend = PdBackend { sim: self, pd };
        let out = catch_unwind(AssertUnwindSafe(|| {
            runtime::with_backend(&backend, || {
                let r = f();
                let deferred = runtime::take_deferred();
                let r = r?;
                if let Some(d) = deferred {
                    d.execute().map_err(|e| format!("deferred action: {e}"))?;
                }
                Ok(r)
            })
        }));
        out.unwrap_or_else(|panic| {
            Err(panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into()))
        })
    }

    /// Call `pd`'s handler through `f`; `None` if it is faulted, running, or faults now.
    fn invoke<R>(
        &self,
        pd: usize,
        f: impl FnOnce(&mut dyn Erased) -> Result<R, String>,
    ) -> Option<R> {
        let mut h = self.st.borrow_mut().pds[pd].handler.take()?;
        match self.run_as(pd, || f(&mut *h)) {
            Ok(r) => {
                self.st.borrow_mut().pds[pd].handler = Some(h);
                Some(r)
            }
            Err(cause) => {
                self.mark_fault(pd, cause);
                None
            }
        }
    }

    fn refuse(&self, pd: usize, op: Op, ch: Channel, kind: OsErrorKind) -> OsError {
        OsError::new(&self.names[pd], op, Some(ch), kind)
    }

    fn notify(&self, from: usize, ch: Channel) -> Result<(), OsError> {
        let mut st = self.st.borrow_mut();
        let Some(link) = st.pds[from].links[usize::from(ch.index())].filter(|l| l.notify) else {
            return Err(self.refuse(from, Op::Notify, ch, OsErrorKind::NotPermitted));
        };
        st.pds[from].stats.notifies_sent += 1;
        st.log(Event::Notify {
            from: PdId(from),
            channel: ch,
            to: PdId(link.peer),
        });
        st.signal(link.peer, link.peer_id);
        Ok(())
    }

    fn irq_ack(&self, pd: usize, ch: Channel) -> Result<(), OsError> {
        let mut st = self.st.borrow_mut();
        if st.pds[pd].irqs & (1 << ch.index()) == 0 {
            return Err(self.refuse(pd, Op::IrqAck, ch, OsErrorKind::NotPermitted));
        }
        st.pds[pd].stats.irq_acks += 1;
        st.log(Event::IrqAck {
            pd: PdId(pd),
            channel: ch,
        });
        st.unmask(pd, ch.index());
        Ok(())
    }

    fn ppcall(&self, from: usize, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        let link = {
            let mut st = self.st.borrow_mut();
            let Some(link) = st.pds[from].links[usize::from(ch.index())].filter(|l| l.pp) else {
                return Err(self.refuse(from, Op::PpCall, ch, OsErrorKind::NotPermitted));
            };
            let callee = &st.pds[link.peer];
            if callee.faulted {
                return Err(self.refuse(from, Op::PpCall, ch, OsErrorKind::PeerGone));
            }
            if callee.handler.is_none() {
                return Err(self.refuse(from, Op::PpCall, ch, OsErrorKind::Failed));
            }
            copy_mrs(&mut st.pds, from, link.peer, msg.count());
            st.pds[from].stats.ppcs_made += 1;
            st.pds[link.peer].stats.ppcs_served += 1;
            st.log(Event::PpCall {
                from: PdId(from),
                channel: ch,
                to: PdId(link.peer),
                label: msg.label(),
            });
            link
        };
        let reply = self
            .invoke(link.peer, |h| h.protected(Channel::new(link.peer_id), msg))
            .ok_or_else(|| self.refuse(from, Op::PpCall, ch, OsErrorKind::PeerGone))?;
        copy_mrs(
            &mut self.st.borrow_mut().pds,
            link.peer,
            from,
            reply.count(),
        );
        Ok(reply)
    }
}

fn copy_mrs(pds: &mut [Pd<'_>], from: usize, to: usize, n: usize) {
    for i in 0..n.min(MAX_MESSAGE_REGISTERS) {
        pds[to].mrs[i] = pds[from].mrs[i];
    }
}

/// The kernel operations of one simulated PD, installed for each of its handler calls.
struct PdBackend<'s, 'a> {
    sim: &'s Sim<'a>,
    pd: usize,
}

impl Backend for PdBackend<'_, '_> {
    fn pd_name(&self) -> &str {
        &self.sim.names[self.pd]
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        self.sim.notify(self.pd, ch)
    }
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        self.sim.irq_ack(self.pd, ch)
    }
    fn ppcall(&self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        self.sim.ppcall(self.pd, ch, msg)
    }
    fn mr(&self, i: usize) -> u64 {
        let st = self.sim.st.borrow();
        st.pds[self.pd].mrs.get(i).copied().unwrap_or(0)
    }
    fn set_mr(&self, i: usize, value: u64) {
        if let Some(m) = self.sim.st.borrow_mut().pds[self.pd].mrs.get_mut(i) {
            *m = value;
        }
    }
}
