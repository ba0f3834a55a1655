// SPDX-License-Identifier: BSD-2-Clause
//! Stage-2 data-abort decoding from the exception syndrome (ESR_EL2 / seL4's HSR).
//!
//! A guest load or store to an address with no stage-2 mapping (an emulated device) arrives at
//! the VMM as a VM fault carrying the faulting guest-physical address and the syndrome. The bits
//! used here (Arm ARM, "ISS encoding for an exception from a Data Abort"):
//!
//! | bits | field | meaning |
//! |---|---|---|
//! | 31:26 | EC | 0x24 data abort from a lower EL, 0x25 from the same EL |
//! | 25 | IL | 1: 32-bit instruction (PC += 4), 0: 16-bit (PC += 2) |
//! | 24 | ISV | the fields 23:14 are valid |
//! | 23:22 | SAS | access size: byte, halfword, word, doubleword |
//! | 21 | SSE | sign-extend a load |
//! | 20:16 | SRT | the transfer register, 31 = XZR/WZR |
//! | 15 | SF | 64-bit (X) register, else 32-bit (W) |
//! | 14 | AR | acquire/release semantics |
//! | 8 | CM | a cache-maintenance instruction, not a load or store |
//! | 7 | S1PTW | the fault was on a stage-1 page-table walk |
//! | 6 | WnR | write (store), else read (load) |
//!
//! [`decode`] is **total**: every 64-bit value gives an [`Abort`] or an [`AbortError`], with no
//! panic (exhaustive test over every combination of the fields it reads, and a property test over
//! random values). An abort without a valid syndrome (ISV = 0, e.g. a load pair or a
//! post-indexed access) cannot be emulated without decoding the instruction: it is reported, and
//! the VMM stops the guest or injects an abort, rather than guessing.
//!
//! For a read the VMM writes [`DataAbort::read_result`] into the target register (width mask,
//! sign extension to 32 or 64 bits, a 32-bit result zero-extended as the hardware does); for a
//! write it takes [`DataAbort::write_value`] of the register. Either way it then advances the PC
//! by [`DataAbort::pc_step`]. seL4 orders general registers differently from their numbers in
//! `seL4_UserContext`: [`sel4_context_index`] gives the slot.

/// Exception class of a data abort from a lower exception level (the guest).
pub const EC_DABT_LOWER: u8 = 0x24;
/// Exception class of a data abort taken without a change in exception level.
pub const EC_DABT_CUR: u8 = 0x25;

/// The width of an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Half,
    /// 32 bits.
    Word,
    /// 64 bits.
    Double,
}

impl Width {
    /// Size in bytes (1, 2, 4 or 8).
    pub fn bytes(self) -> usize {
        match self {
            Width::Byte => 1,
            Width::Half => 2,
            Width::Word => 4,
            Width::Double => 8,
        }
    }
    /// Mask of the low `bytes() * 8` bits.
    pub fn mask(self) -> u64 {
        match self {
            Width::Double => u64::MAX,
            w => (1u64 << (w.bytes() * 8)) - 1,
        }
    }
    /// The width of an access of `bytes` bytes, if it is 1, 2, 4 or 8.
    pub fn from_bytes(bytes: usize) -> Option<Self> {
        match bytes {
            1 => Some(Width::Byte),
            2 => Some(Width::Half),
            4 => Some(Width::Word),
            8 => Some(Width::Double),
            _ => None,
        }
    }
}

/// The general register a load or store transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// X0..X30 (the number 0..=30).
    X(u8),
    /// The zero register: reads as 0, writes are discarded.
    Zr,
}

/// A decoded load or store that the VMM can emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataAbort {
    /// The access width.
    pub width: Width,
    /// The transfer register.
    pub reg: Reg,
    /// A store (guest writes the device), else a load.
    pub write: bool,
    /// Sign-extend a loaded value.
    pub sign_extend: bool,
    /// The register is 64-bit (X), else 32-bit (W).
    pub sixty_four: bool,
    /// Load-acquire / store-release.
    pub acquire_release: bool,
    /// Instruction length in bytes: 4, or 2 for a 16-bit T32 instruction.
    pub pc_step: u64,
}

/// What a data abort asks of the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// A load or store to emulate.
    Access(DataAbort),
    /// A cache-maintenance instruction on the address: nothing to emulate, skip it.
    CacheMaintenance {
        /// Instruction length in bytes.
        pc_step: u64,
    },
}

/// A syndrome the VMM cannot emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortError {
    /// Not a data abort (the exception class is given).
    NotDataAbort(u8),
    /// ISV = 0: no instruction syndrome (load/store pair, writeback, SIMD...).
    NoSyndrome,
    /// The fault was on a stage-1 page-table walk, not on the access itself.
    PageTableWalk,
    /// A field combination no load or store produces (a doubleword into a W register).
    Inconsistent,
}

/// Decodes the syndrome of a stage-2 fault. Total: never panics, for every `esr`.
pub fn decode(esr: u64) -> Result<Abort, AbortError> {
    let bit = |n: u32| (esr >> n) & 1 == 1;
    let ec = field(esr, 26, 6);
    if ec != EC_DABT_LOWER && ec != EC_DABT_CUR {
        return Err(AbortError::NotDataAbort(ec));
    }
    let pc_step = if bit(25) { 4 } else { 2 };
    if bit(7) {
        return Err(AbortError::PageTableWalk);
    }
    if bit(8) {
        return Ok(Abort::CacheMaintenance { pc_step });
    }
    if !bit(24) {
        return Err(AbortError::NoSyndrome);
    }
    let width = match (esr >> 22) & 3 {
        0 => Width::Byte,
        1 => Width::Half,
        2 => Width::Word,
        _ => Width::Double,
    };
    let sixty_four = bit(15);
    if width == Width::Double && !sixty_four {
        return Err(AbortError::Inconsistent);
    }
    let srt = field(esr, 16, 5);
    let reg = if srt == 31 { Reg::Zr } else { Reg::X(srt) };
    let write = bit(6);
    Ok(Abort::Access(DataAbort {
        width,
        reg,
        write,
        // Sign extension of a full-width value is the value itself.
        sign_extend: bit(21) && !write && width != Width::Double,
        sixty_four,
        acquire_release: bit(14),
        pc_step,
    }))
}

/// Bits `[shift, shift + len)` of `esr`, `len` at most 8.
fn field(esr: u64, shift: u32, len: u32) -> u8 {
    let v = (esr >> shift) & ((1 << len) - 1);
    // Masked to at most 8 bits above: always fits.
    u8::try_from(v).unwrap_or(u8::MAX)
}

impl DataAbort {
    /// The register value after a load that read `data` from the device: masked to the access
    /// width, sign-extended if asked, and for a W register zero-extended from 32 bits.
    pub fn read_result(&self, data: u64) -> u64 {
        let bits = self.width.bytes() * 8;
        let v = data & self.width.mask();
        let v = if self.sign_extend && bits < 64 {
            // Arithmetic shift of the value placed at the top.
            let shift = 64 - bits;
            (((v << shift) as i64) >> shift) as u64
        } else {
            v
        };
        if self.sixty_four { v } else { v & 0xffff_ffff }
    }

    /// The value a store writes to the device, from the register's value (0 for XZR).
    pub fn write_value(&self, reg_value: u64) -> u64 {
        match self.reg {
            Reg::Zr => 0,
            Reg::X(_) => reg_value & self.width.mask(),
        }
    }
}

/// Slots of `seL4_UserContext` on AArch64 that are not general registers, before them.
const CONTEXT_PC: usize = 0;

/// The index of general register `reg` in seL4's AArch64 `seL4_UserContext`
/// (pc, sp, spsr, x0-x8, x16-x18, x29, x30, x9-x15, x19-x28, tpidr_el0, tpidrro_el0), or `None`
/// for XZR, which has no slot.
pub fn sel4_context_index(reg: Reg) -> Option<usize> {
    let Reg::X(n) = reg else { return None };
    let n = usize::from(n);
    Some(match n {
        0..=8 => 3 + n,
        16..=18 => 12 + (n - 16),
        29 | 30 => 15 + (n - 29),
        9..=15 => 17 + (n - 9),
        19..=28 => 24 + (n - 19),
        _ => return None,
    })
}

/// The index of the PC in seL4's AArch64 `seL4_UserContext`.
pub const fn sel4_context_pc() -> usize {
    CONTEXT_PC
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A syndrome from its fields.
    #[allow(clippy::too_many_arguments)]
    fn esr(il: bool, isv: bool, sas: u64, sse: bool, srt: u64, sf: bool, wnr: bool) -> u64 {
        (u64::from(EC_DABT_LOWER) << 26)
            | (u64::from(il) << 25)
            | (u64::from(isv) << 24)
            | (sas << 22)
            | (u64::from(sse) << 21)
            | (srt << 16)
            | (u64::from(sf) << 15)
            | (u64::from(wnr) << 6)
    }

    fn access(e: u64) -> DataAbort {
        match decode(e) {
            Ok(Abort::Access(a)) => a,
            other => panic!("{e:#x}: {other:?}"),
        }
    }

    #[test]
    fn each_field() {
        // ldr w3, [x0]: word, W register, read.
        let a = access(esr(true, true, 2, false, 3, false, false));
        assert_eq!(
            a,
            DataAbort {
                width: Width::Word,
                reg: Reg::X(3),
                write: false,
                sign_extend: false,
                sixty_four: false,
                acquire_release: false,
                pc_step: 4,
            }
        );
        // strb w30 (16-bit instruction): byte write, PC += 2.
        let a = access(esr(false, true, 0, false, 30, false, true));
        assert_eq!(
            (a.width, a.reg, a.write, a.pc_step),
            (Width::Byte, Reg::X(30), true, 2)
        );
        // ldrsh x1: half, sign-extended into X.
        let a = access(esr(true, true, 1, true, 1, true, false));
        assert_eq!(
            (a.width, a.sign_extend, a.sixty_four),
            (Width::Half, true, true)
        );
        // str xzr: doubleword write from the zero register.
        let a = access(esr(true, true, 3, false, 31, true, true));
        assert_eq!((a.width, a.reg), (Width::Double, Reg::Zr));
        assert_eq!(a.write_value(0x1234), 0);
        // Acquire/release bit.
        let a = access(esr(true, true, 2, false, 0, false, false) | (1 << 14));
        assert!(a.acquire_release);
        // Same-EL class decodes too.
        let e = (esr(true, true, 2, false, 0, false, false) & !(0x3f << 26)) | (0x25 << 26);
        assert!(matches!(decode(e), Ok(Abort::Access(_))));
    }

    #[test]
    fn refusals() {
        assert_eq!(decode(0x17 << 26), Err(AbortError::NotDataAbort(0x17)));
        assert_eq!(
            decode(esr(true, false, 2, false, 0, false, false)),
            Err(AbortError::NoSyndrome)
        );
        assert_eq!(
            decode(esr(true, true, 2, false, 0, false, false) | (1 << 7)),
            Err(AbortError::PageTableWalk)
        );
        assert_eq!(
            decode(esr(true, false, 0, false, 0, false, true) | (1 << 8)),
            Ok(Abort::CacheMaintenance { pc_step: 4 })
        );
        assert_eq!(
            decode(esr(true, true, 3, false, 0, false, false)),
            Err(AbortError::Inconsistent)
        );
    }

    #[test]
    fn read_results() {
        let a = |sas, sse, sf| access(esr(true, true, sas, sse, 0, sf, false));
        // ldrb w0: zero-extended byte.
        assert_eq!(a(0, false, false).read_result(0xffff_ff80), 0x80);
        // ldrsb w0: sign-extended to 32 bits only.
        assert_eq!(a(0, true, false).read_result(0x80), 0xffff_ff80);
        // ldrsb x0: to 64 bits.
        assert_eq!(a(0, true, true).read_result(0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(a(0, true, true).read_result(0x7f), 0x7f);
        // ldrsh x0, ldrsw x0.
        assert_eq!(a(1, true, true).read_result(0x8001), 0xffff_ffff_ffff_8001);
        assert_eq!(
            a(2, true, true).read_result(0x8000_0000),
            0xffff_ffff_8000_0000
        );
        // ldr w0 of a word: upper half of the data discarded.
        assert_eq!(a(2, false, false).read_result(0x1_2345_6789), 0x2345_6789);
        // ldr x0.
        assert_eq!(a(3, false, true).read_result(u64::MAX), u64::MAX);
        // Stores mask the register to the width.
        let s = access(esr(true, true, 1, false, 5, false, true));
        assert_eq!(s.write_value(0xdead_beef), 0xbeef);
        assert!(!s.sign_extend);
    }

    #[test]
    fn sel4_register_order() {
        // Every general register has a distinct slot after pc, sp, spsr and before tpidr*.
        let mut seen = [false; 34];
        for n in 0..=30 {
            let i = sel4_context_index(Reg::X(n)).unwrap();
            assert!((3..34).contains(&i));
            assert!(!seen[i], "x{n} shares slot {i}");
            seen[i] = true;
        }
        assert_eq!(sel4_context_index(Reg::X(0)), Some(3));
        assert_eq!(sel4_context_index(Reg::X(16)), Some(12));
        assert_eq!(sel4_context_index(Reg::X(30)), Some(16));
        assert_eq!(sel4_context_index(Reg::X(9)), Some(17));
        assert_eq!(sel4_context_index(Reg::X(28)), Some(33));
        assert_eq!(sel4_context_index(Reg::Zr), None);
        assert_eq!(sel4_context_index(Reg::X(31)), None);
        assert_eq!(sel4_context_pc(), 0);
    }

    /// Every combination of every field the decoder reads (EC, IL, ISV, SAS, SSE, SRT, SF, AR,
    /// CM, S1PTW, WnR): no panic, and the result agrees with the fields.
    #[test]
    fn exhaustive_over_read_fields() {
        let mut accesses = 0u32;
        for ec in 0..64u64 {
            for bits in 0..(1u64 << 13) {
                let f = |i: u32| (bits >> i) & 1;
                let e = (ec << 26)
                    | (f(0) << 25)
                    | (f(1) << 24)
                    | (((bits >> 2) & 3) << 22)
                    | (f(4) << 21)
                    | (f(5) << 15)
                    | (f(6) << 14)
                    | (f(7) << 8)
                    | (f(8) << 7)
                    | (f(9) << 6)
                    | (((bits >> 10) & 7) << 16);
                for srt in [0u64, 1, 15, 30, 31] {
                    let e = e | (srt << 16);
                    match decode(e) {
                        Ok(Abort::Access(a)) => {
                            accesses += 1;
                            assert!(ec == 0x24 || ec == 0x25);
                            assert_eq!(a.pc_step, if f(0) == 1 { 4 } else { 2 });
                            assert_eq!(a.write, f(9) == 1);
                            assert_eq!(a.width.bytes(), 1 << ((e >> 22) & 3));
                            assert_eq!(a.reg == Reg::Zr, ((e >> 16) & 31) == 31);
                            // The read result always fits the register.
                            let r = a.read_result(u64::MAX);
                            assert!(a.sixty_four || r <= 0xffff_ffff);
                        }
                        Ok(Abort::CacheMaintenance { .. }) => assert_eq!(f(7), 1),
                        Err(AbortError::NotDataAbort(c)) => assert_eq!(u64::from(c), ec),
                        Err(_) => assert!(ec == 0x24 || ec == 0x25),
                    }
                }
            }
        }
        assert!(accesses > 0);
    }

    proptest! {
        #[test]
        fn total_on_random_values(e in any::<u64>(), data in any::<u64>()) {
            if let Ok(Abort::Access(a)) = decode(e) {
                let r = a.read_result(data);
                // The loaded value's low bits are the data's, whatever the extension.
                prop_assert_eq!(r & a.width.mask() & 0xffff_ffff, data & a.width.mask() & 0xffff_ffff);
                prop_assert!(a.write_value(data) <= a.width.mask());
            }
        }
    }
}
