# SPDX-License-Identifier: BSD-2-Clause
"""echo_server: two network clients, each serving UDP echo (1235) and TCP echo (1236).

    meta.py --board host --output DIR     (what `cargo xtask build echo_server` runs)

sDDF's network subsystem: the driver, the Rx and Tx virtualisers, one copier per client, and the
clients; a timer for the clients' TCP/IP stacks and a serial console they greet on. Priorities as
sDDF orders them: timer > serial > net driver > Tx virt > Rx virt > copiers > clients.

Addresses (host board: the TAP interface `lions0`, or $LIONS_TAP, is 10.0.2.1/24 on the host; with
LIONS_NET=user the user-mode network's gateway is 10.0.2.1):

    client0  10.0.2.10/24  MAC 52:54:01:00:00:00
    client1  10.0.2.11/24  MAC 52:54:01:00:00:01

LIONS_BROADCAST=arp adds the ARP responder `net_arp` (MAC 52:54:01:00:00:fe, behind its own
copier) as the only receiver of broadcasts, answering ARP for both clients.
"""
import os

from lions_meta import Assembly, parse_args

#: (address, prefix, gateway) per client; prefix 0 would ask for DHCP.
CLIENTS = [((10, 0, 2, 10), 24, (10, 0, 2, 1)), ((10, 0, 2, 11), 24, (10, 0, 2, 1))]
ECHO_MAGIC = b"lionsEC\x01"

args = parse_args("echo_server")
asm = Assembly("echo_server", args.board)

#: Host board: every PD on one CPU (the first this process may use), as a Microkit system without
#: `cpu` attributes runs on seL4 (core 0). The priorities then order the work (a PD runs only when
#: every higher one is blocked), so each stage takes the whole batch its producers left instead of
#: being woken for every frame on another core. The launcher makes this the PDs' CPU affinity;
#: LIONS_CPU=N picks another CPU, LIONS_CPU=any leaves them unpinned. Other boards keep
#: Microkit's default.
_cpu = os.environ.get("LIONS_CPU", str(min(os.sched_getaffinity(0))))
CPU = None if args.board != "host" or _cpu == "any" else int(_cpu)

#: Per board: (timer driver, its node), (serial driver, its node), net node.
TIMER, SERIAL, NET_NODE = {
    "host": (("timer_driver_host", "timer"), ("serial_driver_host", "serial"), "net"),
    "qemu_virt_aarch64": (
        ("timer_driver_arm_generic", "timer"),
        ("serial_driver_pl011", "pl011@9000000"),
        "virtio_mmio@a003e00",
    ),
}[args.board]
timer_driver = asm.pd("timer_driver", TIMER[0], package="lions-components", priority=254, cpu=CPU)
serial_driver = asm.pd("serial_driver", SERIAL[0], package="lions-components", priority=200, cpu=CPU)
serial_virt_tx = asm.pd("serial_virt_tx", package="lions-components", priority=199, cpu=CPU)
#: The host board's NIC: a TAP (root or CAP_NET_ADMIN, or a TAP made for the user) or, with
#: LIONS_NET=user, the user-mode network (no privileges; host ports forwarded per
#: LIONS_NET_FORWARD).
#: On qemu_virt_aarch64: virtio-net (QEMU's `-netdev user` with host forwards, or a TAP).
NET_DRIVER = {"tap": "net_driver_host_tap", "user": "net_driver_host_user"}.get(os.environ.get("LIONS_NET", "tap"))
if NET_DRIVER is None:
    raise SystemExit(f"echo_server: LIONS_NET={os.environ['LIONS_NET']!r}: expected 'tap' or 'user'")
if args.board == "qemu_virt_aarch64":
    NET_DRIVER = "net_driver_virtio"
net_driver = asm.pd("net_driver", NET_DRIVER, package="lions-components", priority=110, cpu=CPU)
net_virt_tx = asm.pd("net_virt_tx", package="lions-components", priority=109, cpu=CPU)
net_virt_rx = asm.pd("net_virt_rx", package="lions-components", priority=108, cpu=CPU)
copiers = [asm.pd(f"net_copy{i}", "net_copy", package="lions-components", priority=100, cpu=CPU) for i in range(len(CLIENTS))]
clients = [asm.pd(f"client{i}", "echo", priority=99, cpu=CPU) for i in range(len(CLIENTS))]

timer = asm.timer(timer_driver, node=TIMER[1])
serial = asm.serial(serial_driver, serial_virt_tx, node=SERIAL[1])
net = asm.net(net_driver, net_virt_tx, net_virt_rx, node=NET_NODE)
for i, (client, copier, (ip, prefix, gateway)) in enumerate(zip(clients, copiers, CLIENTS)):
    net.add_client_with_copier(client, copier, mac_addr=f"52:54:01:00:00:{i:02x}")
    timer.add_client(client)
    serial.add_client(client)
    asm.blob(client, ".echo_config", f"echo_{client.name}.data", ECHO_MAGIC + bytes(ip) + bytes([prefix, 0, 0, 0]) + bytes(gateway))
#: Broadcasts: by default every client gets them (sDDF's scheme). LIONS_BROADCAST=arp is the
#: paper's first scheme: one trusted ARP responder (`net_arp`) answers for both clients and is the
#: only PD the Rx virt hands broadcasts to, so no client sees another's broadcast traffic.
BROADCAST = os.environ.get("LIONS_BROADCAST", "all")
if BROADCAST == "arp":
    arp = asm.pd("net_arp", package="lions-components", priority=99, cpu=CPU)
    arp_copier = asm.pd("net_copy_arp", "net_copy", package="lions-components", priority=100, cpu=CPU)
    table = {client: ip for client, (ip, _, _) in zip(clients, CLIENTS)}
    net.arp_responder(arp, arp_copier, table, mac_addr="52:54:01:00:00:fe")
elif BROADCAST != "all":
    raise SystemExit(f"echo_server: LIONS_BROADCAST={BROADCAST!r}: expected 'all' or 'arp'")
#: The Tx virt's shaping policy (lions' `.net_virt_tx_policy`; round-robin is also the default).
#: Others: net.tx_policy("strict_priority", priorities={clients[0]: 7}), or rate limits with
#: limits={clients[1]: (bytes_per_sec, burst_bytes)} and timer.add_client(net_virt_tx).
net.tx_policy("round_robin")

asm.write(args.output)
