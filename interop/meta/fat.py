# SPDX-License-Identifier: BSD-2-Clause
"""fat: LionsOS FAT file-system server on blk partition 0, one fs client."""
from common import BLK_NODE, Board
from sdfgen import LionsOs, Sddf

b = Board("fat")
driver = b.pd("blk_driver", 200)
virt = b.pd("blk_virt", 199)
fatfs = b.pd("fatfs", 150, elf="fat.elf")
client = b.pd("client0", 1)

blk = Sddf.Blk(b.sdf, b.node(BLK_NODE), driver, virt)
fat = LionsOs.FileSystem.Fat(b.sdf, fatfs, client, blk=blk, partition=0)

# Fat.connect() adds the server as a blk client, so it must come first.
b.finish(fat, blk)
