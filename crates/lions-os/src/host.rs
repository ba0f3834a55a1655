// SPDX-License-Identifier: BSD-2-Clause
//! The host board backend: each PD is a Linux process started by the `lions-host` launcher.
//!
//! [`run`] (what [`protection_domain!`](crate::protection_domain) expands to under the `host`
//! feature) reads the PD's [`manifest`] from the descriptor named in
//! [`manifest::MANIFEST_ENV`], maps every memory region at its SDF address with its SDF rights
//! (`MAP_SHARED | MAP_FIXED_NOREPLACE`; a write to a read-only map is a SIGSEGV), maps the
//! [control block](control), installs a panic hook, then runs the Microkit event loop:
//!
//! 1. run `init`, perform its deferred action, acknowledge every IRQ channel once;
//! 2. loop: serve one waiting PPC (calls go before notifications), else deliver the pending
//!    notification badge together with any IRQ whose host fd became readable, else announce the
//!    sleep in the control block (so only then do notifications write the eventfd, see
//!    [`control`]), re-check, and block on the PD's eventfd (and, with IRQ fds registered, `poll`
//!    them too); after every event perform the deferred action ([`runtime::take_deferred`]).
//!
//! Rights (notify, PPC, IRQ ack) are checked against the manifest; a refused operation is an
//! [`OsError`] naming the PD and the channel. A PPC into a PD that is gone, or dies while serving
//! the call, returns [`OsErrorKind::PeerGone`]; a notification to it is dropped.
//!
//! A host driver turns a host fd (TAP, timerfd, pty, ...) into an IRQ with [`register_irq_fd`] on
//! a channel the system description declares as an `<irq>`: when the fd is readable the channel is
//! delivered as a notification and the fd is not polled again until `irq_ack` re-arms it (level
//! semantics). An `<irq>` with no fd registered never fires.
//!
//! A PD process ends with [`EXIT_PANIC`] after a panic (the hook prints `"<pd>: panicked at
//! <location>: <message>"`), [`EXIT_HANDLER_ERROR`] when a handler returns an error, and
//! [`EXIT_STARTUP`] when it could not start (no manifest, a map refused, ...). The `stack_size`,
//! `passive`, `budget` and `period` attributes have no effect on the host board.

#[cfg(not(target_os = "linux"))]
compile_error!("the lions-os `host` backend runs on Linux only");

pub mod control;
pub mod manifest;
mod sys;

use crate::channel::{Channel, ChannelSet, MAX_CHANNEL, MAX_MESSAGE_REGISTERS, MessageInfo};
use crate::error::{Op, OsError, OsErrorKind};
use crate::handler::Handler;
use crate::runtime::{self, Backend};
use control::{ControlBlock, PdSlot, PdState, Stats, reply};
use core::cell::{Cell, RefCell};
use core::sync::atomic::Ordering;
use manifest::{MANIFEST_ENV, Manifest};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::ExitCode;

/// Exit status of a PD process that panicked.
pub const EXIT_PANIC: u8 = 101;
/// Exit status of a PD process whose handler returned an error.
pub const EXIT_HANDLER_ERROR: u8 = 102;
/// Exit status of a PD process that could not start.
pub const EXIT_STARTUP: u8 = 103;

/// A channel as the manifest describes it.
#[derive(Debug, Clone, Copy)]
struct Link {
    peer: usize,
    peer_id: u8,
    peer_wake: RawFd,
    notify: bool,
    pp: bool,
    peer_pp: bool,
}

/// A PD's state in its own process.
struct HostPd {
    name: String,
    index: usize,
    cb: ControlBlock,
    wake: RawFd,
    /// Our eventfd and the peers' (kept open for the process's life).
    _fds: Vec<OwnedFd>,
    links: [Option<Link>; MAX_CHANNEL as usize + 1],
    /// Channels that are IRQs.
    irq_mask: u64,
    /// Host fds registered as IRQ sources, with the poll events that raise them.
    irq_fds: RefCell<Vec<(u8, RawFd, i16)>>,
    /// IRQ channels acknowledged (their fd is polled).
    armed: Cell<u64>,
    /// IRQ channels whose fd fired and that await delivery.
    fired: Cell<u64>,
}

std::thread_local! {
    static HOST: Cell<Option<&'static HostPd>> = const { Cell::new(None) };
}

/// Run this process as the PD the launcher described, with the handler `init` returns. Returns
/// only on failure (the exit status says which, see the module docs).
pub fn run<H: Handler>(init: impl FnOnce() -> H) -> ExitCode {
    let pd = match HostPd::from_env() {
        Ok(pd) => pd,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_STARTUP);
        }
    };
    let pd: &'static HostPd = Box::leak(Box::new(pd));
    HOST.with(|h| h.set(Some(pd)));
    runtime::with_backend(pd, || pd.event_loop(init))
}

/// The fd conditions that raise a host IRQ (see [`register_irq_fd_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqInterest {
    /// Raise the IRQ when the fd is readable (`POLLIN`).
    pub readable: bool,
    /// Raise the IRQ when the fd is writable (`POLLOUT`).
    pub writable: bool,
}

impl IrqInterest {
    /// Readable only: what [`register_irq_fd`] uses.
    pub const READABLE: Self = Self {
        readable: true,
        writable: false,
    };

    fn events(self) -> i16 {
        (if self.readable { libc::POLLIN } else { 0 })
            | (if self.writable { libc::POLLOUT } else { 0 })
    }
}

/// Deliver channel `ch` (an `<irq>` of this PD) as a notification whenever `fd` is readable, until
/// the handler acknowledges it with `irq_ack` (then `fd` is polled again). Call it from `init` or
/// a handler; `fd` must stay open while registered (a closed fd is unregistered with a message).
/// Registering again replaces the channel's fd.
pub fn register_irq_fd(ch: Channel, fd: BorrowedFd<'_>) -> Result<(), OsError> {
    register_irq_fd_for(ch, fd, IrqInterest::READABLE)
}

/// As [`register_irq_fd`], raising the IRQ on the conditions in `interest` (a device's interrupt
/// enable bits: a serial driver asks for writable only while it has bytes waiting). With neither
/// condition the fd stays registered but never fires. Registering again replaces fd and interest,
/// so a driver calls this whenever its interrupt enables change.
pub fn register_irq_fd_for(
    ch: Channel,
    fd: BorrowedFd<'_>,
    interest: IrqInterest,
) -> Result<(), OsError> {
    let Some(pd) = HOST.with(Cell::get) else {
        return Err(OsError::new(
            "?",
            Op::IrqAck,
            Some(ch),
            OsErrorKind::NoBackend,
        ));
    };
    if pd.irq_mask & (1 << ch.index()) == 0 {
        return Err(pd.err(Op::IrqAck, ch, OsErrorKind::NotPermitted));
    }
    let mut fds = pd.irq_fds.borrow_mut();
    fds.retain(|&(c, _, _)| c != ch.index());
    fds.push((ch.index(), fd.as_raw_fd(), interest.events()));
    Ok(())
}

fn startup_error(pd: &str, what: impl core::fmt::Display) -> String {
    format!("{pd}: cannot start: {what}")
}

impl HostPd {
    fn from_env() -> Result<Self, String> {
        let prog = std::env::args().next().unwrap_or_else(|| "pd".into());
        let fd_text = std::env::var(MANIFEST_ENV).map_err(|_| {
            startup_error(
                &prog,
                format_args!(
                    "{MANIFEST_ENV} is not set: a host-board PD is started by `lions-host <file.system>`"
                ),
            )
        })?;
        let fd: RawFd = fd_text.parse().map_err(|_| {
            startup_error(
                &prog,
                format_args!("{MANIFEST_ENV}={fd_text:?} is not a descriptor number"),
            )
        })?;
        let mfd = sys::adopt_fd(fd)
            .map_err(|e| startup_error(&prog, format_args!("manifest fd {fd}: {e}")))?;
        let text = sys::read_all_at(mfd.as_fd())
            .map_err(|e| startup_error(&prog, format_args!("reading the manifest: {e}")))?;
        drop(mfd);
        let text =
            String::from_utf8(text).map_err(|_| startup_error(&prog, "manifest is not UTF-8"))?;
        let m = Manifest::parse(&text).map_err(|e| startup_error(&prog, e))?;
        install_panic_hook(m.name.clone());
        sys::set_thread_name(&m.name);
        Self::new(m)
    }

    fn new(m: Manifest) -> Result<Self, String> {
        let name = m.name.clone();
        let fail = |what: String| startup_error(&name, what);
        let control = sys::adopt_fd(m.control_fd)
            .map_err(|e| fail(format!("control block fd {}: {e}", m.control_fd)))?;
        let cb = ControlBlock::open(control.as_fd(), m.num_pds as usize)
            .map_err(|e| fail(format!("control block: {e}")))?;
        drop(control);
        let index = m.index as usize;
        if index >= cb.num_pds() {
            return Err(fail(format!("PD number {index} out of range")));
        }
        for map in &m.maps {
            let fd = sys::adopt_fd(map.fd).map_err(|e| {
                fail(format!(
                    "memory region \"{}\": fd {}: {e}",
                    map.region, map.fd
                ))
            })?;
            let prot = sys::prot(map.read, map.write, map.execute);
            sys::map_at(fd.as_fd(), map.vaddr, map.size, prot).map_err(|e| {
                fail(format!(
                    "map of memory region \"{}\" at {:#x} (size {:#x}): {e}",
                    map.region, map.vaddr, map.size
                ))
            })?;
        }
        let mut fds = vec![
            sys::adopt_fd(m.wake_fd).map_err(|e| fail(format!("wake-up fd {}: {e}", m.wake_fd)))?,
        ];
        let mut links = [None; MAX_CHANNEL as usize + 1];
        for c in &m.channels {
            let ok = usize::from(c.id) < links.len()
                && c.peer_id <= MAX_CHANNEL
                && (c.peer as usize) < cb.num_pds();
            if !ok {
                return Err(fail(format!("channel {} out of range", c.id)));
            }
            if !fds.iter().any(|f| f.as_raw_fd() == c.peer_wake_fd) {
                fds.push(
                    sys::adopt_fd(c.peer_wake_fd)
                        .map_err(|e| fail(format!("channel {}: wake-up fd: {e}", c.id)))?,
                );
            }
            links[usize::from(c.id)] = Some(Link {
                peer: c.peer as usize,
                peer_id: c.peer_id,
                peer_wake: c.peer_wake_fd,
                notify: c.notify,
                pp: c.pp,
                peer_pp: c.peer_pp,
            });
        }
        let mut irq_mask = 0u64;
        for i in &m.irqs {
            if i.id > MAX_CHANNEL {
                return Err(fail(format!("irq channel {} out of range", i.id)));
            }
            irq_mask |= 1 << i.id;
        }
        Ok(Self {
            name,
            index,
            cb,
            wake: m.wake_fd,
            _fds: fds,
            links,
            irq_mask,
            irq_fds: RefCell::new(Vec::new()),
            armed: Cell::new(0),
            fired: Cell::new(0),
        })
    }

    fn slot(&self) -> &PdSlot {
        self.cb.slot(self.index)
    }

    fn err(&self, op: Op, ch: Channel, kind: OsErrorKind) -> OsError {
        OsError::new(&self.name, op, Some(ch), kind)
    }

    fn link(&self, ch: Channel) -> Option<Link> {
        self.links[usize::from(ch.index())]
    }

    fn event_loop<H: Handler>(&self, init: impl FnOnce() -> H) -> ExitCode {
        let mut handler = init();
        self.run_deferred();
        self.armed.set(self.irq_mask);
        self.slot().set_state(PdState::Running);
        loop {
            if let Some(ch) = self.slot().take_call() {
                if let Err(e) = self.serve(ch, &mut handler) {
                    eprintln!("{}: {e}", self.name);
                    return ExitCode::from(EXIT_HANDLER_ERROR);
                }
                self.run_deferred();
                continue;
            }
            if self.armed.get() != 0 && !self.irq_fds.borrow().is_empty() {
                self.poll_irqs(false);
            }
            let bits = ChannelSet::from_bits(self.slot().take_pending()).bits();
            let irqs = self.fired.take();
            if bits | irqs != 0 {
                let st = &self.slot().stats;
                Stats::bump(&st.notifications_received, u64::from(bits.count_ones()));
                Stats::bump(&st.irqs_received, u64::from(irqs.count_ones()));
                let set = ChannelSet::from_bits(bits | irqs);
                if let Err(e) = handler.notified(set) {
                    eprintln!("{}: notified({set}) failed: {e}", self.name);
                    return ExitCode::from(EXIT_HANDLER_ERROR);
                }
                self.run_deferred();
                continue;
            }
            // Announce the sleep, then re-check: a notification posted before the flag was set
            // did not write our eventfd.
            if !self.slot().prepare_sleep() || self.slot().calls.load(Ordering::SeqCst) != 0 {
                continue;
            }
            if self.armed.get() != 0 && !self.irq_fds.borrow().is_empty() {
                self.poll_irqs(true);
            } else {
                sys::wait(self.wake);
            }
        }
    }

    fn run_deferred(&self) {
        if let Some(d) = runtime::take_deferred()
            && let Err(e) = d.execute()
        {
            eprintln!("{e}");
        }
    }

    /// Poll the armed IRQ fds (and, when `block`, the wake-up eventfd, waiting for either).
    fn poll_irqs(&self, block: bool) {
        let armed = self.armed.get();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut chans: Vec<u8> = Vec::new();
        if block {
            fds.push(libc::pollfd {
                fd: self.wake,
                events: libc::POLLIN,
                revents: 0,
            });
            chans.push(u8::MAX);
        }
        for &(ch, fd, events) in self.irq_fds.borrow().iter() {
            if armed & (1 << ch) != 0 && events != 0 {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                chans.push(ch);
            }
        }
        if fds.is_empty() {
            return;
        }
        sys::poll(&mut fds, if block { -1 } else { 0 });
        for (p, &ch) in fds.iter().zip(&chans) {
            if p.revents == 0 {
                continue;
            }
            if ch == u8::MAX {
                sys::wait(self.wake);
            } else if p.revents & libc::POLLNVAL != 0 {
                eprintln!(
                    "{}: the IRQ fd {} of channel {ch} was closed; unregistered",
                    self.name, p.fd
                );
                self.irq_fds.borrow_mut().retain(|&(c, _, _)| c != ch);
            } else {
                self.armed.set(self.armed.get() & !(1 << ch));
                self.fired.set(self.fired.get() | (1 << ch));
            }
        }
    }

    /// Serve the PPC waiting on channel `ch`.
    fn serve<H: Handler>(&self, ch: u8, handler: &mut H) -> Result<(), String> {
        let (Some(channel), Some(link)) = (
            Channel::try_new(ch),
            self.links.get(usize::from(ch)).copied().flatten(),
        ) else {
            return Ok(()); // Not a channel of ours: a stale or forged request.
        };
        if !link.peer_pp {
            return Ok(());
        }
        let caller = self.cb.slot(link.peer);
        let w = caller.reply.load(Ordering::Acquire);
        let me = u32::try_from(self.index + 1).unwrap_or(u32::MAX);
        if w & reply::MASK != reply::WAITING || caller.calling.load(Ordering::Acquire) != me {
            return Ok(()); // The caller is gone or gave up.
        }
        let count = usize::try_from(caller.count.load(Ordering::Relaxed))
            .unwrap_or(MAX_MESSAGE_REGISTERS)
            .min(MAX_MESSAGE_REGISTERS);
        let label = caller.label.load(Ordering::Relaxed);
        let own = self.slot();
        for (dst, src) in own.mrs.iter().zip(&caller.mrs).take(count) {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let reply_msg = handler
            .protected(channel, MessageInfo::new(label, count))
            .map_err(|e| format!("protected({channel}) failed: {e}"))?;
        for (dst, src) in caller.mrs.iter().zip(&own.mrs).take(reply_msg.count()) {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        caller.label.store(reply_msg.label(), Ordering::Relaxed);
        caller
            .count
            .store(reply_msg.count() as u64, Ordering::Relaxed);
        Stats::bump(&own.stats.ppcs_served, 1);
        let done = (w & !reply::MASK) | reply::REPLIED;
        if caller
            .reply
            .compare_exchange(w, done, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            sys::wake(link.peer_wake);
        }
        Ok(())
    }
}

impl Backend for HostPd {
    fn pd_name(&self) -> &str {
        &self.name
    }

    /// A PD may run at a real-time priority (SCHED_FIFO), where spinning would keep every normal
    /// process (the terminal, the tools reading the system's output) off its CPU: sleep instead.
    fn relax(&self) {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }

    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        let link = self
            .link(ch)
            .filter(|l| l.notify)
            .ok_or_else(|| self.err(Op::Notify, ch, OsErrorKind::NotPermitted))?;
        match self.cb.post_notification(link.peer, 1 << link.peer_id) {
            None => Ok(()), // The peer is gone: dropped, as seL4 drops signals to a stopped PD.
            Some(wake) => {
                if wake {
                    sys::wake(link.peer_wake);
                }
                Stats::bump(&self.slot().stats.notifications_sent, 1);
                Ok(())
            }
        }
    }

    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        let bit = 1u64 << ch.index();
        if self.irq_mask & bit == 0 {
            return Err(self.err(Op::IrqAck, ch, OsErrorKind::NotPermitted));
        }
        self.armed.set(self.armed.get() | bit);
        Ok(())
    }

    fn ppcall(&self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        let link = self
            .link(ch)
            .filter(|l| l.pp)
            .ok_or_else(|| self.err(Op::PpCall, ch, OsErrorKind::NotPermitted))?;
        let own = self.slot();
        let callee = self.cb.slot(link.peer);
        own.label.store(msg.label(), Ordering::Relaxed);
        own.count.store(msg.count() as u64, Ordering::Relaxed);
        let seq = (own.reply.load(Ordering::Relaxed) >> 2).wrapping_add(1) & (u64::MAX >> 2);
        let callee_no = u32::try_from(link.peer + 1).unwrap_or(u32::MAX);
        own.calling.store(callee_no, Ordering::SeqCst);
        own.reply
            .store((seq << 2) | reply::WAITING, Ordering::SeqCst);
        let finish = |r: Result<MessageInfo, OsError>| {
            own.calling.store(0, Ordering::SeqCst);
            own.reply.store(seq << 2, Ordering::SeqCst);
            r
        };
        if callee.state() == PdState::Gone {
            return finish(Err(self.err(Op::PpCall, ch, OsErrorKind::PeerGone)));
        }
        callee.calls.fetch_or(1 << link.peer_id, Ordering::AcqRel);
        sys::wake(link.peer_wake);
        loop {
            match own.reply.load(Ordering::Acquire) & reply::MASK {
                reply::REPLIED => {
                    let count = usize::try_from(own.count.load(Ordering::Relaxed)).unwrap_or(0);
                    let info = MessageInfo::new(own.label.load(Ordering::Relaxed), count);
                    Stats::bump(&own.stats.ppcs_made, 1);
                    return finish(Ok(info));
                }
                reply::GONE => return finish(Err(self.err(Op::PpCall, ch, OsErrorKind::PeerGone))),
                _ => sys::wait(self.wake),
            }
        }
    }

    fn mr(&self, i: usize) -> u64 {
        self.slot()
            .mrs
            .get(i)
            .map_or(0, |m| m.load(Ordering::Relaxed))
    }

    fn set_mr(&self, i: usize, value: u64) {
        if let Some(m) = self.slot().mrs.get(i) {
            m.store(value, Ordering::Relaxed);
        }
    }
}

fn install_panic_hook(name: String) {
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        match info.location() {
            Some(loc) => eprintln!("{name}: panicked at {loc}: {msg}"),
            None => eprintln!("{name}: panicked: {msg}"),
        }
        sys::exit_now(EXIT_PANIC);
    }));
}
