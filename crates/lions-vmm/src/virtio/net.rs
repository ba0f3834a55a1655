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

/// The net client side the device uses (the shape of smoltcp's `phy::Device` tokens, which
/// `lions_net`'s client device provides).
pub trait NetBackend {
    /// The guest's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Whether a transmit buffer is free now.
    fn tx_ready(&mut self) -> bool;
    /// Sends a frame of `len` bytes that `fill` writes into a transmit buffer; false (and
    /// `fill` not called) when no buffer is free or `len` is larger than one.
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool;
    /// Hands the next received frame to `take` and returns its buffer; false if none.
    fn receive(&mut self, take: &mut dyn FnMut(&[u8])) -> bool;
    /// Publishes transmitted frames and returned buffers (and notifies the virtualisers);
    /// called once per [`VirtioDevice::process`].
    fn publish(&mut self) {}
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
            if !vq.has_available(mem) || !self.backend.tx_ready() {
                return;
            }
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
            let len =
                usize::try_from(chain.readable_len().saturating_sub(HDR_LEN)).unwrap_or(usize::MAX);
            let mut copied = false;
            let sent = chain.readable_len() >= HDR_LEN
                && self.backend.transmit(len, &mut |buf: &mut [u8]| {
                    copied = chain.read(mem, HDR_LEN, buf) == Ok(len);
                });
            if sent && copied {
                self.stats.tx += 1;
            } else {
                // Too short, too large, or unreadable (a frame of stale bytes went out then: the
                // back end's token cannot be cancelled; counted as dropped).
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
            // Take a frame only when the guest has a buffer for it.
            if !vq.has_available(mem) {
                return;
            }
            let mut used = None;
            let mut error = None;
            let got = self.backend.receive(&mut |frame: &[u8]| {
                let chain = match vq
                    .pop(mem)
                    .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
                {
                    Ok(Some(c)) => c,
                    Ok(None) => return,
                    Err(e) => {
                        error = Some(e);
                        return;
                    }
                };
                let need = u32::try_from(frame.len())
                    .ok()
                    .and_then(|n| n.checked_add(HDR_LEN));
                let mut len = 0;
                if let Some(need) = need.filter(|&n| n <= chain.writable_len()) {
                    let mut hdr = [0u8; HDR_LEN as usize];
                    hdr[10] = 1; // num_buffers
                    if chain.write(mem, 0, &hdr).is_ok() && chain.write(mem, HDR_LEN, frame).is_ok()
                    {
                        len = need;
                    }
                }
                used = Some((chain.head, len));
            });
            if let Some(e) = error {
                p.error = p.error.or(Some(e));
                return;
            }
            if !got {
                return;
            }
            let Some((head, len)) = used else { return };
            if len > 0 {
                self.stats.rx += 1;
            } else {
                self.stats.rx_dropped += 1;
            }
            if let Err(e) = vq.push_used(mem, head, len) {
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
        self.backend.publish();
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
        fn tx_ready(&mut self) -> bool {
            self.free > 0
        }
        fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
            if self.free == 0 || len > self.buf.len() {
                return false;
            }
            fill(&mut self.buf[..len]);
            self.free -= 1;
            self.sent.push(self.buf[..len].to_vec());
            true
        }
        fn receive(&mut self, take: &mut dyn FnMut(&[u8])) -> bool {
            let Some(f) = self.incoming.pop_front() else {
                return false;
            };
            take(&f);
            true
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
