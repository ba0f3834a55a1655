# SPDX-License-Identifier: BSD-2-Clause
"""lions_meta: the glue between an example's metaprogram and `cargo xtask`.

A metaprogram (`examples/<ex>/meta.py`) describes its system with sdfgen 0.35.1, through an
`Assembly`, which also records what the build must do with each PD:

    from lions_meta import Assembly, parse_args

    args = parse_args("hello")                  # --board B --output DIR
    asm = Assembly("hello", args.board)
    pong = asm.pd("pong", priority=10)          # image pong.elf, built from Cargo binary `pong`
    ping = asm.pd("ping", priority=1)
    shared = asm.mr("shared", 0x1000)
    vaddr = asm.map(pong, shared, "rw")         # vaddr chosen by sdfgen unless given
    ch = asm.channel(ping, pong)                # sdfgen picks the ids: ch.pd_a_id, ch.pd_b_id
    asm.blob(pong, ".hello_config", "hello_pong.data", data)   # our own config blob
    asm.write(args.output)

`asm.write(DIR)` connects and serialises every sDDF subsystem, writes `<example>.system`, every
blob, and `assembly.json`:

    {"example": ..., "board": ..., "system": "<example>.system",
     "pds": {"<pd>": {"binary": "<cargo bin>", "package": "<cargo package>" (optional),
                      "image": "<pd>.elf",
                      "patches": [{"section": ".serial_client_config",
                                   "blob": "serial_client_<pd>.data"}, ...]}}}

`cargo xtask build` reads it, copies each binary to its image name and writes each blob into its
ELF section. Nobody keeps a list of images or objcopy lines by hand: the metaprogram is the one
source, and the subsystem helpers below know sdfgen's blob names.

## Subsystem helpers (the pattern)

sdfgen 0.35.1 names its blobs by fixed rules (interop/README.md, "Blob names"). A helper builds the
sdfgen subsystem object, registers it so `write` connects and serialises it, and records one patch
per PD role, so a client is added with one call that also records its blob:

    serial = asm.serial(driver, virt_tx, virt_rx=virt_rx, node="pl011@9000000")
    serial.add_client(client0)          # records .serial_client_config <- serial_client_client0.data
    timer = asm.timer(timer_driver, node="timer")
    timer.add_client(client0)           # records .timer_client_config <- timer_client_client0.data

On the host board the device nodes are `serial` (compatible `lions,host-serial`) and `timer`
(`lions,host-timer`) of `tools/host.dts`; sdfgen picks the drivers whose descriptors in
`crates/lions-drivers/config/<class>/<driver>/config.json` claim them, as it picks interop's
descriptors for the nodes of qemu_virt_aarch64:

    serial = asm.serial(driver, virt_tx, virt_rx=virt_rx, node="serial", enable_color=True)
    timer = asm.timer(timer_driver, node="timer")

Block storage and the LionsOS FAT file system (host node `blk`, `lions,host-blk`):

    blk = asm.blk(blk_driver, blk_virt, node="blk")
    blk.add_client(pd, partition=1)     # records .blk_client_config <- blk_client_<pd>.data
    asm.fs_fat(fs, client, blk=blk, partition=0)
                                        # fs: .fs_server_config and .blk_client_config;
                                        # client: .fs_client_config

On the host board DMA is identity: `blk` also maps every blk data region (the virtualiser's and
each client's, all with a `phys_addr`) into the driver at vaddr = its `phys_addr`, read-write, as
`blk_driver_host` expects (crates/lions-components/src/bin/blk_driver_host.rs). sdfgen creates
those regions only in `connect()`, so the maps are added to the rendered `.system` text.

Networking (host node `net`, `lions,host-net`), each client behind its own copier:

    net = asm.net(net_driver, net_virt_tx, net_virt_rx, node="net")
    net.add_client_with_copier(client, copier, mac_addr="52:54:01:00:00:00")
                                        # client: .net_client_config <- net_client_<pd>.data
                                        # copier: .net_copy_config <- net_copy_<pd>.data
    net.tx_policy("strict_priority", priorities={client: 7}, limits={other: (1_000_000, 16384)})
                                        # net_virt_tx: .net_virt_tx_policy <- net_virt_tx_policy.data
                                        # (default without it: round-robin; limits need
                                        # timer.add_client(net_virt_tx))

I2C (host node `i2c`, `lions,host-i2c`: the model bus driver; qemu_virt_aarch64 node
`i2c@9100000`); each client also gets a PPC channel to the virtualiser for bus claims:

    i2c = asm.i2c(i2c_driver, i2c_virt, node="i2c")
    i2c.add_client(pd)                  # records .i2c_client_config <- i2c_client_<pd>.data

To add a class (net, blk, fs), write its table of (section, blob name) per role as in
`serial` and `timer`: the blob names are in interop/README.md's blob table. `write` refuses to
finish if a recorded blob was not produced, which catches a wrong name at once.
"""
from __future__ import annotations

import argparse
import atexit
import json
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from xml.etree import ElementTree

from sdfgen import DeviceTree, LionsOs, Sddf, SystemDescription

REPO = Path(__file__).resolve().parent.parent
INTEROP = REPO / "interop"
TOOLS = REPO / "tools"
#: Resource descriptors of our host-board drivers (`<class>/<driver>/config.json`).
HOST_DRIVERS = REPO / "crates" / "lions-drivers" / "config"

__all__ = ["Assembly", "Board", "BOARDS", "NetSubsystem", "Patch", "Subsystem", "SystemDescription", "Sddf", "parse_args"]


@dataclass(frozen=True)
class Board:
    """What sdfgen needs to know about a board."""

    name: str
    #: sdfgen architecture (`None`: that of the machine running the metaprogram).
    arch: Optional[SystemDescription.Arch]
    #: Top of the physical memory sdfgen allocates regions from.
    paddr_top: int
    #: DTS source of the board's device tree, if it has one.
    dts: Optional[Path] = None
    #: Where sdfgen finds the board's driver descriptors: folders laid out as
    #: `<class>/<driver>/config.json` (sdfgen's `drivers/` tree).
    drivers: tuple[Path, ...] = ()

    def sdf_arch(self) -> SystemDescription.Arch:
        if self.arch is not None:
            return self.arch
        machine = platform.machine().lower()
        native = {
            "x86_64": SystemDescription.Arch.X86_64,
            "amd64": SystemDescription.Arch.X86_64,
            "aarch64": SystemDescription.Arch.AARCH64,
            "arm64": SystemDescription.Arch.AARCH64,
            "riscv64": SystemDescription.Arch.RISCV64,
        }
        if machine not in native:
            raise SystemExit(f"lions_meta: host board on unsupported machine '{machine}'")
        return native[machine]


BOARDS = {
    # One Linux process per PD (lions-host). Physical addresses mean nothing there; sdfgen
    # still wants a top for regions that ask for one.
    #
    # Its devices (tools/host.dts) are host fds that host drivers turn into IRQs. sdfgen 0.35.1
    # resolves device-tree interrupts only for ARM and RISC-V (for X86_64 it drops them, leaving a
    # driver without its <irq> and its IRQ channel in `.device_resources`), so the host board
    # describes itself to sdfgen as AARCH64 on every machine. Nothing else in a rendered system
    # depends on the architecture here (no I/O ports; the same vaddrs and ids: hello's .system is
    # byte-identical either way).
    "host": Board(
        "host",
        SystemDescription.Arch.AARCH64,
        0x1_0000_0000,
        TOOLS / "host.dts",
        (HOST_DRIVERS,),
    ),
    "qemu_virt_aarch64": Board(
        "qemu_virt_aarch64",
        SystemDescription.Arch.AARCH64,
        0x6000_0000,
        INTEROP / "dts" / "qemu_virt_aarch64.dts",
        (INTEROP / "drivers",),
    ),
}


def _sddf_root(drivers: tuple[Path, ...]) -> Path:
    """The folder to give `Sddf(path)`: sdfgen reads only `<path>/drivers/<class>/<driver>/
    config.json`. A single tree already named `drivers` is used in place (interop/); otherwise the
    descriptors are copied into a temporary `drivers/` tree, removed when the process exits (MR
    names hold the driver folder's name, never this path, so the output does not depend on it)."""
    for d in drivers:
        if not d.is_dir():
            raise SystemExit(f"lions_meta: driver descriptors folder {d} does not exist")
    if len(drivers) == 1 and drivers[0].name == "drivers":
        return drivers[0].parent
    stage = Path(tempfile.mkdtemp(prefix="lions-sddf-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    for d in drivers:
        for config in sorted(d.rglob("config.json")):
            dest = stage / "drivers" / config.relative_to(d)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(config, dest)
    return stage


def parse_args(example: str, argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The metaprogram command line: `--board B` (default host) and `--output DIR`."""
    parser = argparse.ArgumentParser(description=f"metaprogram of example '{example}'")
    parser.add_argument("--board", default="host", choices=sorted(BOARDS))
    parser.add_argument("--output", required=True, type=Path)
    return parser.parse_args(argv)


@dataclass
class Patch:
    """A config blob to write into an ELF section of a PD's image."""

    section: str
    blob: str


@dataclass
class _PdRecord:
    binary: str
    package: Optional[str]
    image: str
    patches: list[Patch] = field(default_factory=list)


class Subsystem:
    """An sdfgen sDDF subsystem whose clients' blobs are recorded as they are added."""

    def __init__(self, asm: "Assembly", obj, client_section: str, client_blob: str):
        self.asm = asm
        self.obj = obj
        self._client_section = client_section
        self._client_blob = client_blob

    def add_client(self, pd: SystemDescription.ProtectionDomain, **kw) -> None:
        """Add `pd` as a client (sdfgen `add_client`) and record its config blob."""
        self.obj.add_client(pd, **kw)
        self.asm.patch(pd, self._client_section, self._client_blob.format(pd=pd.name))


class NetSubsystem:
    """An sdfgen net subsystem whose clients' (and copiers') blobs are recorded as they are
    added."""

    #: `tx_policy` orders, as `lions_net::policy::ORDER_*`.
    TX_ORDERS = {"in_order": 0, "round_robin": 1, "strict_priority": 2}

    def __init__(self, asm: "Assembly", obj, virt_tx=None, virt_rx=None):
        self.asm = asm
        self.obj = obj
        self.virt_tx = virt_tx
        self.virt_rx = virt_rx
        #: Client PD names in the order they were added (the virts' client numbers).
        self.clients: list[str] = []
        #: Each client's MAC as given to `add_client_with_copier` ("52:54:..."), by PD name.
        self.macs: dict[str, str] = {}

    def add_client_with_copier(self, client, copier=None, **kw) -> None:
        """Add `client` (sdfgen `add_client_with_copier`; keywords mac_addr, rx, tx) behind
        `copier`, and record `.net_client_config` for the client and `.net_copy_config` for the
        copier."""
        self.obj.add_client_with_copier(client, copier, **kw)
        self.clients.append(client.name)
        if "mac_addr" in kw:
            self.macs[client.name] = kw["mac_addr"]
        self.asm.patch(client, ".net_client_config", f"net_client_{client.name}.data")
        if copier is not None:
            self.asm.patch(copier, ".net_copy_config", f"net_copy_{copier.name}.data")

    def arp_responder(self, responder, copier, table, *, mac_addr: str) -> None:
        """The paper's first broadcast scheme: add `responder` (a `net_arp` PD, from
        lions-components) as a client behind `copier`, answering ARP requests for `table`
        ({client: IPv4 address as a 4-tuple}; each client added before with its `mac_addr`), and
        make it the only client the Rx virt delivers broadcasts to. Writes `.net_arp_config`
        (`lions_net::NetArpConfig`, 656 B) into the responder and `.net_virt_rx_broadcast`
        (`lions_net::NetRxBroadcastConfig`, 16 B) into the Rx virt."""
        import struct

        entries = b""
        for pd, ip in (table.items() if hasattr(table, "items") else table):
            name = getattr(pd, "name", pd)
            if name not in self.macs:
                raise SystemExit(f"lions_meta: arp_responder: {name} is no client of this net subsystem with a mac_addr")
            if len(ip) != 4 or not all(0 <= b <= 255 for b in ip):
                raise SystemExit(f"lions_meta: arp_responder: {name}: {ip!r} is no IPv4 address")
            entries += bytes(ip) + bytes.fromhex(self.macs[name].replace(":", ""))
        if len(entries) > 64 * 10:
            raise SystemExit("lions_meta: arp_responder: more than 64 addresses")
        self.add_client_with_copier(responder, copier, mac_addr=mac_addr)
        data = struct.pack("<8sB7x", b"lionsAR\x01", len(entries) // 10) + entries.ljust(640, b"\0")
        assert len(data) == 656
        self.asm.blob(responder, ".net_arp_config", f"net_arp_{responder.name}.data", data)
        mask = 1 << self.clients.index(responder.name)
        self.asm.blob(self.virt_rx, ".net_virt_rx_broadcast", "net_virt_rx_broadcast.data", struct.pack("<8sQ", b"lionsRB\x01", mask))

    def tx_policy(self, order: str = "round_robin", priorities=None, limits=None) -> None:
        """Choose the Tx virtualiser's shaping policy: our own blob `.net_virt_tx_policy`
        (`lions_net::NetTxPolicyConfig`, 1112 B; sDDF's Tx virt config has no room for it and
        stays as sdfgen writes it). Without this call the Tx virt runs round-robin.

        `order`: "in_order" (sDDF's), "round_robin", or "strict_priority" with `priorities`
        {client: level 0..255, larger first; absent: 0}. `limits`: {client: (bytes_per_sec,
        burst_bytes)} token buckets around the order (a client is its PD or its name; a list of
        pairs does as well as a dict); with limits the Tx virt
        must also be a timer client (`timer.add_client(net_virt_tx)`): the timer is the limits'
        clock and wakes the virt when a held-back client may send again. Call it after the
        clients are added (they are numbered in the order they were added)."""
        import struct

        def index(pd) -> int:
            name = getattr(pd, "name", pd)
            if name not in self.clients:
                raise SystemExit(f"lions_meta: tx_policy: {name} is no client of this net subsystem")
            return self.clients.index(name)

        if order not in self.TX_ORDERS:
            raise SystemExit(f"lions_meta: tx_policy: order {order!r}; known: {', '.join(self.TX_ORDERS)}")
        def pairs(x):
            return x.items() if hasattr(x, "items") else (x or [])

        prio = bytearray(64)
        for pd, level in pairs(priorities):
            prio[index(pd)] = level
        buckets = [(0, 0)] * 64
        limited = 0
        for pd, (rate, burst) in pairs(limits):
            buckets[index(pd)] = (rate, burst)
            limited |= 1 << index(pd)
        data = struct.pack("<8sB7xQ64s", b"lionsTP\x01", self.TX_ORDERS[order], limited, bytes(prio))
        data += b"".join(struct.pack("<QQ", r, b) for r, b in buckets)
        assert len(data) == 1112
        self.asm.blob(self.virt_tx, ".net_virt_tx_policy", "net_virt_tx_policy.data", data)


class Assembly:
    """One system under construction: the sdfgen description plus the build's instructions."""

    def __init__(self, example: str, board: str):
        if board not in BOARDS:
            raise SystemExit(f"lions_meta: unknown board '{board}'; known: {', '.join(BOARDS)}")
        self.example = example
        self.board = BOARDS[board]
        self.sdf = SystemDescription(self.board.sdf_arch(), self.board.paddr_top)
        self._pds: dict[str, _PdRecord] = {}
        self._blobs: dict[str, bytes] = {}
        self._subsystems: list = []
        self._dtb: Optional[DeviceTree] = None
        #: Edits of the rendered `.system` text, in order (see `fix_system`).
        self._system_fixups: list[Callable[[str], str]] = []

    # --- PDs, regions, channels -------------------------------------------------------------

    def pd(
        self,
        name: str,
        binary: Optional[str] = None,
        *,
        package: Optional[str] = None,
        priority: Optional[int] = None,
        passive: Optional[bool] = None,
        stack_size: Optional[int] = None,
        budget: Optional[int] = None,
        period: Optional[int] = None,
        cpu: Optional[int] = None,
    ) -> SystemDescription.ProtectionDomain:
        """Create and add a PD whose image is `<name>.elf`, built from Cargo binary `binary`
        (default: `name`) of `package` (default: the example's own package)."""
        if name in self._pds:
            raise SystemExit(f"lions_meta: PD '{name}' defined twice")
        image = f"{name}.elf"
        pd = SystemDescription.ProtectionDomain(
            name,
            image,
            priority=priority,
            passive=passive,
            stack_size=stack_size,
            budget=budget,
            period=period,
            cpu=cpu,
        )
        self.sdf.add_pd(pd)
        self._pds[name] = _PdRecord(binary or name, package, image)
        return pd

    def mr(self, name: str, size: int, **kw) -> SystemDescription.MemoryRegion:
        """Create and add a memory region."""
        mr = SystemDescription.MemoryRegion(self.sdf, name, size, **kw)
        self.sdf.add_mr(mr)
        return mr

    def map(
        self,
        pd: SystemDescription.ProtectionDomain,
        mr: SystemDescription.MemoryRegion,
        perms: str,
        vaddr: Optional[int] = None,
        **kw,
    ) -> int:
        """Map `mr` into `pd` with `perms` ("r", "rw", ...) at `vaddr` (default: the next free
        address sdfgen picks); returns the vaddr."""
        if vaddr is None:
            vaddr = pd.get_map_vaddr(mr)
        pd.add_map(SystemDescription.Map(mr, vaddr, perms, **kw))
        return vaddr

    def channel(self, a, b, **kw) -> SystemDescription.Channel:
        """Create and add a channel (sdfgen keywords: a_id, b_id, pp_a, pp_b, notify_a, ...).
        The ids sdfgen chose are `ch.pd_a_id` and `ch.pd_b_id`."""
        ch = SystemDescription.Channel(a, b, **kw)
        self.sdf.add_channel(ch)
        return ch

    # --- config blobs ----------------------------------------------------------------------

    def patch(self, pd, section: str, blob_file: str) -> None:
        """Record that `blob_file` (in the output dir) goes into ELF section `section` of
        `pd`'s image."""
        name = pd if isinstance(pd, str) else pd.name
        if name not in self._pds:
            raise SystemExit(f"lions_meta: patch for '{name}', which is not a PD of this assembly")
        if not section.startswith("."):
            raise SystemExit(f"lions_meta: section '{section}' must start with '.'")
        patches = self._pds[name].patches
        if any(p.section == section for p in patches):
            raise SystemExit(f"lions_meta: PD '{name}' gets section '{section}' twice")
        patches.append(Patch(section, blob_file))

    def blob(self, pd, section: str, blob_file: str, data: bytes) -> None:
        """Write `data` as `blob_file` (at `write` time) and record the patch."""
        self._blobs[blob_file] = bytes(data)
        self.patch(pd, section, blob_file)

    # --- sDDF subsystems -------------------------------------------------------------------

    def node(self, name: str) -> DeviceTree.Node:
        """A node of the board's device tree (boards with one only)."""
        if self.board.dts is None:
            raise SystemExit(f"lions_meta: board '{self.board.name}' has no device tree")
        if self._dtb is None:
            import fdt  # installed with sdfgen by interop/setup-venv.sh

            dtb = fdt.parse_dts(self.board.dts.read_text()).to_dtb(version=17)
            self._dtb = DeviceTree(dtb)
            # sdfgen scans <root>/drivers/<class>/<driver>/config.json (once per process).
            Sddf(str(_sddf_root(self.board.drivers)))
        return self._dtb.node(name)

    def subsystem(self, obj) -> None:
        """Register an sdfgen subsystem: `write` connects it, then serialises its blobs."""
        self._subsystems.append(obj)

    def _device(self, node):
        return self.node(node) if isinstance(node, str) else node

    def serial(self, driver, virt_tx, *, virt_rx=None, node=None, **kw) -> Subsystem:
        """An sDDF serial subsystem (sdfgen `Sddf.Serial`; keywords: enable_color, baud_rate,
        begin_str). Records the driver's and virtualisers' blobs; add clients with
        `.add_client(pd)`."""
        obj = Sddf.Serial(self.sdf, self._device(node), driver, virt_tx, virt_rx=virt_rx, **kw)
        self.subsystem(obj)
        self.patch(driver, ".device_resources", f"{driver.name}_device_resources.data")
        self.patch(driver, ".serial_driver_config", "serial_driver_config.data")
        self.patch(virt_tx, ".serial_virt_tx_config", "serial_virt_tx.data")
        if virt_rx is not None:
            self.patch(virt_rx, ".serial_virt_rx_config", "serial_virt_rx.data")
        return Subsystem(self, obj, ".serial_client_config", "serial_client_{pd}.data")

    def timer(self, driver, *, node=None) -> Subsystem:
        """An sDDF timer subsystem (sdfgen `Sddf.Timer`; clients call the driver by PPC).
        Records the driver's device resources; add clients with `.add_client(pd)`."""
        obj = Sddf.Timer(self.sdf, self._device(node), driver)
        self.subsystem(obj)
        self.patch(driver, ".device_resources", f"{driver.name}_device_resources.data")
        return Subsystem(self, obj, ".timer_client_config", "timer_client_{pd}.data")

    def i2c(self, driver, virt, *, node=None) -> Subsystem:
        """An sDDF I2C subsystem (sdfgen `Sddf.I2c`). Records the driver's and the
        virtualiser's blobs; add clients with `.add_client(pd)` (sdfgen keyword `data_size`).
        sdfgen maps each client's data region into the driver too (there is no DMA), and gives
        each client one channel to the virtualiser that it may also call (bus claims)."""
        obj = Sddf.I2c(self.sdf, self._device(node), driver, virt)
        self.subsystem(obj)
        self.patch(driver, ".device_resources", f"{driver.name}_device_resources.data")
        self.patch(driver, ".i2c_driver_config", "i2c_driver.data")
        self.patch(virt, ".i2c_virt_config", "i2c_virt.data")
        return Subsystem(self, obj, ".i2c_client_config", "i2c_client_{pd}.data")

    def net(self, driver, virt_tx, virt_rx, *, node=None, **kw) -> "NetSubsystem":
        """An sDDF net subsystem (sdfgen `Sddf.Net`; keyword `rx_dma_mr`). Records the driver's
        and the virtualisers' blobs; add clients with `.add_client_with_copier(client, copier,
        mac_addr=...)`, which records the client's and the copier's. On the host board the data
        regions (the Rx DMA region the Rx virtualiser maps, each client's Tx region the Tx
        virtualiser maps) are also mapped into the driver at their `phys_addr` (identity DMA, as
        for `blk`; `net_driver_host_tap` reaches frames there)."""
        obj = Sddf.Net(self.sdf, self._device(node), driver, virt_tx, virt_rx, **kw)
        self.subsystem(obj)
        self.patch(driver, ".device_resources", f"{driver.name}_device_resources.data")
        self.patch(driver, ".net_driver_config", "net_driver.data")
        self.patch(virt_rx, ".net_virt_rx_config", "net_virt_rx.data")
        self.patch(virt_tx, ".net_virt_tx_config", "net_virt_tx.data")
        if self.board.name == "host":
            for virt in (virt_rx, virt_tx):
                self.fix_system(
                    lambda text, v=virt.name: _map_dma_identity(text, driver.name, v)
                )
        return NetSubsystem(self, obj, virt_tx, virt_rx)

    def blk(self, driver, virt, *, node=None) -> Subsystem:
        """An sDDF blk subsystem (sdfgen `Sddf.Blk`). Records the driver's and the
        virtualiser's blobs; add clients with `.add_client(pd, partition=N)` (sdfgen keywords
        `queue_capacity`, `data_size`). On the host board the data regions are also mapped into
        the driver at their `phys_addr` (identity DMA, see the module docs)."""
        obj = Sddf.Blk(self.sdf, self._device(node), driver, virt)
        self.subsystem(obj)
        self.patch(driver, ".device_resources", f"{driver.name}_device_resources.data")
        self.patch(driver, ".blk_driver_config", "blk_driver.data")
        self.patch(virt, ".blk_virt_config", "blk_virt.data")
        if self.board.name == "host":
            self.fix_system(lambda text: _map_dma_identity(text, driver.name, virt.name))
        return Subsystem(self, obj, ".blk_client_config", "blk_client_{pd}.data")

    def fs_fat(self, fs, client, *, blk, partition: int):
        """A LionsOS FAT file system (sdfgen `LionsOs.FileSystem.Fat`): server PD `fs` on blk
        partition `partition` (counted from 0) of `blk` (what `asm.blk` returned), serving
        `client`. Records the server's `.fs_server_config` and `.blk_client_config` and the
        client's `.fs_client_config`. sdfgen's FAT connect adds the server as a blk client, so it
        is connected before `blk` whatever the order of the calls. Returns the sdfgen object."""
        blk_obj = blk.obj if isinstance(blk, Subsystem) else blk
        obj = LionsOs.FileSystem.Fat(self.sdf, fs, client, blk=blk_obj, partition=partition)
        if blk_obj in self._subsystems:
            self._subsystems.insert(self._subsystems.index(blk_obj), obj)
        else:
            self.subsystem(obj)
        self.patch(fs, ".fs_server_config", f"fs_server_{fs.name}.data")
        self.patch(fs, ".blk_client_config", f"blk_client_{fs.name}.data")
        self.patch(client, ".fs_client_config", f"fs_client_{client.name}.data")
        return obj

    def fix_system(self, fixup: Callable[[str], str]) -> None:
        """Register an edit of the rendered `.system` text, applied by `write` (for what sdfgen
        creates only in `connect()` and has no API for, such as the host board's DMA maps)."""
        self._system_fixups.append(fixup)

    # --- output ----------------------------------------------------------------------------

    def write(self, output: Path | str) -> None:
        """Connect and serialise the subsystems, then write the blobs, `<example>.system` and
        `assembly.json` into `output`."""
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        for obj in self._subsystems:
            if obj.connect() is False:
                raise SystemExit(f"lions_meta: sdfgen connect() failed for {obj}")
        for obj in self._subsystems:
            if not obj.serialise_config(str(out)):
                raise SystemExit(f"lions_meta: sdfgen serialise_config() failed for {obj}")
        for name, data in self._blobs.items():
            (out / name).write_bytes(data)
        system = f"{self.example}.system"
        text = self.sdf.render()
        for fixup in self._system_fixups:
            text = fixup(text)
        (out / system).write_text(text)
        pds = {}
        for name, rec in self._pds.items():
            for p in rec.patches:
                if not (out / p.blob).is_file():
                    raise SystemExit(
                        f"lions_meta: PD '{name}': blob '{p.blob}' for section '{p.section}' "
                        f"was not written (sdfgen's blob naming changed?)"
                    )
            entry = {"binary": rec.binary, "image": rec.image}
            if rec.package is not None:
                entry["package"] = rec.package
            entry["patches"] = [{"section": p.section, "blob": p.blob} for p in rec.patches]
            pds[name] = entry
        doc = {"example": self.example, "board": self.board.name, "system": system, "pds": pds}
        (out / "assembly.json").write_text(json.dumps(doc, indent=2) + "\n")


def _map_dma_identity(text: str, driver: str, virt: str) -> str:
    """The rendered `.system` with every region that `virt` maps and that has a `phys_addr` (the
    data regions it hands out I/O addresses of) also mapped into `driver` at vaddr =
    `phys_addr`, read-write: DMA on the host board, where an I/O address is the driver's own
    address (lions-drivers' host devices)."""
    root = ElementTree.fromstring(text)
    paddr = {
        mr.get("name"): mr.get("phys_addr")
        for mr in root.iter("memory_region")
        if mr.get("phys_addr") is not None
    }
    pds = {pd.get("name"): pd for pd in root.iter("protection_domain")}
    if driver not in pds or virt not in pds:
        raise SystemExit(f"lions_meta: PDs '{driver}'/'{virt}' are not in the system")
    have = {m.get("mr") for m in pds[driver].iter("map")}
    maps = [
        f'<map mr="{m.get("mr")}" vaddr="{paddr[m.get("mr")]}" perms="rw" />'
        for m in pds[virt].iter("map")
        if m.get("mr") in paddr and m.get("mr") not in have
    ]
    if not maps:
        return text
    start = text.find(f'<protection_domain name="{driver}"')
    end = text.find("</protection_domain>", start)
    if start < 0 or end < 0:
        raise SystemExit(f"lions_meta: cannot find PD '{driver}' in the rendered system")
    # Before the driver's first <irq>, so its maps stay together; indented as sdfgen does.
    irq = text.find("<irq ", start, end)
    at = irq if irq >= 0 else end
    line_start = text.rfind("\n", 0, at) + 1
    indent = text[line_start:at] + ("" if irq >= 0 else "    ")
    inserted = "".join(f"{indent}{m}\n" for m in maps)
    return text[:line_start] + inserted + text[line_start:]
