// SPDX-License-Identifier: BSD-2-Clause
//! The VMM's fault handling on the host, against a fake seL4 kernel that records every vCPU
//! invocation and answers `TCBReadRegisters` from a register file: boot (images placed, the
//! vCPU started at the entry with `x0` = the tree), emulated MMIO (the PC advances, a read lands
//! in its register), PSCI over SMC, WFI, the virtual timer's inject/complete/ack cycle with
//! seL4's 5-bit list-register priority, and faults it must refuse without panicking.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use linux_vm::{BOOTARGS, CONSOLE, GICD, Park, Vmm, VmmError};
use lions_os::MessageInfo;
use lions_os::microkit::vcpu::{self, Labels, USER_CONTEXT_WORDS};
use lions_os::microkit::{Kernel, Received};
use lions_vmm::abort::EC_DABT_LOWER;
use lions_vmm::ram::GuestRam;
use lions_vmm::virtio::blk::{Blk, BlkBackend, BlkRequest, BlkResponse};
use lions_vmm::virtio::console::SerialBackend;
use lions_vmm::virtio::net::{Net, NetBackend};
use std::cell::RefCell;

const L: Labels = Labels {
    tcb_read_registers: 2,
    tcb_write_registers: 3,
    tcb_suspend: 12,
    vcpu_inject_irq: 60,
    vcpu_read_reg: 61,
    vcpu_write_reg: 62,
    vcpu_ack_vppi: 63,
};
const RAM: u64 = 0x4000_0000;
const RAM_SIZE: usize = 64 << 20;

/// seL4_UserContext indices: pc 0, sp 1, spsr 2, x0 3, x1 4, ...
const PC: usize = 0;
fn x(n: usize) -> usize {
    3 + n
}

#[derive(Default)]
struct Fake {
    mrs: RefCell<Vec<u64>>,
    /// The vCPU's registers (what ReadRegisters returns; WriteRegisters updates them).
    regs: RefCell<Vec<u64>>,
    /// (label, first message register) of every call.
    calls: RefCell<Vec<(u64, u64)>>,
}

impl Fake {
    fn new() -> Self {
        Self {
            mrs: RefCell::new(vec![0; 128]),
            regs: RefCell::new(vec![0; USER_CONTEXT_WORDS]),
            calls: RefCell::default(),
        }
    }
    fn labels(&self) -> Vec<u64> {
        self.calls.borrow().iter().map(|c| c.0).collect()
    }
}

impl Kernel for &Fake {
    fn send(&self, _: u64, _: u64) {
        panic!("no send expected");
    }
    fn call(&self, _dest: u64, info: u64) -> u64 {
        let label = info >> 12;
        let len = (info & 0x7f) as usize;
        let mr0 = self.mrs.borrow()[0];
        self.calls.borrow_mut().push((label, mr0));
        if label == L.tcb_read_registers {
            let r = self.regs.borrow().clone();
            self.mrs.borrow_mut()[..r.len()].copy_from_slice(&r);
            return r.len() as u64;
        }
        if label == L.tcb_write_registers {
            let m = self.mrs.borrow();
            self.regs.borrow_mut().copy_from_slice(&m[2..len]);
        }
        if label == L.vcpu_inject_irq && (mr0 >> 16) & 0xff > 31 {
            return 4 << 12; // seL4_RangeError, as the kernel answers a priority above 31
        }
        0
    }
    fn recv(&self, _: u64, _: u64) -> Received {
        panic!("no recv expected");
    }
    fn reply_recv(&self, _: u64, _: u64, _: u64) -> Received {
        panic!("no reply_recv expected");
    }
    fn nb_send_recv(&self, _: u64, _: u64, _: u64, _: u64) -> Received {
        panic!("no nb_send_recv expected");
    }
    fn mr(&self, i: usize) -> u64 {
        self.mrs.borrow()[i]
    }
    fn set_mr(&self, i: usize, v: u64) {
        self.mrs.borrow_mut()[i] = v;
    }
}

#[derive(Default)]
struct Serial(Vec<u8>);
impl SerialBackend for Serial {
    fn write(&mut self, d: &[u8]) -> usize {
        self.0.extend_from_slice(d);
        d.len()
    }
    fn read(&mut self, _: &mut [u8]) -> usize {
        0
    }
}

struct Disk(Vec<u8>);
impl BlkBackend for Disk {
    fn capacity(&self) -> u64 {
        16
    }
    fn data_len(&self) -> usize {
        self.0.len()
    }
    fn copy_to_data(&mut self, o: usize, b: &[u8]) -> bool {
        self.0
            .get_mut(o..o + b.len())
            .map(|d| d.copy_from_slice(b))
            .is_some()
    }
    fn copy_from_data(&self, o: usize, out: &mut [u8]) -> bool {
        self.0
            .get(o..o + out.len())
            .map(|d| out.copy_from_slice(d))
            .is_some()
    }
    fn submit(&mut self, _: BlkRequest) -> Option<u32> {
        None
    }
    fn take_response(&mut self) -> Option<BlkResponse> {
        None
    }
}

#[derive(Default)]
struct Nic {
    parked: u32,
}
impl NetBackend for Nic {
    fn mac(&self) -> [u8; 6] {
        [0x52, 0x54, 1, 0, 0, 1]
    }
    fn tx_ready(&mut self) -> bool {
        false
    }
    fn transmit(&mut self, _: usize, _: &mut dyn FnMut(&mut [u8])) -> bool {
        false
    }
    fn receive(&mut self, _: &mut dyn FnMut(&[u8])) -> bool {
        false
    }
}
impl Park for Nic {
    fn park(&mut self) -> bool {
        self.parked += 1;
        false
    }
}

type TestVmm<'a> = Vmm<'a, &'a Fake, Serial, Disk, Nic>;

fn vmm<'a>(k: &'a Fake, mem: &'a mut [u8]) -> TestVmm<'a> {
    let ram = GuestRam::single(RAM, mem).unwrap();
    let blk = Blk::new(Disk(vec![0; 64 << 10])).unwrap();
    Vmm::new(
        k,
        L,
        0,
        RAM,
        ram,
        Serial::default(),
        blk,
        Net::new(Nic::default()),
    )
}

/// A data abort of `str/ldr w1, [addr]` as the kernel reports it (label 6: IP, addr, prefetch,
/// FSR).
fn data_abort(k: &Fake, addr: u64, write: bool) -> MessageInfo {
    let esr = (u64::from(EC_DABT_LOWER) << 26)
        | 1 << 25
        | 1 << 24
        | 2 << 22
        | 1 << 16
        | u64::from(write) << 6;
    let mut m = k.mrs.borrow_mut();
    m[..4].copy_from_slice(&[RAM, addr, 0, esr]);
    MessageInfo::new(vcpu::FAULT_VM, 4)
}

fn kernel_image() -> Vec<u8> {
    let mut k = vec![0u8; 0x4000];
    k[16..24].copy_from_slice(&0x1_0000u64.to_le_bytes()); // image_size
    k[56..60].copy_from_slice(b"ARM\x64");
    k[0x100] = 0xaa;
    k
}

#[test]
fn boot_places_the_images_and_starts_the_vcpu() {
    let k = Fake::new();
    let mut mem = vec![0u8; RAM_SIZE];
    let layout = {
        let mut v = vmm(&k, &mut mem);
        v.boot(&kernel_image(), &[0x5a; 3000]).unwrap()
    };
    assert_eq!(layout.kernel, RAM);
    assert_eq!(k.labels(), [L.tcb_write_registers], "one start call");
    let regs = k.regs.borrow().clone();
    assert_eq!(regs[PC], RAM);
    assert_eq!(regs[x(0)], layout.dtb);
    assert_eq!(regs[2], lions_vmm::linux::SPSR_EL1H_MASKED);
    let off = |gpa: u64| (gpa - RAM) as usize;
    assert_eq!(mem[0x100], 0xaa);
    assert_eq!(
        &mem[off(layout.dtb)..off(layout.dtb) + 4],
        &[0xd0, 0x0d, 0xfe, 0xed]
    );
    let (initrd, n) = layout.initrd.unwrap();
    assert_eq!(n, 3000);
    assert!(
        mem[off(initrd)..off(initrd) + 3000]
            .iter()
            .all(|&b| b == 0x5a)
    );
    let dtb = &mem[off(layout.dtb)..off(layout.dtb) + layout.dtb_size as usize];
    assert!(
        dtb.windows(BOOTARGS.len())
            .any(|w| w == BOOTARGS.as_bytes())
    );
}

#[test]
fn mmio_faults_are_emulated_and_the_pc_advances() {
    let k = Fake::new();
    let mut mem = vec![0u8; RAM_SIZE];
    let mut v = vmm(&k, &mut mem);
    k.regs.borrow_mut()[PC] = RAM + 0x1000;
    // ldr w1, [virtio console magic]
    let msg = data_abort(&k, CONSOLE, false);
    assert_eq!(v.fault(0, msg), Ok(Some(MessageInfo::new(0, 0))));
    let regs = k.regs.borrow().clone();
    assert_eq!(regs[x(1)], 0x7472_6976, "\"virt\" in w1");
    assert_eq!(regs[PC], RAM + 0x1004);
    // str w1, [GICD_CTLR] then ldr w1, [GICD_CTLR]
    k.regs.borrow_mut()[x(1)] = 1;
    let msg = data_abort(&k, GICD, true);
    v.fault(0, msg).unwrap();
    k.regs.borrow_mut()[x(1)] = 0;
    let msg = data_abort(&k, GICD, false);
    v.fault(0, msg).unwrap();
    assert_eq!(k.regs.borrow()[x(1)], 1);
    assert_eq!(k.regs.borrow()[PC], RAM + 0x100c);
    assert_eq!(v.counters.mmio, 3);
    // Nobody claims this address: an error, the vCPU is not resumed, nothing panics.
    let msg = data_abort(&k, 0x0c00_0000, false);
    assert!(matches!(v.fault(0, msg), Err(VmmError::Fault(_))));
    assert_eq!(k.regs.borrow()[PC], RAM + 0x100c);
}

#[test]
fn psci_wfi_and_the_virtual_timer() {
    let k = Fake::new();
    let mut mem = vec![0u8; RAM_SIZE];
    let mut v = vmm(&k, &mut mem);
    // smc #0 with x0 = PSCI_VERSION: x0 = 1.2, the PC steps over the SMC.
    k.regs.borrow_mut()[PC] = RAM + 0x2000;
    k.regs.borrow_mut()[x(0)] = u64::from(lions_vmm::psci::PSCI_VERSION);
    k.mrs.borrow_mut()[0] = u64::from(lions_vmm::psci::EC_SMC64) << 26;
    let r = v.fault(0, MessageInfo::new(vcpu::FAULT_VCPU, 1)).unwrap();
    assert!(r.is_some());
    assert_eq!(k.regs.borrow()[x(0)], lions_vmm::psci::VERSION_1_2);
    assert_eq!(k.regs.borrow()[PC], RAM + 0x2004);
    // wfi: the PC steps over it.
    k.mrs.borrow_mut()[0] = u64::from(linux_vm::EC_WFX) << 26;
    v.fault(0, MessageInfo::new(vcpu::FAULT_VCPU, 1)).unwrap();
    assert_eq!(k.regs.borrow()[PC], RAM + 0x2008);
    // The guest enables PPI 27 with priority 0xa0, then the timer fires.
    for (reg, val) in [(0x000u64, 1u64), (0x100, 1 << 27), (0x41b, 0xa0)] {
        k.regs.borrow_mut()[x(1)] = val;
        let msg = if reg == 0x41b {
            // strb w1: byte access to the priority register.
            let esr = (u64::from(EC_DABT_LOWER) << 26) | 1 << 25 | 1 << 24 | 1 << 16 | 1 << 6;
            k.mrs.borrow_mut()[..4].copy_from_slice(&[RAM, GICD + reg, 0, esr]);
            MessageInfo::new(vcpu::FAULT_VM, 4)
        } else {
            data_abort(&k, GICD + reg, true)
        };
        v.fault(0, msg).unwrap();
    }
    k.calls.borrow_mut().clear();
    k.mrs.borrow_mut()[0] = 27;
    v.fault(0, MessageInfo::new(vcpu::FAULT_VPPI, 1)).unwrap();
    let calls = k.calls.borrow().clone();
    assert_eq!(calls.len(), 1);
    let (label, mr0) = calls[0];
    assert_eq!(label, L.vcpu_inject_irq);
    assert_eq!(mr0 & 0xffff, 27);
    assert_eq!(
        (mr0 >> 16) & 0xff,
        0xa0 >> 3,
        "priority in seL4's 5-bit range"
    );
    let lr = mr0 >> 32;
    // The guest completes it: the maintenance fault names the list register; the PPI is acked.
    k.calls.borrow_mut().clear();
    k.mrs.borrow_mut()[0] = lr;
    v.fault(0, MessageInfo::new(vcpu::FAULT_VGIC_MAINTENANCE, 1))
        .unwrap();
    assert_eq!(k.calls.borrow().clone(), [(L.vcpu_ack_vppi, 27)]);
    assert_eq!(v.counters.vtimer, 1);
}

#[test]
fn other_faults_and_children_are_refused_without_panicking() {
    let k = Fake::new();
    let mut mem = vec![0u8; RAM_SIZE];
    let mut v = vmm(&k, &mut mem);
    assert_eq!(
        v.fault(3, MessageInfo::new(vcpu::FAULT_VM, 4)),
        Err(VmmError::UnknownChild(3))
    );
    assert_eq!(
        v.fault(0, MessageInfo::new(42, 0)),
        Err(VmmError::Label(42))
    );
    // An MSR trap (EC 0x18) is not handled by a GICv2 VMM.
    k.mrs.borrow_mut()[0] = 0x18 << 26;
    assert_eq!(
        v.fault(0, MessageInfo::new(vcpu::FAULT_VCPU, 1)),
        Err(VmmError::Trap(0x18 << 26))
    );
    // A maintenance fault for a free list register is harmless.
    k.mrs.borrow_mut()[0] = 3;
    assert!(
        v.fault(0, MessageInfo::new(vcpu::FAULT_VGIC_MAINTENANCE, 1))
            .unwrap()
            .is_some()
    );
    // The NIC asks for a signal whenever the VMM has served it.
    v.net_notified().unwrap();
    assert_eq!(v.net.dev.backend.parked, 1);
    // Boot with a kernel that is not an arm64 Image is refused.
    assert!(matches!(v.boot(&[0u8; 100], &[]), Err(VmmError::Boot(_))));
}

#[test]
fn vmm_config_layout() {
    use core::mem::{offset_of, size_of};
    use linux_vm::VmmConfig;
    assert_eq!(size_of::<VmmConfig>(), 40);
    assert_eq!(offset_of!(VmmConfig, magic), 0);
    assert_eq!(offset_of!(VmmConfig, ram), 8);
    assert_eq!(offset_of!(VmmConfig, ram_gpa), 24);
    assert_eq!(offset_of!(VmmConfig, vcpu), 32);
    // meta.py's blob: magic, RAM vaddr and size, guest-physical base, vCPU id, padding.
    let mut blob = linux_vm::VMM_MAGIC.to_vec();
    for v in [0x2000_0000u64, 0x1000_0000, 0x4000_0000] {
        blob.extend_from_slice(&v.to_le_bytes());
    }
    blob.extend_from_slice(&[0; 8]);
    let c = <VmmConfig as zerocopy::FromBytes>::read_from_bytes(&blob[..]).unwrap();
    assert_eq!(
        (c.ram.vaddr, c.ram.size, c.ram_gpa, c.vcpu),
        (0x2000_0000, 0x1000_0000, 0x4000_0000, 0)
    );
    assert_eq!(lions_os::Config::validate(&c), Ok(()));
    let mut odd = c;
    odd.ram_gpa += 0x1000;
    assert!(
        lions_os::Config::validate(&odd).is_err(),
        "RAM must be 2 MiB aligned"
    );
}
