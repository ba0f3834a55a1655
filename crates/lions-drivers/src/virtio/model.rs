// SPDX-License-Identifier: BSD-2-Clause
//! A virtio-mmio device model for host tests, written from the virtio 1.2 spec: the version-2
//! register block (features in two selectable halves, per-queue configuration, status with reset
//! on 0 and FEATURES_OK refused for features never offered, interrupt status and ack, config space
//! with a generation counter) and the device side of split virtqueues, walking the rings in memory
//! reached by I/O address. In the tests an I/O address is the address in this process; every
//! access must lie in a window the test declared, so a driver that hands the device a wrong
//! address fails the test instead of corrupting it.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use crate::mmio::Mmio;

/// One queue's registers and the device's ring positions.
#[derive(Debug, Default, Clone)]
pub(crate) struct QueueModel {
    pub max: u32,
    pub num: u32,
    pub ready: u32,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    last_avail: u16,
    used_idx: u16,
}

/// One descriptor of a chain, as the device read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desc {
    pub addr: u64,
    pub len: u32,
    pub write: bool,
}

/// The model; see the module docs.
#[derive(Debug)]
pub(crate) struct MmioModel {
    pub device_id: u32,
    pub offered: u64,
    pub driver_features: u64,
    pub status: u32,
    /// Every value written to `Status`, in order.
    pub status_log: Vec<u32>,
    dev_sel: u32,
    drv_sel: u32,
    queue_sel: u32,
    pub queues: Vec<QueueModel>,
    pub interrupt: u32,
    pub config: Vec<u8>,
    pub generation: u32,
    /// Queue indices written to `QueueNotify`.
    pub notifies: Vec<u32>,
    /// Where the device may access memory: (I/O address, length).
    pub windows: Vec<(u64, usize)>,
    /// Clear FEATURES_OK whatever the driver accepted.
    pub refuse_features: bool,
    pub magic: u32,
    pub version: u32,
}

impl MmioModel {
    /// A device of `device_id` offering `offered`, with queues of the given maximum sizes and
    /// `config` as its config space.
    pub fn new(device_id: u32, offered: u64, queue_max: &[u32], config: Vec<u8>) -> Self {
        Self {
            device_id,
            offered,
            driver_features: 0,
            status: 0,
            status_log: Vec::new(),
            dev_sel: 0,
            drv_sel: 0,
            queue_sel: 0,
            queues: queue_max
                .iter()
                .map(|&max| QueueModel {
                    max,
                    ..QueueModel::default()
                })
                .collect(),
            interrupt: 0,
            config,
            generation: 0,
            notifies: Vec::new(),
            windows: Vec::new(),
            refuse_features: false,
            magic: super::mmio::MAGIC,
            version: 2,
        }
    }

    fn queue(&mut self) -> &mut QueueModel {
        let sel = self.queue_sel as usize;
        assert!(sel < self.queues.len(), "QueueSel {sel}: no such queue");
        &mut self.queues[sel]
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.interrupt = 0;
        for q in &mut self.queues {
            *q = QueueModel {
                max: q.max,
                ..QueueModel::default()
            };
        }
    }

    /// Device memory at `io..io + len`, which must lie in one window.
    fn mem(&self, io: u64, len: usize) -> *mut u8 {
        let inside = self
            .windows
            .iter()
            .any(|&(a, l)| io >= a && io + len as u64 <= a + l as u64);
        assert!(
            inside,
            "device access at {io:#x}+{len:#x} outside every window"
        );
        std::ptr::with_exposed_provenance_mut::<u8>(io as usize)
    }

    /// Copy device memory at `io` into `out`.
    pub fn read_mem(&self, io: u64, out: &mut [u8]) {
        let src = self.mem(io, out.len());
        // SAFETY: inside a live window the test declared (checked by `mem`).
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
    }

    /// Copy `bytes` into device memory at `io`.
    pub fn write_mem(&self, io: u64, bytes: &[u8]) {
        let dst = self.mem(io, bytes.len());
        // SAFETY: as in `read_mem`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
    }

    fn r16(&self, io: u64) -> u16 {
        let mut b = [0; 2];
        self.read_mem(io, &mut b);
        u16::from_le_bytes(b)
    }

    /// Take the next chain the driver made available on queue `q`: its head and descriptors.
    pub fn pop_avail(&mut self, q: usize) -> Option<(u16, Vec<Desc>)> {
        assert!(
            self.status & super::mmio::status::DRIVER_OK != 0,
            "rings used before DRIVER_OK"
        );
        let qm = self.queues[q].clone();
        assert_eq!(qm.ready, 1, "queue {q} not ready");
        let idx = self.r16(qm.driver + 2);
        if idx == qm.last_avail {
            return None;
        }
        let slot = u64::from(qm.last_avail % qm.num as u16);
        let head = self.r16(qm.driver + 4 + 2 * slot);
        assert!(
            u32::from(head) < qm.num,
            "available head {head} out of range"
        );
        self.queues[q].last_avail = qm.last_avail.wrapping_add(1);
        let mut chain = Vec::new();
        let mut d = head;
        loop {
            assert!(chain.len() < qm.num as usize, "descriptor loop");
            let mut raw = [0u8; 16];
            self.read_mem(qm.desc + 16 * u64::from(d), &mut raw);
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            chain.push(Desc {
                addr: u64::from_le_bytes(raw[..8].try_into().unwrap()),
                len: u32::from_le_bytes(raw[8..12].try_into().unwrap()),
                write: flags & 2 != 0,
            });
            if flags & 1 == 0 {
                return Some((head, chain));
            }
            d = u16::from_le_bytes([raw[14], raw[15]]);
            assert!(u32::from(d) < qm.num, "next {d} out of range");
        }
    }

    /// Return chain `head` of queue `q` with `len` bytes written, and raise the used-buffer
    /// interrupt.
    pub fn push_used(&mut self, q: usize, head: u16, len: u32) {
        let qm = self.queues[q].clone();
        let slot = u64::from(qm.used_idx % qm.num as u16);
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        entry[4..].copy_from_slice(&len.to_le_bytes());
        self.write_mem(qm.device + 4 + 8 * slot, &entry);
        let idx = qm.used_idx.wrapping_add(1);
        self.queues[q].used_idx = idx;
        self.write_mem(qm.device + 2, &idx.to_le_bytes());
        self.interrupt |= 1;
    }

    /// Write a raw used entry and index (a misbehaving device).
    pub fn push_used_raw(&mut self, q: usize, id: u32, advance: u16) {
        let qm = self.queues[q].clone();
        let slot = u64::from(qm.used_idx % qm.num as u16);
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&id.to_le_bytes());
        self.write_mem(qm.device + 4 + 8 * slot, &entry);
        let idx = qm.used_idx.wrapping_add(advance);
        self.queues[q].used_idx = idx;
        self.write_mem(qm.device + 2, &idx.to_le_bytes());
        self.interrupt |= 1;
    }

    /// Set or clear `VIRTQ_USED_F_NO_NOTIFY` on queue `q`.
    pub fn set_no_notify(&mut self, q: usize, on: bool) {
        let device = self.queues[q].device;
        self.write_mem(device, &u16::from(on).to_le_bytes());
    }
}

impl Mmio for MmioModel {
    fn read32(&mut self, offset: usize) -> u32 {
        match offset {
            0x000 => self.magic,
            0x004 => self.version,
            0x008 => self.device_id,
            0x00c => 0x554d_4551,
            0x010 => match self.dev_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            0x034 => self.queue().max,
            0x044 => self.queue().ready,
            0x060 => self.interrupt,
            0x070 => self.status,
            0x0fc => self.generation,
            o if o >= 0x100 => {
                let i = o - 0x100;
                let mut b = [0u8; 4];
                for (k, v) in b.iter_mut().enumerate() {
                    *v = self.config.get(i + k).copied().unwrap_or(0);
                }
                u32::from_le_bytes(b)
            }
            o => panic!("virtio-mmio model: read of unmodelled register {o:#x}"),
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let high = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            0x014 => self.dev_sel = value,
            0x020 => {
                let f = &mut self.driver_features;
                *f = if self.drv_sel == 0 { low(*f) } else { high(*f) };
            }
            0x024 => self.drv_sel = value,
            0x030 => self.queue_sel = value,
            0x038 => {
                assert!(value <= self.queue().max, "QueueNum above QueueNumMax");
                self.queue().num = value;
            }
            0x044 => self.queue().ready = value,
            0x050 => self.notifies.push(value),
            0x064 => self.interrupt &= !value,
            0x070 => {
                self.status_log.push(value);
                if value == 0 {
                    self.reset();
                }
                let features_ok = super::mmio::status::FEATURES_OK;
                let bad = self.refuse_features || self.driver_features & !self.offered != 0;
                self.status = if value & features_ok != 0 && bad {
                    value & !features_ok
                } else {
                    value
                };
            }
            0x080 => self.queue().desc = low(self.queue().desc),
            0x084 => self.queue().desc = high(self.queue().desc),
            0x090 => self.queue().driver = low(self.queue().driver),
            0x094 => self.queue().driver = high(self.queue().driver),
            0x0a0 => self.queue().device = low(self.queue().device),
            0x0a4 => self.queue().device = high(self.queue().device),
            o => panic!("virtio-mmio model: write of unmodelled register {o:#x}"),
        }
    }
}
