// SPDX-License-Identifier: BSD-2-Clause
//! Raw mode for the terminal a host serial device reads, undone on drop and on `SIGTERM`.
//!
//! [`raw_mode`] is what a UART sees: every byte as typed, one at a time, nothing echoed, no line
//! editing, no flow control, no CR/NL translation on input (Enter arrives as `\r`, the Rx
//! virtualiser's terminate character), 8-bit characters. Two things stay on purpose:
//!
//! - **`ISIG` with `VINTR` (Ctrl-C)**: Ctrl-C still raises SIGINT in the foreground process group.
//!   PDs ignore it, the `lions-host` launcher takes it and stops the whole system (SIGTERM to every
//!   PD), which restores the terminal (here, and again in the launcher). A system on a terminal can
//!   always be stopped. `VQUIT` and `VSUSP` are disabled, so **Ctrl-\\ (0x1c)**, the Rx
//!   virtualiser's switch character, and Ctrl-Z (0x1a) arrive as bytes rather than killing or
//!   stopping PDs that hold the terminal raw.
//! - **Output processing (`OPOST`)** is left as it was, so a client's `\n` still starts a new line.
//!
//! [`RawTerminal`] saves the mode, applies [`raw_mode`], and restores the saved mode when dropped.
//! A PD is usually ended by SIGTERM (the launcher's stop), which runs no destructors: the first
//! `RawTerminal` alive also arms a SIGTERM handler (installed once, and only where SIGTERM still
//! has its default action) that restores the mode, then lets SIGTERM end the process as before.

use super::sys;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// `termios` with the raw-mode changes described in the [module docs](self) applied to `mode`.
pub fn raw_mode(mode: &libc::termios) -> libc::termios {
    let mut t = *mode;
    t.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
    t.c_lflag |= libc::ISIG;
    t.c_cflag &= !(libc::CSIZE | libc::PARENB);
    t.c_cflag |= libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t.c_cc[libc::VQUIT] = libc::_POSIX_VDISABLE;
    t.c_cc[libc::VSUSP] = libc::_POSIX_VDISABLE;
    t
}

/// A terminal in [`raw_mode`]; the saved mode is restored on drop (and on SIGTERM, see the
/// [module docs](self)).
pub struct RawTerminal {
    fd: OwnedFd,
    saved: libc::termios,
    armed: bool,
}

impl RawTerminal {
    /// Save the mode of the terminal `fd` refers to and switch it to [`raw_mode`]. Fails when `fd`
    /// is not a terminal.
    pub fn enter(fd: BorrowedFd<'_>) -> io::Result<Self> {
        let fd = sys::dup(fd.as_raw_fd())?;
        let saved = get_mode(fd.as_fd())?;
        set_mode(fd.as_fd(), &raw_mode(&saved))?;
        let armed = exit::arm(fd.as_raw_fd(), &saved);
        Ok(Self { fd, saved, armed })
    }

    /// The mode restored on drop.
    pub fn saved_mode(&self) -> &libc::termios {
        &self.saved
    }
}

impl core::fmt::Debug for RawTerminal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawTerminal")
            .field("fd", &self.fd)
            .field("restores_on_sigterm", &self.armed)
            .finish_non_exhaustive()
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // Restore first: a SIGTERM between the two steps then finds the slot still armed.
        let _ = set_mode(self.fd.as_fd(), &self.saved);
        if self.armed {
            exit::disarm();
        }
    }
}

/// The terminal mode of `fd`.
pub fn get_mode(fd: BorrowedFd<'_>) -> io::Result<libc::termios> {
    let mut t = MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr writes a whole termios into `t` when it succeeds.
    sys::check(unsafe { libc::tcgetattr(fd.as_raw_fd(), t.as_mut_ptr()) })?;
    // SAFETY: tcgetattr succeeded, so `t` is initialised.
    Ok(unsafe { t.assume_init() })
}

/// Set the terminal mode of `fd` at once.
pub fn set_mode(fd: BorrowedFd<'_>, mode: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr reads the live `mode`.
    sys::check(unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, mode) }).map(drop)
}

/// The one terminal a SIGTERM restores: a lock-free slot the signal handler can read.
mod exit {
    use super::*;
    use std::sync::Once;
    use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

    const FREE: u8 = 0;
    /// Being written by `arm`, or taken by the handler: nobody else reads or writes `SAVED`.
    const BUSY: u8 = 1;
    const ARMED: u8 = 2;

    static STATE: AtomicU8 = AtomicU8::new(FREE);
    static FD: AtomicI32 = AtomicI32::new(-1);

    struct Saved(UnsafeCell<MaybeUninit<libc::termios>>);
    // SAFETY: `SAVED` is written only by the thread that moved `STATE` from FREE to BUSY, and read
    // only by the handler after it moved `STATE` from ARMED to BUSY; the Release/Acquire pair on
    // `STATE` orders the write before the read.
    unsafe impl Sync for Saved {}
    static SAVED: Saved = Saved(UnsafeCell::new(MaybeUninit::uninit()));

    static INSTALL: Once = Once::new();

    /// Make (`fd`, `mode`) what SIGTERM restores, unless another terminal already is.
    pub(super) fn arm(fd: i32, mode: &libc::termios) -> bool {
        if STATE
            .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: BUSY, taken above, gives this thread sole access to `SAVED`.
        unsafe { (*SAVED.0.get()).write(*mode) };
        FD.store(fd, Ordering::Relaxed);
        STATE.store(ARMED, Ordering::Release);
        INSTALL.call_once(install);
        true
    }

    /// Forget the armed terminal.
    pub(super) fn disarm() {
        let _ = STATE.compare_exchange(ARMED, FREE, Ordering::AcqRel, Ordering::Relaxed);
    }

    fn install() {
        // SAFETY: an all-zero sigaction is a valid value for sigaction to overwrite.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `old`.
        let ok = unsafe { libc::sigaction(libc::SIGTERM, core::ptr::null(), &mut old) } == 0;
        if !ok || old.sa_sigaction != libc::SIG_DFL {
            return; // Someone else handles SIGTERM; leave it to them.
        }
        // SAFETY: as above.
        let mut sa: libc::sigaction = unsafe { core::mem::zeroed() };
        sa.sa_sigaction = on_sigterm as *const () as libc::sighandler_t;
        // SAFETY: the handler makes only async-signal-safe calls (atomics, tcsetattr, signal,
        // raise) on data that stays valid for the process's life.
        unsafe { libc::sigaction(libc::SIGTERM, &sa, core::ptr::null_mut()) };
    }

    extern "C" fn on_sigterm(sig: libc::c_int) {
        if STATE
            .compare_exchange(ARMED, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: BUSY, taken above, gives the handler sole access to `SAVED`, which `arm`
            // initialised before publishing ARMED; the slot stays BUSY (the process is ending).
            unsafe {
                libc::tcsetattr(
                    FD.load(Ordering::Relaxed),
                    libc::TCSANOW,
                    (*SAVED.0.get()).as_ptr(),
                )
            };
        }
        // SAFETY: back to the default action, then re-raise: SIGTERM is blocked while its handler
        // runs, so it ends the process as soon as the handler returns.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}
