# SPDX-License-Identifier: BSD-2-Clause
"""my-product: a greeter PD of this product on the console, through lions' serial subsystem.

    meta.py --board host --output DIR     (what `cargo xtask run <this folder>` runs)

`lions_meta` is installed in the lions venv (`interop/setup-venv.sh`, made by xtask on first use).
A PD without `package=` is built from this folder's Cargo workspace; `package="lions-components"`
takes lions' own component binaries, built from the lions checkout.
"""
from lions_meta import Assembly, parse_args

args = parse_args("my-product")
asm = Assembly("my-product", args.board)

DRIVER, NODE = {
    "host": ("serial_driver_host", "serial"),
    "qemu_virt_aarch64": ("serial_driver_pl011", "pl011@9000000"),
}[args.board]

# sDDF's priorities: driver > virtualisers > clients.
driver = asm.pd("serial_driver", DRIVER, package="lions-components", priority=200)
virt_tx = asm.pd("serial_virt_tx", package="lions-components", priority=199)
virt_rx = asm.pd("serial_virt_rx", package="lions-components", priority=199)
greeter = asm.pd("greeter", priority=1)

serial = asm.serial(driver, virt_tx, virt_rx=virt_rx, node=NODE)
serial.add_client(greeter)

asm.write(args.output)
