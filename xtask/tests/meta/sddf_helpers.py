# SPDX-License-Identifier: BSD-2-Clause
"""Rebuild interop's `serial`, `timer` or `i2c` system through lions_meta's subsystem helpers.

    sddf_helpers.py serial|timer|i2c OUTPUT_DIR

Same PDs, priorities and options as interop/meta/<system>.py, so the `.system` file and the blobs
must equal interop/fixtures/<system>/, and assembly.json must name sdfgen's blobs.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from lions_meta import Assembly  # noqa: E402

which, out = sys.argv[1], Path(sys.argv[2])
asm = Assembly(which, "qemu_virt_aarch64")
if which == "serial":
    driver = asm.pd("serial_driver", priority=200)
    virt_tx = asm.pd("serial_virt_tx", priority=199)
    virt_rx = asm.pd("serial_virt_rx", priority=199)
    clients = [asm.pd(f"client{i}", priority=1) for i in range(2)]
    serial = asm.serial(driver, virt_tx, virt_rx=virt_rx, node="pl011@9000000",
                        enable_color=True, baud_rate=115200)
    for client in clients:
        serial.add_client(client)
elif which == "timer":
    driver = asm.pd("timer_driver", priority=254)
    clients = [asm.pd(f"client{i}", priority=1) for i in range(2)]
    timer = asm.timer(driver, node="timer")
    for client in clients:
        timer.add_client(client)
elif which == "i2c":
    driver = asm.pd("i2c_driver", priority=200)
    virt = asm.pd("i2c_virt", priority=199)
    clients = [asm.pd(f"client{i}", priority=1) for i in range(2)]
    i2c = asm.i2c(driver, virt, node="i2c@9100000")
    for client in clients:
        i2c.add_client(client)
else:
    raise SystemExit(f"unknown system {which}")
asm.write(out)
