// SPDX-License-Identifier: BSD-2-Clause
//! The few Linux system calls a host PD makes, each behind a safe function.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Result of a libc call that returns -1 and sets errno on failure.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A new anonymous shared-memory file of `size` bytes (zero-filled), closed on exec; `sealable`
/// allows [`seal_read_only`] later.
pub(crate) fn memfd(name: &str, size: u64, sealable: bool) -> io::Result<OwnedFd> {
    let mut cname: Vec<u8> = name.bytes().filter(|&b| b != 0).take(200).collect();
    cname.push(0);
    let flags = libc::MFD_CLOEXEC | if sealable { libc::MFD_ALLOW_SEALING } else { 0 };
    // SAFETY: `cname` is a NUL-terminated string that outlives the call.
    let fd = check(unsafe { libc::memfd_create(cname.as_ptr().cast(), flags) })?;
    // SAFETY: `memfd_create` just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let size =
        libc::off_t::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain system call on a descriptor we own.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(fd)
}

/// Protection bits for [`map_at`] and [`map_anywhere`].
pub(crate) fn prot(read: bool, write: bool, execute: bool) -> libc::c_int {
    let mut p = libc::PROT_NONE;
    if read {
        p |= libc::PROT_READ;
    }
    if write {
        p |= libc::PROT_WRITE;
    }
    if execute {
        p |= libc::PROT_EXEC;
    }
    p
}

/// Map `len` bytes of `fd` shared at exactly `vaddr` with protection `prot`, for the rest of the
/// process's life. Refuses (never replaces) an address range that is already in use.
pub(crate) fn map_at(
    fd: BorrowedFd<'_>,
    vaddr: u64,
    len: u64,
    prot: libc::c_int,
) -> io::Result<()> {
    let addr = usize::try_from(vaddr).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping, so no memory this process
    // already uses (and so no Rust object) is affected; the new pages are shared memory that Rust
    // code only reaches through raw pointers the component builds from the system description.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if p as usize != addr {
        // A kernel older than 4.17 takes the address as a hint only.
        // SAFETY: `p..p+len` is the mapping just made, which nothing else refers to.
        unsafe { libc::munmap(p, len) };
        return Err(io::Error::other(
            "the kernel placed the mapping elsewhere (Linux 4.17 or later is needed)",
        ));
    }
    Ok(())
}

/// Seal a memfd made with `sealable` so that nobody can write it any more, through any
/// descriptor or any new mapping (Linux 5.1+), nor resize it; mappings made before stay writable.
pub(crate) fn seal_read_only(fd: BorrowedFd<'_>) -> io::Result<()> {
    let seals =
        libc::F_SEAL_FUTURE_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
    // SAFETY: plain fcntl with integer arguments.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// Forbid other processes of the same user (without CAP_SYS_PTRACE) to inspect this one: no
/// `/proc/<pid>/mem`, `/proc/<pid>/fd`, ptrace or `pidfd_getfd`.
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// A new epoll instance, closed on exec.
pub(crate) fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the new descriptor is owned by nobody else.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `epoll_create1` just returned this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watch `fd` (the read end of a wake-up pipe) for readability, edge-triggered, in `ep`, with the
/// descriptor as the event's data.
pub(crate) fn epoll_add_edge(ep: BorrowedFd<'_>, fd: RawFd) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: u64::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    };
    // SAFETY: `ev` is a live local the kernel reads.
    check(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &raw mut ev) })
        .map(drop)
}

/// Wait for events in `ep` (`timeout_ms` -1: forever, 0: collect only), retried on EINTR, and
/// drain every wake-up pipe that fired.
pub(crate) fn epoll_wait(ep: RawFd, timeout_ms: libc::c_int) {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
    loop {
        // SAFETY: the kernel writes at most `evs.len()` events into a live local array.
        let r = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), 16, timeout_ms) };
        if r >= 0 {
            for e in evs.iter().take(usize::try_from(r).unwrap_or(0)) {
                drain(RawFd::try_from(e.u64).unwrap_or(-1));
            }
            return;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Empty the read end of a (non-blocking) wake-up pipe.
fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reads at most `buf.len()` bytes into a live local buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n < 256 {
            return;
        }
    }
}

/// A shared mapping of a file, unmapped on drop.
pub(crate) struct Mapping {
    ptr: core::ptr::NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Map `len` bytes of `fd` shared (read-write, or read-only when `!writable`), wherever the
    /// kernel chooses.
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Self> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: the kernel picks a free range; nothing existing is touched.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = core::ptr::NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: this is exactly the range `new` mapped; borrows of it end with `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Write a wake-up byte into the write end of a channel's (non-blocking) wake-up pipe. Errors are
/// ignored: a full pipe already holds wake-ups its reader has not taken.
pub(crate) fn wake(fd: RawFd) {
    let one: u8 = 1;
    // SAFETY: writes 1 byte from a live local; the descriptor is a number only.
    unsafe { libc::write(fd, (&raw const one).cast(), 1) };
}

/// Block until the read end of a wake-up pipe is readable, then drain it (a PPC caller waiting
/// for its reply on the channel's inbound pipe).
pub(crate) fn wait(fd: RawFd) {
    let mut p = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    poll(&mut p, -1);
    drain(fd);
}

/// `poll(2)`, retried on EINTR; returns how many entries have events.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> usize {
    loop {
        let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a valid, exclusively borrowed array of `n` pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
        if r >= 0 {
            return usize::try_from(r).unwrap_or(0);
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

/// Read a whole file from offset 0 without moving its (possibly shared) file offset.
pub(crate) fn read_all_at(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let off =
            libc::off_t::try_from(out.len()).map_err(|_| io::Error::other("file too large"))?;
        // SAFETY: reads at most `buf.len()` bytes into a live local buffer.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        match n {
            0 => return Ok(out),
            n if n > 0 => out.extend_from_slice(&buf[..n.unsigned_abs()]),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// Take ownership of an inherited descriptor named by number (from the manifest), after checking
/// that it is open.
pub(crate) fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only queries the descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: the launcher passed this open descriptor to this process for this one use, and the
    // manifest names it once; nothing else in the process refers to it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Name this thread (as `ps`/`top` show it; Linux keeps 15 bytes).
pub(crate) fn set_thread_name(name: &str) {
    let mut b: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    b.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, b.as_ptr()) };
}

/// End the process at once with `code`, running no destructors or exit handlers (a faulted PD
/// stops where it is, as a faulted seL4 thread does).
pub(crate) fn exit_now(code: u8) -> ! {
    // SAFETY: `_exit` is always safe to call; it does not return.
    unsafe { libc::_exit(libc::c_int::from(code)) }
}
