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
`make-disk.sh` image). Its NIC (`eth0`, GUEST_MAC) is a client of the net virtualisers behind a
copier, beside the native `echo` client (echo_server's UDP echo on 1235 and TCP echo on 1236 at
10.0.2.10), which shares the console with the guest. Between the two the frames go out through
QEMU's virtio-net and back: the boot test gives QEMU a UDP socket netdev that sends to itself.

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
ECHO_MAGIC = b"lionsEC\x01"  # examples/echo_server/src/lib.rs: ECHO_MAGIC
ECHO_IP = (10, 0, 2, 10)
ECHO_MAC = "52:54:01:00:00:00"
GUEST_MAC = "52:54:01:00:00:01"

args = parse_args("linux_vm")
if args.board != "qemu_virt_aarch64":
    raise SystemExit("linux_vm: the host board cannot run guests; use --board qemu_virt_aarch64")
asm = Assembly("linux_vm", args.board)

serial_driver = asm.pd("serial_driver", "serial_driver_pl011", package="lions-components", priority=200)
serial_virt_tx = asm.pd("serial_virt_tx", package="lions-components", priority=199)
serial_virt_rx = asm.pd("serial_virt_rx", package="lions-components", priority=198)
blk_driver = asm.pd("blk_driver", "blk_driver_virtio", package="lions-components", priority=150)
blk_virt = asm.pd("blk_virt", package="lions-components", priority=149)
timer_driver = asm.pd("timer_driver", "timer_driver_arm_generic", package="lions-components", priority=254)
net_driver = asm.pd("net_driver", "net_driver_virtio", package="lions-components", priority=140)
net_virt_tx = asm.pd("net_virt_tx", package="lions-components", priority=139)
net_virt_rx = asm.pd("net_virt_rx", package="lions-components", priority=138)
net_copy_vmm = asm.pd("net_copy_vmm", "net_copy", package="lions-components", priority=130)
net_copy_echo = asm.pd("net_copy_echo", "net_copy", package="lions-components", priority=130)
#: The native client beside the guest: echo_server's UDP/TCP echo at ECHO_IP.
echo = asm.pd("echo", "echo", package="lions-example-echo_server", priority=120)
#: The native disk reader: reads 8 MiB of partition 1 once and prints the rate (the guest's
#: `dd` of its own partition is the other number of the same run).
blk_reader = asm.pd("blk_reader", priority=110)
vmm = asm.pd("vmm", priority=100, stack_size=0x10000)

#: The guest's vCPU runs below every native PD: a guest that idles in WFI traps to the VMM and is
#: resumed at once, so it is busy whenever it runs.
vm = SystemDescription.VirtualMachine("linux", [SystemDescription.VirtualMachine.Vcpu(id=VCPU_ID)], priority=1)
vmm.set_virtual_machine(vm)

guest_ram = asm.mr("guest_ram", GUEST_RAM_SIZE)
vm.add_map(SystemDescription.Map(guest_ram, GUEST_RAM_GPA, "rwx"))
asm.map(vmm, guest_ram, "rw", vaddr=GUEST_RAM_VMM_VADDR)
gic_vcpu = asm.mr("gic_vcpu", 0x1000, paddr=GICV_PADDR)
vm.add_map(SystemDescription.Map(gic_vcpu, GICC_GPA, "rw", cached=False))

serial = asm.serial(serial_driver, serial_virt_tx, virt_rx=serial_virt_rx, node="pl011@9000000")
serial.add_client(vmm)
serial.add_client(echo)
timer = asm.timer(timer_driver, node="timer")
timer.add_client(echo)
serial.add_client(blk_reader)
timer.add_client(blk_reader)
#: The guest's /dev/vda: partition 2 of the disk (sdfgen counts from 0), QEMU's virtio-blk
#: (`-device virtio-blk-device`, which QEMU puts in the highest virtio-mmio slot).
blk = asm.blk(blk_driver, blk_virt, node="virtio_mmio@a003e00")
blk.add_client(vmm, partition=1)
blk.add_client(blk_reader, partition=0)
#: The guest's eth0 and the native echo client, behind copiers on QEMU's second virtio device
#: (`-device virtio-net-device`, the next slot down).
net = asm.net(net_driver, net_virt_tx, net_virt_rx, node="virtio_mmio@a003c00")
net.add_client_with_copier(vmm, net_copy_vmm, mac_addr=GUEST_MAC)
net.add_client_with_copier(echo, net_copy_echo, mac_addr=ECHO_MAC)
net.tx_policy("round_robin")
asm.blob(echo, ".echo_config", "echo_echo.data", ECHO_MAGIC + bytes(ECHO_IP) + bytes([24, 0, 0, 0]) + bytes((10, 0, 2, 1)))

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
