# SPDX-License-Identifier: BSD-2-Clause
"""linux_vm: one Linux guest on seL4 under a lions-vmm VMM PD (qemu_virt_aarch64 only).

    meta.py --board qemu_virt_aarch64 --output DIR   (what `cargo xtask build linux_vm` runs)

The VMM PD `vmm` is the parent of the `<virtual_machine>` `linux` (one vCPU, id 0). The guest's
RAM (GUEST_RAM_SIZE at guest-physical 0x4000_0000, 2 MiB pages) is mapped into the guest and,
read-write, into the VMM, which places the kernel, its device tree and the initrd there. The
GICv2 virtual CPU interface (QEMU virt's GICV at 0x804_0000) is mapped at the guest's GICC
(0x801_0000); the distributor at 0x800_0000 is emulated by the VMM. The guest's console is a
virtio console whose back end is a client of the serial virtualisers (switch with Ctrl-\\ then
the client number, as for any client). Its disk (`/dev/vda`) is a virtio-blk device whose back
end is a client of the blk virtualiser on partition 2 of QEMU's disk (the fileio example's
`make-disk.sh` image).

The host board cannot run guests: this example has no host-board system.
"""
import struct

from lions_meta import Assembly, SystemDescription, parse_args

VMM_MAGIC = b"lionsVM\x01"  # examples/linux_vm/src/lib.rs: VMM_MAGIC
GUEST_RAM_GPA = 0x4000_0000
GUEST_RAM_SIZE = 0x1000_0000
#: Where the VMM sees the guest's RAM.
GUEST_RAM_VMM_VADDR = 0x2000_0000
GICV_PADDR = 0x0804_0000
GICC_GPA = 0x0801_0000
VCPU_ID = 0

args = parse_args("linux_vm")
if args.board != "qemu_virt_aarch64":
    raise SystemExit("linux_vm: the host board cannot run guests; use --board qemu_virt_aarch64")
asm = Assembly("linux_vm", args.board)

serial_driver = asm.pd("serial_driver", "serial_driver_pl011", package="lions-components", priority=200)
serial_virt_tx = asm.pd("serial_virt_tx", package="lions-components", priority=199)
serial_virt_rx = asm.pd("serial_virt_rx", package="lions-components", priority=198)
blk_driver = asm.pd("blk_driver", "blk_driver_virtio", package="lions-components", priority=150)
blk_virt = asm.pd("blk_virt", package="lions-components", priority=149)
vmm = asm.pd("vmm", priority=100, stack_size=0x10000)

vm = SystemDescription.VirtualMachine("linux", [SystemDescription.VirtualMachine.Vcpu(id=VCPU_ID)], priority=99)
vmm.set_virtual_machine(vm)

guest_ram = asm.mr("guest_ram", GUEST_RAM_SIZE)
vm.add_map(SystemDescription.Map(guest_ram, GUEST_RAM_GPA, "rwx"))
asm.map(vmm, guest_ram, "rw", vaddr=GUEST_RAM_VMM_VADDR)
gic_vcpu = asm.mr("gic_vcpu", 0x1000, paddr=GICV_PADDR)
vm.add_map(SystemDescription.Map(gic_vcpu, GICC_GPA, "rw", cached=False))

serial = asm.serial(serial_driver, serial_virt_tx, virt_rx=serial_virt_rx, node="pl011@9000000")
serial.add_client(vmm)
#: The guest's /dev/vda: partition 2 of the disk (sdfgen counts from 0), QEMU's virtio-blk
#: (`-device virtio-blk-device`, which QEMU puts in the highest virtio-mmio slot).
blk = asm.blk(blk_driver, blk_virt, node="virtio_mmio@a003e00")
blk.add_client(vmm, partition=1)

asm.blob(
    vmm,
    ".vmm_config",
    "vmm_config.data",
    VMM_MAGIC + struct.pack("<QQQB7x", GUEST_RAM_VMM_VADDR, GUEST_RAM_SIZE, GUEST_RAM_GPA, VCPU_ID),
)
# 2 MiB pages for the guest's RAM (sdfgen's Python API has no page size): fewer frames and
# mappings for the Microkit tool and the initialiser, large stage-2 pages for the guest.
asm.fix_system(
    lambda text: text.replace(
        f'<memory_region name="guest_ram" size="{GUEST_RAM_SIZE:#x}"',
        f'<memory_region name="guest_ram" size="{GUEST_RAM_SIZE:#x}" page_size="0x200000"',
    )
)

asm.write(args.output)
