// SPDX-License-Identifier: BSD-2-Clause
//! The Microkit side of a VMM: a PD that is the parent of a `<virtual_machine>` (Microkit 2.3.0
//! SDF) and monitors its vCPUs.
//!
//! **Faults.** A vCPU's faults arrive as the event loop delivers any child's fault
//! ([`Handler::fault`](crate::Handler::fault) with the vCPU's id; the badge's fault bit is set).
//! [`VcpuFault::decode`] reads the fault from its label and message registers (MCS kernel with
//! hypervisor support, seL4's `seL4_Fault` tags):
//!
//! | label | fault | message registers |
//! |---|---|---|
//! | 2 | `UnknownSyscall` | x0-x7 (0-7), FaultIP 8, SP 9, LR 10, SPSR 11, Syscall 12 |
//! | 3 | `UserException` | FaultIP 0, SP 1, SPSR 2, Number 3, Code 4 |
//! | 6 | `VMFault` (stage-2 abort) | IP 0, Addr 1, PrefetchFault 2, FSR 3 |
//! | 7 | `VGICMaintenance` | IDX 0 (the list register, or all ones for none) |
//! | 8 | `VCPUFault` | HSR 0 |
//! | 9 | `VPPIEvent` | IRQ 0 |
//!
//! Returning `Some(MessageInfo::new(0, 0))` from the fault handler replies and resumes the vCPU
//! (at the PC it has then: write the advanced PC first); `None` leaves it stopped.
//!
//! **Calls** (each a `seL4_Call` on a capability the Microkit tool gives the parent): the vCPU's
//! TCB is slot [`VM_TCB`] + id, its VCPU object [`VCPU`] + id.
//!
//! | operation | object | message registers |
//! |---|---|---|
//! | [`read_registers`] | TCB `ReadRegisters` | 0: suspend source (bit 0), arch flags (8-15); 1: count; reply: the registers in `seL4_UserContext` order |
//! | [`write_registers`] | TCB `WriteRegisters` | 0: resume target, arch flags; 1: count; 2..: registers |
//! | [`restart`] | TCB `WriteRegisters` with resume | pc set, the other registers as read |
//! | [`start`] | TCB `WriteRegisters` with resume | pc, spsr, x0-x3 given, the rest 0 |
//! | [`stop`] | TCB `Suspend` | none |
//! | [`inject_irq`] | VCPU `InjectIRQ` | 0: `virq` (bits 0-15), priority (16-23), group (24-31), list register (32-39) |
//! | [`ack_vppi`] | VCPU `AckVPPI` | 0: the PPI |
//! | [`read_vcpu_reg`] / [`write_vcpu_reg`] | VCPU `ReadReg` / `WriteReg` | 0: the register id; 1: the value (write); reply 0: the value (read) |
//!
//! The invocation labels depend on the kernel configuration: they are a [`Labels`] value the
//! VMM takes from its board constants (the SDK's `invocations_all.json`), not numbers fixed
//! here. An error comes back as the reply's label and is returned as [`VcpuError`]. The calls
//! are generic over the [`Kernel`] so the host tests run them against a fake kernel.

use super::abi::{Cptr, decode_info, encode_info};
use super::pd::Kernel;
use crate::MessageInfo;

/// First capability slot of the children's VM TCBs (`266 + vcpu id`).
pub const VM_TCB: Cptr = 266;
/// First capability slot of the children's VCPU objects (`330 + vcpu id`).
pub const VCPU: Cptr = 330;
/// Registers in `seL4_UserContext` on AArch64 (pc, sp, spsr, x0-x30 in seL4's order,
/// tpidr_el0, tpidrro_el0).
pub const USER_CONTEXT_WORDS: usize = 36;

/// Fault label: unknown system call.
pub const FAULT_UNKNOWN_SYSCALL: u64 = 2;
/// Fault label: user exception.
pub const FAULT_USER_EXCEPTION: u64 = 3;
/// Fault label: VM fault (a stage-2 abort for a vCPU).
pub const FAULT_VM: u64 = 6;
/// Fault label: VGIC maintenance.
pub const FAULT_VGIC_MAINTENANCE: u64 = 7;
/// Fault label: vCPU fault (a trapped instruction: SMC, HVC, WFx, system registers).
pub const FAULT_VCPU: u64 = 8;
/// Fault label: a virtual PPI (the virtual timer) fired.
pub const FAULT_VPPI: u64 = 9;

/// A vCPU fault, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuFault {
    /// A stage-2 abort: an access to unmapped guest-physical memory (emulated MMIO).
    Vm {
        /// The faulting PC.
        ip: u64,
        /// The guest-physical address.
        addr: u64,
        /// An instruction fetch, not a data access.
        prefetch: bool,
        /// The syndrome (ESR).
        fsr: u64,
    },
    /// A list register became free (the guest completed an interrupt).
    VgicMaintenance {
        /// The list register, or `None` if the kernel named none.
        lr: Option<u64>,
    },
    /// A trapped instruction; the syndrome says which (EC 0x17: SMC, 0x16: HVC, 0x01: WFx).
    Vcpu {
        /// The syndrome (HSR).
        hsr: u64,
    },
    /// A virtual PPI fired.
    Vppi {
        /// Its INTID.
        irq: u64,
    },
    /// An unknown system call (a guest `svc` that reached seL4).
    UnknownSyscall {
        /// The faulting PC.
        ip: u64,
        /// The syscall number.
        syscall: u64,
    },
    /// A user exception.
    UserException {
        /// The faulting PC.
        ip: u64,
        /// The exception number.
        number: u64,
        /// Its code.
        code: u64,
    },
    /// Any other label.
    Other(u64),
}

impl VcpuFault {
    /// Decodes a fault message with label `msg.label()`, reading message registers with `mr`.
    pub fn decode(msg: MessageInfo, mr: impl Fn(usize) -> u64) -> Self {
        match msg.label() {
            FAULT_VM => Self::Vm {
                ip: mr(0),
                addr: mr(1),
                prefetch: mr(2) != 0,
                fsr: mr(3),
            },
            FAULT_VGIC_MAINTENANCE => {
                let idx = mr(0);
                Self::VgicMaintenance {
                    lr: (idx != u64::MAX).then_some(idx),
                }
            }
            FAULT_VCPU => Self::Vcpu { hsr: mr(0) },
            FAULT_VPPI => Self::Vppi { irq: mr(0) },
            FAULT_UNKNOWN_SYSCALL => Self::UnknownSyscall {
                ip: mr(8),
                syscall: mr(12),
            },
            FAULT_USER_EXCEPTION => Self::UserException {
                ip: mr(0),
                number: mr(3),
                code: mr(4),
            },
            other => Self::Other(other),
        }
    }
}

/// The invocation labels of this kernel configuration (from the SDK's `invocations_all.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    /// `TCBReadRegisters`.
    pub tcb_read_registers: u64,
    /// `TCBWriteRegisters`.
    pub tcb_write_registers: u64,
    /// `TCBSuspend`.
    pub tcb_suspend: u64,
    /// `ARMVCPUInjectIRQ`.
    pub vcpu_inject_irq: u64,
    /// `ARMVCPUReadReg`.
    pub vcpu_read_reg: u64,
    /// `ARMVCPUWriteReg`.
    pub vcpu_write_reg: u64,
    /// `ARMVCPUAckVPPI`.
    pub vcpu_ack_vppi: u64,
}

/// A refused vCPU call: the kernel's error (the reply's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuError(pub u64);

/// Most vCPUs a Microkit VM has (the children's id range).
pub const MAX_VCPUS: u8 = 64;

fn invoke<K: Kernel>(
    k: &K,
    dest: Cptr,
    label: u64,
    args: &[u64],
) -> Result<MessageInfo, VcpuError> {
    for (i, &a) in args.iter().enumerate() {
        k.set_mr(i, a);
    }
    let reply = decode_info(k.call(dest, encode_info(MessageInfo::new(label, args.len()))));
    match reply.label() {
        0 => Ok(reply),
        e => Err(VcpuError(e)),
    }
}

fn cap(base: Cptr, vcpu: u8) -> Result<Cptr, VcpuError> {
    // seL4_RangeError (4) for an id outside the children's range, without a system call.
    if vcpu < MAX_VCPUS {
        Ok(base + Cptr::from(vcpu))
    } else {
        Err(VcpuError(4))
    }
}

/// Reads the vCPU's TCB registers (`seL4_UserContext` order) into `regs`.
pub fn read_registers<K: Kernel>(
    k: &K,
    l: &Labels,
    vcpu: u8,
    regs: &mut [u64; USER_CONTEXT_WORDS],
) -> Result<(), VcpuError> {
    let n = USER_CONTEXT_WORDS as u64;
    invoke(k, cap(VM_TCB, vcpu)?, l.tcb_read_registers, &[0, n])?;
    for (i, r) in regs.iter_mut().enumerate() {
        *r = k.mr(i);
    }
    Ok(())
}

/// Writes the vCPU's TCB registers; `resume` also resumes it.
pub fn write_registers<K: Kernel>(
    k: &K,
    l: &Labels,
    vcpu: u8,
    regs: &[u64; USER_CONTEXT_WORDS],
    resume: bool,
) -> Result<(), VcpuError> {
    let mut args = [0u64; USER_CONTEXT_WORDS + 2];
    args[0] = u64::from(resume);
    args[1] = USER_CONTEXT_WORDS as u64;
    args[2..].copy_from_slice(regs);
    invoke(k, cap(VM_TCB, vcpu)?, l.tcb_write_registers, &args).map(|_| ())
}

/// Restarts the vCPU at `pc` (its other registers as they are), as `microkit_vcpu_restart`.
pub fn restart<K: Kernel>(k: &K, l: &Labels, vcpu: u8, pc: u64) -> Result<(), VcpuError> {
    let mut regs = [0u64; USER_CONTEXT_WORDS];
    read_registers(k, l, vcpu, &mut regs)?;
    regs[0] = pc;
    write_registers(k, l, vcpu, &regs, true)
}

/// Starts a vCPU from scratch, as `guest_start`: every register 0 except the PC, the SPSR
/// (`spsr`, e.g. EL1h with interrupts masked) and `x0`-`x3`, then resumes it.
pub fn start<K: Kernel>(
    k: &K,
    l: &Labels,
    vcpu: u8,
    pc: u64,
    spsr: u64,
    x: [u64; 4],
) -> Result<(), VcpuError> {
    let mut regs = [0u64; USER_CONTEXT_WORDS];
    regs[0] = pc;
    regs[2] = spsr;
    // x0-x3 follow pc, sp and spsr in seL4's order.
    regs[3..7].copy_from_slice(&x);
    write_registers(k, l, vcpu, &regs, true)
}

/// Stops the vCPU (`TCB_Suspend`).
pub fn stop<K: Kernel>(k: &K, l: &Labels, vcpu: u8) -> Result<(), VcpuError> {
    invoke(k, cap(VM_TCB, vcpu)?, l.tcb_suspend, &[]).map(|_| ())
}

/// Writes list register `lr` of the vCPU with interrupt `irq` (`VCPU_InjectIRQ`).
pub fn inject_irq<K: Kernel>(
    k: &K,
    l: &Labels,
    vcpu: u8,
    irq: u16,
    priority: u8,
    group: u8,
    lr: u8,
) -> Result<(), VcpuError> {
    let mr0 =
        u64::from(irq) | u64::from(priority) << 16 | u64::from(group) << 24 | u64::from(lr) << 32;
    invoke(k, cap(VCPU, vcpu)?, l.vcpu_inject_irq, &[mr0]).map(|_| ())
}

/// Acknowledges a virtual PPI so it can fire again (`VCPU_AckVPPI`).
pub fn ack_vppi<K: Kernel>(k: &K, l: &Labels, vcpu: u8, irq: u64) -> Result<(), VcpuError> {
    invoke(k, cap(VCPU, vcpu)?, l.vcpu_ack_vppi, &[irq]).map(|_| ())
}

/// Reads a VCPU (EL1 system) register by seL4's register id (`VCPU_ReadRegs`).
pub fn read_vcpu_reg<K: Kernel>(k: &K, l: &Labels, vcpu: u8, reg: u64) -> Result<u64, VcpuError> {
    invoke(k, cap(VCPU, vcpu)?, l.vcpu_read_reg, &[reg])?;
    Ok(k.mr(0))
}

/// Writes a VCPU (EL1 system) register (`VCPU_WriteRegs`).
pub fn write_vcpu_reg<K: Kernel>(
    k: &K,
    l: &Labels,
    vcpu: u8,
    reg: u64,
    value: u64,
) -> Result<(), VcpuError> {
    invoke(k, cap(VCPU, vcpu)?, l.vcpu_write_reg, &[reg, value]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::MAX_MESSAGE_REGISTERS;
    use crate::microkit::pd::Received;
    use std::cell::RefCell;
    use std::vec::Vec;

    /// Labels made up for the test (distinct, so each call is recognisable).
    const L: Labels = Labels {
        tcb_read_registers: 2,
        tcb_write_registers: 3,
        tcb_suspend: 12,
        vcpu_inject_irq: 101,
        vcpu_read_reg: 102,
        vcpu_write_reg: 103,
        vcpu_ack_vppi: 104,
    };

    /// A kernel that records calls (destination, label, sent registers) and replies with a
    /// scripted label and registers.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<(Cptr, u64, Vec<u64>)>>,
        mrs: RefCell<Vec<u64>>,
        reply_label: RefCell<u64>,
        reply_mrs: RefCell<Vec<u64>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                mrs: RefCell::new(vec![0; MAX_MESSAGE_REGISTERS]),
                ..Self::default()
            }
        }
    }

    impl Kernel for Fake {
        fn send(&self, _: Cptr, _: u64) {
            panic!("no send expected");
        }
        fn call(&self, dest: Cptr, info: u64) -> u64 {
            let m = decode_info(info);
            let sent = self.mrs.borrow()[..m.count()].to_vec();
            self.calls.borrow_mut().push((dest, m.label(), sent));
            let r = self.reply_mrs.borrow().clone();
            self.mrs.borrow_mut()[..r.len()].copy_from_slice(&r);
            encode_info(MessageInfo::new(*self.reply_label.borrow(), r.len()))
        }
        fn recv(&self, _: Cptr, _: Cptr) -> Received {
            panic!("no recv expected");
        }
        fn reply_recv(&self, _: Cptr, _: u64, _: Cptr) -> Received {
            panic!("no reply_recv expected");
        }
        fn nb_send_recv(&self, _: Cptr, _: u64, _: Cptr, _: Cptr) -> Received {
            panic!("no nb_send_recv expected");
        }
        fn mr(&self, i: usize) -> u64 {
            self.mrs.borrow()[i]
        }
        fn set_mr(&self, i: usize, v: u64) {
            self.mrs.borrow_mut()[i] = v;
        }
    }

    #[test]
    fn faults_decode_by_label() {
        let mrs = [
            0x4000_1000,
            0x0a00_0050,
            0,
            0x9200_0046,
            4,
            0,
            0,
            0,
            0x77,
            0,
            0,
            0,
            9,
        ];
        let mr = |i: usize| mrs.get(i).copied().unwrap_or(0);
        let f = |label| VcpuFault::decode(MessageInfo::new(label, 5), mr);
        assert_eq!(
            f(6),
            VcpuFault::Vm {
                ip: 0x4000_1000,
                addr: 0x0a00_0050,
                prefetch: false,
                fsr: 0x9200_0046
            }
        );
        assert_eq!(
            f(7),
            VcpuFault::VgicMaintenance {
                lr: Some(0x4000_1000)
            }
        );
        assert_eq!(
            VcpuFault::decode(MessageInfo::new(7, 1), |_| u64::MAX),
            VcpuFault::VgicMaintenance { lr: None }
        );
        assert_eq!(f(8), VcpuFault::Vcpu { hsr: 0x4000_1000 });
        assert_eq!(f(9), VcpuFault::Vppi { irq: 0x4000_1000 });
        assert_eq!(
            f(2),
            VcpuFault::UnknownSyscall {
                ip: 0x77,
                syscall: 9
            }
        );
        assert_eq!(
            f(3),
            VcpuFault::UserException {
                ip: 0x4000_1000,
                number: 0x9200_0046,
                code: 4
            }
        );
        assert_eq!(f(5), VcpuFault::Other(5));
    }

    #[test]
    fn each_call_on_its_capability() {
        let k = Fake::new();
        inject_irq(&k, &L, 1, 48, 0xa0, 1, 3).unwrap();
        ack_vppi(&k, &L, 0, 27).unwrap();
        write_vcpu_reg(&k, &L, 0, 5, 0xdead).unwrap();
        stop(&k, &L, 2).unwrap();
        *k.reply_mrs.borrow_mut() = vec![0x1234];
        assert_eq!(read_vcpu_reg(&k, &L, 0, 5), Ok(0x1234));
        let calls = k.calls.borrow().clone();
        assert_eq!(
            calls,
            [
                (VCPU + 1, 101, vec![48 | 0xa0 << 16 | 1 << 24 | 3 << 32]),
                (VCPU, 104, vec![27]),
                (VCPU, 103, vec![5, 0xdead]),
                (VM_TCB + 2, 12, vec![]),
                (VCPU, 102, vec![5]),
            ]
        );
    }

    #[test]
    fn registers_and_restart() {
        let k = Fake::new();
        let mut ctx: Vec<u64> = (0..USER_CONTEXT_WORDS as u64).map(|i| 100 + i).collect();
        *k.reply_mrs.borrow_mut() = ctx.clone();
        let mut regs = [0u64; USER_CONTEXT_WORDS];
        read_registers(&k, &L, 0, &mut regs).unwrap();
        assert_eq!(regs.to_vec(), ctx);
        k.reply_mrs.borrow_mut().clear();
        k.calls.borrow_mut().clear();
        *k.reply_mrs.borrow_mut() = ctx.clone();
        restart(&k, &L, 0, 0x4008_0000).unwrap();
        let calls = k.calls.borrow().clone();
        assert_eq!(calls[0], (VM_TCB, 2, vec![0, USER_CONTEXT_WORDS as u64]));
        ctx[0] = 0x4008_0000;
        let mut expect = vec![1, USER_CONTEXT_WORDS as u64];
        expect.extend(&ctx);
        assert_eq!(calls[1], (VM_TCB, 3, expect));
    }

    #[test]
    fn start_writes_a_fresh_context() {
        let k = Fake::new();
        start(&k, &L, 1, 0x4008_0000, 0x3c5, [0x4820_0000, 0, 0, 0]).unwrap();
        let calls = k.calls.borrow().clone();
        assert_eq!(calls.len(), 1);
        let (dest, label, mrs) = &calls[0];
        assert_eq!((*dest, *label), (VM_TCB + 1, 3));
        assert_eq!(
            &mrs[..7],
            &[
                1,
                USER_CONTEXT_WORDS as u64,
                0x4008_0000,
                0,
                0x3c5,
                0x4820_0000,
                0
            ]
        );
        assert!(mrs[7..].iter().all(|&r| r == 0));
        assert_eq!(mrs.len(), USER_CONTEXT_WORDS + 2);
    }

    #[test]
    fn kernel_errors_and_bad_ids() {
        let k = Fake::new();
        *k.reply_label.borrow_mut() = 3; // seL4_IllegalOperation
        assert_eq!(inject_irq(&k, &L, 0, 48, 0, 0, 9), Err(VcpuError(3)));
        assert_eq!(stop(&k, &L, 0), Err(VcpuError(3)));
        let before = k.calls.borrow().len();
        assert_eq!(ack_vppi(&k, &L, 64, 27), Err(VcpuError(4)));
        assert_eq!(
            k.calls.borrow().len(),
            before,
            "no call for an id outside the range"
        );
    }
}
