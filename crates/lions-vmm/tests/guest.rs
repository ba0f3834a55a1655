// SPDX-License-Identifier: BSD-2-Clause
//! A guest's life on the host, as the VMM PD sees it: boot layout and device tree in guest RAM,
//! then a guest driver that reaches its devices only through data-abort faults (syndromes as
//! the hardware writes them), interrupts through the distributor and list registers, and PSCI.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_vmm::abort::EC_DABT_LOWER;
use lions_vmm::fault::{VcpuRegs, emulate};
use lions_vmm::fdt::{GuestDt, VirtioNode, guest_tree};
use lions_vmm::gic::{self, Gic};
use lions_vmm::linux::{self, Placement, SPSR_EL1H_MASKED};
use lions_vmm::psci::{self, Psci, PsciAction};
use lions_vmm::ram::{GuestMemory, GuestRam};
use lions_vmm::virtio::console::{Console, SerialBackend};
use lions_vmm::virtio::mmio::{self, VirtioMmio, reg};

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 32 << 20;
const GICD: u64 = 0x0800_0000;
const CONSOLE: u64 = 0x0a00_0000;
const CONSOLE_IRQ: u16 = 48;

#[derive(Default)]
struct Regs {
    x: [u64; 31],
    pc: u64,
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

#[derive(Default)]
struct Serial {
    out: Vec<u8>,
}

impl SerialBackend for Serial {
    fn write(&mut self, data: &[u8]) -> usize {
        self.out.extend_from_slice(data);
        data.len()
    }
    fn read(&mut self, _: &mut [u8]) -> usize {
        0
    }
}

/// The VMM: its devices and the guest's vCPU 0.
struct Vmm<'r> {
    ram: GuestRam<'r>,
    gic: Gic,
    console: VirtioMmio<Console<Serial>>,
    regs: Regs,
    lr_writes: Vec<gic::LrWrite>,
}

impl Vmm<'_> {
    /// The guest executes `str w1, [addr]` (or `ldr w1`): a fault the VMM emulates.
    fn guest_access(&mut self, addr: u64, write: Option<u32>) -> u32 {
        if let Some(v) = write {
            self.regs.x[1] = u64::from(v);
        }
        let esr = (u64::from(EC_DABT_LOWER) << 26)
            | 1 << 25
            | 1 << 24
            | 2 << 22
            | 1 << 16
            | u64::from(write.is_some()) << 6;
        let pc = self.regs.pc;
        let (ram, gic, console) = (&mut self.ram, &mut self.gic, &mut self.console);
        let mut raise = false;
        emulate(esr, addr, &mut self.regs, |a| {
            if let Some(off) = a.offset_in(CONSOLE, mmio::WINDOW_SIZE) {
                return Some(match a.write {
                    Some(v) => {
                        raise = console.write(ram, off, a.width, v);
                        0
                    }
                    None => console.read(off, a.width),
                });
            }
            let off = a.offset_in(GICD, gic::GICD_SIZE)?;
            Some(match a.write {
                Some(v) => {
                    gic.write(0, off, a.width.bytes(), v as u32);
                    0
                }
                None => u64::from(gic.read(0, off, a.width.bytes())),
            })
        })
        .unwrap();
        assert_eq!(self.regs.pc, pc + 4);
        if raise {
            self.gic.inject(0, CONSOLE_IRQ).unwrap();
        }
        while let Some(w) = self.gic.take_lr_write(0) {
            self.lr_writes.push(w);
        }
        self.regs.x[1] as u32
    }
}

#[test]
fn boot_then_console_output_with_an_interrupt() {
    let mut mem = vec![0u8; RAM_SIZE as usize];
    let mut ram = GuestRam::single(RAM, &mut mem).unwrap();

    // Boot: an Image, the generated device tree, an initrd.
    let mut kernel = vec![0u8; 0x2000];
    kernel[8..16].copy_from_slice(&0x8_0000u64.to_le_bytes());
    kernel[16..24].copy_from_slice(&0x1_0000u64.to_le_bytes());
    kernel[56..60].copy_from_slice(&linux::IMAGE_MAGIC.to_le_bytes());
    let initrd = vec![0x11u8; 5000];
    let mut dtb = vec![0u8; 8192];
    let plan_hdr = linux::parse_image(&kernel).unwrap();
    // Lay out once without the tree to learn where the initrd goes, then write the tree.
    let guess = linux::plan(
        &plan_hdr,
        8192,
        initrd.len() as u64,
        RAM,
        RAM_SIZE,
        Placement::default(),
    )
    .unwrap();
    let (istart, ilen) = guess.initrd.unwrap();
    let cfg = GuestDt {
        ncpus: 2,
        memory: &[(RAM, RAM_SIZE)],
        gicd: GICD,
        gicc: 0x0801_0000,
        virtio: &[VirtioNode {
            base: CONSOLE,
            size: mmio::WINDOW_SIZE,
            irq: u32::from(CONSOLE_IRQ),
        }],
        bootargs: "console=hvc0",
        initrd: Some((istart, istart + ilen)),
        psci_method: "smc",
    };
    let n = guest_tree(&cfg, &mut dtb).unwrap();
    let at = Placement {
        dtb: Some(guess.dtb),
        initrd: Some(istart),
    };
    let layout = linux::load(&mut ram, RAM, RAM_SIZE, &kernel, &dtb[..n], &initrd, at).unwrap();
    let entry = layout.entry();
    assert_eq!(
        (entry.pc, entry.x, entry.spsr),
        (RAM + 0x8_0000, [layout.dtb, 0, 0, 0], SPSR_EL1H_MASKED)
    );
    // The tree is in place: its magic is big endian.
    assert_eq!(
        ram.read_u32(layout.dtb).unwrap(),
        linux::FDT_MAGIC.swap_bytes()
    );

    let mut vmm = Vmm {
        ram,
        gic: Gic::new(2),
        console: VirtioMmio::new(Console::new(Serial::default())),
        regs: Regs {
            pc: entry.pc,
            ..Default::default()
        },
        lr_writes: Vec::new(),
    };
    // The guest's GIC driver: distributor on, the console's SPI enabled with a priority.
    vmm.guest_access(GICD + gic::reg::CTLR, Some(1));
    vmm.guest_access(
        GICD + gic::reg::ISENABLER + 4,
        Some(1 << (CONSOLE_IRQ - 32)),
    );
    vmm.guest_access(GICD + gic::reg::IPRIORITYR + 48, Some(0xa0));
    // The virtio driver: identify, negotiate VERSION_1, set up both queues.
    assert_eq!(vmm.guest_access(CONSOLE + reg::MAGIC, None), mmio::MAGIC);
    assert_eq!(vmm.guest_access(CONSOLE + reg::DEVICE_ID, None), 3);
    vmm.guest_access(CONSOLE + reg::STATUS, Some(3));
    vmm.guest_access(CONSOLE + reg::DRIVER_FEATURES_SEL, Some(1));
    vmm.guest_access(CONSOLE + reg::DRIVER_FEATURES, Some(1));
    vmm.guest_access(CONSOLE + reg::STATUS, Some(3 | mmio::STATUS_FEATURES_OK));
    assert_eq!(
        vmm.guest_access(CONSOLE + reg::STATUS, None),
        3 | mmio::STATUS_FEATURES_OK
    );
    let rings = [(RAM + 0x100_0000, 8u32), (RAM + 0x101_0000, 8)];
    for (q, &(base, size)) in rings.iter().enumerate() {
        vmm.guest_access(CONSOLE + reg::QUEUE_SEL, Some(q as u32));
        vmm.guest_access(CONSOLE + reg::QUEUE_NUM, Some(size));
        vmm.guest_access(CONSOLE + reg::QUEUE_DESC_LOW, Some(base as u32));
        vmm.guest_access(CONSOLE + reg::QUEUE_DRIVER_LOW, Some(base as u32 + 0x1000));
        vmm.guest_access(CONSOLE + reg::QUEUE_DEVICE_LOW, Some(base as u32 + 0x2000));
        vmm.guest_access(CONSOLE + reg::QUEUE_READY, Some(1));
    }
    vmm.guest_access(
        CONSOLE + reg::STATUS,
        Some(3 | mmio::STATUS_FEATURES_OK | mmio::STATUS_DRIVER_OK),
    );

    // Output: one descriptor on the transmit queue, then a notify.
    let (tx, text) = (rings[1].0, b"Linux version 6.1\n");
    let buf = RAM + 0x102_0000;
    vmm.ram.write(buf, text).unwrap();
    vmm.ram.write_u64(tx, buf).unwrap();
    vmm.ram.write_u32(tx + 8, text.len() as u32).unwrap();
    vmm.ram.write_u16(tx + 0x1000 + 2, 1).unwrap();
    vmm.guest_access(CONSOLE + reg::QUEUE_NOTIFY, Some(1));
    assert_eq!(vmm.console.dev.backend.out, text);
    // The interrupt went to a list register with the guest's priority.
    assert_eq!(vmm.lr_writes.len(), 1);
    let w = vmm.lr_writes[0];
    assert_eq!((w.irq, w.priority, w.lr), (CONSOLE_IRQ, 0xa0, 0));
    // The guest's handler reads and acknowledges the cause, then EOIs: a maintenance fault.
    assert_eq!(
        vmm.guest_access(CONSOLE + reg::INTERRUPT_STATUS, None),
        mmio::INT_USED_BUFFER
    );
    vmm.guest_access(CONSOLE + reg::INTERRUPT_ACK, Some(mmio::INT_USED_BUFFER));
    assert_eq!(vmm.gic.maintenance(0, w.lr).unwrap().irq, CONSOLE_IRQ);
    assert_eq!(vmm.ram.read_u16(tx + 0x2000 + 2).unwrap(), 1);

    // The guest brings up its second vCPU through PSCI.
    let mut p = Psci::new(2);
    let action = p.call(
        0,
        [u64::from(psci::CPU_ON_64), 1, RAM + 0x8_0100, 42],
        &vmm.ram,
    );
    assert_eq!(
        action,
        PsciAction::CpuOn {
            target: 1,
            entry: RAM + 0x8_0100,
            context: 42
        }
    );
}
