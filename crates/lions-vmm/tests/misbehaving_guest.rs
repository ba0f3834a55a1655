// SPDX-License-Identifier: BSD-2-Clause
//! A guest that programs its devices at random: random register writes (any offset, width and
//! value, queue addresses mostly inside a small guest RAM), random descriptor tables and rings,
//! then notifications. Every device model must stay up: no panic, every guest-memory access
//! checked (guest RAM is a byte buffer; `GuestRam` refuses anything outside it), and the back
//! ends see only what fits their limits.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_vmm::abort::Width;
use lions_vmm::ram::GuestRam;
use lions_vmm::virtio::blk::{Blk, BlkBackend, BlkRequest, BlkResponse};
use lions_vmm::virtio::console::{Console, SerialBackend};
use lions_vmm::virtio::mmio::{VirtioDevice, VirtioMmio};
use lions_vmm::virtio::net::{Net, NetBackend};
use proptest::prelude::*;

const RAM: u64 = 0x1000_0000;
const RAM_SIZE: usize = 0x8000;

#[derive(Default)]
struct Sink {
    bytes: usize,
}
impl SerialBackend for Sink {
    fn write(&mut self, data: &[u8]) -> usize {
        self.bytes += data.len();
        data.len()
    }
    fn read(&mut self, buf: &mut [u8]) -> usize {
        buf.fill(b'x');
        buf.len().min(3)
    }
}

#[derive(Default)]
struct Disk {
    data: Vec<u8>,
    next: u32,
    pending: Vec<u32>,
}
impl BlkBackend for Disk {
    fn capacity(&self) -> u64 {
        4
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
    fn copy_to_data(&mut self, offset: usize, bytes: &[u8]) -> bool {
        self.data
            .get_mut(offset..offset + bytes.len())
            .map(|d| d.copy_from_slice(bytes))
            .is_some()
    }
    fn copy_from_data(&self, offset: usize, out: &mut [u8]) -> bool {
        self.data
            .get(offset..offset + out.len())
            .map(|d| out.copy_from_slice(d))
            .is_some()
    }
    fn submit(&mut self, req: BlkRequest) -> Option<u32> {
        assert!(
            req.block + u64::from(req.count) <= 4,
            "request beyond the disk: {req:?}"
        );
        assert!(req.offset + usize::from(req.count) * 4096 <= self.data.len());
        self.next += 1;
        self.pending.push(self.next);
        Some(self.next)
    }
    fn take_response(&mut self) -> Option<BlkResponse> {
        // Answers out of order, with a forged id now and then.
        let id = self.pending.pop()?;
        Some(BlkResponse {
            id: if id % 7 == 0 { id + 1000 } else { id },
            ok: id % 5 != 0,
        })
    }
}

#[derive(Default)]
struct Wire {
    sent: usize,
}
impl NetBackend for Wire {
    fn mac(&self) -> [u8; 6] {
        [2, 0, 0, 0, 0, 1]
    }
    fn tx_ready(&mut self) -> bool {
        true
    }
    fn transmit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if len > 1514 {
            return false;
        }
        let mut b = vec![0u8; len];
        fill(&mut b);
        self.sent += 1;
        true
    }
    fn receive(&mut self, take: &mut dyn FnMut(&[u8])) -> bool {
        take(&[0xab; 64]);
        true
    }
}

/// A register write: offset, width, value (addresses biased into guest RAM).
fn op() -> impl Strategy<Value = (u64, usize, u64)> {
    let offsets = prop_oneof![
        (0u64..0x40).prop_map(|o| o * 4),
        Just(0x30),
        Just(0x38),
        Just(0x44),
        Just(0x50),
        Just(0x70),
        Just(0x80),
        Just(0x90),
        Just(0xa0),
        0u64..0x300,
    ];
    let value = prop_oneof![
        any::<u64>(),
        (0u64..RAM_SIZE as u64).prop_map(|v| RAM + v),
        0u64..16,
        Just(0x0f),
        Just(0x1_0000_0000),
    ];
    (
        offsets,
        prop_oneof![Just(4usize), Just(1), Just(2), Just(8)],
        value,
    )
}

/// Queue setup the guest chose: (desc, avail, used, size) per queue, often valid, not always.
fn queues() -> impl Strategy<Value = Vec<(u64, u64, u64, u64)>> {
    let addr = prop_oneof![
        4 => (0u64..RAM_SIZE as u64 / 16).prop_map(|v| RAM + v * 16),
        1 => any::<u64>().prop_map(|v| v & !15),
        1 => Just(u64::MAX - 15),
    ];
    let size = prop_oneof![4 => Just(8u64), 1 => Just(4), 1 => any::<u64>()];
    proptest::collection::vec((addr.clone(), addr.clone(), addr, size), 2)
}

fn run<D: VirtioDevice>(
    dev: D,
    qs: &[(u64, u64, u64, u64)],
    ops: &[(u64, usize, u64)],
    ram_bytes: &[u8],
) {
    let mut m = vec![0u8; RAM_SIZE];
    // The guest's random bytes, repeated over its RAM: descriptor tables and rings included.
    for (i, b) in m.iter_mut().enumerate() {
        *b = ram_bytes
            .get(i % ram_bytes.len().max(1))
            .copied()
            .unwrap_or(0);
    }
    let mut ram = GuestRam::single(RAM, &mut m).unwrap();
    let mut d = VirtioMmio::new(dev);
    let w = Width::Word;
    // A driver that negotiates correctly and sets queues up as it chose.
    d.write(&mut ram, 0x70, w, 3);
    d.write(&mut ram, 0x24, w, 1);
    d.write(&mut ram, 0x20, w, 1);
    d.write(&mut ram, 0x70, w, 11);
    for (i, &(desc, avail, used, size)) in qs.iter().enumerate() {
        d.write(&mut ram, 0x30, w, i as u64);
        d.write(&mut ram, 0x38, w, size);
        for (reg, a) in [(0x80, desc), (0x90, avail), (0xa0, used)] {
            d.write(&mut ram, reg, w, a & 0xffff_ffff);
            d.write(&mut ram, reg + 4, w, a >> 32);
        }
        d.write(&mut ram, 0x44, w, 1);
    }
    d.write(&mut ram, 0x70, w, 15);
    for &(off, bytes, value) in ops {
        let width = Width::from_bytes(bytes).unwrap();
        if off % 3 == 0 {
            let _ = d.read(off, width);
        }
        d.write(&mut ram, off, width, value);
        // Notify every queue, and let the back end progress.
        d.write(&mut ram, 0x50, w, value & 1);
        d.poll(&mut ram);
    }
    // Whatever happened, the device still answers.
    let _ = d.read(0x60, Width::Word);
    assert_eq!(d.read(0, Width::Word), 0x7472_6976);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn console_stays_up(qs in queues(), ops in proptest::collection::vec(op(), 1..60), ram in proptest::collection::vec(any::<u8>(), 0..512)) {
        run(Console::new(Sink::default()), &qs, &ops, &ram);
    }

    #[test]
    fn blk_stays_up(qs in queues(), ops in proptest::collection::vec(op(), 1..60), ram in proptest::collection::vec(any::<u8>(), 0..512)) {
        let disk = Disk { data: vec![0; 4 * 32 * 1024], ..Default::default() };
        run(Blk::new(disk).unwrap(), &qs, &ops, &ram);
    }

    #[test]
    fn net_stays_up(qs in queues(), ops in proptest::collection::vec(op(), 1..60), ram in proptest::collection::vec(any::<u8>(), 0..512)) {
        run(Net::new(Wire::default()), &qs, &ops, &ram);
    }
}
