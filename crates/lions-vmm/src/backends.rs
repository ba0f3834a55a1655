// SPDX-License-Identifier: BSD-2-Clause
//! The back-end traits implemented by the client sides of our virtualisers, so a guest's
//! virtio devices are just other clients of the serial, blk and net subsystems (features
//! `serial`, `blk`, `net`).
//!
//! - `serial`: [`SerialBackend`] for [`lions_serial::SerialClient`]: the guest's output is
//!   written with `try_write` and published at once (`flush`), its input read with `try_read`.
//! - `blk`: [`BlkBackend`] for [`lions_blk::BlkClient`]: capacity and read-only from the
//!   storage-info page (0 until the virtualiser publishes it), the data region through the
//!   client's checked copies, requests staged with the client's ids and published (notifying the
//!   virtualiser) once per device run; a response with any status but `Ok` fails the request.
//! - `net`: [`NetBackend`] for [`lions_net::client::NetDevice`] through its smoltcp tokens: a
//!   frame larger than the reported MTU is refused before a buffer is used; each device run
//!   refills the receive budget and flushes (publishing frames and returned buffers). As for any
//!   client of this device, receiving needs a free transmit buffer (a reply may need one).
//!
//! A trusted peer's misbehaviour the clients report as errors reads here as "nothing to do"
//! (no byte taken, no response, no frame), so the device models never see it.

#[cfg(feature = "blk")]
use crate::virtio::blk::{BlkBackend, BlkOp, BlkRequest, BlkResponse};
#[cfg(feature = "serial")]
use crate::virtio::console::SerialBackend;
#[cfg(feature = "net")]
use crate::virtio::net::NetBackend;

#[cfg(feature = "serial")]
impl SerialBackend for lions_serial::SerialClient<'_> {
    fn write(&mut self, data: &[u8]) -> usize {
        let n = self.try_write(data).unwrap_or(0);
        // Bytes after the last line end stay staged by `try_write`: publish them now.
        let _ = self.flush();
        n
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        self.try_read(buf).unwrap_or(0)
    }
}

#[cfg(feature = "blk")]
impl BlkBackend for lions_blk::BlkClient<'_> {
    fn capacity(&self) -> u64 {
        self.info().map_or(0, |i| i.capacity)
    }
    fn read_only(&self) -> bool {
        self.info().is_some_and(|i| i.read_only())
    }
    fn data_len(&self) -> usize {
        lions_blk::BlkClient::data_len(self)
    }
    fn copy_to_data(&mut self, offset: usize, bytes: &[u8]) -> bool {
        lions_blk::BlkClient::copy_to_data(self, offset, bytes).is_ok()
    }
    fn copy_from_data(&self, offset: usize, out: &mut [u8]) -> bool {
        lions_blk::BlkClient::copy_from_data(self, offset, out).is_ok()
    }
    fn submit(&mut self, req: BlkRequest) -> Option<u32> {
        match req.op {
            BlkOp::Read => self.submit_read(req.block, req.count, req.offset),
            BlkOp::Write => self.submit_write(req.block, req.count, req.offset),
            BlkOp::Flush => self.submit_flush(),
        }
        .ok()
    }
    fn publish(&mut self) {
        let _ = lions_blk::BlkClient::publish(self);
    }
    fn take_response(&mut self) -> Option<BlkResponse> {
        let c = self.poll().ok()??;
        Some(BlkResponse {
            id: c.id,
            ok: c.status == lions_blk::ResponseStatus::Ok,
        })
    }
}

#[cfg(feature = "net")]
impl NetBackend for lions_net::client::NetDevice<'_> {
    fn mac(&self) -> [u8; 6] {
        lions_net::client::NetDevice::mac(self).0
    }
    fn tx_ready(&mut self) -> bool {
        use lions_net::smoltcp::phy::Device;
        use lions_net::smoltcp::time::Instant;
        // Reserves a buffer (kept for the next transmit) or marks the device starved.
        Device::transmit(self, Instant::ZERO).is_some()
    }
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        use lions_net::smoltcp::phy::{Device, TxToken};
        use lions_net::smoltcp::time::Instant;
        if len > self.capabilities().max_transmission_unit {
            return false;
        }
        match Device::transmit(self, Instant::ZERO) {
            Some(t) => {
                t.consume(len, |b| fill(b));
                true
            }
            None => false,
        }
    }
    fn receive(&mut self, take: &mut dyn FnMut(&[u8])) -> bool {
        use lions_net::smoltcp::phy::{Device, RxToken};
        use lions_net::smoltcp::time::Instant;
        match Device::receive(self, Instant::ZERO) {
            Some((rx, _tx)) => {
                rx.consume(|f| take(f));
                true
            }
            None => false,
        }
    }
    fn publish(&mut self) {
        self.refill_budget();
        let _ = self.flush(false);
    }
}
