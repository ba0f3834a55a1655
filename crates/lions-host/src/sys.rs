// SPDX-License-Identifier: BSD-2-Clause
//! The Linux system calls the launcher makes, each behind a safe function.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Take ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: only called with a fresh descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A zero-filled memfd of `size` bytes, closed on exec unless a child clears that flag.
pub(crate) fn memfd(name: &str, size: u64) -> io::Result<OwnedFd> {
    let mut cname: Vec<u8> = name.bytes().filter(|&b| b != 0).take(200).collect();
    cname.push(0);
    // SAFETY: `cname` is NUL-terminated and outlives the call.
    let fd = owned(check(unsafe {
        libc::memfd_create(cname.as_ptr().cast(), libc::MFD_CLOEXEC)
    })?);
    let size = libc::off_t::try_from(size).map_err(|_| io::Error::other("size too large"))?;
    // SAFETY: plain system call on a descriptor we own.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(fd)
}

/// A second, read-only descriptor of the memfd `fd` (a new open file description, so `fcntl`
/// cannot make it writable), closed on exec unless a child clears that flag.
pub(crate) fn reopen_read_only(fd: &OwnedFd) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
    // SAFETY: `path` is NUL-terminated and outlives the call.
    Ok(owned(check(unsafe {
        libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC)
    })?))
}

/// Make the memfd `fd` impossible to open for writing again by a PD (through
/// `/proc/self/fd/N` of a read-only descriptor): mode 0444, and, when the launcher runs as root,
/// owned by `nobody` so a PD (which keeps uid 0 but loses `CAP_FOWNER`, `CAP_CHOWN` and the DAC
/// overrides, see [`child_setup`]) can neither write through the mode nor change it. Descriptors
/// already open for writing keep working. Without root a PD is the file's owner and could change
/// the mode back: only the direct use of the read-only descriptor is refused then.
pub(crate) fn lock_read_only(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain system calls on a descriptor we own.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), 0o444) })?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: as above.
        check(unsafe { libc::fchown(fd.as_raw_fd(), PD_NOBODY, PD_REAL_GID) })?;
    }
    Ok(())
}

/// Create a FIFO at `path` (mode 0600; an existing FIFO there is reused) and open it read-write
/// and non-blocking, so it never reports end-of-file when a writer closes.
pub(crate) fn fifo(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let mut c: Vec<u8> = path.as_os_str().as_bytes().to_vec();
    if c.contains(&0) {
        return Err(io::Error::other("path contains NUL"));
    }
    c.push(0);
    // SAFETY: `c` is NUL-terminated and outlives the calls.
    unsafe {
        if libc::mkfifo(c.as_ptr().cast(), 0o600) != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists
                || !std::fs::metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_fifo()
                })
            {
                return Err(e);
            }
        }
        Ok(owned(check(libc::open(
            c.as_ptr().cast(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        ))?))
    }
}

/// Read what is there (non-blocking): `None` on error or nothing waiting.
pub(crate) fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: writes at most `buf.len()` bytes into a live buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).ok()
}

/// Write all of `data` to `fd` at offset 0.
pub(crate) fn write_all_at(fd: &OwnedFd, data: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let off = libc::off_t::try_from(done).map_err(|_| io::Error::other("too large"))?;
        let rest = &data[done..];
        // SAFETY: reads `rest.len()` bytes from a live slice.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), off) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            done += n.unsigned_abs();
        }
    }
    Ok(())
}

/// A blocking eventfd, closed on exec unless a child clears that flag.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    Ok(owned(check(unsafe {
        libc::eventfd(0, libc::EFD_CLOEXEC)
    })?))
}

/// A non-blocking pipe (read end, write end), closed on exec unless a child clears that flag:
/// a channel direction's wake-up. Only the receiver holds the read end and only the sender the
/// write end, so neither can change (or block) the other's side.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: the kernel writes two descriptors into a live local array.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// Add one to an eventfd's counter, or write a byte into a non-blocking pipe.
pub(crate) fn wake(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live local; the descriptor is a number only.
    unsafe { libc::write(fd, (&raw const one).cast(), 8) };
}

/// Reset a readable eventfd (non-blocking use only after `poll` said it is readable).
pub(crate) fn drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live local.
    unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
}

/// A pollable descriptor that becomes readable when process `pid` ends (Linux 5.3+).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: plain system call with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(r).map_err(|_| io::Error::other("pidfd out of range"))?;
    Ok(owned(check(fd)?))
}

/// `poll(2)` (EINTR counts as "nothing ready").
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) {
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `n` pollfds.
    unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
}

/// Send `sig` to process `pid` (errors ignored: the process may just have ended).
pub(crate) fn kill(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain system call.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The CPUs this process may run on.
pub(crate) fn allowed_cpus() -> Vec<u32> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    let max = u32::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET reads the set; the index is below CPU_SETSIZE.
    (0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
        .collect()
}

/// Put process `pid` under SCHED_FIFO at `prio` (1..=99).
pub(crate) fn set_fifo(pid: u32, prio: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is a live, initialised sched_param.
    check(unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) }).map(drop)
}

/// Prepare a forked child before `exec`: keep `keep` open across it, die with the launcher, let
/// the launcher alone handle Ctrl-C, and run on `cpu` if given. Async-signal-safe: no allocation,
/// no locks, system calls only.
pub(crate) fn child_setup(
    keep: &[RawFd],
    cpu: Option<u32>,
    launcher: libc::pid_t,
) -> io::Result<()> {
    // Nothing but `keep` (and stdio) crosses the exec, whatever the launcher's own parent left
    // open without close-on-exec (a jobserver pipe, ...).
    // SAFETY: marks descriptors close-on-exec; no memory is touched.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked != 0 {
        for fd in 3..4096 {
            // SAFETY: F_SETFD on a descriptor number; an unused one fails harmlessly (EBADF).
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    for &fd in keep {
        // SAFETY: F_SETFD with 0 clears close-on-exec of a descriptor this process holds.
        check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
    }
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) })?;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // A PD started as root keeps root's other powers, but not the ones that reach into
        // another process's memory or descriptors (ptrace, /proc/<pid>/mem of a non-dumpable
        // process, pidfd_getfd, process_vm_writev), raw I/O or kernel modules.
        // Nor the ones that override file permissions and ownership: a region mapped read-only
        // is a memfd of mode 0444 owned by `nobody` (`lock_read_only`), which a PD must not be
        // able to reopen for writing through `/proc/self/fd` or `chmod` back.
        for cap in [
            CAP_SYS_PTRACE,
            CAP_SYS_RAWIO,
            CAP_SYS_MODULE,
            CAP_CHOWN,
            CAP_DAC_OVERRIDE,
            CAP_DAC_READ_SEARCH,
            CAP_FOWNER,
        ] {
            // SAFETY: plain prctl with integer arguments.
            check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) })?;
        }
        // A real group id unlike the effective one makes the kernel start the new program
        // non-dumpable (before its first instruction, so there is no window in which a peer
        // could open its descriptors or attach to it before `lions-os` says so itself), and
        // makes every ptrace-class access between PDs fail the credential match.
        // SAFETY: getegid cannot fail.
        let egid = unsafe { libc::getegid() };
        // SAFETY: setresgid with integer arguments.
        check(unsafe { libc::setresgid(PD_REAL_GID, egid, egid) })?;
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != launcher {
        return Err(io::Error::other("the launcher ended during start-up"));
    }
    // SAFETY: ignoring SIGINT is async-signal-safe; the disposition survives exec, so a Ctrl-C
    // typed at the terminal reaches only the launcher, which then stops every PD.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    if let Some(cpu) = cpu {
        // SAFETY: an all-zero cpu_set_t is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the launcher checked `cpu` against CPU_SETSIZE; CPU_SET writes into `set`.
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from a live set.
        check(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) })?;
    }
    Ok(())
}

/// Real group id of PDs started by a root launcher (`nogroup`); their effective group is kept.
const PD_REAL_GID: libc::gid_t = 65534;
/// Owner of a memfd that some PD maps read-only, when the launcher runs as root (`nobody`).
const PD_NOBODY: libc::uid_t = 65534;
const CAP_CHOWN: libc::c_ulong = 0;
const CAP_DAC_OVERRIDE: libc::c_ulong = 1;
const CAP_DAC_READ_SEARCH: libc::c_ulong = 2;
const CAP_FOWNER: libc::c_ulong = 3;
const CAP_SYS_MODULE: libc::c_ulong = 16;
const CAP_SYS_RAWIO: libc::c_ulong = 17;
const CAP_SYS_PTRACE: libc::c_ulong = 19;

/// Forbid other processes of the same user (the PDs) to open this one's memory or descriptors
/// through /proc, ptrace or pidfd_getfd.
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// This process's id.
pub(crate) fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// The eventfd the signal handler writes (-1 when none is installed).
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);
/// The last stop signal received (0 = none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
    let fd = SIGNAL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        wake(fd);
    }
}

/// SIGINT and SIGTERM handlers that write an eventfd, restored to the previous ones on drop.
pub(crate) struct StopSignals {
    fd: OwnedFd,
    old: [libc::sigaction; 2],
}

const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

impl StopSignals {
    /// Install the handlers (one set per process at a time).
    pub(crate) fn install() -> io::Result<Self> {
        let fd = eventfd()?;
        SIGNALLED.store(0, Ordering::SeqCst);
        SIGNAL_FD.store(fd.as_raw_fd(), Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is a valid "default, no flags, empty mask" value.
        let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
        for (sig, old) in STOP_SIGNALS.iter().zip(old.iter_mut()) {
            // SAFETY: as above.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: the handler only does async-signal-safe work (atomics and write(2));
            // `sa` and `old` are live.
            check(unsafe { libc::sigaction(*sig, &sa, old) })?;
        }
        Ok(Self { fd, old })
    }

    /// The eventfd that becomes readable on a stop signal.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The stop signal received, if any.
    pub(crate) fn received(&self) -> Option<libc::c_int> {
        match SIGNALLED.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for (sig, old) in STOP_SIGNALS.iter().zip(&self.old) {
            // SAFETY: restores the disposition saved by `install`.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        SIGNAL_FD.store(-1, Ordering::SeqCst);
    }
}

/// Name and description of a signal, e.g. `("SIGSEGV", "segmentation fault")`.
pub(crate) fn signal_name(sig: libc::c_int) -> (String, &'static str) {
    let known: &[(libc::c_int, &str, &str)] = &[
        (libc::SIGSEGV, "SIGSEGV", "segmentation fault"),
        (libc::SIGBUS, "SIGBUS", "bus error"),
        (libc::SIGILL, "SIGILL", "illegal instruction"),
        (libc::SIGFPE, "SIGFPE", "arithmetic exception"),
        (libc::SIGABRT, "SIGABRT", "aborted"),
        (libc::SIGTRAP, "SIGTRAP", "trace trap"),
        (libc::SIGKILL, "SIGKILL", "killed"),
        (libc::SIGTERM, "SIGTERM", "terminated"),
        (libc::SIGINT, "SIGINT", "interrupted"),
        (libc::SIGHUP, "SIGHUP", "hang-up"),
        (libc::SIGPIPE, "SIGPIPE", "broken pipe"),
        (libc::SIGSYS, "SIGSYS", "bad system call"),
    ];
    known
        .iter()
        .find(|(s, _, _)| *s == sig)
        .map_or((format!("signal {sig}"), "unknown signal"), |(_, n, d)| {
            ((*n).to_owned(), *d)
        })
}

/// The launching terminal's mode, saved at start and put back on drop: a host serial driver puts
/// the terminal into raw mode and may be killed (stop, fault) before it can restore it.
pub(crate) struct TerminalMode(Option<libc::termios>);

impl TerminalMode {
    /// Save the mode of stdin if it is a terminal.
    pub(crate) fn save() -> Self {
        // SAFETY: an all-zero termios is a valid value for tcgetattr to overwrite.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: isatty and tcgetattr read fd 0 and write only into the live `t`.
        let is_tty = unsafe { libc::isatty(0) == 1 && libc::tcgetattr(0, &mut t) == 0 };
        Self(is_tty.then_some(t))
    }
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restores a mode tcgetattr returned for the same fd; `t` is live.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

/// Read `buf.len()` bytes of the file `fd` from `offset` (short only at its end).
pub(crate) fn read_at(fd: &OwnedFd, mut offset: u64, mut buf: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    while !buf.is_empty() {
        let off =
            libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which we borrow mutably.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        match n {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            -1 => return Err(io::Error::last_os_error()),
            0 => break,
            n => {
                let n = n.unsigned_abs();
                total += n;
                offset += n as u64;
                buf = &mut buf[n..];
            }
        }
    }
    Ok(total)
}

/// Whether process `pid` is stopped (state `T` or `t` in `/proc/PID/stat`) or gone.
pub(crate) fn stopped_or_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_none_or(|state| matches!(state, "T" | "t" | "Z" | "X"))
    })
}
