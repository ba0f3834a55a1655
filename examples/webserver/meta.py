# SPDX-License-Identifier: BSD-2-Clause
"""webserver: LionsOS's web server, an HTTP/1.1 static-file server PD on the net subsystem,
serving the files of a FAT file system on a blk partition.

    meta.py --board host --output DIR     (what `cargo xtask build webserver` runs)

PDs, with sDDF's and LionsOS's priorities (drivers > virtualisers > copier > file system >
web server): the timer driver; the serial driver and Tx virtualiser (the request log); the net
driver, its Rx and Tx virtualisers and the web server's copier; the blk driver (a disk image:
LIONS_HOST_BLK_IMAGE, made by make-disk.sh) and the blk virtualiser; the FAT server `fatfs` on
partition 1 (sdfgen's partition 0); and `webserver`, a net, FS, timer and serial client.

The web server (host board: the TAP `lions0`, or $LIONS_TAP, is 10.0.2.1/24 on the host; with
LIONS_NET=user the user-mode network's gateway is 10.0.2.1 and LIONS_NET_FORWARD forwards host
ports): 10.0.2.10/24, MAC 52:54:01:00:00:00, port 80 (LIONS_WEB_PORT), LIONS_WEB_CONNECTIONS
connections at once (default 8, at most 16).
"""
import os
import struct

from lions_meta import Assembly, parse_args

ADDRESS, PREFIX, GATEWAY = (10, 0, 2, 10), 24, (10, 0, 2, 1)
PORT = int(os.environ.get("LIONS_WEB_PORT", "80"))
CONNECTIONS = int(os.environ.get("LIONS_WEB_CONNECTIONS", "8"))
WEB_MAGIC = b"lionsWB\x01"

args = parse_args("webserver")
asm = Assembly("webserver", args.board)

#: Host board: every PD on one CPU, as echo_server (see its meta.py); LIONS_CPU=N or any.
_cpu = os.environ.get("LIONS_CPU", str(min(os.sched_getaffinity(0))))
CPU = None if args.board != "host" or _cpu == "any" else int(_cpu)

#: Per board: (timer driver, node), (serial driver, node), (blk driver, node), net node.
TIMER, SERIAL, BLK, NET_NODE = {
    "host": (("timer_driver_host", "timer"), ("serial_driver_host", "serial"),
             ("blk_driver_host", "blk"), "net"),
    # QEMU numbers virtio-mmio devices from the highest slot down in command-line order: the NIC
    # first (a003e00), then the disk (a003c00).
    "qemu_virt_aarch64": (
        ("timer_driver_arm_generic", "timer"),
        ("serial_driver_pl011", "pl011@9000000"),
        ("blk_driver_virtio", "virtio_mmio@a003c00"),
        "virtio_mmio@a003e00",
    ),
}[args.board]
NET_DRIVER = {"tap": "net_driver_host_tap", "user": "net_driver_host_user"}.get(os.environ.get("LIONS_NET", "tap"))
if NET_DRIVER is None:
    raise SystemExit(f"webserver: LIONS_NET={os.environ['LIONS_NET']!r}: expected 'tap' or 'user'")
if args.board == "qemu_virt_aarch64":
    NET_DRIVER = "net_driver_virtio"

COMPONENTS = "lions-components"
timer_driver = asm.pd("timer_driver", TIMER[0], package=COMPONENTS, priority=254, cpu=CPU)
serial_driver = asm.pd("serial_driver", SERIAL[0], package=COMPONENTS, priority=200, cpu=CPU)
serial_virt_tx = asm.pd("serial_virt_tx", package=COMPONENTS, priority=199, cpu=CPU)
blk_driver = asm.pd("blk_driver", BLK[0], package=COMPONENTS, priority=200, cpu=CPU)
blk_virt = asm.pd("blk_virt", package=COMPONENTS, priority=199, cpu=CPU)
net_driver = asm.pd("net_driver", NET_DRIVER, package=COMPONENTS, priority=110, cpu=CPU)
net_virt_tx = asm.pd("net_virt_tx", package=COMPONENTS, priority=109, cpu=CPU)
net_virt_rx = asm.pd("net_virt_rx", package=COMPONENTS, priority=108, cpu=CPU)
net_copy = asm.pd("net_copy", package=COMPONENTS, priority=100, cpu=CPU)
#: The file system runs above the web server: the web server's blocking FS calls finish
#: because the server preempts it (seL4) or runs beside it (host board).
fatfs = asm.pd("fatfs", "fs_fat", package=COMPONENTS, priority=150, cpu=CPU)
webserver = asm.pd("webserver", priority=99, cpu=CPU)

timer = asm.timer(timer_driver, node=TIMER[1])
serial = asm.serial(serial_driver, serial_virt_tx, node=SERIAL[1])
net = asm.net(net_driver, net_virt_tx, net_virt_rx, node=NET_NODE)
net.add_client_with_copier(webserver, net_copy, mac_addr="52:54:01:00:00:00")
timer.add_client(webserver)
serial.add_client(webserver)
blk = asm.blk(blk_driver, blk_virt, node=BLK[1])
asm.fs_fat(fatfs, webserver, blk=blk, partition=0)
asm.blob(webserver, ".webserver_config", "webserver_config.data",
         struct.pack("<8s4sBxH4sH2x", WEB_MAGIC, bytes(ADDRESS), PREFIX, PORT, bytes(GATEWAY), CONNECTIONS))
net.tx_policy("round_robin")

asm.write(args.output)
