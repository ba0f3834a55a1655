// SPDX-License-Identifier: BSD-2-Clause
//! Board constants: the numbers that depend on the board and on the Microkit SDK / seL4 version
//! and configuration. One module per board and SDK version; [`current`] is the one this build
//! uses. `cargo xtask` compares them with the SDK it is given (`invocations_all.json`) before it
//! builds a system image, so a mismatch is an error at build time, not a mystery at run time.

/// `qemu_virt_aarch64` on Microkit 2.3.0 / seL4 16.0.0 (MCS, hypervisor mode), `debug`
/// configuration (the one `cargo xtask` uses). The invocation labels differ in `release` and
/// `benchmark`, whose kernels lack the debug-only TCB breakpoint and single-step invocations.
pub mod qemu_virt_aarch64 {
    /// The board's name in the Microkit SDK (`board/<name>/`).
    pub const NAME: &str = "qemu_virt_aarch64";
    /// The Microkit SDK version these numbers were read from.
    pub const SDK_VERSION: &str = "2.3.0";
    /// The IPC buffer: the page at `seL4_UserVSpaceTop & !0xfff`. No symbol names it; the tool
    /// maps it here in every PD.
    pub const IPC_BUFFER: usize = 0xff_ffff_f000;
    /// Top of the PD's stack (the tool sets SP here; a guard page separates it from the IPC
    /// buffer). Informative: `_start` uses SP as it finds it.
    pub const STACK_TOP: usize = 0xff_ffff_e000;
    /// Invocation label of `IRQAckIRQ` (an IRQ handler capability's acknowledge) in `debug`
    /// (27 in `release`, where the four debug TCB invocations before it are absent).
    pub const IRQ_ACK_IRQ: u64 = 31;
    /// The vCPU and TCB invocation labels a VMM uses ([`crate::microkit::vcpu`]), read from the
    /// SDK's `debug` `invocations_all.json` (the TCB labels shift by 4 in `release`, as above).
    pub const VCPU_LABELS: crate::microkit::vcpu::Labels = crate::microkit::vcpu::Labels {
        tcb_read_registers: 2,
        tcb_write_registers: 3,
        tcb_suspend: 12,
        vcpu_inject_irq: 60,
        vcpu_read_reg: 61,
        vcpu_write_reg: 62,
        vcpu_ack_vppi: 63,
    };
}

/// The board this build runs on.
pub use qemu_virt_aarch64 as current;
