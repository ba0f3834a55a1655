# SPDX-License-Identifier: BSD-2-Clause
"""serial: two clients share the console through the Tx and Rx virtualisers.

    meta.py --board host --output DIR     (what `cargo xtask build serial` runs)

The driver, the virtualisers and the clients, with sDDF's priorities (driver > virts > clients).
sdfgen 0.35.1 writes every config blob; lions_meta records which ELF section each one goes into.
"""

from lions_meta import Assembly, parse_args

CLIENTS = 2

args = parse_args("serial")
asm = Assembly("serial", args.board)

# The same component binaries serve every board; only the driver differs.
DRIVER, NODE = {
    "host": ("serial_driver_host", "serial"),
    "qemu_virt_aarch64": ("serial_driver_pl011", "pl011@9000000"),
}[args.board]

driver = asm.pd("serial_driver", DRIVER, package="lions-components", priority=200)
virt_tx = asm.pd("serial_virt_tx", package="lions-components", priority=199)
virt_rx = asm.pd("serial_virt_rx", package="lions-components", priority=199)
clients = [asm.pd(f"client{i}", "serial_client", priority=1) for i in range(CLIENTS)]

serial = asm.serial(driver, virt_tx, virt_rx=virt_rx, node=NODE, enable_color=True)
for client in clients:
    serial.add_client(client)

asm.write(args.output)
