# SPDX-License-Identifier: BSD-2-Clause
"""hello: ping and pong exchange notifications and a PPC; faulty breaks a read-only map.

    meta.py --board host --output DIR     (what `cargo xtask build hello` runs)

Writes DIR/hello.system, one `.hello_config` blob per PD and DIR/assembly.json.
"""
import struct

from lions_meta import Assembly, parse_args

HELLO_MAGIC = b"LionsHi\x01"  # examples/hello/src/lib.rs: HELLO_MAGIC
NO_CHANNEL = 0xFF
ROUNDS = 5

args = parse_args("hello")
asm = Assembly("hello", args.board)

# Priorities: a PPC goes from lower to higher priority, so pong (the server) is above ping.
pong = asm.pd("pong", priority=10)
faulty = asm.pd("faulty", priority=5)
ping = asm.pd("ping", priority=1)

shared = asm.mr("shared", 0x1000)
pong_shared = asm.map(pong, shared, "rw")
faulty_shared = asm.map(faulty, shared, "r")

# ping <-> pong notifications; ping -> pong PPC only (no notifications on it);
# pong -> faulty "go" (faulty may not notify pong).
hello = asm.channel(ping, pong)
call = asm.channel(ping, pong, pp_a=True, notify_a=False, notify_b=False)
go = asm.channel(pong, faulty, notify_b=False)


def config(pd, *, region=None, notify=NO_CHANNEL, ppc=NO_CHANNEL, go_id=NO_CHANNEL):
    """Pack HelloConfig (32 bytes) for `pd` and record it for its `.hello_config` section."""
    vaddr, size = (region, shared.size) if region is not None else (0, 0)
    data = struct.pack("<8sQQBBBB4x", HELLO_MAGIC, vaddr, size, notify, ppc, go_id, ROUNDS)
    asm.blob(pd, ".hello_config", f"hello_{pd.name}.data", data)


config(ping, notify=hello.pd_a_id, ppc=call.pd_a_id)
config(pong, region=pong_shared, notify=hello.pd_b_id, ppc=call.pd_b_id, go_id=go.pd_a_id)
config(faulty, region=faulty_shared, go_id=go.pd_b_id)

asm.write(args.output)
