# SPDX-License-Identifier: BSD-2-Clause
"""timer: ARM generic timer driver (PPC server) with two clients."""
from common import TIMER_NODE, Board
from sdfgen import Sddf

b = Board("timer")
driver = b.pd("timer_driver", 254)
clients = [b.pd(f"client{i}", 1) for i in range(2)]

timer = Sddf.Timer(b.sdf, b.node(TIMER_NODE), driver)
for client in clients:
    timer.add_client(client)

b.finish(timer)
