// SPDX-License-Identifier: BSD-2-Clause
//! The split virtqueue (virtio 1.2 §2.7), walked totally.
//!
//! Three areas in guest RAM, set up by the driver:
//!
//! - **Descriptor table** (16-byte aligned): `size` entries of `{addr: u64, len: u32, flags: u16,
//!   next: u16}`; flags `NEXT` (1), `WRITE` (2, device-writable), `INDIRECT` (4).
//! - **Available ring** (driver area, 2-byte aligned): `flags: u16, idx: u16, ring[size]: u16`.
//! - **Used ring** (device area, 4-byte aligned): `flags: u16, idx: u16,
//!   ring[size]: {id: u32, len: u32}`.
//!
//! The driver publishes chain heads in the available ring and bumps `avail.idx`; the device takes
//! them in order ([`Virtqueue::pop`]), walks each chain ([`Virtqueue::walk`]) and returns it in the
//! used ring with the number of bytes it wrote ([`Virtqueue::push_used`]).
//!
//! **Everything the guest wrote is checked** and a violation is a [`QueueError`], never a wild
//! access or a hang: an `avail.idx` more than `size` ahead; a head or `next` index out of the
//! table; a chain longer than the table (a loop); a buffer not entirely in guest RAM (an
//! oversized length included); a device-readable buffer after a device-writable one; an indirect
//! descriptor (not offered); a chain whose total length overflows 32 bits. The walk copies the
//! descriptors once into a [`Chain`], so a guest rewriting its table meanwhile cannot move a
//! buffer the device already checked.

use crate::ram::{GuestMemory, MemError};

/// Largest queue size the transport offers (`QueueNumMax`).
pub const QUEUE_SIZE_MAX: u16 = 128;

/// Descriptor flag: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of indirect descriptors.
pub const DESC_F_INDIRECT: u16 = 4;

/// A guest's misuse of a virtqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The queue is not ready (or its size is invalid).
    NotReady,
    /// `avail.idx` moved more than the queue size past the last taken entry.
    AvailJump {
        /// The index the driver wrote.
        avail_idx: u16,
        /// The device's next entry.
        last: u16,
    },
    /// A chain head out of the descriptor table.
    HeadOutOfRange(u16),
    /// A `next` index out of the descriptor table.
    NextOutOfRange(u16),
    /// The chain is longer than the table: it loops.
    Loop,
    /// A buffer is not entirely inside guest RAM.
    BufferOutsideRam {
        /// The buffer's address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A device-readable buffer after a device-writable one.
    ReadableAfterWritable,
    /// An indirect descriptor (the feature is not offered).
    Indirect,
    /// The chain's total length does not fit 32 bits.
    TooLong,
    /// A ring itself is outside guest RAM.
    Memory(MemError),
}

/// `base + offset` for a guest-chosen ring address; an overflow is an access outside RAM.
fn off(base: u64, offset: u64) -> Result<u64, QueueError> {
    base.checked_add(offset)
        .ok_or(QueueError::Memory(MemError::OutOfRange {
            gpa: base,
            len: offset,
        }))
}

impl From<MemError> for QueueError {
    fn from(e: MemError) -> Self {
        QueueError::Memory(e)
    }
}

/// One descriptor, as read from the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Desc {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Its length.
    pub len: u32,
    /// `DESC_F_*` flags.
    pub flags: u16,
    /// The next descriptor, if `DESC_F_NEXT`.
    pub next: u16,
}

/// A checked descriptor chain: device-readable buffers, then device-writable ones, each
/// entirely in guest RAM.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The head index (returned in the used ring).
    pub head: u16,
    descs: [Desc; QUEUE_SIZE_MAX as usize],
    n: usize,
    readable: u32,
    writable: u32,
}

impl Chain {
    /// Total bytes of the device-readable buffers.
    pub fn readable_len(&self) -> u32 {
        self.readable
    }
    /// Total bytes of the device-writable buffers.
    pub fn writable_len(&self) -> u32 {
        self.writable
    }
    /// The descriptors, in chain order.
    pub fn descs(&self) -> &[Desc] {
        &self.descs[..self.n]
    }

    /// Copies readable bytes from `offset` (over all readable buffers) into `buf`; returns how
    /// many (short at the end of the readable part).
    pub fn read<M: GuestMemory>(
        &self,
        mem: &M,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<usize, MemError> {
        let mut done = 0;
        self.each(false, offset, buf.len(), |gpa, at, n| {
            mem.read(gpa, &mut buf[at..at + n])?;
            done = at + n;
            Ok(())
        })?;
        Ok(done)
    }

    /// Copies `data` into the writable buffers from `offset`; returns how many bytes fitted.
    pub fn write<M: GuestMemory>(
        &self,
        mem: &mut M,
        offset: u32,
        data: &[u8],
    ) -> Result<usize, MemError> {
        let mut done = 0;
        self.each(true, offset, data.len(), |gpa, at, n| {
            mem.write(gpa, &data[at..at + n])?;
            done = at + n;
            Ok(())
        })?;
        Ok(done)
    }

    /// Calls `f(gpa, pos, n)` for consecutive pieces of `len` bytes from `offset` of the readable
    /// (or writable) part.
    fn each(
        &self,
        writable: bool,
        offset: u32,
        len: usize,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), MemError> {
        let mut skip = u64::from(offset);
        let mut pos = 0usize;
        for d in self
            .descs()
            .iter()
            .filter(|d| (d.flags & DESC_F_WRITE != 0) == writable)
        {
            if pos == len {
                break;
            }
            let dlen = u64::from(d.len);
            if skip >= dlen {
                skip -= dlen;
                continue;
            }
            let avail = dlen - skip;
            let n = usize::try_from(avail).unwrap_or(usize::MAX).min(len - pos);
            f(d.addr + skip, pos, n)?;
            pos += n;
            skip = 0;
        }
        Ok(())
    }
}

/// One split virtqueue's device-side state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Virtqueue {
    /// Queue size the driver chose (`QueueNum`).
    pub size: u16,
    /// `QueueReady`.
    pub ready: bool,
    /// Guest-physical address of the descriptor table.
    pub desc: u64,
    /// Guest-physical address of the available ring.
    pub avail: u64,
    /// Guest-physical address of the used ring.
    pub used: u64,
    last_avail: u16,
    used_idx: u16,
}

impl Virtqueue {
    /// Back to the reset state.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    fn check_ready(&self) -> Result<(), QueueError> {
        if self.ready && self.size.is_power_of_two() && self.size <= QUEUE_SIZE_MAX {
            Ok(())
        } else {
            Err(QueueError::NotReady)
        }
    }

    /// The next available chain head, if the driver published one.
    pub fn pop<M: GuestMemory>(&mut self, mem: &M) -> Result<Option<u16>, QueueError> {
        self.check_ready()?;
        let avail_idx = mem.read_u16(off(self.avail, 2)?)?;
        let pending = avail_idx.wrapping_sub(self.last_avail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.size {
            return Err(QueueError::AvailJump {
                avail_idx,
                last: self.last_avail,
            });
        }
        let slot = u64::from(self.last_avail % self.size);
        let head = mem.read_u16(off(self.avail, 4 + 2 * slot)?)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange(head));
        }
        Ok(Some(head))
    }

    /// True when the driver has published a chain the device has not taken.
    pub fn has_available<M: GuestMemory>(&self, mem: &M) -> bool {
        self.check_ready().is_ok()
            && off(self.avail, 2).is_ok_and(|a| mem.read_u16(a).is_ok_and(|i| i != self.last_avail))
    }

    /// Reads and checks the chain starting at `head`.
    pub fn walk<M: GuestMemory>(&self, mem: &M, head: u16) -> Result<Chain, QueueError> {
        self.check_ready()?;
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange(head));
        }
        let mut chain = Chain {
            head,
            descs: [Desc::default(); QUEUE_SIZE_MAX as usize],
            n: 0,
            readable: 0,
            writable: 0,
        };
        let mut i = head;
        loop {
            if chain.n == usize::from(self.size) {
                return Err(QueueError::Loop);
            }
            let at = off(self.desc, 16 * u64::from(i))?;
            let d = Desc {
                addr: mem.read_u64(at)?,
                len: mem.read_u32(off(at, 8)?)?,
                flags: mem.read_u16(off(at, 12)?)?,
                next: mem.read_u16(off(at, 14)?)?,
            };
            if d.flags & DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            if !mem.contains(d.addr, u64::from(d.len)) {
                return Err(QueueError::BufferOutsideRam {
                    addr: d.addr,
                    len: d.len,
                });
            }
            if d.flags & DESC_F_WRITE != 0 {
                chain.writable = chain
                    .writable
                    .checked_add(d.len)
                    .ok_or(QueueError::TooLong)?;
            } else {
                if chain.writable != 0 || chain.descs().iter().any(|p| p.flags & DESC_F_WRITE != 0)
                {
                    return Err(QueueError::ReadableAfterWritable);
                }
                chain.readable = chain
                    .readable
                    .checked_add(d.len)
                    .ok_or(QueueError::TooLong)?;
            }
            chain
                .readable
                .checked_add(chain.writable)
                .ok_or(QueueError::TooLong)?;
            chain.descs[chain.n] = d;
            chain.n += 1;
            if d.flags & DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            if d.next >= self.size {
                return Err(QueueError::NextOutOfRange(d.next));
            }
            i = d.next;
        }
    }

    /// Returns chain `head` to the driver with `len` bytes written.
    pub fn push_used<M: GuestMemory>(
        &mut self,
        mem: &mut M,
        head: u16,
        len: u32,
    ) -> Result<(), QueueError> {
        self.check_ready()?;
        let slot = u64::from(self.used_idx % self.size);
        let at = off(self.used, 4 + 8 * slot)?;
        mem.write_u32(at, u32::from(head))?;
        mem.write_u32(off(at, 4)?, len)?;
        self.used_idx = self.used_idx.wrapping_add(1);
        // The entry is written before the index that publishes it (the seL4 side orders its
        // stores to guest RAM with a barrier before resuming the guest or injecting).
        mem.write_u16(off(self.used, 2)?, self.used_idx)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ram::GuestRam;
    use proptest::prelude::*;

    /// A driver-side model: table at 0x1000, avail at 0x2000, used at 0x3000, buffers from
    /// 0x4000, in RAM at 0x0..0x10000.
    pub(crate) struct Driver {
        pub size: u16,
        pub avail_idx: u16,
        pub used_seen: u16,
    }

    pub(crate) const DESC: u64 = 0x1000;
    pub(crate) const AVAIL: u64 = 0x2000;
    pub(crate) const USED: u64 = 0x3000;

    impl Driver {
        pub fn new(size: u16) -> Self {
            Self {
                size,
                avail_idx: 0,
                used_seen: 0,
            }
        }
        pub fn queue(&self) -> Virtqueue {
            Virtqueue {
                size: self.size,
                ready: true,
                desc: DESC,
                avail: AVAIL,
                used: USED,
                ..Default::default()
            }
        }
        pub fn set_desc<M: GuestMemory>(&self, mem: &mut M, i: u16, d: Desc) {
            let at = DESC + 16 * u64::from(i);
            mem.write_u64(at, d.addr).unwrap();
            mem.write_u32(at + 8, d.len).unwrap();
            mem.write_u16(at + 12, d.flags).unwrap();
            mem.write_u16(at + 14, d.next).unwrap();
        }
        /// Writes a chain of `(addr, len, writable)` buffers at descriptors `first..` and
        /// publishes it.
        pub fn publish<M: GuestMemory>(
            &mut self,
            mem: &mut M,
            first: u16,
            bufs: &[(u64, u32, bool)],
        ) {
            for (k, &(addr, len, w)) in bufs.iter().enumerate() {
                let i = first + u16::try_from(k).unwrap();
                let more = k + 1 < bufs.len();
                let flags = if w { DESC_F_WRITE } else { 0 } | if more { DESC_F_NEXT } else { 0 };
                self.set_desc(
                    mem,
                    i,
                    Desc {
                        addr,
                        len,
                        flags,
                        next: i + 1,
                    },
                );
            }
            self.publish_head(mem, first);
        }
        pub fn publish_head<M: GuestMemory>(&mut self, mem: &mut M, head: u16) {
            let slot = u64::from(self.avail_idx % self.size);
            mem.write_u16(AVAIL + 4 + 2 * slot, head).unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            mem.write_u16(AVAIL + 2, self.avail_idx).unwrap();
        }
        /// The next used entry, if any.
        pub fn take_used<M: GuestMemory>(&mut self, mem: &M) -> Option<(u32, u32)> {
            let idx = mem.read_u16(USED + 2).unwrap();
            if idx == self.used_seen {
                return None;
            }
            let slot = u64::from(self.used_seen % self.size);
            self.used_seen = self.used_seen.wrapping_add(1);
            let at = USED + 4 + 8 * slot;
            Some((mem.read_u32(at).unwrap(), mem.read_u32(at + 4).unwrap()))
        }
    }

    #[test]
    fn chain_roundtrip() {
        let mut m = std::vec![0u8; 0x10000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut drv = Driver::new(8);
        let mut q = drv.queue();
        assert_eq!(q.pop(&ram), Ok(None));
        ram.write(0x4000, b"hello ").unwrap();
        ram.write(0x5000, b"world").unwrap();
        drv.publish(
            &mut ram,
            0,
            &[
                (0x4000, 6, false),
                (0x5000, 5, false),
                (0x6000, 4, true),
                (0x7000, 8, true),
            ],
        );
        assert!(q.has_available(&ram));
        let head = q.pop(&ram).unwrap().unwrap();
        let c = q.walk(&ram, head).unwrap();
        assert_eq!(
            (c.readable_len(), c.writable_len(), c.descs().len()),
            (11, 12, 4)
        );
        let mut buf = [0u8; 16];
        assert_eq!(c.read(&ram, 0, &mut buf), Ok(11));
        assert_eq!(&buf[..11], b"hello world");
        assert_eq!(c.read(&ram, 4, &mut buf[..4]), Ok(4));
        assert_eq!(&buf[..4], b"o wo");
        assert_eq!(c.write(&mut ram, 2, b"0123456789abcdef"), Ok(10));
        assert_eq!(ram.slice(0x6002, 2).unwrap(), b"01");
        assert_eq!(ram.slice(0x7000, 8).unwrap(), b"23456789");
        q.push_used(&mut ram, head, 12).unwrap();
        assert_eq!(drv.take_used(&ram), Some((0, 12)));
        assert_eq!(q.pop(&ram), Ok(None));
    }

    #[test]
    fn guest_misuse_reported() {
        let mut m = std::vec![0u8; 0x10000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let drv = Driver::new(4);
        let q = drv.queue();
        // Loop: 0 -> 1 -> 0.
        drv.set_desc(
            &mut ram,
            0,
            Desc {
                addr: 0x4000,
                len: 4,
                flags: DESC_F_NEXT,
                next: 1,
            },
        );
        drv.set_desc(
            &mut ram,
            1,
            Desc {
                addr: 0x4000,
                len: 4,
                flags: DESC_F_NEXT,
                next: 0,
            },
        );
        assert_eq!(q.walk(&ram, 0).unwrap_err(), QueueError::Loop);
        // Next out of the table; head out of the table.
        drv.set_desc(
            &mut ram,
            1,
            Desc {
                addr: 0x4000,
                len: 4,
                flags: DESC_F_NEXT,
                next: 4,
            },
        );
        assert_eq!(q.walk(&ram, 0).unwrap_err(), QueueError::NextOutOfRange(4));
        assert_eq!(q.walk(&ram, 9).unwrap_err(), QueueError::HeadOutOfRange(9));
        // Oversized length; buffer past the end of RAM; address overflow.
        for (addr, len) in [(0x4000, u32::MAX), (0xfff0, 0x11), (u64::MAX - 1, 4)] {
            drv.set_desc(
                &mut ram,
                2,
                Desc {
                    addr,
                    len,
                    flags: 0,
                    next: 0,
                },
            );
            assert_eq!(
                q.walk(&ram, 2).unwrap_err(),
                QueueError::BufferOutsideRam { addr, len }
            );
        }
        // Readable after writable; indirect.
        drv.set_desc(
            &mut ram,
            2,
            Desc {
                addr: 0x4000,
                len: 4,
                flags: DESC_F_WRITE | DESC_F_NEXT,
                next: 3,
            },
        );
        drv.set_desc(
            &mut ram,
            3,
            Desc {
                addr: 0x4000,
                len: 4,
                flags: 0,
                next: 0,
            },
        );
        assert_eq!(
            q.walk(&ram, 2).unwrap_err(),
            QueueError::ReadableAfterWritable
        );
        drv.set_desc(
            &mut ram,
            3,
            Desc {
                addr: 0x4000,
                len: 16,
                flags: DESC_F_INDIRECT,
                next: 0,
            },
        );
        assert_eq!(q.walk(&ram, 3).unwrap_err(), QueueError::Indirect);
        // Total over 32 bits (each buffer is in RAM, the sum is not representable).
        let mut big = std::vec![0u8; 0x4000_0000];
        let mut ram2 = GuestRam::single(0, &mut big).unwrap();
        let drv8 = Driver::new(8);
        let q = drv8.queue();
        for i in 0..5 {
            drv8.set_desc(
                &mut ram2,
                i,
                Desc {
                    addr: 0x10_0000,
                    len: 0x3800_0000,
                    flags: DESC_F_NEXT,
                    next: i + 1,
                },
            );
        }
        assert_eq!(q.walk(&ram2, 0).unwrap_err(), QueueError::TooLong);
    }

    #[test]
    fn bad_rings_and_indices() {
        let mut m = std::vec![0u8; 0x10000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let drv = Driver::new(4);
        let mut q = drv.queue();
        // avail.idx five ahead of a 4-entry queue.
        ram.write_u16(AVAIL + 2, 5).unwrap();
        assert_eq!(
            q.pop(&ram),
            Err(QueueError::AvailJump {
                avail_idx: 5,
                last: 0
            })
        );
        // A head index out of range in the ring.
        ram.write_u16(AVAIL + 2, 1).unwrap();
        ram.write_u16(AVAIL + 4, 77).unwrap();
        assert_eq!(q.pop(&ram), Err(QueueError::HeadOutOfRange(77)));
        // Rings at the top of the address space: the offsets wrap, the accesses are refused.
        let mut top = Virtqueue {
            desc: u64::MAX - 15,
            avail: u64::MAX - 1,
            used: u64::MAX - 3,
            ..q
        };
        assert!(matches!(top.pop(&ram), Err(QueueError::Memory(_))));
        assert!(matches!(top.walk(&ram, 3), Err(QueueError::Memory(_))));
        assert!(matches!(
            top.push_used(&mut ram, 0, 0),
            Err(QueueError::Memory(_))
        ));
        assert!(!top.has_available(&ram));
        // Rings outside RAM; a queue not ready or with a size that is not a power of two.
        let mut far = Virtqueue {
            avail: 0xffff_0000,
            ..q
        };
        assert!(matches!(far.pop(&ram), Err(QueueError::Memory(_))));
        let mut used_far = Virtqueue {
            used: 0xffff_fff0,
            ..q
        };
        assert!(matches!(
            used_far.push_used(&mut ram, 0, 0),
            Err(QueueError::Memory(_))
        ));
        let mut odd = Virtqueue { size: 3, ..q };
        assert_eq!(odd.pop(&ram), Err(QueueError::NotReady));
        q.ready = false;
        assert_eq!(q.pop(&ram), Err(QueueError::NotReady));
        assert!(!q.has_available(&ram));
    }

    proptest! {
        /// Random descriptor tables and rings: the walker ends (Ok or Err), every buffer it
        /// returns is inside guest RAM, and chain reads/writes stay inside.
        #[test]
        fn random_tables_stay_in_ram(table in proptest::collection::vec(any::<(u16, u32, u16, u16)>(), 8),
                                     avail in proptest::collection::vec(any::<u16>(), 10)) {
            let mut m = std::vec![0u8; 0x10000];
            let mut ram = GuestRam::single(0, &mut m).unwrap();
            let drv = Driver::new(8);
            let mut q = drv.queue();
            for (i, &(a, len, flags, next)) in table.iter().enumerate() {
                let d = Desc { addr: u64::from(a) * 2, len: len % 0x3000, flags: flags & 7, next: next % 10 };
                drv.set_desc(&mut ram, u16::try_from(i).unwrap(), d);
            }
            for (i, &h) in avail.iter().enumerate() {
                ram.write_u16(AVAIL + 2 * u64::try_from(i).unwrap(), h % 12).unwrap();
            }
            for _ in 0..10 {
                match q.pop(&ram) {
                    Ok(Some(h)) => {
                        if let Ok(c) = q.walk(&ram, h) {
                            for d in c.descs() {
                                prop_assert!(u64::from(d.len) + d.addr <= 0x10000);
                            }
                            let mut buf = [0u8; 64];
                            prop_assert!(c.read(&ram, 3, &mut buf).is_ok());
                            prop_assert!(c.write(&mut ram, 5, &[1u8; 64]).is_ok());
                        }
                        let _ = q.push_used(&mut ram, h, 0);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
