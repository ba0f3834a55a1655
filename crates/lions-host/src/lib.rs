// SPDX-License-Identifier: BSD-2-Clause
//! # lions-host: the host board
//!
//! Runs a Microkit system description (`.system`, as `sdfgen` writes it) on Linux: one process per
//! protection domain, memory regions as shared memory mapped at the SDF's addresses with the SDF's
//! rights, notifications and protected procedure calls with seL4 semantics, fault reports and
//! (optionally) restarts. The PD binaries are built with `lions-os`'s `host` feature; their
//! [`protection_domain!`](lions_os::protection_domain) entry point talks to this launcher.
//!
//! ## Command line
//!
//! ```text
//! lions-host [--restart] [--max-restarts N] [--trace] [--stats] [--no-rt]
//!            [--control FIFO] [--search-path DIR]... <file.system>
//! ```
//!
//! - `--search-path DIR` (repeatable): where `program_image` paths are looked up, in order, before
//!   the directory of the `.system` file. An absolute path is used as it is; a name ending in
//!   `.elf` also matches the same name without the suffix.
//! - `--restart`: re-spawn a PD that faulted (at most `--max-restarts`, default 3, per PD). Its
//!   memory regions persist across the restart; each restart is reported.
//! - `--trace`: report every start, exit and scheduling decision on stderr.
//! - `--stats`: print per-PD counters (notifications sent/received, PPCs made/served, IRQs,
//!   restarts) on stderr at exit.
//! - `--no-rt`: do not ask for real-time scheduling.
//! - `--control FIFO`: create a FIFO at that path (removed at exit) and carry out the operator
//!   commands written to it, one per line: `swap <pd> <image>` (live swap, paper §6.3.1: e.g.
//!   replace a running `net_virt_tx` with one built with another Tx policy; a relative image is
//!   looked up beside the current one) and `restart <pd>`. The PD is killed (SIGKILL) and started
//!   again from its (new) image with its regions untouched, not counted as a fault or restart;
//!   `lions_os::incarnation` tells it to rebuild its state from shared memory rather than
//!   initialise it. Example: `echo "swap net_virt_tx net_virt_tx_prio" > /tmp/lions.ctl`.
//!   `snapshot <dir>` stops every PD (SIGSTOP), copies every memory region into a file of the new
//!   directory `dir` (listed in its [`SNAPSHOT_INDEX`] file), and continues them (SIGCONT): a
//!   consistent picture of all shared state, e.g. for `cargo xtask account`, which finds every
//!   DMA buffer in it. A line on stderr reports it (`lions-host: snapshot: ...`).
//!
//! A PD started again (`--restart`, a control command) sees [`lions_os::incarnation`] above 0.
//!
//! Ctrl-C (SIGINT) or SIGTERM stops the whole system: every PD gets SIGTERM, then SIGKILL after a
//! second, and the launcher waits for all of them. PDs ignore SIGINT themselves, so a Ctrl-C typed
//! at the terminal reaches only the launcher. The launching terminal's mode is saved at start and
//! restored when the system ends, so a host serial driver that made it raw and was then stopped
//! (or faulted) never leaves the user's shell raw.
//!
//! A PD that could not start (it called `lions_os::startup_failed`: a port in use, a missing disk
//! image, ...) stops the whole system at once, with a line naming it; its own message says why.
//!
//! **Exit status**: 0 when stopped by a signal or when every PD exited normally, with no fault left
//! unrestarted; 1 when a PD faulted and was not restarted (no `--restart`, or its restart limit was
//! reached); 2 when the system description is bad or the system could not start (a missing image,
//! a region that cannot be mapped in a PD, ...). Every problem is reported on stderr with the PD
//! (or the description's element) named, e.g. `lions-host: client0: killed by SIGSEGV
//! (segmentation fault)`.
//!
//! ## Library
//!
//! [`run`]`(system, images_dir, &`[`Options`]`)` does the same and returns a [`Report`] (its
//! [`Report::exit_code`] is the status above) or a start-up [`Error`] (status 2). It installs
//! SIGINT/SIGTERM handlers for its duration (restoring the previous ones) and may run once at a time
//! per process.
//!
//! ## How a system runs
//!
//! 1. The description is read and checked by `lions-sdf`, then by the host board's own rules
//!    (images found and executable, `cpu` available, channel ids at most 61, a PPC only into a
//!    PD of higher priority as Microkit requires, no child PDs yet).
//! 2. Every memory region becomes a memfd of its size (zero-filled; kept open for the launcher's
//!    life, so region contents survive a PD restart). A region with `phys_addr` (a device region)
//!    is plain shared memory here: a host driver reaches its device through a host fd instead.
//!    A PD that maps a region without write access gets a separate read-only descriptor of it,
//!    and that region's memfd is then made mode 0444 and (as root) owned by `nobody`, with
//!    `CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH`, `CAP_FOWNER` and `CAP_CHOWN` dropped from the
//!    PDs: so the read-only descriptor can be neither mapped writable nor reopened read-write
//!    through `/proc/self/fd` nor `chmod`ed back. (Without root a PD owns the memfd and could
//!    `chmod` it; only the descriptor itself is then read-only.)
//! 3. Kernel objects are split by who may write them (least privilege, as seL4's capabilities):
//!    per channel a shared page (each direction's pending flag, call word and message registers)
//!    and two non-blocking wake-up pipes (one per direction: write end to the sender, read end to
//!    the receiver), passed only to the channel's two ends; per PD a stats page only it and the
//!    launcher map; and a board table of every PD's lifecycle state that only the launcher writes
//!    (sealed before any PD starts, so PDs can map it read-only only). The layout and the wake-up
//!    rules are documented in [`lions_os::host::control`].
//! 4. Each PD is started with a manifest (format in [`lions_os::host::manifest`]): its name and
//!    number, the board table, its stats page, its maps (region fd, vaddr, size, rights), its
//!    channels (id, peer, peer's id, page, end, pipe ends, notify/PPC rights of both ends) and its
//!    IRQ channels. Only the descriptors its manifest names are inherited. The launcher makes
//!    itself non-dumpable and, when it runs as root, drops `CAP_SYS_PTRACE`, `CAP_SYS_RAWIO`,
//!    `CAP_SYS_MODULE` and the file-permission overrides above from the PDs' bounding set and gives them real group 65534 (effective group
//!    kept), so the kernel starts them non-dumpable and ptrace-class access between them fails the
//!    credential match; each PD also makes itself non-dumpable as it starts. So no PD can open
//!    another's (or the launcher's) memory or descriptors through `/proc`, ptrace or
//!    `pidfd_getfd`. The PD maps its regions (`MAP_SHARED | MAP_FIXED_NOREPLACE`) before
//!    `init` runs.
//! 5. `cpu` becomes the process's CPU affinity; `priority` (0..=254) becomes SCHED_FIFO priority
//!    1..=99 where permitted (otherwise normal scheduling, noted once under `--trace`).
//! 6. The launcher waits on the PD processes (pidfds). A PD that ends is marked gone in the board
//!    table at once: PPCs waiting on it return `PeerGone`, notifications to it are dropped, and the
//!    others keep running.

#[cfg(not(target_os = "linux"))]
compile_error!("lions-host runs on Linux only");

mod plan;
mod sys;

use lions_os::host::control::{BoardTable, ChannelPage, PdState, StatsPage, call};
use lions_os::host::manifest::{
    INCARNATION_ENV, MANIFEST_ENV, Manifest, ManifestChannel, ManifestIrq, ManifestMap,
};
use lions_os::host::{EXIT_HANDLER_ERROR, EXIT_PANIC, EXIT_STARTUP};
use plan::Plan;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How to run a system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Re-spawn a faulted PD (up to [`max_restarts`](Self::max_restarts) times per PD).
    pub restart: bool,
    /// Restart limit per PD (default 3).
    pub max_restarts: u32,
    /// Report starts, exits and scheduling decisions on stderr.
    pub trace: bool,
    /// Print per-PD counters on stderr at exit.
    pub stats: bool,
    /// Ask for SCHED_FIFO priorities (default true; silently skipped where not permitted).
    pub realtime: bool,
    /// More directories for program images, searched after `images_dir` and before the directory
    /// of the `.system` file.
    pub search_path: Vec<PathBuf>,
    /// A control FIFO the launcher creates and reads commands from (`swap <pd> <image>`,
    /// `restart <pd>`, `snapshot <dir>`; see the crate docs).
    pub control: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            restart: false,
            max_restarts: 3,
            trace: false,
            stats: false,
            realtime: true,
            search_path: Vec::new(),
            control: None,
        }
    }
}

/// Why the system could not start (exit status 2).
#[derive(Debug)]
pub enum Error {
    /// The description is malformed (the `lions-sdf` error names the line and element).
    System {
        /// The `.system` file.
        path: PathBuf,
        /// What is wrong.
        error: lions_sdf::Error,
    },
    /// The description is well formed but cannot run on the host board.
    Element {
        /// The element, e.g. `protection_domain "client0" > program_image path="client.elf"`.
        element: String,
        /// What is wrong.
        message: String,
    },
    /// A host resource could not be set up.
    Os {
        /// What was being done.
        what: String,
        /// The system error.
        error: io::Error,
    },
    /// Another [`run`] is in progress in this process.
    Busy,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Element { element, message } => write!(f, "{element}: {message}"),
            Self::Os { what, error } => write!(f, "{what}: {error}"),
            Self::Busy => f.write_str("another system is already running in this process"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a PD process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// It exited with status 0 (not a fault).
    Exited,
    /// It panicked (the PD printed `"<pd>: panicked at ..."`).
    Panicked,
    /// A handler returned an error (the PD printed it).
    HandlerError,
    /// It could not start (the PD printed why).
    StartupFailed,
    /// It exited with another status.
    ExitStatus(i32),
    /// A signal ended it: number, name and description.
    Signal(i32, String, &'static str),
}

impl Cause {
    fn of(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(0), _) => Self::Exited,
            (Some(c), _) if c == i32::from(EXIT_PANIC) => Self::Panicked,
            (Some(c), _) if c == i32::from(EXIT_HANDLER_ERROR) => Self::HandlerError,
            (Some(c), _) if c == i32::from(EXIT_STARTUP) => Self::StartupFailed,
            (Some(c), _) => Self::ExitStatus(c),
            (None, Some(s)) => {
                let (name, what) = sys::signal_name(s);
                Self::Signal(s, name, what)
            }
            (None, None) => Self::ExitStatus(-1),
        }
    }

    /// Whether this ending is a fault.
    pub fn is_fault(&self) -> bool {
        *self != Self::Exited
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited => f.write_str("exited"),
            Self::Panicked => f.write_str("panicked"),
            Self::HandlerError => f.write_str("a handler returned an error"),
            Self::StartupFailed => f.write_str("could not start"),
            Self::ExitStatus(c) => write!(f, "exited with status {c}"),
            Self::Signal(_, name, what) => write!(f, "killed by {name} ({what})"),
        }
    }
}

/// A PD fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The PD.
    pub pd: String,
    /// What happened.
    pub cause: Cause,
    /// Whether the PD was restarted after it.
    pub restarted: bool,
}

/// Per-PD counters, read from the PDs' stats pages at exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdStats {
    /// The PD.
    pub pd: String,
    /// Notifications sent (to live peers).
    pub notifications_sent: u64,
    /// Notification channels delivered.
    pub notifications_received: u64,
    /// PPCs made and answered.
    pub ppcs_made: u64,
    /// PPCs served.
    pub ppcs_served: u64,
    /// IRQs delivered.
    pub irqs_received: u64,
    /// Restarts.
    pub restarts: u32,
}

/// How a run ended.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The stop signal, if a signal stopped the system.
    pub signal: Option<i32>,
    /// Every fault, in order.
    pub faults: Vec<Fault>,
    /// Counters per PD, in description order.
    pub stats: Vec<PdStats>,
}

impl Report {
    /// The launcher's exit status: 2 if a PD could not start, 1 if a fault was not restarted,
    /// else 0.
    pub fn exit_code(&self) -> u8 {
        let open = self.faults.iter().filter(|f| !f.restarted);
        let mut code = 0;
        for f in open {
            code = code.max(if f.cause == Cause::StartupFailed {
                2
            } else {
                1
            });
        }
        code
    }
}

static RUNNING: AtomicBool = AtomicBool::new(false);

/// Run the system described by `system`; program images are looked up in `images_dir`, then
/// `options.search_path`, then the directory of `system`. Returns when every PD has ended or a
/// stop signal (SIGINT, SIGTERM) arrived.
pub fn run(system: &Path, images_dir: &Path, options: &Options) -> Result<Report, Error> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err(Error::Busy);
    }
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            RUNNING.store(false, Ordering::SeqCst);
        }
    }
    let _release = Release;
    let xml = std::fs::read_to_string(system).map_err(os(format!(
        "reading the system description {}",
        system.display()
    )))?;
    let sys = lions_sdf::System::parse(&xml).map_err(|error| Error::System {
        path: system.to_path_buf(),
        error,
    })?;
    let mut dirs = vec![images_dir.to_path_buf()];
    dirs.extend(options.search_path.iter().cloned());
    if let Some(d) = system.parent() {
        dirs.push(if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d.to_path_buf()
        });
    }
    let plan = plan::plan(&sys, &dirs, &sys::allowed_cpus())?;
    // Whatever a PD does to the terminal (a host serial driver makes it raw), the user gets the
    // mode back when the system ends, even if that PD was killed.
    let _terminal = sys::TerminalMode::save();
    Board::new(plan, options.clone())?.run()
}

fn os(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |error| Error::Os { what, error }
}

/// A PD's process state in the launcher.
struct Proc {
    child: Option<Child>,
    pidfd: Option<OwnedFd>,
    restarts: u32,
    /// Starts after the first (restarts and swaps): what the PD sees as `lions_os::incarnation`.
    incarnation: u32,
    /// Stopped by a control command, to be started again (with a new image, for a swap).
    respawn: bool,
}

/// One channel's kernel objects in the launcher: its page and one wake-up pipe per half.
struct ChannelObj {
    _fd: OwnedFd,
    page: ChannelPage,
    /// `wake[h]` is the wake-up pipe (read end, write end) of half `h`: end `h` holds the write
    /// end, the other end the read end.
    wake: [(OwnedFd, OwnedFd); 2],
    /// The PD at each end.
    ends: [usize; 2],
}

/// Everything the launcher holds while a system runs.
struct Board {
    plan: Plan,
    options: Options,
    board: BoardTable,
    _board_fd: OwnedFd,
    stats: Vec<(OwnedFd, StatsPage)>,
    channels: Vec<ChannelObj>,
    regions: Vec<OwnedFd>,
    /// Read-only descriptors of the regions some PD maps without write access.
    _read_only: Vec<Option<OwnedFd>>,
    manifests: Vec<OwnedFd>,
    /// Descriptors each PD inherits.
    keep: Vec<Vec<RawFd>>,
    procs: Vec<Proc>,
    faults: Vec<Fault>,
    realtime: bool,
    signals: sys::StopSignals,
    control: Option<Control>,
}

/// The control FIFO: its path (removed at exit), a read descriptor and a partial line.
struct Control {
    path: PathBuf,
    fd: OwnedFd,
    partial: Vec<u8>,
}

impl Control {
    fn create(path: &Path) -> io::Result<Self> {
        let fd = sys::fifo(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            fd,
            partial: Vec::new(),
        })
    }

    /// Every complete line waiting (at most 64 KiB read per call).
    fn read_lines(&mut self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        for _ in 0..16 {
            match sys::read_some(&self.fd, &mut buf) {
                Some(n) if n > 0 => self.partial.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let mut lines = Vec::new();
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            if !line.is_empty() {
                lines.push(line);
            }
        }
        if self.partial.len() > 4096 {
            self.partial.clear();
        }
        lines
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The index file of a `snapshot <dir>` (control command): a first line `# lions-host snapshot:
/// consistent=true|false` (false: some PD did not stop within a second, so the copy may be torn),
/// then one line per memory region, `<file> <size> <name>` (`0.bin 0x3000
/// net/net/queue/net_driver/net_virt_rx/free`): the region's bytes are in `<dir>/<file>`;
/// then, for each PD that reports buffers it holds privately
/// (`lions_os::host::report_held`), `held <pd> <mask> <n0> <n1> <n2> <n3>`: bit `i` of `mask`
/// set when slot `i` (`lions_os::host::control::held`) was reported, `n<i>` its count.
pub const SNAPSHOT_INDEX: &str = "index";

/// Which channel object and end each PD's channel id is: `ends[pd][id]` = (channel, end).
type ChannelEnds = Vec<[Option<(usize, usize)>; 64]>;

impl Board {
    fn new(plan: Plan, options: Options) -> Result<Self, Error> {
        // Never let a PD open this process's memory or descriptors through /proc.
        sys::set_not_dumpable().map_err(os("PR_SET_DUMPABLE"))?;
        let (board_fd, board) =
            BoardTable::create(plan.pds.len()).map_err(os("creating the board table"))?;
        let stats = plan
            .pds
            .iter()
            .map(|pd| StatsPage::create(&format!("lions-host-stats:{}", pd.name)))
            .collect::<io::Result<Vec<_>>>()
            .map_err(os("creating stats pages"))?;
        let (channels, ends) = create_channels(&plan)?;
        let (regions, read_only) = create_regions(&plan)?;
        let mut manifests = Vec::new();
        let mut keep = Vec::new();
        for (i, (pd, (stats_fd, _))) in plan.pds.iter().zip(&stats).enumerate() {
            let m = Manifest {
                name: pd.name.clone(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                board_fd: board_fd.as_raw_fd(),
                num_pds: u32::try_from(plan.pds.len()).unwrap_or(u32::MAX),
                stats_fd: stats_fd.as_raw_fd(),
                maps: manifest_maps(&plan, i, &regions, &read_only),
                channels: manifest_channels(&plan, i, &channels, &ends),
                irqs: pd
                    .irqs
                    .iter()
                    .map(|&(id, irq)| ManifestIrq { id, irq })
                    .collect(),
            };
            let (fd, k) = write_manifest(&m)?;
            keep.push(k);
            manifests.push(fd);
        }
        let control = match &options.control {
            Some(path) => Some(Control::create(path).map_err(os(format!(
                "--control: creating the FIFO {} (a path that does not exist yet, in a writable \
                 directory)",
                path.display()
            )))?),
            None => None,
        };
        let signals = sys::StopSignals::install().map_err(os("installing signal handlers"))?;
        let procs = plan
            .pds
            .iter()
            .map(|_| Proc {
                child: None,
                pidfd: None,
                restarts: 0,
                incarnation: 0,
                respawn: false,
            })
            .collect();
        Ok(Self {
            realtime: options.realtime,
            plan,
            options,
            board,
            _board_fd: board_fd,
            stats,
            channels,
            regions,
            _read_only: read_only,
            manifests,
            keep,
            procs,
            faults: Vec::new(),
            signals,
            control,
        })
    }

    fn trace(&self, msg: impl fmt::Display) {
        if self.options.trace {
            eprintln!("lions-host: {msg}");
        }
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let pd = &self.plan.pds[i];
        let mut cmd = Command::new(&pd.image);
        cmd.arg0(&pd.name)
            .env(MANIFEST_ENV, self.manifests[i].as_raw_fd().to_string())
            .env(INCARNATION_ENV, self.procs[i].incarnation.to_string());
        let keep = self.keep[i].clone();
        let cpu = pd.cpu;
        let launcher = sys::getpid();
        // SAFETY: `child_setup` runs between fork and exec and makes only async-signal-safe system
        // calls on data moved into the closure (no allocation, no locks).
        unsafe { cmd.pre_exec(move || sys::child_setup(&keep, cpu, launcher)) };
        let child = cmd.spawn()?;
        let pid = child.id();
        self.trace(format_args!(
            "{}: started, pid {pid} ({})",
            pd.name,
            pd.image.display()
        ));
        if self.realtime {
            let prio = 1 + i32::from(pd.priority) * 98 / 254;
            match sys::set_fifo(pid, prio) {
                Ok(()) => self.trace(format_args!("{}: SCHED_FIFO priority {prio}", pd.name)),
                Err(e) => {
                    self.realtime = false;
                    self.trace(format_args!(
                        "real-time priorities not permitted ({e}); using normal scheduling"
                    ));
                }
            }
        }
        self.board.set_state(i, PdState::Running);
        let p = &mut self.procs[i];
        p.pidfd = sys::pidfd_open(pid).ok();
        p.child = Some(child);
        Ok(())
    }

    fn run(mut self) -> Result<Report, Error> {
        for i in 0..self.plan.pds.len() {
            if let Err(e) = self.spawn(i) {
                let what = format!(
                    "protection_domain \"{}\": starting {}",
                    self.plan.pds[i].name,
                    self.plan.pds[i].image.display()
                );
                self.stop();
                return Err(Error::Os { what, error: e });
            }
        }
        let mut signal = None;
        loop {
            if self.procs.iter().all(|p| p.child.is_none()) {
                self.trace("every PD has ended");
                break;
            }
            if let Some(s) = self.signals.received() {
                signal = Some(s);
                self.trace(format_args!("stopping ({})", sys::signal_name(s).0));
                break;
            }
            // A PD that could not start (a port in use, a missing disk image) leaves a system
            // that only looks alive: stop it, naming the PD, whose own message says why.
            if let Some(f) = self.faults.iter().find(|f| f.cause == Cause::StartupFailed) {
                eprintln!(
                    "lions-host: stopping the system: {} could not start (its message above says \
                     why; fix that and start the system again)",
                    f.pd
                );
                break;
            }
            let mut fds = vec![libc::pollfd {
                fd: self.signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(c) = &self.control {
                fds.push(libc::pollfd {
                    fd: c.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let mut timeout = -1;
            for p in self.procs.iter().filter(|p| p.child.is_some()) {
                match &p.pidfd {
                    Some(fd) => fds.push(libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }),
                    None => timeout = 20,
                }
            }
            sys::poll(&mut fds, timeout);
            if fds[0].revents != 0 {
                sys::drain(self.signals.fd());
            }
            if self.control.is_some() && fds[1].revents != 0 {
                self.control_commands();
            }
            self.reap();
        }
        self.stop();
        let stats = self.stats();
        if self.options.stats {
            print_stats(&stats);
        }
        let report = Report {
            signal,
            faults: std::mem::take(&mut self.faults),
            stats,
        };
        Ok(report)
    }

    /// Collect every PD process that ended; report, mark gone, restart if asked.
    fn reap(&mut self) {
        for i in 0..self.procs.len() {
            let status = match self.procs[i].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            self.procs[i].child = None;
            self.procs[i].pidfd = None;
            self.mark_gone(i);
            let name = self.plan.pds[i].name.clone();
            if std::mem::take(&mut self.procs[i].respawn) {
                self.reset_for_restart(i);
                self.procs[i].incarnation += 1;
                match self.spawn(i) {
                    Ok(()) => eprintln!(
                        "lions-host: {name}: started again ({})",
                        self.plan.pds[i].image.display()
                    ),
                    Err(e) => {
                        eprintln!("lions-host: {name}: could not start again: {e}");
                        self.mark_gone(i);
                    }
                }
                continue;
            }
            let cause = Cause::of(status);
            if !cause.is_fault() {
                self.trace(format_args!("{name}: exited"));
                continue;
            }
            eprintln!("lions-host: {name}: {cause}");
            let may_restart = self.options.restart && cause != Cause::StartupFailed;
            let restarts = self.procs[i].restarts;
            let restarted = if !may_restart {
                false
            } else if restarts >= self.options.max_restarts {
                eprintln!(
                    "lions-host: {name}: not restarted: restart limit ({}) reached",
                    self.options.max_restarts
                );
                false
            } else {
                self.procs[i].restarts += 1;
                self.procs[i].incarnation += 1;
                eprintln!(
                    "lions-host: {name}: restarting ({} of {})",
                    restarts + 1,
                    self.options.max_restarts
                );
                self.reset_for_restart(i);
                match self.spawn(i) {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!("lions-host: {name}: restart failed: {e}");
                        self.mark_gone(i);
                        false
                    }
                }
            };
            self.faults.push(Fault {
                pd: name,
                cause,
                restarted,
            });
        }
    }

    /// Read and carry out the commands waiting on the control FIFO.
    fn control_commands(&mut self) {
        let Some(c) = &mut self.control else { return };
        let lines = c.read_lines();
        for line in lines {
            match self.command(&line) {
                Ok(()) => self.trace(format_args!("control: {line}")),
                Err(e) => eprintln!("lions-host: control: {line:?}: {e}"),
            }
        }
    }

    /// One control command: `swap <pd> <image>` or `restart <pd>`. The PD is killed (SIGKILL, as a
    /// fault would end it) and, once reaped, started again from its image (the new one for a
    /// swap) with its regions as they are; it rebuilds its state from them.
    fn command(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (pd, image) = match words.as_slice() {
            ["swap", pd, image] => (*pd, Some(*image)),
            ["restart", pd] => (*pd, None),
            ["snapshot", dir] => return self.snapshot(Path::new(dir)),
            _ => {
                return Err(
                    "not a command; the commands are `swap <pd> <image>`, `restart <pd>` \
                     and `snapshot <dir>`"
                        .into(),
                );
            }
        };
        let Some(i) = self.plan.pds.iter().position(|p| p.name == pd) else {
            let names: Vec<&str> = self.plan.pds.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no protection domain \"{pd}\" in this system (its PDs: {})",
                names.join(", ")
            ));
        };
        let Some(pid) = self.procs[i].child.as_ref().map(Child::id) else {
            return Err(format!(
                "protection domain \"{pd}\" is not running now (it exited, or is being \
                 restarted); send the command again once it runs"
            ));
        };
        if let Some(image) = image {
            let path = PathBuf::from(image);
            let path = if path.is_absolute() {
                path
            } else {
                self.plan.pds[i]
                    .image
                    .parent()
                    .map_or(path.clone(), |d| d.join(&path))
            };
            plan::check_image(&path).map_err(|e| {
                format!(
                    "protection domain \"{pd}\": new image {e} (a relative image is looked up \
                     beside the current one; nothing was changed)"
                )
            })?;
            self.plan.pds[i].image = path;
        }
        self.procs[i].respawn = true;
        sys::kill(pid, libc::SIGKILL);
        Ok(())
    }

    /// `snapshot <dir>`: every PD stopped (SIGSTOP) at once, every memory region copied to a
    /// file of `dir` (see [`SNAPSHOT_INDEX`]), every PD continued (SIGCONT). The files appear
    /// together: they are written to `<dir>.partial` and renamed to `dir` when complete.
    fn snapshot(&mut self, dir: &Path) -> Result<(), String> {
        if dir.exists() {
            return Err(format!(
                "{} exists already (nothing written)",
                dir.display()
            ));
        }
        let started = Instant::now();
        let live: Vec<u32> = self
            .procs
            .iter()
            .filter_map(|p| p.child.as_ref().map(Child::id))
            .collect();
        for &pid in &live {
            sys::kill(pid, libc::SIGSTOP);
        }
        // SIGSTOP takes effect when the kernel next handles the PD's signals: wait (1 s at most)
        // until each one shows as stopped, so no PD writes shared memory while it is copied.
        let deadline = started + Duration::from_secs(1);
        let mut all_stopped = false;
        while Instant::now() < deadline {
            all_stopped = live.iter().all(|&pid| sys::stopped_or_gone(pid));
            if all_stopped {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let written = self.write_snapshot(dir, all_stopped);
        for &pid in &live {
            sys::kill(pid, libc::SIGCONT);
        }
        let (regions, bytes) = written.map_err(|e| format!("writing {}: {e}", dir.display()))?;
        eprintln!(
            "lions-host: snapshot: {regions} regions ({bytes} bytes) to {} in {:.1} ms, {} PDs \
             stopped meanwhile{}",
            dir.display(),
            started.elapsed().as_secs_f64() * 1e3,
            live.len(),
            if all_stopped {
                ""
            } else {
                " (not all stopped within 1 s: may be torn)"
            }
        );
        Ok(())
    }

    /// The snapshot's files (see [`SNAPSHOT_INDEX`]); (regions, bytes) written.
    fn write_snapshot(&self, dir: &Path, consistent: bool) -> io::Result<(usize, u64)> {
        let mut partial = dir.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        std::fs::create_dir_all(&partial)?;
        let mut index = format!("# lions-host snapshot: consistent={consistent}\n");
        let mut bytes = 0;
        for (i, ((name, size), fd)) in self.plan.regions.iter().zip(&self.regions).enumerate() {
            let len = usize::try_from(*size).map_err(|_| io::Error::other("region too large"))?;
            let mut buf = vec![0u8; len];
            let n = sys::read_at(fd, 0, &mut buf)?;
            buf.truncate(n);
            std::fs::write(partial.join(format!("{i}.bin")), &buf)?;
            index.push_str(&format!("{i}.bin {size:#x} {name}\n"));
            bytes += *size;
        }
        for (pd, (_, page)) in self.plan.pds.iter().zip(&self.stats) {
            let held = page.held();
            let reported = held.reported.load(Ordering::Relaxed);
            if reported != 0 {
                let counts: Vec<String> = held
                    .count
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed).to_string())
                    .collect();
                index.push_str(&format!(
                    "held {} {reported:#x} {}\n",
                    pd.name,
                    counts.join(" ")
                ));
            }
        }
        std::fs::write(partial.join(SNAPSHOT_INDEX), index)?;
        std::fs::rename(&partial, dir)?;
        Ok((self.plan.regions.len(), bytes))
    }

    /// Stop every PD: SIGTERM, then SIGKILL after a second; wait for all.
    fn stop(&mut self) {
        let live = |procs: &[Proc]| {
            procs
                .iter()
                .filter_map(|p| p.child.as_ref().map(Child::id))
                .collect::<Vec<_>>()
        };
        for pid in live(&self.procs) {
            sys::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !live(&self.procs).is_empty() && Instant::now() < deadline {
            for p in &mut self.procs {
                if let Some(c) = &mut p.child
                    && matches!(c.try_wait(), Ok(Some(_)))
                {
                    p.child = None;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            p.pidfd = None;
        }
        for i in 0..self.procs.len() {
            if self.board.state(i) != PdState::Gone {
                self.mark_gone(i);
            }
        }
    }

    /// PD `i` ended: mark it gone, answer every call waiting on it with `GONE` (waking the
    /// caller), cancel its own call and clear its inbound notifications.
    fn mark_gone(&self, i: usize) {
        self.board.set_state(i, PdState::Gone);
        for c in &self.channels {
            for end in (0..2).filter(|&e| c.ends[e] == i) {
                let (out, inb) = (c.page.half(end), c.page.half(1 - end));
                if let Some(w) = inb.waiting_call()
                    && inb.finish_call(w, call::GONE)
                {
                    sys::wake(c.wake[end].1.as_raw_fd());
                }
                let w = out.call.load(Ordering::SeqCst);
                out.call.store(w & !call::MASK, Ordering::SeqCst);
                inb.pending.store(0, Ordering::SeqCst);
            }
        }
    }

    /// Make a gone PD's channels ready for a new incarnation (before the re-spawn). Regions,
    /// stats and call sequences persist.
    fn reset_for_restart(&self, i: usize) {
        for c in &self.channels {
            for end in (0..2).filter(|&e| c.ends[e] == i) {
                c.page.half(1 - end).pending.store(0, Ordering::SeqCst);
            }
        }
        // What the old incarnation reported holding is gone with it: the new one reports anew.
        self.stats[i].1.held().reported.store(0, Ordering::Relaxed);
        self.board.set_state(i, PdState::Starting);
    }

    fn stats(&self) -> Vec<PdStats> {
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        self.plan
            .pds
            .iter()
            .enumerate()
            .map(|(i, pd)| {
                let s = self.stats[i].1.stats();
                PdStats {
                    pd: pd.name.clone(),
                    notifications_sent: ld(&s.notifications_sent),
                    notifications_received: ld(&s.notifications_received),
                    ppcs_made: ld(&s.ppcs_made),
                    ppcs_served: ld(&s.ppcs_served),
                    irqs_received: ld(&s.irqs_received),
                    restarts: self.procs[i].restarts,
                }
            })
            .collect()
    }
}

fn print_stats(stats: &[PdStats]) {
    let w = stats.iter().map(|s| s.pd.len()).max().unwrap_or(2).max(2);
    eprintln!(
        "lions-host: {:<w$} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "pd", "notify-sent", "notify-recv", "ppc-made", "ppc-served", "irqs", "restarts"
    );
    for s in stats {
        eprintln!(
            "lions-host: {:<w$} {:>12} {:>12} {:>10} {:>10} {:>10} {:>8}",
            s.pd,
            s.notifications_sent,
            s.notifications_received,
            s.ppcs_made,
            s.ppcs_served,
            s.irqs_received,
            s.restarts
        );
    }
}

/// One page and two wake-up pipes per channel, made once from its lower end; and which object
/// and end each PD's channel id is.
fn create_channels(plan: &Plan) -> Result<(Vec<ChannelObj>, ChannelEnds), Error> {
    let mut channels = Vec::new();
    let mut ends: ChannelEnds = vec![[None; 64]; plan.pds.len()];
    for (i, pd) in plan.pds.iter().enumerate() {
        for c in &pd.channels {
            if (i, c.id) > (c.peer, c.peer_id) {
                continue; // Made from the other end.
            }
            let name = format!(
                "lions-host-channel:{}:{}-{}:{}",
                pd.name, c.id, plan.pds[c.peer].name, c.peer_id
            );
            let (fd, page) = ChannelPage::create(&name).map_err(os("creating a channel page"))?;
            let wake = [
                sys::pipe().map_err(os("creating wake-up pipes"))?,
                sys::pipe().map_err(os("creating wake-up pipes"))?,
            ];
            ends[i][usize::from(c.id)] = Some((channels.len(), 0));
            ends[c.peer][usize::from(c.peer_id)] = Some((channels.len(), 1));
            channels.push(ChannelObj {
                _fd: fd,
                page,
                wake,
                ends: [i, c.peer],
            });
        }
    }
    Ok((channels, ends))
}

/// A memfd per memory region, and a read-only descriptor of each region some PD maps without
/// write access (a writable one would let them map it writable); such a region's memfd is then
/// locked so that descriptor cannot be reopened for writing either (see `sys::lock_read_only`).
fn create_regions(plan: &Plan) -> Result<(Vec<OwnedFd>, Vec<Option<OwnedFd>>), Error> {
    let mut regions = Vec::new();
    for (name, size) in &plan.regions {
        let fd = sys::memfd(&format!("lions-region:{name}"), *size).map_err(os(format!(
            "memory_region \"{name}\": creating {size:#x} bytes of shared memory"
        )))?;
        regions.push(fd);
    }
    let mut read_only: Vec<Option<OwnedFd>> = Vec::new();
    for (r, fd) in regions.iter().enumerate() {
        let needed = plan
            .pds
            .iter()
            .any(|pd| pd.maps.iter().any(|m| m.region == r && !m.write));
        let what = || format!("memory_region \"{}\": read-only access", plan.regions[r].0);
        read_only.push(if needed {
            let ro = sys::reopen_read_only(fd).map_err(os(what()))?;
            sys::lock_read_only(fd).map_err(os(what()))?;
            Some(ro)
        } else {
            None
        });
    }
    Ok((regions, read_only))
}

/// PD `i`'s mappings for its manifest: the read-only descriptor where it maps without write.
fn manifest_maps(
    plan: &Plan,
    i: usize,
    regions: &[OwnedFd],
    read_only: &[Option<OwnedFd>],
) -> Vec<ManifestMap> {
    plan.pds[i]
        .maps
        .iter()
        .map(|m| ManifestMap {
            fd: match (&read_only[m.region], m.write) {
                (Some(ro), false) => ro.as_raw_fd(),
                _ => regions[m.region].as_raw_fd(),
            },
            vaddr: m.vaddr,
            size: plan.regions[m.region].1,
            read: m.read,
            write: m.write,
            execute: m.execute,
            region: plan.regions[m.region].0.clone(),
        })
        .collect()
}

/// PD `i`'s channels for its manifest: its end's page and wake-up pipe halves.
fn manifest_channels(
    plan: &Plan,
    i: usize,
    channels: &[ChannelObj],
    ends: &ChannelEnds,
) -> Vec<ManifestChannel> {
    plan.pds[i]
        .channels
        .iter()
        .filter_map(|c| {
            let (k, end) = ends[i][usize::from(c.id)]?;
            let obj = &channels[k];
            let peer_notify = plan.pds[c.peer]
                .channels
                .iter()
                .any(|p| p.id == c.peer_id && p.peer == i && p.notify);
            Some(ManifestChannel {
                id: c.id,
                peer: u32::try_from(c.peer).unwrap_or(u32::MAX),
                peer_id: c.peer_id,
                page_fd: obj._fd.as_raw_fd(),
                end: u8::try_from(end).unwrap_or(0),
                in_fd: obj.wake[1 - end].0.as_raw_fd(),
                out_fd: obj.wake[end].1.as_raw_fd(),
                notify: c.notify,
                peer_notify,
                pp: c.pp,
                peer_pp: c.peer_pp,
            })
        })
        .collect()
}

/// The manifest as a memfd, and every descriptor the PD must keep across `exec` (sorted).
fn write_manifest(m: &Manifest) -> Result<(OwnedFd, Vec<RawFd>), Error> {
    let what = || format!("protection_domain \"{}\": writing its manifest", m.name);
    let fd = sys::memfd(&format!("lions-host-manifest:{}", m.name), 0).map_err(os(what()))?;
    sys::write_all_at(&fd, m.to_text().as_bytes()).map_err(os(what()))?;
    let mut k = vec![fd.as_raw_fd(), m.board_fd, m.stats_fd];
    k.extend(m.maps.iter().map(|x| x.fd));
    k.extend(
        m.channels
            .iter()
            .flat_map(|x| [x.page_fd, x.in_fd, x.out_fd]),
    );
    k.sort_unstable();
    k.dedup();
    Ok((fd, k))
}
