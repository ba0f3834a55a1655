# SPDX-License-Identifier: BSD-2-Clause
"""net_vswitch: like net, but client0 and client1 sit behind a vswitch (with
ACL rules client0<->client1 and client0<->outside) while client2 uses the Rx virtualiser directly."""
from common import NET_NODE, Board
from sdfgen import Sddf

b = Board("net_vswitch")
driver = b.pd("net_driver", 110)
virt_rx = b.pd("net_virt_rx", 108)
virt_tx = b.pd("net_virt_tx", 109)
vswitch = b.pd("net_vswitch", 107)
copiers = [b.pd(f"net_copy{i}", 100) for i in range(3)]
clients = [b.pd(f"client{i}", 99) for i in range(3)]

net = Sddf.Net(b.sdf, b.node(NET_NODE), driver, virt_tx, virt_rx, vswitch=vswitch)
for i, (client, copier) in enumerate(zip(clients, copiers)):
    net.add_client_with_copier(client, copier, mac_addr=f"52:54:01:00:01:{i:02x}",
                               vswitch=i < 2)

# sdfgen 0.35.1 aborts the process if an ACL rule is added before connect().
b.connect(net)
net.add_acl_rule(clients[0], clients[1])
# A PD whose name contains "virt" stands for the virtualiser port.
net.add_acl_rule(clients[0], virt_tx)
b.serialise(net)
