# SPDX-License-Identifier: BSD-2-Clause
"""nfs: LionsOS NFS file-system server (net with copier, Tx-only serial,
timer, lib_sddf_lwip), one fs client."""
from common import NET_NODE, SERIAL_NODE, TIMER_NODE, Board
from sdfgen import LionsOs, Sddf

b = Board("nfs")
timer_driver = b.pd("timer_driver", 254)
serial_driver = b.pd("serial_driver", 200)
serial_virt_tx = b.pd("serial_virt_tx", 199)
net_driver = b.pd("net_driver", 110)
net_virt_rx = b.pd("net_virt_rx", 108)
net_virt_tx = b.pd("net_virt_tx", 109)
nfs_copy = b.pd("nfs_net_copy", 100, elf="net_copy.elf")
nfs_pd = b.pd("nfs", 98)
client = b.pd("client0", 1)

serial = Sddf.Serial(b.sdf, b.node(SERIAL_NODE), serial_driver, serial_virt_tx)
timer = Sddf.Timer(b.sdf, b.node(TIMER_NODE), timer_driver)
net = Sddf.Net(b.sdf, b.node(NET_NODE), net_driver, net_virt_tx, net_virt_rx)
serial.add_client(client)

nfs = LionsOs.FileSystem.Nfs(b.sdf, nfs_pd, client, net=net, net_copier=nfs_copy,
                             mac_addr="52:54:01:00:02:00", serial=serial, timer=timer,
                             server="10.0.2.2", export_path="/export/lions")
lwip = Sddf.Lwip(b.sdf, net, nfs_pd)

# Nfs.connect() adds the server as a net, serial and timer client: first.
b.finish(nfs, net, serial, timer, lwip)
