# SPDX-License-Identifier: BSD-2-Clause
"""i2c: an I2C driver and virtualiser with two clients, and a timer driver that paces them.

    meta.py --board host --output DIR     (what `cargo xtask build i2c` runs)

`clock` claims the DS3231 (0x68) and prints its time every second; `nfc` claims the PN532 (0x24)
and reports cards as they come and go. Both are clients of the I2C virtualiser (sdfgen's I2C
subsystem: queues, a data region mapped into the driver, one channel each to the virtualiser,
which they also call for bus claims) and of the timer driver (sdfgen's timer subsystem).

Writes DIR/i2c.system, the drivers' `.device_resources` blobs, `.i2c_driver_config`,
`.i2c_virt_config`, one `.i2c_client_config` and one `.timer_client_config` per client, and
DIR/assembly.json.
"""

import os

from lions_meta import Assembly, parse_args

# The I2C driver per board: no board here has a usable I2C controller (QEMU's virt machine has
# none), so both run the model bus, which hosts a DS3231 and a PN532 model in the driver PD.
# Host: the `i2c` node of tools/host.dts (crates/lions-drivers/config/i2c/model_bus);
# qemu_virt_aarch64: the `i2c@9100000` node (interop's meson descriptor; its registers are mapped
# but never touched).
I2C_NODE = {"host": "i2c", "qemu_virt_aarch64": "i2c@9100000"}
TIMER_DRIVER = {
    "host": "timer_driver_host",
    "qemu_virt_aarch64": "timer_driver_arm_generic",
}

args = parse_args("i2c")
asm = Assembly("i2c", args.board)

# With LIONS_I2C_DEV=/dev/i2c-N set when it is built, the host board drives a real adapter instead
# of the model bus: `i2c_driver_host_dev` on the `i2c-dev` node of tools/host.dts (a DS3231 and a
# PN532 wired to that bus).
real_bus = args.board == "host" and bool(os.environ.get("LIONS_I2C_DEV"))
i2c_binary = "i2c_driver_host_dev" if real_bus else "i2c_driver_model_bus"
i2c_node = "i2c-dev" if real_bus else I2C_NODE[args.board]

# A PPC goes from a lower to a higher priority and clients block in it: the timer driver on top,
# then the I2C driver and the virtualiser (clients call it to claim addresses), then the clients.
timer_driver = asm.pd("timer_driver", TIMER_DRIVER[args.board], package="lions-components", priority=254)
i2c_driver = asm.pd("i2c_driver", i2c_binary, package="lions-components", priority=200)
i2c_virt = asm.pd("i2c_virt", "i2c_virt", package="lions-components", priority=199)
clock = asm.pd("clock", "rtc_clock", priority=2)
nfc = asm.pd("nfc", priority=1)

i2c = asm.i2c(i2c_driver, i2c_virt, node=i2c_node)
i2c.add_client(clock)
i2c.add_client(nfc)

timer = asm.timer(timer_driver, node="timer")
timer.add_client(clock)
timer.add_client(nfc)

asm.write(args.output)
