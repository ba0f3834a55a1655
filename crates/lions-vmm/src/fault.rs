// SPDX-License-Identifier: BSD-2-Clause
//! MMIO emulation of one data-abort fault, end to end: decode, dispatch, register write-back
//! and PC advance, over a vCPU register file the seL4 side provides.
//!
//! The VMM PD receives a VM fault for a vCPU with the faulting guest-physical address and the
//! syndrome. [`emulate`] decodes the syndrome ([`crate::abort::decode`]), hands the access to the
//! caller's dispatcher (usually a `match` on the address: a virtio-mmio window, the GIC
//! distributor, a UIO doorbell), and then:
//!
//! - for a **read**, writes the dispatcher's value into the target register, masked, sign- or
//!   zero-extended as the instruction asks (nothing for XZR);
//! - for a **write**, has passed the register's value (masked to the width; 0 for XZR);
//! - in both cases advances the PC by the instruction length, so the guest resumes after it.
//!
//! An address no dispatcher claims, or a syndrome that cannot be emulated, changes no register
//! and is returned as a [`FaultError`]: the VMM reports it and stops the vCPU (or injects an
//! abort), it never guesses. A cache-maintenance operation on an emulated address is skipped.

use crate::abort::{Abort, AbortError, DataAbort, Reg, Width, decode};

/// The registers of the faulting vCPU (seL4's TCB registers: `seL4_TCB_ReadRegisters` /
/// `WriteRegisters`; see [`crate::abort::sel4_context_index`] for their order).
pub trait VcpuRegs {
    /// General register `n` (0..=30).
    fn x(&self, n: u8) -> u64;
    /// Sets general register `n` (0..=30).
    fn set_x(&mut self, n: u8, v: u64);
    /// The program counter.
    fn pc(&self) -> u64;
    /// Sets the program counter.
    fn set_pc(&mut self, pc: u64);
}

/// Words in seL4's AArch64 `seL4_UserContext` (pc, sp, spsr, 31 general registers in seL4's
/// order, tpidr_el0, tpidrro_el0).
pub const SEL4_CONTEXT_WORDS: usize = 36;

/// A vCPU's registers as `seL4_TCB_ReadRegisters` returns them and `WriteRegisters` takes
/// them: the register file the seL4 side hands to [`emulate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sel4Context(pub [u64; SEL4_CONTEXT_WORDS]);

impl VcpuRegs for Sel4Context {
    fn x(&self, n: u8) -> u64 {
        crate::abort::sel4_context_index(Reg::X(n))
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(0)
    }
    fn set_x(&mut self, n: u8, v: u64) {
        if let Some(r) = crate::abort::sel4_context_index(Reg::X(n)).and_then(|i| self.0.get_mut(i))
        {
            *r = v;
        }
    }
    fn pc(&self) -> u64 {
        self.0[crate::abort::sel4_context_pc()]
    }
    fn set_pc(&mut self, pc: u64) {
        self.0[crate::abort::sel4_context_pc()] = pc;
    }
}

/// One guest access to an emulated address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioAccess {
    /// The guest-physical address.
    pub gpa: u64,
    /// The access width.
    pub width: Width,
    /// `Some(value)` for a write, `None` for a read.
    pub write: Option<u64>,
}

impl MmioAccess {
    /// The offset of the access in `[base, base + size)`, if it lies wholly inside.
    pub fn offset_in(&self, base: u64, size: u64) -> Option<u64> {
        let off = self.gpa.checked_sub(base)?;
        let end = off.checked_add(self.width.bytes() as u64)?;
        (end <= size).then_some(off)
    }
}

/// Why a fault was not emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// The syndrome cannot be emulated.
    Syndrome(AbortError),
    /// No device at this address.
    Unhandled(MmioAccess),
}

/// What [`emulate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulated {
    /// A load or store was emulated.
    Access(MmioAccess),
    /// A cache-maintenance instruction was skipped.
    CacheMaintenance,
}

/// Emulates the data abort at `gpa` with syndrome `esr` on the vCPU `regs`. `dispatch` performs
/// the access: for a read it returns the value, for a write anything; `None` means no device
/// claims the address.
pub fn emulate<V: VcpuRegs>(
    esr: u64,
    gpa: u64,
    regs: &mut V,
    dispatch: impl FnOnce(MmioAccess) -> Option<u64>,
) -> Result<Emulated, FaultError> {
    let a: DataAbort = match decode(esr).map_err(FaultError::Syndrome)? {
        Abort::CacheMaintenance { pc_step } => {
            regs.set_pc(regs.pc().wrapping_add(pc_step));
            return Ok(Emulated::CacheMaintenance);
        }
        Abort::Access(a) => a,
    };
    let reg_value = match a.reg {
        Reg::X(n) => regs.x(n),
        Reg::Zr => 0,
    };
    let access = MmioAccess {
        gpa,
        width: a.width,
        write: a.write.then(|| a.write_value(reg_value)),
    };
    let value = dispatch(access).ok_or(FaultError::Unhandled(access))?;
    if let (false, Reg::X(n)) = (a.write, a.reg) {
        regs.set_x(n, a.read_result(value));
    }
    regs.set_pc(regs.pc().wrapping_add(a.pc_step));
    Ok(Emulated::Access(access))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::abort::EC_DABT_LOWER;

    /// A register file.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub(crate) struct Regs {
        pub x: [u64; 31],
        pub pc: u64,
    }

    impl VcpuRegs for Regs {
        fn x(&self, n: u8) -> u64 {
            self.x[usize::from(n)]
        }
        fn set_x(&mut self, n: u8, v: u64) {
            self.x[usize::from(n)] = v;
        }
        fn pc(&self) -> u64 {
            self.pc
        }
        fn set_pc(&mut self, pc: u64) {
            self.pc = pc;
        }
    }

    /// The syndrome of `ldr`/`str` of `bytes` with register `rt` (`sse`: sign-extending load,
    /// `sf`: X register).
    pub(crate) fn esr(bytes: usize, rt: u8, write: bool, sse: bool, sf: bool) -> u64 {
        let sas = u64::from(bytes.trailing_zeros());
        (u64::from(EC_DABT_LOWER) << 26)
            | 1 << 25
            | 1 << 24
            | sas << 22
            | u64::from(sse) << 21
            | u64::from(rt) << 16
            | u64::from(sf) << 15
            | u64::from(write) << 6
    }

    #[test]
    fn read_write_and_pc() {
        let mut r = Regs {
            pc: 0x1000,
            ..Default::default()
        };
        r.x[5] = 0xffff_ffff_1234_5678;
        // str w5, [dev+8]: the device sees the low word.
        let mut seen = None;
        let e = emulate(esr(4, 5, true, false, false), 0x900_0008, &mut r, |a| {
            seen = Some(a);
            Some(0)
        });
        assert_eq!(e, Ok(Emulated::Access(seen.unwrap())));
        assert_eq!(seen.unwrap().write, Some(0x1234_5678));
        assert_eq!(seen.unwrap().offset_in(0x900_0000, 0x200), Some(8));
        assert_eq!(r.pc, 0x1004);
        // ldrsb x7: sign-extended into X7.
        emulate(esr(1, 7, false, true, true), 0x900_0000, &mut r, |_| {
            Some(0x80)
        })
        .unwrap();
        assert_eq!((r.x[7], r.pc), (0xffff_ffff_ffff_ff80, 0x1008));
        // ldr wzr: nothing written, PC still advances.
        let before = r.x;
        emulate(esr(4, 31, false, false, false), 0x900_0000, &mut r, |_| {
            Some(7)
        })
        .unwrap();
        assert_eq!((r.x, r.pc), (before, 0x100c));
    }

    #[test]
    fn sel4_context_order() {
        let mut c = Sel4Context([0; SEL4_CONTEXT_WORDS]);
        c.set_pc(0x4000_0000);
        c.set_x(0, 1);
        c.set_x(16, 2);
        c.set_x(30, 3);
        c.set_x(9, 4);
        c.set_x(28, 5);
        c.set_x(31, 6);
        assert_eq!(&c.0[..5], &[0x4000_0000, 0, 0, 1, 0]);
        assert_eq!((c.0[12], c.0[16], c.0[17], c.0[33]), (2, 3, 4, 5));
        assert_eq!(c.0[34..], [0, 0], "x31 has no slot");
        // ldr x16 through the context: the value lands in slot 12.
        emulate(esr(8, 16, false, false, true), 0, &mut c, |_| Some(0xfeed)).unwrap();
        assert_eq!((c.0[12], c.pc()), (0xfeed, 0x4000_0004));
    }

    #[test]
    fn refused_faults_change_nothing() {
        let mut r = Regs {
            pc: 0x2000,
            ..Default::default()
        };
        let e = emulate(esr(4, 1, false, false, false), 0x1234, &mut r, |_| None);
        assert!(matches!(
            e,
            Err(FaultError::Unhandled(MmioAccess { gpa: 0x1234, .. }))
        ));
        let e = emulate(
            esr(4, 1, false, false, false) & !(1 << 24),
            0x1234,
            &mut r,
            |_| Some(1),
        );
        assert_eq!(e, Err(FaultError::Syndrome(AbortError::NoSyndrome)));
        assert_eq!(
            r,
            Regs {
                pc: 0x2000,
                ..Default::default()
            }
        );
        // An access straddling a window's end is not inside it.
        let a = MmioAccess {
            gpa: 0x1fe,
            width: Width::Word,
            write: None,
        };
        assert_eq!(a.offset_in(0, 0x200), None);
        assert_eq!(a.offset_in(0x200, u64::MAX), None);
        // Cache maintenance is skipped.
        let cm = (u64::from(EC_DABT_LOWER) << 26) | 1 << 25 | 1 << 8 | 1 << 6;
        assert_eq!(
            emulate(cm, 0, &mut r, |_| None),
            Ok(Emulated::CacheMaintenance)
        );
        assert_eq!(r.pc, 0x2004);
    }
}
