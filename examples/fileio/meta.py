# SPDX-License-Identifier: BSD-2-Clause
"""fileio: a client of the FAT file-system server on a partitioned disk image.

    meta.py --board host --output DIR     (what `cargo xtask build fileio` runs)
    meta.py --board qemu_virt_aarch64 --output DIR

On qemu_virt_aarch64 the disk is QEMU's virtio-blk (`virtio_mmio@a003e00`, driver
blk_driver_virtio), the console the PL011 and the timer the Arm generic timer.

Eight PDs, with LionsOS's fileio priorities (drivers > virtualisers > file system > client):
the timer driver, the serial driver with both virtualisers, the blk driver (a disk image file:
LIONS_HOST_BLK_IMAGE) and the blk virtualiser, the FAT server `fatfs` on partition 1 (sdfgen's
partition 0), and the client `fileio`, which is a client of the FS server, the serial
virtualisers and the timer. sdfgen 0.35.1 writes every config blob; lions_meta records which ELF
section each one goes into and maps the blk data regions into the host driver (identity DMA).
"""

from lions_meta import Assembly, parse_args

args = parse_args("fileio")
asm = Assembly("fileio", args.board)

#: Per board: (timer driver, its node), (serial driver, its node), (blk driver, its node).
TIMER, SERIAL, BLK = {
    "host": (("timer_driver_host", "timer"), ("serial_driver_host", "serial"), ("blk_driver_host", "blk")),
    # QEMU gives the first virtio-mmio device (`-device virtio-blk-device`) the highest slot.
    "qemu_virt_aarch64": (
        ("timer_driver_arm_generic", "timer"),
        ("serial_driver_pl011", "pl011@9000000"),
        ("blk_driver_virtio", "virtio_mmio@a003e00"),
    ),
}[args.board]

COMPONENTS = "lions-components"
timer_driver = asm.pd("timer_driver", TIMER[0], package=COMPONENTS, priority=254)
serial_driver = asm.pd("serial_driver", SERIAL[0], package=COMPONENTS, priority=200)
serial_virt_tx = asm.pd("serial_virt_tx", package=COMPONENTS, priority=199)
serial_virt_rx = asm.pd("serial_virt_rx", package=COMPONENTS, priority=199)
blk_driver = asm.pd("blk_driver", BLK[0], package=COMPONENTS, priority=200)
blk_virt = asm.pd("blk_virt", package=COMPONENTS, priority=199)
fatfs = asm.pd("fatfs", "fs_fat", package=COMPONENTS, priority=150)
fileio = asm.pd("fileio", priority=1)

serial = asm.serial(serial_driver, serial_virt_tx, virt_rx=serial_virt_rx, node=SERIAL[1],
                    enable_color=False)
serial.add_client(fileio)
timer = asm.timer(timer_driver, node=TIMER[1])
timer.add_client(fileio)
blk = asm.blk(blk_driver, blk_virt, node=BLK[1])
# The first partition of the disk (sdfgen counts from 0).
asm.fs_fat(fatfs, fileio, blk=blk, partition=0)

asm.write(args.output)
