# SPDX-License-Identifier: BSD-2-Clause
"""net: virtio-mmio driver, Rx/Tx virtualisers, two clients each behind a
copier, lib_sddf_lwip for both, and a timer subsystem for the clients."""
from common import NET_NODE, TIMER_NODE, Board
from sdfgen import Sddf

b = Board("net")
timer_driver = b.pd("timer_driver", 254)
driver = b.pd("net_driver", 110)
virt_rx = b.pd("net_virt_rx", 108)
virt_tx = b.pd("net_virt_tx", 109)
copiers = [b.pd(f"net_copy{i}", 100) for i in range(2)]
clients = [b.pd(f"client{i}", 99) for i in range(2)]

net = Sddf.Net(b.sdf, b.node(NET_NODE), driver, virt_tx, virt_rx)
timer = Sddf.Timer(b.sdf, b.node(TIMER_NODE), timer_driver)
lwips = []
for i, (client, copier) in enumerate(zip(clients, copiers)):
    net.add_client_with_copier(client, copier, mac_addr=f"52:54:01:00:00:{i:02x}")
    timer.add_client(client)
    lwips.append(Sddf.Lwip(b.sdf, net, client))

b.finish(net, timer, *lwips)
