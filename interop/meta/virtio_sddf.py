# SPDX-License-Identifier: BSD-2-Clause
"""virtio_sddf: both virtio devices in the slots sDDF's own QEMU systems use, the NIC at
`virtio_mmio@a000000` (slot 0) and the disk at `virtio_mmio@a000200` (slot 1), one page for
both: each driver's `regs` region is that page, its vaddr offset by the device's slot."""
from common import Board
from sdfgen import Sddf

b = Board("virtio_sddf")
net_driver = b.pd("net_driver", 110)
net_virt_rx = b.pd("net_virt_rx", 108)
net_virt_tx = b.pd("net_virt_tx", 109)
blk_driver = b.pd("blk_driver", 200)
blk_virt = b.pd("blk_virt", 199)
client = b.pd("client0", 99)

net = Sddf.Net(b.sdf, b.node("virtio_mmio@a000000"), net_driver, net_virt_tx, net_virt_rx)
net.add_client_with_copier(client, b.pd("net_copy0", 100), mac_addr="52:54:01:00:00:00")
blk = Sddf.Blk(b.sdf, b.node("virtio_mmio@a000200"), blk_driver, blk_virt)
blk.add_client(client, partition=0)

b.finish(net, blk)
