# SPDX-License-Identifier: BSD-2-Clause
"""i2c: meson controller driver and virtualiser, two clients."""
from common import I2C_NODE, Board
from sdfgen import Sddf

b = Board("i2c")
driver = b.pd("i2c_driver", 200)
virt = b.pd("i2c_virt", 199)
clients = [b.pd(f"client{i}", 1) for i in range(2)]

i2c = Sddf.I2c(b.sdf, b.node(I2C_NODE), driver, virt)
for client in clients:
    i2c.add_client(client)

b.finish(i2c)
