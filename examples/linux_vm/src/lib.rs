// SPDX-License-Identifier: BSD-2-Clause
//! linux_vm: one AArch64 Linux guest on seL4 under a VMM PD built on `lions-vmm`.
//!
//! **The host board cannot run guests** (it promises no hardware virtualisation): the guest
//! boots only on seL4 (`qemu_virt_aarch64`, QEMU `virt` with `virtualization=on`). The VMM's
//! logic here is target-independent and is tested on the host against a fake kernel.
//!
//! ## Protocol (what the VMM PD does)
//!
//! - **Start** ([`Vmm::boot`]): writes the guest's device tree ([`lions_vmm::fdt::guest_tree`]:
//!   memory, GICv2, timer, PSCI over `smc`, the virtio console, the initrd), places the kernel
//!   `Image`, the tree and the initrd in guest RAM ([`lions_vmm::linux::load`]) and starts vCPU 0
//!   at the kernel's entry with `x0` = the tree (`microkit::vcpu::start`).
//! - **Faults** of the vCPU (the Microkit event loop's `fault` on the vCPU's child id,
//!   [`Vmm::fault`]):
//!   - `VMFault` (stage-2 data abort): decoded from the syndrome and dispatched by address to the
//!     GIC distributor ([`GICD`]) or the virtio console window ([`CONSOLE`]); a read's value goes
//!     to the target register, the PC advances, the registers are written back and the vCPU
//!     resumes. An address nobody claims stops the vCPU with a report.
//!   - `VCPUFault`: `SMC`/`HVC` are PSCI calls ([`lions_vmm::psci`]); `WFI`/`WFE` advance the PC.
//!   - `VPPIEvent`: the virtual timer PPI is injected; its completion (a maintenance fault for
//!     its list register) acknowledges the PPI (`ARMVCPUAckVPPI`) so it can fire again.
//!   - `VGICMaintenance`: the list register is freed and refilled from the overflow queue.
//! - **Interrupts**: every distributor change and device event may queue list-register writes;
//!   the VMM performs them (`ARMVCPUInjectIRQ`) before it resumes the vCPU.
//! - **Console**: the guest's `hvc0` is a virtio console whose back end is a serial client of the
//!   serial virtualisers; a notification on the serial channel moves input to the guest.

#![cfg_attr(target_os = "none", no_std)]

use lions_os::microkit::Kernel;
use lions_os::microkit::vcpu::{self, Labels, VcpuFault};
use lions_os::{Config, ConfigError, MessageInfo, RegionResource};
use lions_vmm::fault::{self, Sel4Context, VcpuRegs};
use lions_vmm::fdt::{GuestDt, VirtioNode, guest_tree};
use lions_vmm::gic::{self, Gic};
use lions_vmm::linux::{self, Placement};
use lions_vmm::psci::{self, Psci, PsciAction};
use lions_vmm::ram::GuestRam;
use lions_vmm::virtio::blk::{Blk, BlkBackend};
use lions_vmm::virtio::console::{Console, SerialBackend};
use lions_vmm::virtio::mmio::{self, VirtioMmio};
use lions_vmm::virtio::net::{Net, NetBackend};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Magic of [`VmmConfig`].
pub const VMM_MAGIC: [u8; 8] = *b"lionsVM\x01";
/// Guest-physical base of the GICv2 distributor (emulated: every access faults to the VMM).
pub const GICD: u64 = 0x0800_0000;
/// Guest-physical base of the GICv2 CPU interface (the hardware virtual CPU interface, GICV,
/// mapped there by the system description).
pub const GICC: u64 = 0x0801_0000;
/// Guest-physical base of the virtio console's window.
pub const CONSOLE: u64 = 0x0a00_0000;
/// The virtio console's interrupt (SPI 16).
pub const CONSOLE_IRQ: u16 = 48;
/// Guest-physical base of the virtio disk's window (the guest's `/dev/vda`).
pub const BLK: u64 = 0x0a00_0200;
/// The virtio disk's interrupt (SPI 17).
pub const BLK_IRQ: u16 = 49;
/// Guest-physical base of the virtio NIC's window (the guest's `eth0`).
pub const NET: u64 = 0x0a00_0400;
/// The virtio NIC's interrupt (SPI 18).
pub const NET_IRQ: u16 = 50;

/// A back end that can ask its peer for a signal before the VMM waits (the net client's phase
/// 2: request a notification, then re-check).
pub trait Park {
    /// Asks for a signal; `true`: work arrived meanwhile, serve the device again.
    fn park(&mut self) -> bool;
}

#[cfg(target_os = "none")]
impl Park for lions_net::client::NetDevice<'_> {
    fn park(&mut self) -> bool {
        // A misbehaving peer reads as "nothing more to do" (the device model stays up).
        lions_net::client::NetDevice::park(self).unwrap_or(false)
    }
}
/// Guest-physical base of the boot console: a write-only PL011 data register (the kernel's
/// `earlycon=pl011`), its bytes handed to [`Vmm::earlycon`]; the flag register reads 0 (never
/// busy, never full). It shows the kernel's messages before the virtio console exists.
pub const EARLYCON: u64 = 0x0900_0000;
/// The guest's kernel command line.
pub const BOOTARGS: &str = "console=hvc0 earlycon=pl011,mmio32,0x9000000 rdinit=/init";
/// Room for the guest's device tree.
pub const DTB_MAX: usize = 8192;
/// The SPSR syndrome class of a trapped `WFI`/`WFE`.
pub const EC_WFX: u8 = 0x01;

/// `.vmm_config`: where the guest's RAM is, in the guest and in this PD.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VmmConfig {
    /// [`VMM_MAGIC`].
    pub magic: [u8; 8],
    /// The guest RAM as mapped in the VMM (read-write).
    pub ram: RegionResource,
    /// Guest-physical base of the RAM (2 MiB aligned: the kernel's base).
    pub ram_gpa: u64,
    /// The vCPU's id (its child id in the event loop, its TCB and VCPU capability index).
    pub vcpu: u8,
    /// Padding.
    pub _pad: [u8; 7],
}

impl Config for VmmConfig {
    const SECTION: &'static str = ".vmm_config";
    const MAGIC: &'static [u8] = &VMM_MAGIC;
    const NAME: &'static str = "vmm_config";

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value| {
            Err(ConfigError::Invalid {
                config: Self::NAME,
                field,
                value,
            })
        };
        if !self.ram_gpa.is_multiple_of(linux::KERNEL_BASE_ALIGN) {
            return bad("ram_gpa", self.ram_gpa);
        }
        if self.ram.size == 0 || self.ram_gpa.checked_add(self.ram.size).is_none() {
            return bad("ram.size", self.ram.size);
        }
        if self.vcpu >= vcpu::MAX_VCPUS {
            return bad("vcpu", u64::from(self.vcpu));
        }
        Ok(())
    }
}

/// Why the VMM stopped its guest (the handler's error: the PD then faults with this report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmmError {
    /// The images did not fit or were malformed.
    Boot(linux::BootError),
    /// The device tree did not fit.
    Dtb(lions_vmm::fdt::FdtError),
    /// A vCPU call was refused by the kernel.
    Vcpu(vcpu::VcpuError),
    /// A fault that is not emulated (data abort on an unclaimed address, a bad syndrome).
    Fault(fault::FaultError),
    /// A trapped instruction this VMM does not handle (its syndrome).
    Trap(u64),
    /// A fault for another child.
    UnknownChild(u8),
    /// Any other fault label.
    Label(u64),
}

impl core::fmt::Display for VmmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Boot(e) => write!(f, "guest images: {e:?}"),
            Self::Dtb(e) => write!(f, "guest device tree: {e:?}"),
            Self::Vcpu(e) => write!(f, "vCPU call refused: seL4 error {}", e.0),
            Self::Fault(e) => write!(f, "guest fault not emulated: {e:?}"),
            Self::Trap(hsr) => write!(f, "guest trap not handled: HSR {hsr:#x}"),
            Self::UnknownChild(c) => write!(f, "fault of child {c}, which is not the vCPU"),
            Self::Label(l) => write!(f, "vCPU fault label {l} not handled"),
        }
    }
}

impl From<vcpu::VcpuError> for VmmError {
    fn from(e: vcpu::VcpuError) -> Self {
        Self::Vcpu(e)
    }
}

/// What the guest has done so far (for the boot report and the benches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Emulated data aborts.
    pub mmio: u64,
    /// Virtual timer ticks injected.
    pub vtimer: u64,
    /// PSCI calls.
    pub psci: u64,
    /// Interrupts injected (list-register writes).
    pub injected: u64,
}

/// The VMM of one single-vCPU guest.
pub struct Vmm<'r, K: Kernel, S: SerialBackend, B: BlkBackend, N: NetBackend + Park> {
    k: K,
    labels: Labels,
    vcpu: u8,
    ram_gpa: u64,
    ram: GuestRam<'r>,
    gic: Gic,
    psci: Psci,
    /// The guest's console.
    pub console: VirtioMmio<Console<S>>,
    /// The guest's disk.
    pub blk: VirtioMmio<Blk<B>>,
    /// The guest's NIC.
    pub net: VirtioMmio<Net<N>>,
    /// What happened so far.
    pub counters: Counters,
    /// The guest asked to be powered off (PSCI `SYSTEM_OFF`).
    pub powered_off: bool,
    /// Where the boot console's bytes go (`None`: dropped).
    pub earlycon: Option<fn(u8)>,
}

impl<'r, K: Kernel, S: SerialBackend, B: BlkBackend, N: NetBackend + Park> Vmm<'r, K, S, B, N> {
    /// A VMM for the guest whose RAM is `ram` (at guest-physical `ram_gpa`) on vCPU `vcpu`, its
    /// console on `serial`, its disk on `blk`, its NIC on `net`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        k: K,
        labels: Labels,
        vcpu: u8,
        ram_gpa: u64,
        ram: GuestRam<'r>,
        serial: S,
        blk: Blk<B>,
        net: Net<N>,
    ) -> Self {
        Self {
            net: VirtioMmio::new(net),
            blk: VirtioMmio::new(blk),
            k,
            labels,
            vcpu,
            ram_gpa,
            ram,
            gic: Gic::new(1),
            psci: Psci::new(1),
            console: VirtioMmio::new(Console::new(serial)),
            counters: Counters::default(),
            powered_off: false,
            earlycon: None,
        }
    }

    /// Places `kernel` and `initrd` with a generated device tree and starts the vCPU.
    pub fn boot(&mut self, kernel: &[u8], initrd: &[u8]) -> Result<linux::BootLayout, VmmError> {
        let ram_size = self.ram.regions().map(|r| r.size()).sum::<u64>();
        let hdr = linux::parse_image(kernel).map_err(VmmError::Boot)?;
        // Lay out once to learn where the initrd goes (the tree names it), then write the tree.
        let guess = linux::plan(
            &hdr,
            DTB_MAX as u64,
            initrd.len() as u64,
            self.ram_gpa,
            ram_size,
            Placement::default(),
        )
        .map_err(VmmError::Boot)?;
        let mut dtb = [0u8; DTB_MAX];
        let memory = [(self.ram_gpa, ram_size)];
        let virtio = [
            VirtioNode {
                base: CONSOLE,
                size: mmio::WINDOW_SIZE,
                irq: u32::from(CONSOLE_IRQ),
            },
            VirtioNode {
                base: BLK,
                size: mmio::WINDOW_SIZE,
                irq: u32::from(BLK_IRQ),
            },
            VirtioNode {
                base: NET,
                size: mmio::WINDOW_SIZE,
                irq: u32::from(NET_IRQ),
            },
        ];
        let cfg = GuestDt {
            ncpus: 1,
            memory: &memory,
            gicd: GICD,
            gicc: GICC,
            virtio: &virtio,
            bootargs: BOOTARGS,
            initrd: guess.initrd.map(|(a, n)| (a, a + n)),
            psci_method: "smc",
        };
        let n = guest_tree(&cfg, &mut dtb).map_err(VmmError::Dtb)?;
        let at = Placement {
            dtb: Some(guess.dtb),
            initrd: guess.initrd.map(|(a, _)| a),
        };
        let layout = linux::load(
            &mut self.ram,
            self.ram_gpa,
            ram_size,
            kernel,
            &dtb[..n],
            initrd,
            at,
        )
        .map_err(VmmError::Boot)?;
        let e = layout.entry();
        vcpu::start(&self.k, &self.labels, self.vcpu, e.pc, e.spsr, e.x)?;
        Ok(layout)
    }

    fn read_regs(&self) -> Result<Sel4Context, VmmError> {
        let mut c = Sel4Context([0; fault::SEL4_CONTEXT_WORDS]);
        vcpu::read_registers(&self.k, &self.labels, self.vcpu, &mut c.0)?;
        Ok(c)
    }

    fn write_regs(&self, c: &Sel4Context) -> Result<(), VmmError> {
        vcpu::write_registers(&self.k, &self.labels, self.vcpu, &c.0, false)?;
        Ok(())
    }

    /// Performs the list-register writes the distributor queued.
    fn flush_irqs(&mut self) -> Result<(), VmmError> {
        while let Some(w) = self.gic.take_lr_write(0) {
            let lr = u8::try_from(w.lr).unwrap_or(u8::MAX);
            // A GICv2 list register holds the top 5 bits of the priority byte (seL4 refuses
            // more with a range error).
            let priority = w.priority >> 3;
            vcpu::inject_irq(
                &self.k,
                &self.labels,
                self.vcpu,
                w.irq,
                priority,
                w.group,
                lr,
            )?;
            self.counters.injected += 1;
        }
        Ok(())
    }

    /// Raises `irq` (an SPI or PPI) and performs the list-register writes.
    fn raise(&mut self, irq: u16) -> Result<(), VmmError> {
        // A refused injection (the guest disabled it, or the overflow queue is full) is the
        // guest's business: the distributor keeps it pending where the GIC would.
        let _ = self.gic.inject(0, irq);
        self.flush_irqs()
    }

    /// Serves a notification of the serial client (input for the guest, or room for output).
    pub fn serial_notified(&mut self) -> Result<(), VmmError> {
        if self.console.poll(&mut self.ram) {
            self.raise(CONSOLE_IRQ)?;
        }
        Ok(())
    }

    /// Serves a notification of the blk virtualiser (responses).
    pub fn blk_notified(&mut self) -> Result<(), VmmError> {
        if self.blk.poll(&mut self.ram) {
            self.raise(BLK_IRQ)?;
        }
        Ok(())
    }

    /// Serves a notification of the net copier or Tx virtualiser (frames, free buffers), then
    /// asks for the next signal (re-checking, as every client does before it waits).
    pub fn net_notified(&mut self) -> Result<(), VmmError> {
        loop {
            if self.net.poll(&mut self.ram) {
                self.raise(NET_IRQ)?;
            }
            if !self.net.dev.backend.park() {
                return Ok(());
            }
        }
    }

    fn data_abort(&mut self, addr: u64, fsr: u64) -> Result<(), VmmError> {
        let mut regs = self.read_regs()?;
        let (ram, gic, console, blk, net) = (
            &mut self.ram,
            &mut self.gic,
            &mut self.console,
            &mut self.blk,
            &mut self.net,
        );
        let mut raise = false;
        let mut raise_blk = false;
        let mut raise_net = false;
        let earlycon = self.earlycon;
        fault::emulate(fsr, addr, &mut regs, |a| {
            if let Some(off) = a.offset_in(EARLYCON, 0x1000) {
                if let (0, Some(v), Some(out)) = (off, a.write, earlycon) {
                    out(u8::try_from(v & 0xff).unwrap_or(0));
                }
                return Some(0);
            }
            if let Some(off) = a.offset_in(CONSOLE, mmio::WINDOW_SIZE) {
                return Some(match a.write {
                    Some(v) => {
                        raise = console.write(ram, off, a.width, v);
                        0
                    }
                    None => console.read(off, a.width),
                });
            }
            if let Some(off) = a.offset_in(BLK, mmio::WINDOW_SIZE) {
                return Some(match a.write {
                    Some(v) => {
                        raise_blk = blk.write(ram, off, a.width, v);
                        0
                    }
                    None => blk.read(off, a.width),
                });
            }
            if let Some(off) = a.offset_in(NET, mmio::WINDOW_SIZE) {
                return Some(match a.write {
                    Some(v) => {
                        raise_net = net.write(ram, off, a.width, v);
                        0
                    }
                    None => net.read(off, a.width),
                });
            }
            let off = a.offset_in(GICD, gic::GICD_SIZE)?;
            Some(match a.write {
                Some(v) => {
                    gic.write(
                        0,
                        off,
                        a.width.bytes(),
                        u32::try_from(v & 0xffff_ffff).unwrap_or(0),
                    );
                    0
                }
                None => u64::from(gic.read(0, off, a.width.bytes())),
            })
        })
        .map_err(VmmError::Fault)?;
        self.counters.mmio += 1;
        self.write_regs(&regs)?;
        if raise {
            self.raise(CONSOLE_IRQ)?;
        }
        if raise_blk {
            self.raise(BLK_IRQ)?;
        }
        if raise_net {
            self.raise(NET_IRQ)?;
            // The guest gave buffers or frames: ask for the copier's next signal.
            let _ = self.net.dev.backend.park();
        }
        self.flush_irqs()
    }

    fn trap(&mut self, hsr: u64) -> Result<Option<MessageInfo>, VmmError> {
        let ec = u8::try_from((hsr >> 26) & 0x3f).unwrap_or(0);
        let mut regs = self.read_regs()?;
        match ec {
            psci::EC_SMC64 | psci::EC_HVC64 => {
                self.counters.psci += 1;
                let x = [regs.x(0), regs.x(1), regs.x(2), regs.x(3)];
                let ret = match self.psci.call(0, x, &self.ram) {
                    PsciAction::Return(v) => v,
                    // One vCPU: CPU_ON is refused by the model before it gets here.
                    PsciAction::CpuOn { .. } => psci::NOT_SUPPORTED as u64,
                    PsciAction::CpuOff | PsciAction::SystemOff | PsciAction::SystemReset => {
                        self.powered_off = true;
                        vcpu::stop(&self.k, &self.labels, self.vcpu)?;
                        return Ok(None);
                    }
                };
                regs.set_x(0, ret);
                regs.set_pc(regs.pc().wrapping_add(psci::pc_step(ec)));
            }
            EC_WFX => regs.set_pc(regs.pc().wrapping_add(4)),
            _ => return Err(VmmError::Trap(hsr)),
        }
        self.write_regs(&regs)?;
        Ok(Some(MessageInfo::new(0, 0)))
    }

    /// Handles a fault of child `child` with message `msg` (its registers read from the
    /// kernel's message registers). `Some` replies and resumes the vCPU.
    pub fn fault(&mut self, child: u8, msg: MessageInfo) -> Result<Option<MessageInfo>, VmmError> {
        if child != self.vcpu {
            return Err(VmmError::UnknownChild(child));
        }
        let resume = Some(MessageInfo::new(0, 0));
        match VcpuFault::decode(msg, |i| self.k.mr(i)) {
            VcpuFault::Vm { addr, fsr, .. } => {
                self.data_abort(addr, fsr)?;
                Ok(resume)
            }
            VcpuFault::Vcpu { hsr } => self.trap(hsr),
            VcpuFault::Vppi { irq } => {
                self.counters.vtimer += 1;
                self.raise(u16::try_from(irq).unwrap_or(u16::MAX))?;
                Ok(resume)
            }
            VcpuFault::VgicMaintenance { lr } => {
                if let Some(lr) = lr.and_then(|l| usize::try_from(l).ok())
                    && let Ok(done) = self.gic.maintenance(0, lr)
                    && done.irq == gic::VTIMER_PPI
                {
                    vcpu::ack_vppi(&self.k, &self.labels, self.vcpu, u64::from(done.irq))?;
                }
                self.flush_irqs()?;
                Ok(resume)
            }
            VcpuFault::UnknownSyscall { .. } | VcpuFault::UserException { .. } => {
                Err(VmmError::Label(msg.label()))
            }
            VcpuFault::Other(l) => Err(VmmError::Label(l)),
        }
    }
}
