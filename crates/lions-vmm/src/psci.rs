// SPDX-License-Identifier: BSD-2-Clause
//! PSCI 1.2 (Arm DEN 0022) for the guest: power control of its vCPUs.
//!
//! The guest calls PSCI with `SMC #0` (trapped to seL4 and delivered as a vCPU fault with
//! exception class [`EC_SMC64`]) or `HVC #0` ([`EC_HVC64`]) under the SMC calling convention:
//! the function id in `x0`, arguments in `x1`-`x3`, the result in `x0`. The VMM reads the four
//! registers, calls [`Psci::call`], performs the [`PsciAction`], writes `x0` and advances the PC
//! past a trapped `SMC` ([`pc_step`]; a `HVC` returns past itself already).
//!
//! Functions served (32-bit `0x8400_00xx` and, where the call takes an address, 64-bit
//! `0xC400_00xx` ids):
//!
//! | function | result |
//! |---|---|
//! | `PSCI_VERSION` | 1.2 |
//! | `PSCI_FEATURES(fid)` | 0 for the functions below, else `NOT_SUPPORTED` |
//! | `CPU_ON(mpidr, entry, context)` | starts a stopped vCPU at `entry` with `x0 = context`; `INVALID_PARAMETERS` for no such vCPU, `ALREADY_ON`, `INVALID_ADDRESS` for an entry outside guest RAM |
//! | `CPU_OFF` | stops the calling vCPU |
//! | `AFFINITY_INFO(mpidr, 0)` | 0 on, 1 off |
//! | `MIGRATE_INFO_TYPE` | 2 (no trusted OS to migrate) |
//! | `SYSTEM_OFF`, `SYSTEM_RESET` | the VMM stops or restarts the guest |
//!
//! vCPU `n` has MPIDR affinity 0 = `n`, higher affinities 0. Anything else is `NOT_SUPPORTED`.

use crate::gic::MAX_VCPUS;
use crate::ram::GuestMemory;

/// Exception class of a trapped `SMC` from AArch64.
pub const EC_SMC64: u8 = 0x17;
/// Exception class of a `HVC` from AArch64.
pub const EC_HVC64: u8 = 0x16;

/// `PSCI_VERSION`.
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON` (SMC32).
pub const CPU_ON_32: u32 = 0x8400_0003;
/// `CPU_ON` (SMC64).
pub const CPU_ON_64: u32 = 0xc400_0003;
/// `AFFINITY_INFO` (SMC32).
pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
/// `AFFINITY_INFO` (SMC64).
pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
/// `MIGRATE_INFO_TYPE`.
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// `SYSTEM_OFF`.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET`.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES`.
pub const PSCI_FEATURES: u32 = 0x8400_000a;

/// The version reported: 1.2.
pub const VERSION_1_2: u64 = 0x0001_0002;

/// PSCI return code: success.
pub const SUCCESS: i64 = 0;
/// PSCI return code: not supported.
pub const NOT_SUPPORTED: i64 = -1;
/// PSCI return code: invalid parameters.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI return code: the vCPU is already on.
pub const ALREADY_ON: i64 = -4;
/// PSCI return code: invalid address.
pub const INVALID_ADDRESS: i64 = -9;

const SUPPORTED: [u32; 10] = [
    PSCI_VERSION,
    CPU_OFF,
    CPU_ON_32,
    CPU_ON_64,
    AFFINITY_INFO_32,
    AFFINITY_INFO_64,
    MIGRATE_INFO_TYPE,
    SYSTEM_OFF,
    SYSTEM_RESET,
    PSCI_FEATURES,
];

/// What the VMM does for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciAction {
    /// Write the value to the caller's `x0` and resume it.
    Return(u64),
    /// Start vCPU `target` at `entry` with `x0 = context` (EL1h, interrupts masked, MMU off),
    /// then return `SUCCESS` to the caller.
    CpuOn {
        /// The vCPU to start.
        target: usize,
        /// Its entry point.
        entry: u64,
        /// Its `x0`.
        context: u64,
    },
    /// Stop the calling vCPU (no return).
    CpuOff,
    /// Stop the guest.
    SystemOff,
    /// Restart the guest.
    SystemReset,
}

/// The PC advance after the call: 4 for a trapped `SMC`, 0 for `HVC` (already past it).
pub fn pc_step(ec: u8) -> u64 {
    if ec == EC_SMC64 { 4 } else { 0 }
}

fn code(c: i64) -> PsciAction {
    PsciAction::Return(c as u64)
}

/// Power state of the guest's vCPUs.
#[derive(Debug, Clone)]
pub struct Psci {
    nvcpus: usize,
    on: [bool; MAX_VCPUS],
}

impl Psci {
    /// `nvcpus` vCPUs (clamped to 1..=[`MAX_VCPUS`]); vCPU 0, the boot vCPU, is on.
    pub fn new(nvcpus: usize) -> Self {
        let mut on = [false; MAX_VCPUS];
        on[0] = true;
        Self {
            nvcpus: nvcpus.clamp(1, MAX_VCPUS),
            on,
        }
    }

    /// Whether vCPU `n` is on.
    pub fn is_on(&self, n: usize) -> bool {
        self.on.get(n).copied().unwrap_or(false)
    }

    /// The vCPU of an MPIDR (affinity 0 only).
    fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        // MPIDR affinity fields: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16], Aff3 [39:32].
        if mpidr & 0xff_00ff_ff00 != 0 {
            return None;
        }
        usize::try_from(mpidr & 0xff)
            .ok()
            .filter(|&n| n < self.nvcpus)
    }

    /// A PSCI call by vCPU `caller` with registers `x0`-`x3`. Entry points are checked against
    /// `ram`.
    pub fn call<M: GuestMemory>(&mut self, caller: usize, x: [u64; 4], ram: &M) -> PsciAction {
        let Ok(fid) = u32::try_from(x[0]) else {
            return code(NOT_SUPPORTED);
        };
        // SMC32 calls take 32-bit arguments.
        let arg = |i: usize| {
            if fid & 0x4000_0000 == 0 {
                x[i] & 0xffff_ffff
            } else {
                x[i]
            }
        };
        match fid {
            PSCI_VERSION => PsciAction::Return(VERSION_1_2),
            PSCI_FEATURES => {
                let f = u32::try_from(arg(1)).unwrap_or(0);
                code(if SUPPORTED.contains(&f) {
                    SUCCESS
                } else {
                    NOT_SUPPORTED
                })
            }
            CPU_ON_32 | CPU_ON_64 => {
                let Some(target) = self.vcpu_of(arg(1)) else {
                    return code(INVALID_PARAMETERS);
                };
                if self.on[target] {
                    return code(ALREADY_ON);
                }
                let entry = arg(2);
                if !ram.contains(entry, 4) || !entry.is_multiple_of(4) {
                    return code(INVALID_ADDRESS);
                }
                self.on[target] = true;
                PsciAction::CpuOn {
                    target,
                    entry,
                    context: arg(3),
                }
            }
            CPU_OFF => {
                if let Some(c) = self.on.get_mut(caller) {
                    *c = false;
                }
                PsciAction::CpuOff
            }
            AFFINITY_INFO_32 | AFFINITY_INFO_64 => match (self.vcpu_of(arg(1)), arg(2)) {
                (Some(n), 0) => code(if self.on[n] { 0 } else { 1 }),
                _ => code(INVALID_PARAMETERS),
            },
            MIGRATE_INFO_TYPE => PsciAction::Return(2),
            SYSTEM_OFF => PsciAction::SystemOff,
            SYSTEM_RESET => {
                self.on = [false; MAX_VCPUS];
                self.on[0] = true;
                PsciAction::SystemReset
            }
            _ => code(NOT_SUPPORTED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ram::GuestRam;

    fn ret(c: i64) -> PsciAction {
        PsciAction::Return(c as u64)
    }

    #[test]
    fn version_features_migrate() {
        let mut m = [0u8; 64];
        let ram = GuestRam::single(0x4000_0000, &mut m).unwrap();
        let mut p = Psci::new(2);
        assert_eq!(
            p.call(0, [u64::from(PSCI_VERSION), 0, 0, 0], &ram),
            PsciAction::Return(0x1_0002)
        );
        for f in SUPPORTED {
            assert_eq!(
                p.call(0, [u64::from(PSCI_FEATURES), u64::from(f), 0, 0], &ram),
                ret(SUCCESS)
            );
        }
        assert_eq!(
            p.call(0, [u64::from(PSCI_FEATURES), 0x8400_0001, 0, 0], &ram),
            ret(NOT_SUPPORTED)
        );
        assert_eq!(
            p.call(0, [u64::from(MIGRATE_INFO_TYPE), 0, 0, 0], &ram),
            PsciAction::Return(2)
        );
        // Unknown ids, including ones above 32 bits.
        assert_eq!(p.call(0, [0x8400_0001, 0, 0, 0], &ram), ret(NOT_SUPPORTED));
        assert_eq!(p.call(0, [1 << 40, 0, 0, 0], &ram), ret(NOT_SUPPORTED));
        assert_eq!((pc_step(EC_SMC64), pc_step(EC_HVC64)), (4, 0));
    }

    #[test]
    fn cpu_on_off_and_affinity() {
        let mut m = [0u8; 64];
        let ram = GuestRam::single(0x4000_0000, &mut m).unwrap();
        let mut p = Psci::new(2);
        let on = |p: &mut Psci, mpidr, entry| {
            p.call(0, [u64::from(CPU_ON_64), mpidr, entry, 0xc0de], &ram)
        };
        assert_eq!(on(&mut p, 2, 0x4000_0000), ret(INVALID_PARAMETERS));
        assert_eq!(on(&mut p, 1 << 8 | 1, 0x4000_0000), ret(INVALID_PARAMETERS));
        assert_eq!(on(&mut p, 0, 0x4000_0000), ret(ALREADY_ON));
        assert_eq!(on(&mut p, 1, 0x5000_0000), ret(INVALID_ADDRESS));
        assert_eq!(on(&mut p, 1, 0x4000_0002), ret(INVALID_ADDRESS));
        assert_eq!(
            p.call(0, [u64::from(AFFINITY_INFO_64), 1, 0, 0], &ram),
            ret(1)
        );
        assert_eq!(
            on(&mut p, 1, 0x4000_0010),
            PsciAction::CpuOn {
                target: 1,
                entry: 0x4000_0010,
                context: 0xc0de
            }
        );
        assert!(p.is_on(1));
        assert_eq!(on(&mut p, 1, 0x4000_0010), ret(ALREADY_ON));
        assert_eq!(
            p.call(0, [u64::from(AFFINITY_INFO_32), 1, 0, 0], &ram),
            ret(0)
        );
        assert_eq!(
            p.call(0, [u64::from(AFFINITY_INFO_32), 1, 1, 0], &ram),
            ret(INVALID_PARAMETERS)
        );
        assert_eq!(
            p.call(1, [u64::from(CPU_OFF), 0, 0, 0], &ram),
            PsciAction::CpuOff
        );
        assert!(!p.is_on(1));
        // SMC32 CPU_ON ignores the upper halves of its arguments.
        let r = p.call(
            0,
            [
                u64::from(CPU_ON_32),
                0xffff_ffff_0000_0001,
                0xffff_ffff_4000_0020,
                7,
            ],
            &ram,
        );
        assert_eq!(
            r,
            PsciAction::CpuOn {
                target: 1,
                entry: 0x4000_0020,
                context: 7
            }
        );
        assert_eq!(
            p.call(0, [u64::from(SYSTEM_RESET), 0, 0, 0], &ram),
            PsciAction::SystemReset
        );
        assert!(p.is_on(0) && !p.is_on(1));
        assert_eq!(
            p.call(0, [u64::from(SYSTEM_OFF), 0, 0, 0], &ram),
            PsciAction::SystemOff
        );
    }
}
