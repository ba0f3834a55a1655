// SPDX-License-Identifier: BSD-2-Clause
//! The seL4 system calls of a Microkit PD on aarch64 (MCS kernel), behind the safe [`Kernel`]
//! trait: `svc #0` with `x7` = the call number, `x0` = capability in and badge out, `x1` = message
//! info in and out, `x2`–`x5` = message registers 0–3, `x6` = the reply object, `x8` = the
//! destination of `NBSendRecv`. Message registers live in the IPC buffer; each call loads
//! registers 0–3 from it into `x2`–`x5` and stores what comes back, so the kernel sees the rest
//! there directly.
//!
//! Every wrapper is safe: a capability address is only a number the kernel checks (a wrong one
//! makes the call fail, never touch this PD's memory), and the only memory the kernel writes is
//! the IPC buffer, which no Rust reference points into.

use super::abi::{Cptr, ipc_mr_offset, sys};
use super::board::current::IPC_BUFFER;
use super::pd::{Kernel, Received};
use crate::channel::MAX_MESSAGE_REGISTERS;
use core::arch::asm;

/// Address of message register `i` (`i <` [`MAX_MESSAGE_REGISTERS`]) in the IPC buffer.
fn ipc_mr(i: usize) -> *mut u64 {
    core::ptr::with_exposed_provenance_mut(IPC_BUFFER + ipc_mr_offset(i))
}

/// Message registers 0–3 from the IPC buffer, for the registers of a send.
fn load_regs() -> [u64; 4] {
    // SAFETY: the Microkit tool maps the IPC buffer page read-write at `IPC_BUFFER` in every PD
    // for its whole life; offsets 8..40 are inside it and 8-aligned. The PD is single-threaded
    // and only the kernel (during a system call) writes it otherwise.
    core::array::from_fn(|i| unsafe { ipc_mr(i).read_volatile() })
}

/// Message registers 0–3 as a receive returned them, into the IPC buffer.
fn store_regs(regs: [u64; 4]) {
    for (i, r) in regs.into_iter().enumerate() {
        // SAFETY: as in `load_regs`.
        unsafe { ipc_mr(i).write_volatile(r) };
    }
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sel4;

impl Kernel for Sel4 {
    fn send(&self, dest: Cptr, info: u64) {
        let m = load_regs();
        // SAFETY: seL4_Send: the kernel reads x0–x5 and the IPC buffer and writes no memory of
        // ours; every register it may change is declared clobbered.
        unsafe {
            asm!("svc #0",
                inout("x0") dest => _, inout("x1") info => _,
                inout("x2") m[0] => _, inout("x3") m[1] => _,
                inout("x4") m[2] => _, inout("x5") m[3] => _,
                out("x6") _, inout("x7") sys::SEND => _, out("x8") _,
                options(nostack));
        }
    }

    fn call(&self, dest: Cptr, info: u64) -> u64 {
        let m = load_regs();
        let (out, r0, r1, r2, r3);
        // SAFETY: seL4_Call: the kernel writes the reply into x1–x5 and the IPC buffer (not
        // referenced by any Rust value); every register it may change is declared.
        unsafe {
            asm!("svc #0",
                inout("x0") dest => _, inout("x1") info => out,
                inout("x2") m[0] => r0, inout("x3") m[1] => r1,
                inout("x4") m[2] => r2, inout("x5") m[3] => r3,
                out("x6") _, inout("x7") sys::CALL => _, out("x8") _,
                options(nostack));
        }
        store_regs([r0, r1, r2, r3]);
        out
    }

    fn recv(&self, src: Cptr, reply: Cptr) -> Received {
        let (badge, info, r0, r1, r2, r3);
        // SAFETY: seL4_Recv: the kernel writes the message into x0–x5 and the IPC buffer.
        unsafe {
            asm!("svc #0",
                inout("x0") src => badge, out("x1") info,
                out("x2") r0, out("x3") r1, out("x4") r2, out("x5") r3,
                inout("x6") reply => _, inout("x7") sys::RECV => _, out("x8") _,
                options(nostack));
        }
        store_regs([r0, r1, r2, r3]);
        Received { badge, info }
    }

    fn reply_recv(&self, src: Cptr, info: u64, reply: Cptr) -> Received {
        let m = load_regs();
        let (badge, out, r0, r1, r2, r3);
        // SAFETY: seL4_ReplyRecv: as `call`, then as `recv`.
        unsafe {
            asm!("svc #0",
                inout("x0") src => badge, inout("x1") info => out,
                inout("x2") m[0] => r0, inout("x3") m[1] => r1,
                inout("x4") m[2] => r2, inout("x5") m[3] => r3,
                inout("x6") reply => _, inout("x7") sys::REPLY_RECV => _, out("x8") _,
                options(nostack));
        }
        store_regs([r0, r1, r2, r3]);
        Received { badge, info: out }
    }

    fn nb_send_recv(&self, dest: Cptr, info: u64, src: Cptr, reply: Cptr) -> Received {
        let m = load_regs();
        let (badge, out, r0, r1, r2, r3);
        // SAFETY: seL4_NBSendRecv: as `send` to x8, then as `recv`.
        unsafe {
            asm!("svc #0",
                inout("x0") src => badge, inout("x1") info => out,
                inout("x2") m[0] => r0, inout("x3") m[1] => r1,
                inout("x4") m[2] => r2, inout("x5") m[3] => r3,
                inout("x6") reply => _, inout("x7") sys::NB_SEND_RECV => _,
                inout("x8") dest => _,
                options(nostack));
        }
        store_regs([r0, r1, r2, r3]);
        Received { badge, info: out }
    }

    fn mr(&self, i: usize) -> u64 {
        if i >= MAX_MESSAGE_REGISTERS {
            return 0;
        }
        // SAFETY: as in `load_regs`; `i < 120` keeps the word inside the IPC buffer page.
        unsafe { ipc_mr(i).read_volatile() }
    }

    fn set_mr(&self, i: usize, value: u64) {
        if i < MAX_MESSAGE_REGISTERS {
            // SAFETY: as in `mr`.
            unsafe { ipc_mr(i).write_volatile(value) };
        }
    }
}

/// `seL4_DebugPutChar`: one byte to the kernel's serial console. Exists only in debug kernels:
/// on a release kernel the call is an unknown system call and faults the PD, so callers sit
/// behind the `debug-print` feature.
#[cfg(feature = "debug-print")]
pub fn debug_put_char(c: u8) {
    // SAFETY: the kernel reads x0 and touches no memory of ours; clobbered registers declared.
    unsafe {
        asm!("svc #0",
            inout("x0") u64::from(c) => _, out("x1") _, out("x2") _, out("x3") _,
            out("x4") _, out("x5") _, out("x6") _,
            inout("x7") sys::DEBUG_PUT_CHAR => _, out("x8") _,
            options(nostack));
    }
}

/// Stop this PD by raising a fault (an undefined instruction): the kernel suspends the thread and
/// tells its fault handler (the monitor, which prints a fault report, or a parent PD, which may
/// restart it). Never returns, even if the handler resumes the thread.
pub fn fault_stop() -> ! {
    loop {
        // SAFETY: `udf` only raises an exception; no memory or register is changed.
        unsafe { asm!("udf #0", options(nomem, nostack)) };
    }
}
