# SPDX-License-Identifier: BSD-2-Clause
"""serial: pl011 driver, Tx and Rx virtualisers (colour on), two clients."""
from common import SERIAL_NODE, Board
from sdfgen import Sddf

b = Board("serial")
driver = b.pd("serial_driver", 200)
virt_tx = b.pd("serial_virt_tx", 199)
virt_rx = b.pd("serial_virt_rx", 199)
clients = [b.pd(f"client{i}", 1) for i in range(2)]

serial = Sddf.Serial(b.sdf, b.node(SERIAL_NODE), driver, virt_tx, virt_rx=virt_rx,
                     enable_color=True, baud_rate=115200)
for client in clients:
    serial.add_client(client)

b.finish(serial)
