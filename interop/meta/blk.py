# SPDX-License-Identifier: BSD-2-Clause
"""blk: virtio-mmio driver and virtualiser, clients on partitions 0 and 1."""
from common import BLK_NODE, Board
from sdfgen import Sddf

b = Board("blk")
driver = b.pd("blk_driver", 200)
virt = b.pd("blk_virt", 199)
clients = [b.pd(f"client{i}", 1) for i in range(2)]

blk = Sddf.Blk(b.sdf, b.node(BLK_NODE), driver, virt)
for partition, client in enumerate(clients):
    blk.add_client(client, partition=partition)

b.finish(blk)
