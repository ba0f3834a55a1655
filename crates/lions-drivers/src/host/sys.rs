// SPDX-License-Identifier: BSD-2-Clause
//! The Linux system calls the host drivers make, each behind a safe function.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Result of a libc call that returns -1 and sets errno on failure.
pub(super) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Take ownership of a descriptor a successful system call just returned.
pub(super) fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the call that returned `fd` created it for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec duplicate of `fd`, which need not be open (then `EBADF`).
pub(super) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads the descriptor table; a closed `fd` is an error.
    owned(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// Open `path` with `flags` (close-on-exec added).
pub(super) fn open(path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// Set `O_NONBLOCK` on `fd`; returns the file status flags it had.
pub(super) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFL/F_SETFL only read and write the open file description's status flags.
    let old = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, old | libc::O_NONBLOCK) })?;
    Ok(old)
}

/// Put back status flags saved by [`set_nonblocking`].
pub(super) fn set_flags(fd: BorrowedFd<'_>, flags: libc::c_int) {
    // SAFETY: F_SETFL only writes the open file description's status flags.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) };
}

/// Whether `fd` is a terminal.
pub(super) fn is_tty(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd.as_raw_fd()) == 1 }
}

/// Whether `fd` is this process's controlling terminal and another process group is in the
/// foreground: reading it would stop us with SIGTTIN, changing its mode with SIGTTOU.
pub(super) fn in_background(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: tcgetpgrp and getpgrp only inspect process and terminal state.
    let (fg, own) = unsafe { (libc::tcgetpgrp(fd.as_raw_fd()), libc::getpgrp()) };
    fg != -1 && fg != own
}

/// `read(2)`, retried on `EINTR`.
pub(super) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into the live, exclusive `buf`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => interrupted_or(io::Error::last_os_error())?,
        }
    }
}

/// `write(2)`, retried on `EINTR`.
pub(super) fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the kernel reads at most `buf.len()` bytes from the live `buf`.
        let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match usize::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => interrupted_or(io::Error::last_os_error())?,
        }
    }
}

fn interrupted_or(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::Interrupted {
        Ok(())
    } else {
        Err(e)
    }
}

/// A new epoll instance.
pub(super) fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

/// Add `fd` to `epoll` for `events` (level-triggered), or remove it with `None`.
pub(super) fn epoll_watch(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    events: Option<libc::c_int>,
) -> io::Result<()> {
    let (op, events) = match events {
        Some(e) => (libc::EPOLL_CTL_ADD, e),
        None => (libc::EPOLL_CTL_DEL, 0),
    };
    let mut ev = libc::epoll_event {
        events: u32::from_ne_bytes(events.to_ne_bytes()),
        u64: 0,
    };
    // SAFETY: `ev` is a live epoll_event; the kernel copies it.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) }).map(drop)
}

/// An eventfd holding 1: always readable, never consumed.
pub(super) fn ready_fd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    owned(unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// A new `CLOCK_MONOTONIC` timerfd, non-blocking.
pub(super) fn timerfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    owned(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })
}

/// Arm `fd` to expire once at absolute `CLOCK_MONOTONIC` time `ns` (0 disarms).
pub(super) fn timerfd_arm_at(fd: BorrowedFd<'_>, ns: u64) -> io::Result<()> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let value = libc::timespec {
        tv_sec: libc::time_t::try_from(ns / 1_000_000_000).unwrap_or(libc::time_t::MAX),
        // Below 10^9: always fits.
        tv_nsec: libc::c_long::try_from(ns % 1_000_000_000).unwrap_or(0),
    };
    let spec = libc::itimerspec {
        it_interval: zero,
        it_value: value,
    };
    // SAFETY: `spec` is a live itimerspec the kernel reads; the old value is not asked for.
    check(unsafe {
        libc::timerfd_settime(
            fd.as_raw_fd(),
            libc::TFD_TIMER_ABSTIME,
            &spec,
            std::ptr::null_mut(),
        )
    })
    .map(drop)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (saturating).
pub(super) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes into the live `ts`; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// A new eventfd counting from 0, non-blocking.
pub(super) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Add, change (`EPOLL_CTL_MOD`) or remove (`EPOLL_CTL_DEL`) `fd` in `epoll`, watched for
/// reading and/or writing, with `fd` itself as the event's data (so a wake-up says which fd).
pub(super) fn epoll_ctl_fd(
    epoll: BorrowedFd<'_>,
    fd: BorrowedFd<'_>,
    read: bool,
    write: bool,
    op: libc::c_int,
) -> io::Result<()> {
    let events = (if read { libc::EPOLLIN } else { 0 }) | (if write { libc::EPOLLOUT } else { 0 });
    let mut ev = libc::epoll_event {
        events: u32::try_from(events).unwrap_or(0),
        u64: u64::try_from(fd.as_raw_fd()).unwrap_or(0),
    };
    // SAFETY: `ev` is a live epoll_event; both fds are open.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) }).map(drop)
}

/// Add 1 to the eventfd `fd` (a full counter is left as it is: it is readable either way).
pub(super) fn signal(fd: BorrowedFd<'_>) {
    let b = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer to an eventfd.
    let _ = unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), 8) };
}

/// Read and discard the count of the non-blocking eventfd or timerfd `fd` (none is fine).
pub(super) fn consume(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live buffer from a non-blocking fd.
    let _ = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
}

/// Arm the timerfd `fd` to expire `micros` from now (at least 1 us), or disarm it (`None`).
pub(super) fn timerfd_arm_in(fd: BorrowedFd<'_>, micros: Option<u64>) {
    let us = micros.map_or(0, |m| m.max(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(us / 1_000_000).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::try_from((us % 1_000_000) * 1000).unwrap_or(0),
        },
    };
    // SAFETY: `spec` is live; the old value is not asked for.
    let _ = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
}
