// SPDX-License-Identifier: BSD-2-Clause
//! The host board's serial device: a pair of host fds (the launching terminal, a pty, pipes, ...)
//! as a [`SerialDevice`].
//!
//! - **Rx** reads the rx fd, **Tx** writes the tx fd; both are non-blocking, so a call takes or
//!   gives what it can now. For the launching terminal ([`HostSerial::stdio`]) they are new opens
//!   of the PD's stdin and stdout (`/proc/self/fd/{0,1}`), so `O_NONBLOCK` never leaks into the
//!   shell's shared file description; where a descriptor cannot be re-opened (a socket) a
//!   duplicate is made non-blocking and its flags are put back on drop.
//! - **Terminal mode**: when the rx fd is a terminal it is put into raw mode for the device's life
//!   ([`RawTerminal`]; Ctrl-C still stops the system, Ctrl-\\ arrives as a byte). When it is
//!   the controlling terminal of a background job, it is left alone and input is closed (reading
//!   it would stop the PD with SIGTTIN).
//! - **Interrupts**: one epoll fd is the IRQ source ([`HostSerial::attach_irq`] registers it with
//!   `lions_os::host::register_irq_fd`). It watches the rx fd for `EPOLLIN` while the rx
//!   interrupt is on, and the tx fd for `EPOLLOUT` while the tx interrupt is on, so it is readable
//!   exactly when an enabled condition holds: rx = readable, tx = writable, even when stdin and
//!   stdout are different files. An fd epoll cannot watch (a regular file, `/dev/null`) is always
//!   ready; an always-readable eventfd stands in for it.
//! - **End of input or a broken output** (EOF, `EIO` after a hang-up, `EPIPE`): that direction is
//!   closed for good and never watched again, so a vanished peer cannot cause an interrupt storm.
//!   Bytes for a closed output are taken and dropped (counted), as a UART with nothing attached.

use super::sys;
use super::terminal::RawTerminal;
use lions_os::{Channel, OsError};
use lions_serial::SerialDevice;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One direction's fd.
#[derive(Debug)]
struct Port {
    fd: OwnedFd,
    /// Status flags to put back on drop (we set `O_NONBLOCK` on a description we share).
    restore_flags: Option<libc::c_int>,
    /// Not yet at EOF or broken.
    live: bool,
    /// epoll cannot watch it: always ready.
    always_ready: bool,
    /// In the epoll set now.
    watched: bool,
}

impl Port {
    fn owned(fd: OwnedFd) -> io::Result<Self> {
        sys::set_nonblocking(fd.as_fd())?;
        Ok(Self::new(fd, None))
    }

    fn new(fd: OwnedFd, restore_flags: Option<libc::c_int>) -> Self {
        Self {
            fd,
            restore_flags,
            live: true,
            always_ready: false,
            watched: false,
        }
    }

    /// A non-blocking handle on inherited descriptor `fd`, opened for `access`.
    fn inherited(fd: libc::c_int, access: libc::c_int) -> io::Result<Self> {
        let path = CString::new(format!("/proc/self/fd/{fd}"))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if let Ok(own) = sys::open(&path, access | libc::O_NOCTTY | libc::O_NONBLOCK) {
            return Ok(Self::new(own, None));
        }
        let dup = sys::dup(fd)?;
        let old = sys::set_nonblocking(dup.as_fd())?;
        Ok(Self::new(dup, Some(old)))
    }

    /// Add to or remove from `epoll` to match `want`.
    fn watch(&mut self, epoll: BorrowedFd<'_>, want: bool, events: libc::c_int) {
        if self.always_ready || want == self.watched {
            return;
        }
        let r = sys::epoll_watch(epoll, self.fd.as_fd(), want.then_some(events));
        match r {
            Ok(()) => self.watched = want,
            // EPERM: not pollable (regular file, /dev/null). Other errors: poll it regardless,
            // which costs wake-ups but never loses data.
            Err(_) if want => self.always_ready = true,
            // Removal failed: the fd was already gone from the set.
            Err(_) => self.watched = false,
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Some(flags) = self.restore_flags {
            sys::set_flags(self.fd.as_fd(), flags);
        }
    }
}

/// A serial device on host fds (see the [module docs](self)).
#[derive(Debug)]
pub struct HostSerial {
    rx: Port,
    tx: Port,
    epoll: OwnedFd,
    /// Always readable: in the epoll set while an enabled direction's fd is always ready.
    ready: OwnedFd,
    ready_watched: bool,
    rx_irq: bool,
    tx_irq: bool,
    dropped: u64,
    // Last: restored after the ports' flags.
    raw: Option<RawTerminal>,
}

impl HostSerial {
    /// The PD's launching terminal (or whatever its stdin and stdout are): reads fd 0, writes
    /// fd 1; a terminal on fd 0 goes into raw mode until drop.
    pub fn stdio() -> io::Result<Self> {
        Self::with_ports(
            Port::inherited(0, libc::O_RDONLY)?,
            Port::inherited(1, libc::O_WRONLY)?,
        )
    }

    /// The terminal or pty at `path`, opened read-write (never as controlling terminal); a
    /// terminal goes into raw mode until drop.
    pub fn open(path: &Path) -> io::Result<Self> {
        let cpath = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let fd = sys::open(&cpath, libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK)?;
        let tx = sys::dup(fd.as_raw_fd())?;
        Self::with_ports(Port::new(fd, None), Port::new(tx, None))
    }

    /// Read `rx`, write `tx` (both made non-blocking); a terminal `rx` goes into raw mode until
    /// drop.
    pub fn from_fds(rx: OwnedFd, tx: OwnedFd) -> io::Result<Self> {
        Self::with_ports(Port::owned(rx)?, Port::owned(tx)?)
    }

    fn with_ports(mut rx: Port, tx: Port) -> io::Result<Self> {
        let raw = if !sys::is_tty(rx.fd.as_fd()) {
            None
        } else if sys::in_background(rx.fd.as_fd()) {
            // A background job: reading the terminal or changing its mode would stop this PD
            // (SIGTTIN, SIGTTOU) and with it the system. Output only.
            rx.live = false;
            None
        } else {
            Some(RawTerminal::enter(rx.fd.as_fd())?)
        };
        Ok(Self {
            rx,
            tx,
            epoll: sys::epoll()?,
            ready: sys::ready_fd()?,
            ready_watched: false,
            rx_irq: false,
            tx_irq: false,
            dropped: 0,
            raw,
        })
    }

    /// Deliver this device's interrupts on `irq` (an `<irq>` channel of this PD, from
    /// `.device_resources`). Call it once, in `init`.
    pub fn attach_irq(&self, irq: Channel) -> Result<(), OsError> {
        lions_os::host::register_irq_fd(irq, self.epoll.as_fd())
    }

    /// The IRQ source: readable exactly while an enabled interrupt condition holds.
    pub fn irq_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// The terminal put into raw mode, if the rx fd is one.
    pub fn raw_terminal(&self) -> Option<&RawTerminal> {
        self.raw.as_ref()
    }

    /// Whether input can still arrive (not at EOF or broken).
    pub fn rx_open(&self) -> bool {
        self.rx.live
    }

    /// Whether output still goes somewhere (not broken).
    pub fn tx_open(&self) -> bool {
        self.tx.live
    }

    /// Bytes taken for a broken output and dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Make the epoll set match the interrupt enables and the ports' state.
    fn sync(&mut self) {
        let want_rx = self.rx_irq && self.rx.live;
        let want_tx = self.tx_irq && self.tx.live;
        self.rx.watch(self.epoll.as_fd(), want_rx, libc::EPOLLIN);
        self.tx.watch(self.epoll.as_fd(), want_tx, libc::EPOLLOUT);
        let want_ready = (want_rx && self.rx.always_ready) || (want_tx && self.tx.always_ready);
        if want_ready != self.ready_watched {
            let events = want_ready.then_some(libc::EPOLLIN);
            if sys::epoll_watch(self.epoll.as_fd(), self.ready.as_fd(), events).is_ok() {
                self.ready_watched = want_ready;
            }
        }
    }

    fn close_rx(&mut self) {
        self.rx.live = false;
        self.sync();
    }

    fn close_tx(&mut self) {
        self.tx.live = false;
        self.sync();
    }
}

impl SerialDevice for HostSerial {
    fn tx_write(&mut self, bytes: &[u8]) -> usize {
        if bytes.is_empty() {
            return 0;
        }
        if self.tx.live {
            match sys::write(self.tx.fd.as_fd(), bytes) {
                Ok(n) => return n.min(bytes.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
                Err(_) => self.close_tx(),
            }
        }
        self.dropped = self.dropped.wrapping_add(bytes.len() as u64);
        bytes.len()
    }

    fn rx_read(&mut self, out: &mut [u8]) -> usize {
        if out.is_empty() || !self.rx.live {
            return 0;
        }
        match sys::read(self.rx.fd.as_fd(), out) {
            Ok(0) => self.close_rx(),
            Ok(n) => return n.min(out.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.close_rx(),
        }
        0
    }

    fn set_tx_irq(&mut self, on: bool) {
        self.tx_irq = on;
        self.sync();
    }

    fn set_rx_irq(&mut self, on: bool) {
        self.rx_irq = on;
        self.sync();
    }
}

#[cfg(test)]
mod tests;
