# SPDX-License-Identifier: BSD-2-Clause
"""Board facts and helpers shared by the interop metaprograms.

Every metaprogram takes `--output DIR`, builds one system with the real
sdfgen, and writes `<system>.system` plus every `.data` blob into DIR.
"""
import argparse
from pathlib import Path

import fdt
from sdfgen import DeviceTree, Sddf, SystemDescription

INTEROP = Path(__file__).resolve().parent.parent
DTS = INTEROP / "dts" / "qemu_virt_aarch64.dts"

# qemu_virt_aarch64: RAM is 0x4000_0000..0x6000_0000 for Microkit.
PADDR_TOP = 0x6000_0000
SERIAL_NODE = "pl011@9000000"
TIMER_NODE = "timer"
NET_NODE = "virtio_mmio@a003e00"
BLK_NODE = "virtio_mmio@a003c00"
I2C_NODE = "i2c@9100000"


def dtb_bytes() -> bytes:
    """Compile our DTS in-process; output is byte-identical to `dtc -O dtb`."""
    return fdt.parse_dts(DTS.read_text()).to_dtb(version=17)


class Board:
    """One system under construction: the SDF, the DTB and the output dir."""

    def __init__(self, name: str):
        parser = argparse.ArgumentParser(description=f"interop system '{name}'")
        parser.add_argument("--output", required=True, type=Path)
        args = parser.parse_args()
        self.name = name
        self.out = args.output
        self.out.mkdir(parents=True, exist_ok=True)
        self.sdf = SystemDescription(SystemDescription.Arch.AARCH64, PADDR_TOP)
        # sdfgen scans <root>/drivers/<class>/<driver>/config.json.
        Sddf(str(INTEROP))
        self.dtb = DeviceTree(dtb_bytes())

    def node(self, name: str) -> DeviceTree.Node:
        return self.dtb.node(name)

    def pd(self, name: str, priority: int, elf: str | None = None, **kw):
        """Create a PD (ELF defaults to '<name>.elf') and add it to the SDF."""
        pd = SystemDescription.ProtectionDomain(name, elf or f"{name}.elf", priority=priority, **kw)
        self.sdf.add_pd(pd)
        return pd

    def connect(self, *systems) -> None:
        """Connect in the given order (sdfgen requires some orders, see README)."""
        for system in systems:
            assert system.connect() is not False, f"connect failed: {system}"

    def finish(self, *systems) -> None:
        """Connect, then serialise: the usual order for a system."""
        self.connect(*systems)
        self.serialise(*systems)

    def serialise(self, *systems) -> None:
        """Write every system's blobs, then the SDF, into the output dir."""
        for system in systems:
            assert system.serialise_config(str(self.out)), f"serialise failed: {system}"
        (self.out / f"{self.name}.system").write_text(self.sdf.render())
