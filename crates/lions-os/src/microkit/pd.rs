// SPDX-License-Identifier: BSD-2-Clause
//! The PD side of Microkit over any [`Kernel`]: the [`Backend`] (rights checked against the masks
//! the Microkit tool patched in) and the event loop. On seL4 the kernel is the real one
//! (`microkit::sel4`); the host tests drive the same code with a recording fake.

use super::abi::{Cptr, Event, cap, decode_badge, decode_info, encode_info};
use super::board;
use crate::channel::{Channel, ChannelSet, MAX_MESSAGE_REGISTERS, MessageInfo};
use crate::error::{Op, OsError, OsErrorKind};
use crate::handler::Handler;
use crate::runtime::{self, Backend, Deferred};

/// What a receive returned: the sender's badge and the message info word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The badge (see [`decode_badge`]).
    pub badge: u64,
    /// The message info word (see [`decode_info`]).
    pub info: u64,
}

/// The seL4 system calls a Microkit PD makes. Message registers live in one place that the
/// implementation moves to and from the kernel with every call: registers 0–3 travel in CPU
/// registers, the rest in the IPC buffer.
pub trait Kernel {
    /// `seL4_Send` of message `info` to `dest` (a Signal when `dest` is a notification and `info`
    /// is 0; an invocation without a reply when `dest` is a kernel object).
    fn send(&self, dest: Cptr, info: u64);
    /// `seL4_Call`: send `info` to `dest` and wait for the reply's info word (a kernel object's
    /// error comes back as the reply's label).
    fn call(&self, dest: Cptr, info: u64) -> u64;
    /// `seL4_Recv` on `src`, with `reply` as the reply object.
    fn recv(&self, src: Cptr, reply: Cptr) -> Received;
    /// `seL4_ReplyRecv`: reply `info` through `reply`, then receive on `src`.
    fn reply_recv(&self, src: Cptr, info: u64, reply: Cptr) -> Received;
    /// `seL4_NBSendRecv`: send `info` to `dest` without blocking, then receive on `src`.
    fn nb_send_recv(&self, dest: Cptr, info: u64, src: Cptr, reply: Cptr) -> Received;
    /// Message register `i` (`i <` [`MAX_MESSAGE_REGISTERS`]).
    fn mr(&self, i: usize) -> u64;
    /// Set message register `i` (`i <` [`MAX_MESSAGE_REGISTERS`]).
    fn set_mr(&self, i: usize, value: u64);
}

/// What the Microkit tool wrote into the PD's image: its name, whether it is passive, and the
/// channels it may use (bit n = channel n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdInfo {
    /// `microkit_name`: the name, NUL-padded.
    pub name: [u8; 64],
    /// `microkit_passive`.
    pub passive: bool,
    /// `microkit_irqs`: channels that are IRQs.
    pub irqs: u64,
    /// `microkit_notifications`: channels this PD may notify.
    pub notifications: u64,
    /// `microkit_pps`: channels this PD may PPC.
    pub pps: u64,
}

impl PdInfo {
    /// A PD called `name` (cut to 64 bytes) with no rights.
    pub fn named(name: &str) -> Self {
        let mut bytes = [0; 64];
        let n = name.len().min(64);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self {
            name: bytes,
            passive: false,
            irqs: 0,
            notifications: 0,
            pps: 0,
        }
    }

    /// The name up to its first NUL; "?" if it is not UTF-8 (a name cut inside a character).
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(64);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// One Microkit PD: its kernel and what the tool told it. Implements [`Backend`].
#[derive(Debug)]
pub struct MicrokitPd<K> {
    kernel: K,
    info: PdInfo,
}

fn has(mask: u64, ch: Channel) -> bool {
    mask & (1 << ch.index()) != 0
}

impl<K: Kernel> MicrokitPd<K> {
    /// The PD described by `info` over `kernel`.
    pub fn new(kernel: K, info: PdInfo) -> Self {
        Self { kernel, info }
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// What the tool wrote.
    pub fn info(&self) -> &PdInfo {
        &self.info
    }

    fn refused(&self, op: Op, ch: Channel) -> OsError {
        OsError::new(self.info.name(), op, Some(ch), OsErrorKind::NotPermitted)
    }

    /// The capability and message that perform `action`, after checking this PD's rights.
    pub fn prepare(&self, action: Deferred) -> Result<(Cptr, u64), OsError> {
        match action {
            Deferred::Notify(ch) if has(self.info.notifications, ch) => {
                Ok((cap::NOTIFICATION + u64::from(ch.index()), 0))
            }
            Deferred::Notify(ch) => Err(self.refused(Op::Notify, ch)),
            Deferred::IrqAck(ch) if has(self.info.irqs, ch) => Ok((
                cap::IRQ_HANDLER + u64::from(ch.index()),
                encode_info(MessageInfo::new(board::current::IRQ_ACK_IRQ, 0)),
            )),
            Deferred::IrqAck(ch) => Err(self.refused(Op::IrqAck, ch)),
        }
    }
}

impl<K: Kernel> Backend for MicrokitPd<K> {
    fn pd_name(&self) -> &str {
        self.info.name()
    }

    fn deferred_failed(&self, error: OsError) {
        crate::debug_println!("{error}");
    }

    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        let (dest, info) = self.prepare(Deferred::Notify(ch))?;
        self.kernel.send(dest, info);
        Ok(())
    }

    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        let (dest, info) = self.prepare(Deferred::IrqAck(ch))?;
        let reply = decode_info(self.kernel.call(dest, info));
        if reply.label() == 0 {
            Ok(())
        } else {
            Err(OsError::new(
                self.info.name(),
                Op::IrqAck,
                Some(ch),
                OsErrorKind::Failed,
            ))
        }
    }

    fn ppcall(&self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        if !has(self.info.pps, ch) {
            return Err(self.refused(Op::PpCall, ch));
        }
        let dest = cap::ENDPOINT + u64::from(ch.index());
        Ok(decode_info(self.kernel.call(dest, encode_info(msg))))
    }

    fn mr(&self, i: usize) -> u64 {
        if i < MAX_MESSAGE_REGISTERS {
            self.kernel.mr(i)
        } else {
            0
        }
    }

    fn set_mr(&self, i: usize, value: u64) {
        if i < MAX_MESSAGE_REGISTERS {
            self.kernel.set_mr(i, value);
        }
    }
}

/// A handler returned an error: the event it was handling, and the error. The PD stops.
#[derive(Debug)]
pub struct HandlerFailure<E> {
    /// The event.
    pub event: Event,
    /// The handler's error.
    pub error: E,
}

impl<E: core::fmt::Display> core::fmt::Display for HandlerFailure<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.event {
            Event::Ppc(ch) => write!(f, "protected({ch}) failed: {}", self.error),
            Event::Fault(child) => write!(f, "fault(child {}) failed: {}", child.0, self.error),
            Event::Notified(set) => write!(f, "notified({set}) failed: {}", self.error),
            Event::Invalid(badge) => write!(f, "badge {badge:#x}: {}", self.error),
        }
    }
}

/// Print a refused or failed kernel operation that has no caller to return to.
fn report(e: &OsError) {
    crate::debug_println!("{e}");
}

/// The Microkit event loop, as libmicrokit runs it:
///
/// 1. [`start`](Self::start) (after `init`): acknowledge every IRQ channel once;
/// 2. each [`step`](Self::step) waits for one event and hands it to the handler. The wait is
///    - `ReplyRecv` when the last event was a PPC (or a fault the handler answers), after
///      performing any deferred action at once;
///    - for a passive PD's first wait, `NBSendRecv` to the monitor (which then takes away the
///      PD's scheduling context), after performing any deferred action at once;
///    - `NBSendRecv` carrying the deferred action (a Signal or an `IRQAckIRQ` invocation) when
///      there is one: one system call instead of two;
///    - `Recv` otherwise.
///
/// Then the badge is decoded ([`decode_badge`]): a PPC calls `protected` (its result is the
/// reply), a fault calls `fault` (`Some` reply resumes the child), notifications call `notified`
/// once with every signalled channel. Must run inside
/// [`with_backend`](runtime::with_backend) for the same PD (the deferred slot is the runtime's).
#[derive(Debug)]
pub struct EventLoop<'a, K> {
    pd: &'a MicrokitPd<K>,
    reply: Option<MessageInfo>,
    report_to_monitor: bool,
}

impl<'a, K: Kernel> EventLoop<'a, K> {
    /// The loop of `pd`, once its `init` has run: acknowledges every IRQ channel (a failure is
    /// printed and the loop goes on).
    pub fn start(pd: &'a MicrokitPd<K>) -> Self {
        for ch in ChannelSet::from_bits(pd.info.irqs).iter() {
            if let Err(e) = pd.irq_ack(ch) {
                report(&e);
            }
        }
        Self {
            pd,
            reply: None,
            report_to_monitor: pd.info.passive,
        }
    }

    /// Perform a deferred action now (when it cannot ride on the receive).
    fn perform(action: Option<Deferred>) {
        if let Some(Err(e)) = action.map(Deferred::execute) {
            report(&e);
        }
    }

    /// The one system call that ends the previous event and waits for the next.
    fn wait(&mut self) -> Received {
        let k = &self.pd.kernel;
        let deferred = runtime::take_deferred();
        if let Some(reply) = self.reply.take() {
            Self::perform(deferred);
            return k.reply_recv(cap::INPUT, encode_info(reply), cap::REPLY);
        }
        if self.report_to_monitor {
            self.report_to_monitor = false;
            Self::perform(deferred);
            return k.nb_send_recv(cap::MONITOR_EP, 0, cap::INPUT, cap::REPLY);
        }
        if let Some(action) = deferred {
            match self.pd.prepare(action) {
                Ok((dest, info)) => return k.nb_send_recv(dest, info, cap::INPUT, cap::REPLY),
                Err(e) => report(&e),
            }
        }
        k.recv(cap::INPUT, cap::REPLY)
    }

    /// Wait for one event and handle it. An error of the handler ends the loop with the event.
    pub fn step<H: Handler>(&mut self, handler: &mut H) -> Result<(), HandlerFailure<H::Error>> {
        let got = self.wait();
        let msg = decode_info(got.info);
        let event = decode_badge(got.badge);
        let fail = |error| HandlerFailure { event, error };
        match event {
            Event::Ppc(ch) => self.reply = Some(handler.protected(ch, msg).map_err(fail)?),
            Event::Fault(child) => self.reply = handler.fault(child, msg).map_err(fail)?,
            Event::Notified(set) if set.is_empty() => {}
            Event::Notified(set) => handler.notified(set).map_err(fail)?,
            Event::Invalid(badge) => {
                crate::debug_println!("{}: ignored badge {badge:#x}", self.pd.info.name());
            }
        }
        Ok(())
    }
}

/// Run PD `pd`: install it as the backend, run `init`, then the [`EventLoop`] until a handler
/// fails; returns that failure (the caller reports it and stops the PD).
pub fn serve<K: Kernel, H: Handler>(
    pd: &MicrokitPd<K>,
    init: impl FnOnce() -> H,
) -> HandlerFailure<H::Error> {
    runtime::with_backend(pd, || {
        let mut handler = init();
        let mut event_loop = EventLoop::start(pd);
        loop {
            if let Err(failure) = event_loop.step(&mut handler) {
                return failure;
            }
        }
    })
}
