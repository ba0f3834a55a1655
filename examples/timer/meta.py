# SPDX-License-Identifier: BSD-2-Clause
"""timer: two clients of one timer driver; clock ticks every second, alarm replaces its deadlines.

    meta.py --board host --output DIR     (what `cargo xtask build timer` runs)

Writes DIR/timer.system, the driver's `.device_resources` blob, one `.timer_client_config` blob
per client (all three by sdfgen's timer subsystem) and DIR/assembly.json.
"""

from lions_meta import Assembly, parse_args

# The driver binary per board, from lions-components: `timer_driver_<driver>`, <driver> being the
# folder of the descriptor sdfgen picks for the board's `timer` node (host: crates/lions-drivers/
# config/timer/host; qemu_virt_aarch64: interop/drivers/timer/arm_generic, graph only for now).
DRIVER_BINARY = {
    "host": "timer_driver_host",
    "qemu_virt_aarch64": "timer_driver_arm_generic",
}

args = parse_args("timer")
asm = Assembly("timer", args.board)

# A PPC goes from a lower to a higher priority, and clients block in it: the driver is on top.
driver = asm.pd("timer_driver", DRIVER_BINARY[args.board], package="lions-components", priority=254)
clock = asm.pd("clock", priority=2)
alarm = asm.pd("alarm", priority=1)

# sdfgen gives the driver its <irq> (from the node's interrupts) and each client a PPC channel.
timer = asm.timer(driver, node="timer")
timer.add_client(clock)
timer.add_client(alarm)

asm.write(args.output)
