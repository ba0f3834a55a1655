// SPDX-License-Identifier: BSD-2-Clause
//! virtio-console (device ID 3), one port, no feature bits (virtio 1.2 §5.3).
//!
//! Queue 0 (`receiveq`) carries bytes to the guest in device-writable buffers; queue 1
//! (`transmitq`) carries the guest's output in device-readable buffers. The configuration space
//! (`cols`, `rows`, `max_nr_ports`, `emerg_wr`) reads as zeros: no size, no multiport.
//!
//! The back end is a [`SerialBackend`]: the client side of the serial virtualisers (TX queue
//! for the guest's output, RX queue for its input), so the guest's console is switched and
//! coloured like any native client's. Output the back end cannot take yet stays in the device
//! (the chain is returned only once every byte was accepted); input that arrives while the guest
//! has no buffer waits in the back end (at most [`RX_STASH`] bytes in the device).

use super::mmio::{Progress, Queues, VirtioDevice};
use super::queue::Chain;
use crate::ram::GuestMemory;

/// virtio device ID of a console.
pub const DEVICE_ID: u32 = 3;
/// Queue index of `receiveq` (to the guest).
pub const RX_QUEUE: usize = 0;
/// Queue index of `transmitq` (from the guest).
pub const TX_QUEUE: usize = 1;
/// Bytes taken from the back end at a time.
pub const RX_STASH: usize = 64;

/// The serial client side the console uses.
pub trait SerialBackend {
    /// Queues `data` for output; returns how many bytes were accepted (the rest are offered
    /// again later).
    fn write(&mut self, data: &[u8]) -> usize;
    /// Takes up to `buf.len()` received bytes; returns how many.
    fn read(&mut self, buf: &mut [u8]) -> usize;
}

/// The console device model.
#[derive(Debug)]
pub struct Console<B> {
    /// The back end.
    pub backend: B,
    tx: Option<(Chain, u32)>,
    stash: [u8; RX_STASH],
    stash_len: usize,
}

impl<B: SerialBackend> Console<B> {
    /// A console over `backend`.
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            tx: None,
            stash: [0; RX_STASH],
            stash_len: 0,
        }
    }

    /// Sends the guest's output; returns whether a chain was completed.
    fn transmit<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M, p: &mut Progress) {
        let vq = &mut q.q[TX_QUEUE];
        loop {
            let (chain, mut off) = match self.tx.take() {
                Some(t) => t,
                None => match vq
                    .pop(mem)
                    .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
                {
                    Ok(Some(c)) => (c, 0),
                    Ok(None) => return,
                    Err(e) => {
                        p.error = p.error.or(Some(e));
                        return;
                    }
                },
            };
            let mut buf = [0u8; 64];
            while off < chain.readable_len() {
                let n = match chain.read(mem, off, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        p.error = p.error.or(Some(e.into()));
                        break;
                    }
                };
                let took = self.backend.write(&buf[..n]).min(n);
                off += u32::try_from(took).unwrap_or(0);
                if took < n {
                    // The back end is full: resume here when it has room.
                    self.tx = Some((chain, off));
                    return;
                }
            }
            if let Err(e) = vq.push_used(mem, chain.head, 0) {
                p.error = p.error.or(Some(e));
                return;
            }
            p.used = true;
        }
    }

    /// Delivers input to the guest's receive buffers.
    fn receive<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M, p: &mut Progress) {
        let vq = &mut q.q[RX_QUEUE];
        loop {
            if self.stash_len == 0 {
                self.stash_len = self.backend.read(&mut self.stash).min(RX_STASH);
                if self.stash_len == 0 {
                    return;
                }
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
            let mut written = 0u32;
            while self.stash_len > 0 && written < chain.writable_len() {
                let n = match chain.write(mem, written, &self.stash[..self.stash_len]) {
                    Ok(n) => n,
                    Err(e) => {
                        p.error = p.error.or(Some(e.into()));
                        break;
                    }
                };
                self.stash.copy_within(n..self.stash_len, 0);
                self.stash_len -= n;
                written += u32::try_from(n).unwrap_or(0);
                if self.stash_len == 0 {
                    self.stash_len = self.backend.read(&mut self.stash).min(RX_STASH);
                }
                if n == 0 {
                    break;
                }
            }
            if let Err(e) = vq.push_used(mem, chain.head, written) {
                p.error = p.error.or(Some(e));
                return;
            }
            p.used = true;
        }
    }
}

impl<B: SerialBackend> VirtioDevice for Console<B> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn device_features(&self) -> u64 {
        0
    }
    fn read_config(&self, _offset: u64, buf: &mut [u8]) {
        buf.fill(0);
    }
    fn reset(&mut self) {
        self.tx = None;
    }
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
    use std::vec::Vec;

    /// A serial client model: output accepted up to `room` bytes, input from a FIFO.
    #[derive(Default)]
    struct Fake {
        out: Vec<u8>,
        room: usize,
        input: VecDeque<u8>,
    }

    impl SerialBackend for Fake {
        fn write(&mut self, data: &[u8]) -> usize {
            let n = data.len().min(self.room - self.out.len());
            self.out.extend_from_slice(&data[..n]);
            n
        }
        fn read(&mut self, buf: &mut [u8]) -> usize {
            let mut n = 0;
            while n < buf.len() {
                let Some(b) = self.input.pop_front() else {
                    break;
                };
                buf[n] = b;
                n += 1;
            }
            n
        }
    }

    // Two queues: RX rings at 0x1000.., TX rings at 0x8000...
    const RXQ: (u64, u64, u64, u16) = (0x1000, 0x2000, 0x3000, 8);
    const TXQ: (u64, u64, u64, u16) = (0x8000, 0x9000, 0xa000, 8);

    struct TxDriver(Driver);
    impl TxDriver {
        /// The queue-test driver relocated to the TX rings.
        fn publish(&mut self, mem: &mut GuestRam<'_>, bufs: &[(u64, u32)]) {
            let first = self.0.avail_idx % 8;
            for (k, &(addr, len)) in bufs.iter().enumerate() {
                let i = first + u16::try_from(k).unwrap();
                let at = TXQ.0 + 16 * u64::from(i);
                let more = k + 1 < bufs.len();
                mem.write_u64(at, addr).unwrap();
                mem.write_u32(at + 8, len).unwrap();
                mem.write_u16(at + 12, u16::from(more)).unwrap();
                mem.write_u16(at + 14, i + 1).unwrap();
            }
            let slot = u64::from(self.0.avail_idx % 8);
            mem.write_u16(TXQ.1 + 4 + 2 * slot, first).unwrap();
            self.0.avail_idx += 1;
            mem.write_u16(TXQ.1 + 2, self.0.avail_idx).unwrap();
        }
    }

    #[test]
    fn output_with_backpressure_and_input() {
        let mut m = std::vec![0u8; 0x20000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let fake = Fake {
            room: 8,
            ..Default::default()
        };
        let mut d = VirtioMmio::new(Console::new(fake));
        crate::virtio::mmio::tests::bring_up(&mut d, &mut ram, F_VERSION_1, &[RXQ, TXQ]);
        ram.write(0x10000, b"hello, ").unwrap();
        ram.write(0x11000, b"world\n").unwrap();
        let mut tx = TxDriver(Driver::new(8));
        tx.publish(&mut ram, &[(0x10000, 7), (0x11000, 6)]);
        // Only 8 bytes fit: the chain is held, not returned.
        assert!(!d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 1));
        assert_eq!(d.dev.backend.out, b"hello, w");
        d.dev.backend.room = 100;
        assert!(d.poll(&mut ram));
        assert_eq!(d.dev.backend.out, b"hello, world\n");
        assert_eq!(ram.read_u16(TXQ.2 + 2), Ok(1));
        // Input: waits for a receive buffer, then fills it.
        d.dev.backend.input.extend(b"typed");
        assert!(!d.poll(&mut ram));
        let mut rx = Driver::new(8);
        rx.publish(&mut ram, 0, &[(0x12000, 3, true), (0x13000, 16, true)]);
        assert!(d.poll(&mut ram));
        assert_eq!(rx.take_used(&ram), Some((0, 5)));
        assert_eq!(ram.slice(0x12000, 3).unwrap(), b"typ");
        assert_eq!(ram.slice(0x13000, 2).unwrap(), b"ed");
        assert_eq!(d.errors().0, 0);
    }

    #[test]
    fn tx_buffer_outside_ram_is_reported() {
        let mut m = std::vec![0u8; 0x20000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = VirtioMmio::new(Console::new(Fake {
            room: 100,
            ..Default::default()
        }));
        crate::virtio::mmio::tests::bring_up(&mut d, &mut ram, F_VERSION_1, &[RXQ, TXQ]);
        let mut tx = TxDriver(Driver::new(8));
        tx.publish(&mut ram, &[(0x1_0000_0000, 7)]);
        assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, Width::Word, 1));
        assert!(d.dev.backend.out.is_empty());
        assert!(matches!(
            d.errors().1,
            Some(crate::virtio::queue::QueueError::BufferOutsideRam { .. })
        ));
    }
}
