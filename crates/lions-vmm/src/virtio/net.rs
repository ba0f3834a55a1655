// SPDX-License-Identifier: BSD-2-Clause
//! virtio-net (device ID 1) over the sDDF network queues (virtio 1.2 §5.1).
//!
//! Queue 0 (`receiveq1`) takes device-writable buffers for frames to the guest; queue 1
//! (`transmitq1`) carries the guest's frames. Every buffer starts with the 12-byte
//! `virtio_net_hdr` (`flags`, `gso_type`, `hdr_len`, `gso_size`, `csum_start`, `csum_offset`,
//! `num_buffers`; with `VERSION_1` the last is always present). Offered features: `MAC` (bit 5)
//! only: no offloads, so transmitted headers are ignored and received ones are zero with
//! `num_buffers` = 1. Configuration space: the MAC address (6 bytes) at 0.
//!
//! The back end is a [`NetBackend`]: the client side of the net virtualisers (a free TX buffer
//! to copy a frame into and send; received frames to copy out and release), so the guest is one
//! more client with its own MAC behind the RX virtualiser. Frames are **copied** between guest
//! buffers and the client's buffers (the guest never sees the DMA region). A guest frame larger
//! than the back end's buffer, or a receive buffer too small for a frame, drops that frame and is
//! counted; nothing waits forever.

use super::mmio::{Progress, Queues, VirtioDevice};
use crate::ram::GuestMemory;

/// virtio device ID of a network device.
pub const DEVICE_ID: u32 = 1;
/// Queue index of `receiveq1`.
pub const RX_QUEUE: usize = 0;
/// Queue index of `transmitq1`.
pub const TX_QUEUE: usize = 1;
/// Feature: the MAC address in the configuration space is valid.
pub const F_MAC: u64 = 1 << 5;
/// Size of `virtio_net_hdr` with `VERSION_1`.
pub const HDR_LEN: u32 = 12;

/// The net client side the device uses.
pub trait NetBackend {
    /// The guest's MAC address.
    fn mac(&self) -> [u8; 6];
    /// A free transmit buffer to fill, or `None` if none is free. Calling it again before
    /// [`Self::tx_send`] gives the same buffer.
    fn tx_buffer(&mut self) -> Option<&mut [u8]>;
    /// Sends the first `len` bytes of the buffer [`Self::tx_buffer`] gave.
    fn tx_send(&mut self, len: usize);
    /// The next received frame, left in place.
    fn rx_peek(&mut self) -> Option<&[u8]>;
    /// Returns the frame [`Self::rx_peek`] gave to the driver side.
    fn rx_release(&mut self);
}

/// Counters of dropped frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames sent for the guest.
    pub tx: u32,
    /// Frames delivered to the guest.
    pub rx: u32,
    /// Guest frames dropped (shorter than the header or larger than a back-end buffer).
    pub tx_dropped: u32,
    /// Received frames dropped (the guest's buffer was too small).
    pub rx_dropped: u32,
}

/// The network device model.
#[derive(Debug)]
pub struct Net<B> {
    /// The back end.
    pub backend: B,
    /// What was sent, delivered and dropped.
    pub stats: NetStats,
}

impl<B: NetBackend> Net<B> {
    /// A network device over `backend`.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            stats: NetStats::default(),
        }
    }

    fn transmit<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M, p: &mut Progress) {
        let vq = &mut q.q[TX_QUEUE];
        loop {
            if !vq.has_available(mem) {
                return;
            }
            let Some(buf) = self.backend.tx_buffer() else {
                return;
            };
            let chain = match vq
                .pop(mem)
                .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
            {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    p.error = p.error.or(Some(e));
                    return;
                }
            };
            let frame = chain.readable_len().saturating_sub(HDR_LEN);
            let len = usize::try_from(frame).unwrap_or(usize::MAX);
            if chain.readable_len() < HDR_LEN || len > buf.len() {
                self.stats.tx_dropped += 1;
            } else if chain.read(mem, HDR_LEN, &mut buf[..len]) == Ok(len) {
                self.backend.tx_send(len);
                self.stats.tx += 1;
            } else {
                self.stats.tx_dropped += 1;
            }
            if let Err(e) = vq.push_used(mem, chain.head, 0) {
                p.error = p.error.or(Some(e));
                return;
            }
            p.used = true;
        }
    }

    fn receive<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M, p: &mut Progress) {
        let vq = &mut q.q[RX_QUEUE];
        loop {
            if !vq.has_available(mem) {
                return;
            }
            let Some(frame) = self.backend.rx_peek() else {
                return;
            };
            let chain = match vq
                .pop(mem)
                .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
            {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    p.error = p.error.or(Some(e));
                    return;
                }
            };
            let need = u32::try_from(frame.len())
                .ok()
                .and_then(|n| n.checked_add(HDR_LEN));
            let mut used = 0;
            match need {
                Some(need) if need <= chain.writable_len() => {
                    let mut hdr = [0u8; HDR_LEN as usize];
                    hdr[10] = 1; // num_buffers
                    if chain.write(mem, 0, &hdr).is_ok() && chain.write(mem, HDR_LEN, frame).is_ok()
                    {
                        used = need;
                        self.stats.rx += 1;
                    } else {
                        self.stats.rx_dropped += 1;
                    }
                }
                _ => self.stats.rx_dropped += 1,
            }
            self.backend.rx_release();
            if let Err(e) = vq.push_used(mem, chain.head, used) {
                p.error = p.error.or(Some(e));
                return;
            }
            p.used = true;
        }
    }
}

impl<B: NetBackend> VirtioDevice for Net<B> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn device_features(&self) -> u64 {
        F_MAC
    }
    fn read_config(&self, offset: u64, buf: &mut [u8]) {
        let mac = self.backend.mac();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| mac.get(o.checked_add(i)?))
                .copied()
                .unwrap_or(0);
        }
    }
    fn reset(&mut self) {}
    fn process<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M) -> Progress {
        let mut p = Progress::default();
        self.transmit(q, mem, &mut p);
        self.receive(q, mem, &mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abort::Width;
    use crate::ram::GuestRam;
    use crate::virtio::mmio::{F_VERSION_1, VirtioMmio, reg};
    use crate::virtio::queue::tests::Driver;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    /// A net client model: `free` TX buffers of 1536 bytes, a FIFO of received frames.
    struct Fake {
        free: usize,
        buf: [u8; 1536],
        sent: Vec<Vec<u8>>,
        incoming: VecDeque<Vec<u8>>,
    }

    impl NetBackend for Fake {
        fn mac(&self) -> [u8; 6] {
            [2, 0, 0, 0, 0, 7]
        }
        fn tx_buffer(&mut self) -> Option<&mut [u8]> {
            (self.free > 0).then_some(&mut self.buf[..])
        }
        fn tx_send(&mut self, len: usize) {
            self.free -= 1;
            self.sent.push(self.buf[..len].to_vec());
        }
        fn rx_peek(&mut self) -> Option<&[u8]> {
            self.incoming.front().map(|f| &f[..])
        }
        fn rx_release(&mut self) {
            self.incoming.pop_front();
        }
    }

    const RXQ: (u64, u64, u64, u16) = (0x1000, 0x2000, 0x3000, 8);
    const TXQ: (u64, u64, u64, u16) = (0x8000, 0x9000, 0xa000, 8);

    /// Publishes a one-buffer TX chain (descriptor `i`) of `len` bytes at `addr`.
    fn tx(mem: &mut GuestRam<'_>, i: u16, addr: u64, len: u32) {
        let at = TXQ.0 + 16 * u64::from(i);
        mem.write_u64(at, addr).unwrap();
        mem.write_u32(at + 8, len).unwrap();
        mem.write_u16(at + 12, 0).unwrap();
        mem.write_u16(TXQ.1 + 4 + 2 * u64::from(i), i).unwrap();
        mem.write_u16(TXQ.1 + 2, i + 1).unwrap();
    }

    fn setup(mem: &mut GuestRam<'_>, free: usize) -> VirtioMmio<Net<Fake>> {
        let fake = Fake {
            free,
            buf: [0; 1536],
            sent: Vec::new(),
            incoming: VecDeque::new(),
        };
        let mut d = VirtioMmio::new(Net::new(fake));
        crate::virtio::mmio::tests::bring_up(&mut d, mem, F_VERSION_1 | F_MAC, &[RXQ, TXQ]);
        d
    }

    #[test]
    fn mac_and_features() {
        let mut m = vec![0u8; 0x20000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = setup(&mut ram, 1);
        assert_eq!(d.read(reg::CONFIG, Width::Word), 0x0000_0002);
        assert_eq!(d.read(reg::CONFIG + 4, Width::Half), 0x0700);
        assert_eq!(d.read(reg::CONFIG + 6, Width::Half), 0);
        assert_eq!(d.read(reg::DEVICE_FEATURES, Width::Word), F_MAC);
    }

    #[test]
    fn transmit_copies_frames_and_drops_bad_ones() {
        let mut m = vec![0u8; 0x20000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = setup(&mut ram, 2);
        let frame: Vec<u8> = (0..60u8).collect();
        ram.write(0x10000 + 12, &frame).unwrap();
        tx(&mut ram, 0, 0x10000, 72);
        // Too large for a back-end buffer; shorter than the header.
        tx(&mut ram, 1, 0x10000, 12 + 2000);
        tx(&mut ram, 2, 0x10000, 5);
        assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 1));
        assert_eq!(d.dev.backend.sent, [frame]);
        assert_eq!(
            d.dev.stats,
            NetStats {
                tx: 1,
                rx: 0,
                tx_dropped: 2,
                rx_dropped: 0
            }
        );
        assert_eq!(ram.read_u16(TXQ.2 + 2), Ok(3));
        // No free buffer: the frame waits in the queue until one is free.
        d.dev.backend.free = 0;
        tx(&mut ram, 3, 0x10000, 72);
        assert!(!d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 1));
        assert_eq!(ram.read_u16(TXQ.2 + 2), Ok(3));
        d.dev.backend.free = 1;
        assert!(d.poll(&mut ram));
        assert_eq!(d.dev.backend.sent.len(), 2);
    }

    #[test]
    fn receive_writes_header_and_frame() {
        let mut m = vec![0u8; 0x20000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = setup(&mut ram, 0);
        d.dev
            .backend
            .incoming
            .extend([vec![0xaa; 100], vec![0xbb; 1600], vec![0xcc; 10]]);
        // Frames wait for buffers.
        assert!(!d.poll(&mut ram));
        let mut rx = Driver::new(8);
        ram.write(0x12000, &[0xff; 16]).unwrap();
        rx.publish(&mut ram, 0, &[(0x12000, 1526, true)]);
        rx.publish(&mut ram, 1, &[(0x13000, 1526, true)]);
        rx.publish(&mut ram, 2, &[(0x14000, 6, true), (0x15000, 100, true)]);
        assert!(d.poll(&mut ram));
        assert_eq!(rx.take_used(&ram), Some((0, 112)));
        assert_eq!(
            ram.slice(0x12000, 12).unwrap(),
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
        );
        assert!(
            ram.slice(0x12000 + 12, 100)
                .unwrap()
                .iter()
                .all(|&b| b == 0xaa)
        );
        // 1600 bytes do not fit 1526: dropped, buffer returned empty.
        assert_eq!(rx.take_used(&ram), Some((1, 0)));
        // A header split over two descriptors.
        assert_eq!(rx.take_used(&ram), Some((2, 22)));
        assert_eq!(ram.slice(0x15000 + 6, 10).unwrap(), &[0xcc; 10]);
        assert_eq!(
            d.dev.stats,
            NetStats {
                tx: 0,
                rx: 2,
                tx_dropped: 0,
                rx_dropped: 1
            }
        );
    }
}
