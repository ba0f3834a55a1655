// SPDX-License-Identifier: BSD-2-Clause
//! The seL4 Microkit backend: a PD on seL4 (Microkit 2.3.0, seL4 16.0.0, aarch64), with no
//! dependency and no nightly feature.
//!
//! It is selected by the target: on `aarch64` with `target_os = "none"` (`aarch64-unknown-none`)
//! this crate *is* a Microkit PD runtime (`cfg(lions_microkit)`, set by the build script). The
//! portable parts ([`abi`], [`board`], [`pd`]: numbers, the backend over a [`Kernel`] and the
//! event loop) build everywhere and are tested on the host with a fake kernel; the rest exists
//! only on the target.
//!
//! ## What a PD binary gets (target only)
//!
//! - **Entry and stack**: [`protection_domain!`](crate::protection_domain) defines `_start`,
//!   which switches SP to the PD's own stack ([`DEFAULT_STACK_SIZE`] or `stack_size = N`, in a
//!   zero-filled segment above an unmapped guard page: an overflow faults), clears the frame
//!   pointer and link register and branches to `run`. The stack the Microkit tool maps (8 KiB by
//!   default, `stack_size` in the system description) is not used: a debug build of a
//!   virtualiser with 64 client slots overflows it during `init`.
//! - **Patched symbols**: `microkit_name` (64 B), `microkit_passive` (1 B), `microkit_irqs`,
//!   `microkit_notifications`, `microkit_pps`, `microkit_ioports` (8 B each) in `.data.microkit`,
//!   read with volatile loads (`PdInfo::from_symbols`).
//! - **Layout**: `link/lions-os-microkit.ld`, linked automatically: entry `_start`, base
//!   `0x200000`, a text segment (R+X, with read-only data), a data segment (R+W) and the stack
//!   segment, each starting on its own 4 KiB page, `.eh_frame` discarded.
//! - **Kernel operations** (`Sel4`, a [`Kernel`]): `notify` is a Signal on slot `10 + ch`,
//!   `pp_call` a Call on `74 + ch`, `irq_ack` an `IRQAckIRQ` invocation on `138 + ch`; each is
//!   refused with [`OsErrorKind::NotPermitted`](crate::OsErrorKind) unless the tool's masks give
//!   the PD that right on the channel. Message registers 0–3 travel in `x2`–`x5`, the rest in the
//!   IPC buffer ([`board::current::IPC_BUFFER`]).
//! - **Event loop**: [`EventLoop`], exactly as libmicrokit's (IRQ acks after `init`, the passive
//!   PD's report to the monitor, `ReplyRecv` when a reply is pending, a deferred notify or IRQ ack
//!   folded into `NBSendRecv`).
//! - **Failures**: a panic prints `<pd>: panicked at <file:line>: <message>` and a handler error
//!   `<pd>: notified({..}) failed: <error>`, then the PD stops with a fault (an undefined
//!   instruction), which the monitor reports.
//! - **Printing**: [`debug_print!`](crate::debug_print) / [`debug_println!`](crate::debug_println)
//!   go to `seL4_DebugPutChar` with the `debug-print` feature (debug kernels only; a release
//!   kernel would fault the PD on that call) and compile to nothing without it.

pub mod abi;
pub mod board;
pub mod pd;
#[cfg(lions_microkit)]
mod rt;
#[cfg(lions_microkit)]
mod sel4;
#[cfg(test)]
mod tests;
pub mod vcpu;

pub use pd::{EventLoop, HandlerFailure, Kernel, MicrokitPd, PdInfo, Received, serve};
#[cfg(lions_microkit)]
pub use rt::{Stack, halt, pd_name, print, run};
#[cfg(lions_microkit)]
pub use sel4::Sel4;

/// Stack of a PD on seL4 unless `protection_domain!(init, stack_size = N)` says otherwise: 64 KiB,
/// or 256 KiB in a debug build (a serial virtualiser's `init` needs more than 16 KiB optimised and
/// more than 64 KiB unoptimised: its 64 client slots are copied a few times on the way).
pub const DEFAULT_STACK_SIZE: usize = if cfg!(debug_assertions) {
    256 * 1024
} else {
    64 * 1024
};
