// SPDX-License-Identifier: BSD-2-Clause
//! The host board backend: each PD is a Linux process started by the `lions-host` launcher.
//!
//! [`run`] (what [`protection_domain!`](crate::protection_domain) expands to under the `host`
//! feature) reads the PD's [`manifest`] from the descriptor named in
//! [`manifest::MANIFEST_ENV`], maps every memory region at its SDF address with its SDF rights
//! (`MAP_SHARED | MAP_FIXED_NOREPLACE`; a write to a read-only map is a SIGSEGV), maps the
//! board table (read-only), its stats page and the page of each of its channels (see
//! [`control`]), installs a panic hook, then runs the Microkit event loop:
//!
//! 1. run `init`, perform its deferred action, acknowledge every IRQ channel once;
//! 2. loop: serve one waiting PPC (calls go before notifications), else deliver the pending
//!    notification badge together with any IRQ whose host fd became readable, else announce the
//!    sleep in each inbound channel half (so only then do notifications write a wake-up pipe, see
//!    [`control`]), re-check, and block on the epoll set of its channels' inbound pipes (and,
//!    with IRQ fds registered, `poll` them too); after every event perform the deferred action
//!    ([`runtime::take_deferred`]).
//!
//! **Wire protocol and least privilege.** A PD holds exactly the kernel objects of the channels
//! its system description gives it: per channel a shared page and, per direction, one end of a
//! wake-up pipe (the write end of the outbound one, the read end of the inbound one), plus the read-only board table (every PD's lifecycle state, written only by the
//! launcher) and its own stats page. It has no word or descriptor through which it could signal,
//! call or answer on another channel, and the first thing a PD does is make itself non-dumpable,
//! so other PDs of the same user cannot open its memory or descriptors through `/proc` (the
//! launcher drops `CAP_SYS_PTRACE` from PDs it starts as root). The layouts and rules are in
//! [`control`], the start-up manifest in [`manifest`].
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
use control::{BoardTable, ChannelPage, Half, PdState, Stats, StatsPage, call as reply};
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicU64, Ordering};
use manifest::{MANIFEST_ENV, Manifest};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::ExitCode;

/// Exit status of a PD process that panicked.
pub const EXIT_PANIC: u8 = 101;
/// Exit status of a PD process whose handler returned an error.
pub const EXIT_HANDLER_ERROR: u8 = 102;
/// Exit status of a PD process that could not start.
pub const EXIT_STARTUP: u8 = 103;

/// A channel as the manifest describes it, with its kernel objects.
struct Link {
    peer: usize,
    page: ChannelPage,
    /// This PD's end of the page: its outbound half.
    end: usize,
    /// Read end of the inbound half's wake-up pipe.
    in_wake: RawFd,
    /// Write end of the outbound half's wake-up pipe.
    out_wake: RawFd,
    notify: bool,
    pp: bool,
}

impl Link {
    fn outbound(&self) -> &Half {
        self.page.half(self.end)
    }

    fn inbound(&self) -> &Half {
        self.page.half(1 - self.end)
    }
}

/// A PD's state in its own process.
struct HostPd {
    name: String,
    board: BoardTable,
    stats: StatsPage,
    /// Edge-triggered epoll set of every inbound wake-up pipe: the PD's wake-up.
    epoll: OwnedFd,
    /// The inherited descriptors (kept open for the process's life).
    _fds: Vec<OwnedFd>,
    links: [Option<Link>; MAX_CHANNEL as usize + 1],
    /// Channels whose peer may notify this PD (their inbound pending words are its badge).
    notify_in: Vec<u8>,
    /// Channels whose peer may PPC this PD.
    calls_in: Vec<u8>,
    /// The memory regions mapped (the manifest's `map` records), for [`lookup`].
    maps: Vec<manifest::ManifestMap>,
    /// The IPC buffer (private to this process).
    mrs: [AtomicU64; MAX_MESSAGE_REGISTERS],
    /// Channels that are IRQs.
    irq_mask: u64,
    /// Host fds registered as IRQ sources (our own duplicates, so none outlives its owner's
    /// descriptor or names a reused number), with the poll events that raise them.
    irq_fds: RefCell<Vec<(u8, OwnedFd, i16)>>,
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
/// a handler. The PD keeps its own duplicate of `fd` (same open file, `F_DUPFD_CLOEXEC`), so the
/// registration never outlives the borrow by naming a descriptor number the caller has since
/// closed or reused; registering the channel again replaces (and closes) that duplicate.
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
    let own = fd
        .try_clone_to_owned()
        .map_err(|_| pd.err(Op::IrqAck, ch, OsErrorKind::Failed))?;
    let mut fds = pd.irq_fds.borrow_mut();
    fds.retain(|(c, _, _)| *c != ch.index());
    fds.push((ch.index(), own, interest.events()));
    Ok(())
}

/// Report that this PD now holds `n` buffers of slot `slot` ([`control::held`]: a driver's
/// receive or transmit buffers) privately, outside every shared queue: what it took from a queue
/// and has not given back. The launcher's `snapshot` shows the report beside the shared memory,
/// so an account of every buffer can check the PD's word against the queue indices (a buffer the
/// PD dropped shows as the difference). A relaxed store into the PD's stats page; nothing outside
/// a host-board PD or for a slot beyond [`control::HELD_SLOTS`].
pub fn report_held(slot: usize, n: u64) {
    let Some(pd) = HOST.with(Cell::get) else {
        return;
    };
    let held = pd.stats.held();
    let Some(count) = held.count.get(slot) else {
        return;
    };
    let bit = 1u64 << slot;
    count.store(n, Ordering::Relaxed);
    let reported = held.reported.load(Ordering::Relaxed);
    if reported & bit == 0 {
        held.reported.store(reported | bit, Ordering::Relaxed);
    }
}

/// What this PD's mapping table says about `[vaddr, vaddr + size)` (for
/// [`Mapped`](crate::Mapped)): `None` when this process is not running as a host-board PD.
pub(crate) fn lookup(vaddr: u64, size: u64) -> Option<crate::mapped::Lookup> {
    let pd = HOST.with(Cell::get)?;
    Some(lookup_in(&pd.maps, vaddr, size))
}

/// The access one of `maps` grants on all of `[vaddr, vaddr + size)`.
pub(crate) fn lookup_in(
    maps: &[manifest::ManifestMap],
    vaddr: u64,
    size: u64,
) -> crate::mapped::Lookup {
    use crate::mapped::{Access, Lookup};
    let end = vaddr.saturating_add(size);
    let held = maps
        .iter()
        .find(|m| m.read && vaddr >= m.vaddr && end <= m.vaddr.saturating_add(m.size));
    match held {
        Some(m) if m.write => Lookup::Mapped(Access::ReadWrite),
        Some(_) => Lookup::Mapped(Access::Read),
        None => Lookup::Unmapped,
    }
}

fn startup_error(pd: &str, what: impl core::fmt::Display) -> String {
    format!("{pd}: cannot start: {what}")
}

/// A PD's channel table, indexed by channel id.
type Links = [Option<Link>; MAX_CHANNEL as usize + 1];

/// The descriptors a PD inherited from the launcher: each adopted once, however often the
/// manifest names it, and kept open for the process's life.
#[derive(Default)]
struct Inherited(Vec<OwnedFd>);

impl Inherited {
    /// Adopt `fd` (once) and borrow it; `what` names it in the error `fail` words.
    fn adopt(
        &mut self,
        fd: RawFd,
        what: &str,
        fail: &dyn Fn(String) -> String,
    ) -> Result<BorrowedFd<'_>, String> {
        let at = match self.0.iter().position(|f| f.as_raw_fd() == fd) {
            Some(at) => at,
            None => {
                let owned = sys::adopt_fd(fd).map_err(|e| fail(format!("{what} fd {fd}: {e}")))?;
                self.0.push(owned);
                self.0.len() - 1
            }
        };
        Ok(self.0[at].as_fd())
    }
}

/// Map each of the manifest's memory regions at its address with its rights.
fn map_regions(
    m: &Manifest,
    fds: &mut Inherited,
    fail: &dyn Fn(String) -> String,
) -> Result<(), String> {
    for map in &m.maps {
        let fd = fds.adopt(map.fd, &format!("memory region \"{}\":", map.region), fail)?;
        let prot = sys::prot(map.read, map.write, map.execute);
        sys::map_at(fd, map.vaddr, map.size, prot).map_err(|e| {
            fail(format!(
                "map of memory region \"{}\" at {:#x} (size {:#x}): {e}",
                map.region, map.vaddr, map.size
            ))
        })?;
    }
    Ok(())
}

/// Open the manifest's channels: their pages, and their inbound wake-ups on `epoll`. Returns the
/// channel table and the (sorted) ids the peer may notify and may call on.
fn open_channels(
    m: &Manifest,
    num_pds: usize,
    epoll: BorrowedFd<'_>,
    fds: &mut Inherited,
    fail: &dyn Fn(String) -> String,
) -> Result<(Links, Vec<u8>, Vec<u8>), String> {
    let mut links: Links = core::array::from_fn(|_| None);
    let (mut notify_in, mut calls_in) = (Vec::new(), Vec::new());
    for c in &m.channels {
        let ok = usize::from(c.id) < links.len()
            && c.peer_id <= MAX_CHANNEL
            && (c.peer as usize) < num_pds
            && links[usize::from(c.id)].is_none();
        if !ok {
            return Err(fail(format!("channel {} out of range or repeated", c.id)));
        }
        let what = format!("channel {}:", c.id);
        fds.adopt(c.page_fd, &what, fail)?;
        let in_wake = fds.adopt(c.in_fd, &what, fail)?.as_raw_fd();
        let out_wake = fds.adopt(c.out_fd, &what, fail)?.as_raw_fd();
        // Adopted above: this only borrows it.
        let page = ChannelPage::open(fds.adopt(c.page_fd, &what, fail)?)
            .map_err(|e| fail(format!("channel {}: page: {e}", c.id)))?;
        sys::epoll_add_edge(epoll, in_wake)
            .map_err(|e| fail(format!("channel {}: epoll: {e}", c.id)))?;
        if c.peer_notify {
            notify_in.push(c.id);
        }
        if c.peer_pp {
            calls_in.push(c.id);
        }
        links[usize::from(c.id)] = Some(Link {
            peer: c.peer as usize,
            page,
            end: usize::from(c.end),
            in_wake,
            out_wake,
            notify: c.notify,
            pp: c.pp,
        });
    }
    notify_in.sort_unstable();
    calls_in.sort_unstable();
    Ok((links, notify_in, calls_in))
}

impl HostPd {
    fn from_env() -> Result<Self, String> {
        let prog = std::env::args().next().unwrap_or_else(|| "pd".into());
        // First of all: no other PD may open our memory or our descriptors through /proc.
        sys::set_not_dumpable()
            .map_err(|e| startup_error(&prog, format_args!("PR_SET_DUMPABLE: {e}")))?;
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
        let mut fds = Inherited::default();
        let board_fd = fds.adopt(m.board_fd, "board table", &fail)?;
        let board = BoardTable::open(board_fd, m.num_pds as usize)
            .map_err(|e| fail(format!("board table: {e}")))?;
        if m.index as usize >= board.num_pds() {
            return Err(fail(format!("PD number {} out of range", m.index)));
        }
        let stats_fd = fds.adopt(m.stats_fd, "stats page", &fail)?;
        let stats = StatsPage::open(stats_fd).map_err(|e| fail(format!("stats page: {e}")))?;
        map_regions(&m, &mut fds, &fail)?;
        let epoll = sys::epoll().map_err(|e| fail(format!("epoll: {e}")))?;
        let (links, notify_in, calls_in) =
            open_channels(&m, board.num_pds(), epoll.as_fd(), &mut fds, &fail)?;
        let mut irq_mask = 0u64;
        for i in &m.irqs {
            if i.id > MAX_CHANNEL {
                return Err(fail(format!("irq channel {} out of range", i.id)));
            }
            irq_mask |= 1 << i.id;
        }
        Ok(Self {
            name,
            board,
            stats,
            epoll,
            _fds: fds.0,
            links,
            notify_in,
            calls_in,
            mrs: core::array::from_fn(|_| AtomicU64::new(0)),
            irq_mask,
            irq_fds: RefCell::new(Vec::new()),
            maps: m.maps.clone(),
            armed: Cell::new(0),
            fired: Cell::new(0),
        })
    }

    fn st(&self) -> &Stats {
        self.stats.stats()
    }

    fn linked(&self, ch: u8) -> Option<&Link> {
        self.links.get(usize::from(ch)).and_then(Option::as_ref)
    }

    /// The lowest channel with a call waiting, and the call word.
    fn take_call(&self) -> Option<(u8, u64)> {
        self.calls_in.iter().find_map(|&ch| {
            self.linked(ch)
                .and_then(|l| l.inbound().waiting_call())
                .map(|w| (ch, w))
        })
    }

    /// Take the pending notification badge: one bit per inbound half that held the flag.
    fn take_pending(&self) -> u64 {
        let mut bits = 0;
        for &ch in &self.notify_in {
            if self.linked(ch).is_some_and(|l| l.inbound().take()) {
                bits |= 1 << ch;
            }
        }
        bits
    }

    /// Announce the sleep on every inbound half; false when work is already waiting.
    fn prepare_sleep(&self) -> bool {
        for &ch in &self.notify_in {
            if self
                .linked(ch)
                .is_some_and(|l| !l.inbound().prepare_sleep())
            {
                return false;
            }
        }
        self.take_call().is_none()
    }

    fn err(&self, op: Op, ch: Channel, kind: OsErrorKind) -> OsError {
        OsError::new(&self.name, op, Some(ch), kind)
    }

    fn link(&self, ch: Channel) -> Option<&Link> {
        self.linked(ch.index())
    }

    fn event_loop<H: Handler>(&self, init: impl FnOnce() -> H) -> ExitCode {
        let mut handler = init();
        self.run_deferred();
        self.armed.set(self.irq_mask);
        loop {
            if let Some((ch, w)) = self.take_call() {
                if let Err(e) = self.serve(ch, w, &mut handler) {
                    eprintln!("{}: {e}", self.name);
                    return ExitCode::from(EXIT_HANDLER_ERROR);
                }
                self.run_deferred();
                continue;
            }
            if self.armed.get() != 0 && !self.irq_fds.borrow().is_empty() {
                self.poll_irqs(false);
            }
            let bits = ChannelSet::from_bits(self.take_pending()).bits();
            let irqs = self.fired.take();
            if bits | irqs != 0 {
                let st = self.st();
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
            // did not write our wake-up pipe.
            if !self.prepare_sleep() {
                continue;
            }
            if self.armed.get() != 0 && !self.irq_fds.borrow().is_empty() {
                self.poll_irqs(true);
            } else {
                sys::epoll_wait(self.epoll.as_raw_fd(), -1);
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

    /// Poll the armed IRQ fds (and, when `block`, the wake-up epoll set, waiting for either).
    fn poll_irqs(&self, block: bool) {
        let armed = self.armed.get();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut chans: Vec<u8> = Vec::new();
        if block {
            fds.push(libc::pollfd {
                fd: self.epoll.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            chans.push(u8::MAX);
        }
        for (ch, fd, events) in self.irq_fds.borrow().iter() {
            let (ch, events) = (*ch, *events);
            if armed & (1 << ch) != 0 && events != 0 {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
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
                sys::epoll_wait(self.epoll.as_raw_fd(), 0);
            } else if p.revents & libc::POLLNVAL != 0 {
                // Cannot happen with our own duplicate; kept so a broken fd never spins.
                eprintln!(
                    "{}: the IRQ fd {} of channel {ch} is invalid; unregistered",
                    self.name, p.fd
                );
                self.irq_fds.borrow_mut().retain(|(c, _, _)| *c != ch);
            } else {
                self.armed.set(self.armed.get() & !(1 << ch));
                self.fired.set(self.fired.get() | (1 << ch));
            }
        }
    }

    /// Serve the PPC waiting on channel `ch`, whose call word was `w`.
    fn serve<H: Handler>(&self, ch: u8, w: u64, handler: &mut H) -> Result<(), String> {
        let (Some(channel), Some(link)) = (Channel::try_new(ch), self.linked(ch)) else {
            return Ok(());
        };
        let half = link.inbound();
        // Copy the request out of shared memory first: the caller cannot change it under us.
        let count = half.clamped_count();
        let label = half.label.load(Ordering::Relaxed);
        for (dst, src) in self.mrs.iter().zip(&half.mrs).take(count) {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let reply_msg = handler
            .protected(channel, MessageInfo::new(label, count))
            .map_err(|e| format!("protected({channel}) failed: {e}"))?;
        for (dst, src) in half.mrs.iter().zip(&self.mrs).take(reply_msg.count()) {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        half.label.store(reply_msg.label(), Ordering::Relaxed);
        half.count
            .store(reply_msg.count() as u64, Ordering::Relaxed);
        Stats::bump(&self.st().ppcs_served, 1);
        if half.finish_call(w, reply::REPLIED) {
            sys::wake(link.out_wake);
        }
        Ok(())
    }
}

impl Backend for HostPd {
    fn pd_name(&self) -> &str {
        &self.name
    }

    fn deferred_failed(&self, error: OsError) {
        eprintln!("{error}");
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
        if self.board.state(link.peer) == PdState::Gone {
            return Ok(()); // Dropped, as seL4 drops signals to a stopped PD.
        }
        if link.outbound().notify() {
            sys::wake(link.out_wake);
        }
        Stats::bump(&self.st().notifications_sent, 1);
        Ok(())
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
        let half = link.outbound();
        for (dst, src) in half.mrs.iter().zip(&self.mrs).take(msg.count()) {
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        half.label.store(msg.label(), Ordering::Relaxed);
        half.count.store(msg.count() as u64, Ordering::Relaxed);
        let seq = (half.call.load(Ordering::Relaxed) >> 2).wrapping_add(1) & (u64::MAX >> 2);
        half.call
            .store((seq << 2) | reply::WAITING, Ordering::SeqCst);
        let finish = |r: Result<MessageInfo, OsError>| {
            half.call.store(seq << 2, Ordering::SeqCst);
            r
        };
        if self.board.state(link.peer) == PdState::Gone {
            return finish(Err(self.err(Op::PpCall, ch, OsErrorKind::PeerGone)));
        }
        sys::wake(link.out_wake);
        loop {
            let w = half.call.load(Ordering::Acquire);
            if w == (seq << 2) | reply::REPLIED {
                let count = half.clamped_count();
                for (dst, src) in self.mrs.iter().zip(&half.mrs).take(count) {
                    dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                let info = MessageInfo::new(half.label.load(Ordering::Relaxed), count);
                Stats::bump(&self.st().ppcs_made, 1);
                return finish(Ok(info));
            }
            if w == (seq << 2) | reply::GONE {
                return finish(Err(self.err(Op::PpCall, ch, OsErrorKind::PeerGone)));
            }
            sys::wait(link.in_wake);
        }
    }

    fn mr(&self, i: usize) -> u64 {
        self.mrs.get(i).map_or(0, |m| m.load(Ordering::Relaxed))
    }

    fn set_mr(&self, i: usize, value: u64) {
        if let Some(m) = self.mrs.get(i) {
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
