// SPDX-License-Identifier: BSD-2-Clause
//! Dispatch from the free-standing API (`Channel::notify`, `get_mr`, ...) to the backend that runs
//! this PD, and the one-slot deferred action.
//!
//! A backend installs itself for the span of an event with [`with_backend`] (the sim backend does so
//! per handler call, the host backend once for the process). Each installation has its own deferred
//! slot, so a nested PPC into another simulated PD cannot disturb the caller's.

use crate::channel::{Channel, MessageInfo};
use crate::error::{Op, OsError, OsErrorKind};
use core::cell::Cell;

/// What a backend provides: the kernel operations of one PD.
pub trait Backend {
    /// This PD's name.
    fn pd_name(&self) -> &str;
    /// Signal channel `ch`.
    fn notify(&self, ch: Channel) -> Result<(), OsError>;
    /// Acknowledge the IRQ on `ch`.
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError>;
    /// Call the PD at the other end of `ch`; message registers travel with the call and the reply.
    fn ppcall(&self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError>;
    /// Message register `i` (0 when out of range).
    fn mr(&self, i: usize) -> u64;
    /// Set message register `i` (ignored when out of range).
    fn set_mr(&self, i: usize, value: u64);
    /// The deferred action still pending when [`with_backend`] returned failed (outside an event
    /// loop there is no caller to hand the error to). The default drops it; the host, sim and
    /// Microkit backends report it (stderr, the fault list, the debug console).
    fn deferred_failed(&self, error: OsError) {
        let _ = error;
    }
    /// One pause of a busy-wait loop (see [`relax`]). The default is a spin hint.
    fn relax(&self) {
        core::hint::spin_loop();
    }
}

/// An action performed at the end of the current event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// Signal a channel.
    Notify(Channel),
    /// Acknowledge an IRQ.
    IrqAck(Channel),
}

impl Deferred {
    /// Perform it now.
    #[inline]
    pub fn execute(self) -> Result<(), OsError> {
        match self {
            Self::Notify(ch) => notify(ch),
            Self::IrqAck(ch) => irq_ack(ch),
        }
    }

    /// The channel it acts on.
    pub fn channel(self) -> Channel {
        match self {
            Self::Notify(ch) | Self::IrqAck(ch) => ch,
        }
    }
}

struct Frame {
    backend: *const (dyn Backend + 'static),
    deferred: Option<Deferred>,
}

/// The installed frame. PDs are single-threaded; under `std` each thread has its own.
#[cfg(any(test, feature = "std"))]
mod current {
    use super::*;
    std::thread_local! {
        static CURRENT: Cell<*mut Frame> = const { Cell::new(core::ptr::null_mut()) };
    }
    #[inline]
    pub(super) fn get() -> *mut Frame {
        CURRENT.with(Cell::get)
    }
    pub(super) fn set(f: *mut Frame) {
        CURRENT.with(|c| c.set(f));
    }
}

#[cfg(not(any(test, feature = "std")))]
mod current {
    use super::*;
    struct Single(Cell<*mut Frame>);
    // SAFETY: without `std` this crate runs only as a single-threaded seL4 PD (no threads exist).
    unsafe impl Sync for Single {}
    static CURRENT: Single = Single(Cell::new(core::ptr::null_mut()));
    #[inline]
    pub(super) fn get() -> *mut Frame {
        CURRENT.0.get()
    }
    pub(super) fn set(f: *mut Frame) {
        CURRENT.0.set(f);
    }
}

/// Run `f` with `backend` serving this PD's kernel operations; the previous backend (if any) is
/// restored afterwards. A deferred action still pending when `f` returns is performed then; if
/// it fails, the error goes to [`Backend::deferred_failed`] (use [`try_with_backend`] to get it).
pub fn with_backend<R>(backend: &dyn Backend, f: impl FnOnce() -> R) -> R {
    let (r, deferred) = try_with_backend(backend, f);
    if let Err(e) = deferred {
        backend.deferred_failed(e);
    }
    r
}

/// As [`with_backend`], returning the outcome of the deferred action still pending when `f`
/// returned (`Ok` when there was none) beside `f`'s result.
pub fn try_with_backend<R>(
    backend: &dyn Backend,
    f: impl FnOnce() -> R,
) -> (R, Result<(), OsError>) {
    // SAFETY: only the lifetime is erased; the frame holding the pointer lives on this stack frame
    // and is uninstalled (by `Restore`, even on unwind) before `backend`'s borrow ends.
    let backend: *const (dyn Backend + 'static) = unsafe { core::mem::transmute(backend) };
    let mut frame = Frame {
        backend,
        deferred: None,
    };
    struct Restore(*mut Frame);
    impl Drop for Restore {
        fn drop(&mut self) {
            current::set(self.0);
        }
    }
    let _restore = Restore(current::get());
    current::set(&mut frame);
    let r = f();
    let deferred = take_deferred().map_or(Ok(()), Deferred::execute);
    (r, deferred)
}

#[inline]
fn frame<'a>() -> Option<&'a mut Frame> {
    // SAFETY: a non-null pointer was installed by `with_backend` and stays valid until it returns;
    // PDs are single-threaded and the references made here never outlive one API call.
    unsafe { current::get().as_mut() }
}

#[inline]
fn backend_op<R>(
    op: Op,
    ch: Option<Channel>,
    f: impl FnOnce(&dyn Backend) -> Result<R, OsError>,
) -> Result<R, OsError> {
    match frame() {
        // SAFETY: see `frame`; the backend outlives the installation.
        Some(fr) => f(unsafe { &*fr.backend }),
        None => Err(OsError::new("?", op, ch, OsErrorKind::NoBackend)),
    }
}

/// Signal `ch` (see [`Channel::notify`]).
#[inline]
pub fn notify(ch: Channel) -> Result<(), OsError> {
    backend_op(Op::Notify, Some(ch), |b| b.notify(ch))
}

/// Acknowledge the IRQ on `ch`.
#[inline]
pub fn irq_ack(ch: Channel) -> Result<(), OsError> {
    backend_op(Op::IrqAck, Some(ch), |b| b.irq_ack(ch))
}

/// PPC on `ch`.
pub fn ppcall(ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
    backend_op(Op::PpCall, Some(ch), |b| b.ppcall(ch, msg))
}

/// Defer an action to the end of the event. One slot, as libmicrokit: if an action is already
/// deferred, it is performed now and `action` takes its place.
#[inline]
pub fn defer(action: Deferred) -> Result<(), OsError> {
    let fr = frame().ok_or_else(|| {
        OsError::new(
            "?",
            Op::Defer,
            Some(action.channel()),
            OsErrorKind::NoBackend,
        )
    })?;
    match fr.deferred.replace(action) {
        Some(previous) => previous.execute(),
        None => Ok(()),
    }
}

/// Take the pending deferred action (event loops call this after each event).
pub fn take_deferred() -> Option<Deferred> {
    frame().and_then(|f| f.deferred.take())
}

/// Message register `i` of this PD (0 without a backend).
pub fn get_mr(i: usize) -> u64 {
    backend_op(Op::Mr, None, |b| Ok(b.mr(i))).unwrap_or(0)
}

/// Set message register `i` of this PD.
pub fn set_mr(i: usize, value: u64) {
    let _ = backend_op(Op::Mr, None, |b| {
        b.set_mr(i, value);
        Ok(())
    });
}

/// One pause of a busy-wait loop, for a PD that waits for a peer inside a handler (a blocking
/// write into a full queue). On seL4 a spin hint: a peer at a higher priority or on another core
/// makes the progress. On the host board a short sleep, so that a PD spinning at a real-time
/// priority does not starve the processes outside the system (the terminal it prints to).
pub fn relax() {
    match frame() {
        // SAFETY: see `frame`; the backend outlives the installation.
        Some(fr) => unsafe { &*fr.backend }.relax(),
        None => core::hint::spin_loop(),
    }
}

/// Run `f` with this PD's name ("?" outside a PD).
pub fn with_pd_name<R>(f: impl FnOnce(&str) -> R) -> R {
    match frame() {
        // SAFETY: see `frame`.
        Some(fr) => f(unsafe { &*fr.backend }.pd_name()),
        None => f("?"),
    }
}
