// SPDX-License-Identifier: BSD-2-Clause
//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2; non-legacy only).
//!
//! The VMM maps no memory at the device's window: every guest access is a data abort that the
//! VMM decodes ([`crate::abort`]) and passes to [`VirtioMmio::read`] or [`VirtioMmio::write`]
//! with the offset in the window. Register map (32-bit accesses; the configuration space at
//! 0x100 takes any width):
//!
//! | offset | register | dir |
//! |---|---|---|
//! | 0x000 | `MagicValue` = `"virt"` | R |
//! | 0x004 | `Version` = 2 | R |
//! | 0x008 | `DeviceID` | R |
//! | 0x00c | `VendorID` | R |
//! | 0x010 / 0x014 | `DeviceFeatures` / `DeviceFeaturesSel` | R / W |
//! | 0x020 / 0x024 | `DriverFeatures` / `DriverFeaturesSel` | W / W |
//! | 0x030 | `QueueSel` | W |
//! | 0x034 / 0x038 | `QueueNumMax` / `QueueNum` | R / W |
//! | 0x044 | `QueueReady` | RW |
//! | 0x050 | `QueueNotify` | W |
//! | 0x060 / 0x064 | `InterruptStatus` / `InterruptACK` | R / W |
//! | 0x070 | `Status` | RW |
//! | 0x080..0x0a4 | `QueueDesc`, `QueueDriver`, `QueueDevice` (low, high) | W |
//! | 0x0ac..0x0bc | `SHMSel`, `SHMLen`, `SHMBase`: no regions (length and base all ones) | R |
//! | 0x0fc | `ConfigGeneration` | R |
//! | 0x100.. | device configuration space | RW |
//!
//! **Feature negotiation**: the device offers its own bits plus `VIRTIO_F_VERSION_1` (bit 32);
//! the driver writes what it accepts; when it sets `FEATURES_OK` the device keeps the bit only if
//! the accepted set is a subset of the offer and includes `VERSION_1` (a legacy driver is thus
//! refused). **Status**: writing 0 resets the device and its queues; bits only accumulate
//! otherwise. Queue registers are writable only while the queue is not ready; a queue becomes
//! ready only with a power-of-two size no larger than `QueueNumMax`, else `QueueReady` stays 0
//! and the error is counted. `QueueNotify` runs the device ([`VirtioDevice::process`]); the
//! result says whether to raise the device's interrupt (`InterruptStatus` bit 0 is then set).
//! A device that meets a broken queue sets `DEVICE_NEEDS_RESET` and raises a configuration
//! interrupt (bit 1); it keeps serving its other queues.

use super::queue::{QUEUE_SIZE_MAX, QueueError, Virtqueue};
use crate::abort::Width;
use crate::ram::GuestMemory;

/// `MagicValue`: `"virt"` little endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `VendorID` we report (any value is allowed): the bytes `"L4S\0"`.
pub const VENDOR_ID: u32 = 0x0053_344c;
/// Feature bit: the driver is virtio 1.x (non-legacy).
pub const F_VERSION_1: u64 = 1 << 32;
/// Most virtqueues a device has.
pub const MAX_QUEUES: usize = 2;

/// Status bit: the guest found the device.
pub const STATUS_ACKNOWLEDGE: u32 = 1;
/// Status bit: the guest has a driver for it.
pub const STATUS_DRIVER: u32 = 2;
/// Status bit: the driver is ready.
pub const STATUS_DRIVER_OK: u32 = 4;
/// Status bit: feature negotiation is complete.
pub const STATUS_FEATURES_OK: u32 = 8;
/// Status bit: the device met an error and needs a reset.
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;
/// Status bit: the driver gave up.
pub const STATUS_FAILED: u32 = 128;

/// `InterruptStatus` bit: a used buffer was returned.
pub const INT_USED_BUFFER: u32 = 1;
/// `InterruptStatus` bit: the configuration changed (or the device needs a reset).
pub const INT_CONFIG: u32 = 2;

/// Register offsets.
pub mod reg {
    /// `MagicValue`.
    pub const MAGIC: u64 = 0x000;
    /// `Version`.
    pub const VERSION: u64 = 0x004;
    /// `DeviceID`.
    pub const DEVICE_ID: u64 = 0x008;
    /// `VendorID`.
    pub const VENDOR_ID: u64 = 0x00c;
    /// `DeviceFeatures`.
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// `DeviceFeaturesSel`.
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// `DriverFeatures`.
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// `DriverFeaturesSel`.
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// `QueueSel`.
    pub const QUEUE_SEL: u64 = 0x030;
    /// `QueueNumMax`.
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// `QueueNum`.
    pub const QUEUE_NUM: u64 = 0x038;
    /// `QueueReady`.
    pub const QUEUE_READY: u64 = 0x044;
    /// `QueueNotify`.
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// `InterruptStatus`.
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// `InterruptACK`.
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// `Status`.
    pub const STATUS: u64 = 0x070;
    /// `QueueDescLow` (High at +4).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// `QueueDriverLow` (High at +4).
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// `QueueDeviceLow` (High at +4).
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// `ConfigGeneration`.
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Start of the device configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// Size of a virtio-mmio window.
pub const WINDOW_SIZE: u64 = 0x200;

/// A device model behind the transport.
pub trait VirtioDevice {
    /// The virtio device ID (1 net, 2 block, 3 console).
    fn device_id(&self) -> u32;
    /// How many virtqueues (at most [`MAX_QUEUES`]).
    fn num_queues(&self) -> usize;
    /// Device-specific feature bits offered (the transport adds `VERSION_1`).
    fn device_features(&self) -> u64;
    /// Reads the configuration space at `offset` into `buf`; bytes past its end read 0.
    fn read_config(&self, offset: u64, buf: &mut [u8]);
    /// A driver write to the configuration space (ignored by default).
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Back to the reset state (the driver wrote 0 to `Status`).
    fn reset(&mut self);
    /// Serves the queues: takes published chains, moves data to and from the back end, returns
    /// used chains. Also called when the back end made progress ([`VirtioMmio::poll`]).
    fn process<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M) -> Progress;
}

/// What [`VirtioDevice::process`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Used buffers were returned: raise the used-buffer interrupt.
    pub used: bool,
    /// A queue was broken by the guest (the first error met).
    pub error: Option<QueueError>,
}

/// The virtqueues of one device and the driver's accepted features.
#[derive(Debug, Clone, Default)]
pub struct Queues {
    /// The queues (only the first `num_queues()` are used).
    pub q: [Virtqueue; MAX_QUEUES],
    /// The features the driver accepted.
    pub driver_features: u64,
}

/// One virtio-mmio device: transport state and the device model.
#[derive(Debug)]
pub struct VirtioMmio<D> {
    /// The device model.
    pub dev: D,
    queues: Queues,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    interrupt_status: u32,
    config_generation: u32,
    errors: u32,
    last_error: Option<QueueError>,
}

fn split(v: u64, high: bool) -> u32 {
    let half = if high { v >> 32 } else { v & 0xffff_ffff };
    u32::try_from(half).unwrap_or(0)
}

fn set_half(v: &mut u64, high: bool, w: u32) {
    let w = u64::from(w);
    *v = if high {
        (*v & 0xffff_ffff) | (w << 32)
    } else {
        (*v & !0xffff_ffff) | w
    };
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// A device in the reset state.
    pub fn new(dev: D) -> Self {
        Self {
            dev,
            queues: Queues::default(),
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            interrupt_status: 0,
            config_generation: 0,
            errors: 0,
            last_error: None,
        }
    }

    /// The features offered to the driver.
    pub fn offered(&self) -> u64 {
        self.dev.device_features() | F_VERSION_1
    }

    /// The `Status` register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The `InterruptStatus` register: non-zero while the guest has not acknowledged.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// The queues (for inspection).
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// How many guest errors were met (bad register values and broken queues), and the last.
    pub fn errors(&self) -> (u32, Option<QueueError>) {
        (self.errors, self.last_error)
    }

    fn selected(&mut self) -> Option<&mut Virtqueue> {
        let n = self.dev.num_queues().min(MAX_QUEUES);
        let i = usize::try_from(self.queue_sel).ok().filter(|&i| i < n)?;
        self.queues.q.get_mut(i)
    }

    fn error(&mut self) {
        self.errors = self.errors.saturating_add(1);
    }

    fn reset(&mut self) {
        self.dev.reset();
        self.queues = Queues::default();
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
    }

    /// A guest read of `width` at `offset` in the window.
    pub fn read(&mut self, offset: u64, width: Width) -> u64 {
        if offset >= reg::CONFIG {
            let mut b = [0u8; 8];
            let n = width.bytes();
            self.dev.read_config(offset - reg::CONFIG, &mut b[..n]);
            return u64::from_le_bytes(b);
        }
        if width != Width::Word || !offset.is_multiple_of(4) {
            self.error();
            return 0;
        }
        let num_queues = self.dev.num_queues();
        let v: u32 = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.dev.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => split(self.offered(), false),
                1 => split(self.offered(), true),
                _ => 0,
            },
            reg::QUEUE_NUM_MAX if usize::try_from(self.queue_sel).is_ok_and(|i| i < num_queues) => {
                u32::from(QUEUE_SIZE_MAX)
            }
            reg::QUEUE_READY => u32::from(self.selected().is_some_and(|q| q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            // SHMLen and SHMBase: no shared-memory regions, which reads as all ones.
            0x0b0..=0x0bc => u32::MAX,
            _ => 0,
        };
        u64::from(v)
    }

    /// A guest write of `value` (`width`) at `offset`. Returns true when the device's interrupt
    /// should be raised.
    pub fn write<M: GuestMemory>(
        &mut self,
        mem: &mut M,
        offset: u64,
        width: Width,
        value: u64,
    ) -> bool {
        if offset >= reg::CONFIG {
            let b = value.to_le_bytes();
            self.dev
                .write_config(offset - reg::CONFIG, &b[..width.bytes()]);
            return false;
        }
        if width != Width::Word || !offset.is_multiple_of(4) {
            self.error();
            return false;
        }
        let v = split(value, false);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => {
                // Features may change only before FEATURES_OK.
                if self.status & STATUS_FEATURES_OK != 0 || self.driver_features_sel > 1 {
                    self.error();
                } else {
                    let high = self.driver_features_sel == 1;
                    set_half(&mut self.queues.driver_features, high, v);
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => self.queue_reg(|q| q.size = u16::try_from(v).unwrap_or(0)),
            reg::QUEUE_DESC_LOW | 0x084 => {
                self.queue_reg(|q| set_half(&mut q.desc, offset == 0x084, v))
            }
            reg::QUEUE_DRIVER_LOW | 0x094 => {
                self.queue_reg(|q| set_half(&mut q.avail, offset == 0x094, v))
            }
            reg::QUEUE_DEVICE_LOW | 0x0a4 => {
                self.queue_reg(|q| set_half(&mut q.used, offset == 0x0a4, v))
            }
            reg::QUEUE_READY => self.queue_ready(v != 0),
            reg::QUEUE_NOTIFY => return self.notify(mem),
            reg::INTERRUPT_ACK => self.interrupt_status &= !v,
            reg::STATUS => self.write_status(v),
            _ => self.error(),
        }
        false
    }

    fn queue_reg(&mut self, f: impl FnOnce(&mut Virtqueue)) {
        match self.selected() {
            Some(q) if !q.ready => f(q),
            _ => self.error(),
        }
    }

    fn queue_ready(&mut self, ready: bool) {
        let Some(q) = self.selected() else {
            return self.error();
        };
        if !ready {
            q.ready = false;
            return;
        }
        let ok = q.size.is_power_of_two() && q.size <= QUEUE_SIZE_MAX;
        // Rings must be aligned: descriptors 16, driver area 2, device area 4.
        let aligned =
            q.desc.is_multiple_of(16) && q.avail.is_multiple_of(2) && q.used.is_multiple_of(4);
        if ok && aligned {
            q.ready = true;
        } else {
            self.error();
        }
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        // Bits only accumulate; clearing one without a reset is a driver error.
        if v & self.status != self.status {
            self.error();
            return;
        }
        let mut v = v;
        if v & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0 {
            let accepted = self.queues.driver_features;
            if accepted & !self.offered() != 0 || accepted & F_VERSION_1 == 0 {
                v &= !STATUS_FEATURES_OK;
                self.error();
            }
        }
        self.status = v;
    }

    /// Runs the device for a queue notification (or back-end progress); true when the
    /// interrupt should be raised.
    fn run<M: GuestMemory>(&mut self, mem: &mut M) -> bool {
        if self.status & STATUS_DRIVER_OK == 0 || self.status & STATUS_DEVICE_NEEDS_RESET != 0 {
            return false;
        }
        let p = self.dev.process(&mut self.queues, mem);
        let mut raise = false;
        if p.used {
            self.interrupt_status |= INT_USED_BUFFER;
            raise = true;
        }
        if let Some(e) = p.error {
            self.error();
            self.last_error = Some(e);
            self.status |= STATUS_DEVICE_NEEDS_RESET;
            self.interrupt_status |= INT_CONFIG;
            raise = true;
        }
        raise
    }

    fn notify<M: GuestMemory>(&mut self, mem: &mut M) -> bool {
        self.run(mem)
    }

    /// The back end made progress (data arrived, a request completed): serve the queues again.
    /// True when the interrupt should be raised.
    pub fn poll<M: GuestMemory>(&mut self, mem: &mut M) -> bool {
        self.run(mem)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ram::GuestRam;

    /// A device with one queue that returns each chain with its readable length.
    #[derive(Debug, Default)]
    struct Echo {
        resets: u32,
    }

    impl VirtioDevice for Echo {
        fn device_id(&self) -> u32 {
            42
        }
        fn num_queues(&self) -> usize {
            1
        }
        fn device_features(&self) -> u64 {
            0b101
        }
        fn read_config(&self, offset: u64, buf: &mut [u8]) {
            let cfg = [0x11u8, 0x22, 0x33, 0x44];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = usize::try_from(offset)
                    .ok()
                    .and_then(|o| cfg.get(o + i))
                    .copied()
                    .unwrap_or(0);
            }
        }
        fn reset(&mut self) {
            self.resets += 1;
        }
        fn process<M: GuestMemory>(&mut self, q: &mut Queues, mem: &mut M) -> Progress {
            let mut p = Progress::default();
            let vq = &mut q.q[0];
            loop {
                match vq
                    .pop(mem)
                    .and_then(|h| h.map(|h| vq.walk(mem, h)).transpose())
                {
                    Ok(Some(c)) => {
                        let _ = vq.push_used(mem, c.head, c.readable_len());
                        p.used = true;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        p.error = Some(e);
                        break;
                    }
                }
            }
            p
        }
    }

    const W: Width = Width::Word;

    pub(crate) fn bring_up<D: VirtioDevice, M: GuestMemory>(
        d: &mut VirtioMmio<D>,
        mem: &mut M,
        features: u64,
        queues: &[(u64, u64, u64, u16)],
    ) {
        assert_eq!(d.read(reg::MAGIC, W), u64::from(MAGIC));
        assert_eq!(d.read(reg::VERSION, W), 2);
        d.write(mem, reg::STATUS, W, u64::from(STATUS_ACKNOWLEDGE));
        d.write(
            mem,
            reg::STATUS,
            W,
            u64::from(STATUS_ACKNOWLEDGE | STATUS_DRIVER),
        );
        for sel in 0..2 {
            d.write(mem, reg::DRIVER_FEATURES_SEL, W, sel);
            d.write(
                mem,
                reg::DRIVER_FEATURES,
                W,
                u64::from(split(features, sel == 1)),
            );
        }
        let s = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
        d.write(mem, reg::STATUS, W, u64::from(s));
        assert_eq!(d.read(reg::STATUS, W), u64::from(s), "features refused");
        for (i, &(desc, avail, used, size)) in queues.iter().enumerate() {
            d.write(mem, reg::QUEUE_SEL, W, i as u64);
            assert_eq!(d.read(reg::QUEUE_NUM_MAX, W), u64::from(QUEUE_SIZE_MAX));
            d.write(mem, reg::QUEUE_NUM, W, u64::from(size));
            d.write(mem, reg::QUEUE_DESC_LOW, W, desc);
            d.write(mem, reg::QUEUE_DRIVER_LOW, W, avail);
            d.write(mem, reg::QUEUE_DEVICE_LOW, W, used);
            d.write(mem, reg::QUEUE_READY, W, 1);
            assert_eq!(d.read(reg::QUEUE_READY, W), 1);
        }
        d.write(mem, reg::STATUS, W, u64::from(s | STATUS_DRIVER_OK));
    }

    #[test]
    fn identity_and_features() {
        let mut m = std::vec![0u8; 0x100];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = VirtioMmio::new(Echo::default());
        assert_eq!(d.read(reg::DEVICE_ID, W), 42);
        assert_eq!(d.read(reg::VENDOR_ID, W), u64::from(VENDOR_ID));
        assert_eq!(d.read(reg::DEVICE_FEATURES, W), 0b101);
        d.write(&mut ram, reg::DEVICE_FEATURES_SEL, W, 1);
        assert_eq!(d.read(reg::DEVICE_FEATURES, W), 1, "VERSION_1 is bit 32");
        d.write(&mut ram, reg::DEVICE_FEATURES_SEL, W, 2);
        assert_eq!(d.read(reg::DEVICE_FEATURES, W), 0);
        // No shared-memory regions: their length reads as all ones.
        assert_eq!(d.read(0x0b0, W), u64::from(u32::MAX));
        assert_eq!(d.read(0x0b4, W), u64::from(u32::MAX));
        // Config space at any width, zero past its end.
        assert_eq!(d.read(reg::CONFIG + 1, Width::Half), 0x3322);
        assert_eq!(d.read(reg::CONFIG, Width::Double), 0x4433_2211);
        // Narrow accesses to registers are refused and counted.
        assert_eq!(d.read(reg::MAGIC, Width::Byte), 0);
        assert_eq!(d.errors().0, 1);
    }

    #[test]
    fn legacy_or_unoffered_features_refused() {
        let mut m = std::vec![0u8; 0x100];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        for accepted in [0b1u64, 0b1 | F_VERSION_1 | 0b10] {
            let mut d = VirtioMmio::new(Echo::default());
            d.write(&mut ram, reg::STATUS, W, 3);
            d.write(&mut ram, reg::DRIVER_FEATURES, W, accepted & 0xffff_ffff);
            d.write(&mut ram, reg::DRIVER_FEATURES_SEL, W, 1);
            d.write(&mut ram, reg::DRIVER_FEATURES, W, accepted >> 32);
            d.write(&mut ram, reg::STATUS, W, 3 | u64::from(STATUS_FEATURES_OK));
            assert_eq!(
                d.read(reg::STATUS, W),
                3,
                "FEATURES_OK kept for {accepted:#x}"
            );
        }
    }

    #[test]
    fn queue_setup_rules_and_reset() {
        let mut m = std::vec![0u8; 0x4000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = VirtioMmio::new(Echo::default());
        // Queue 1 does not exist.
        d.write(&mut ram, reg::QUEUE_SEL, W, 1);
        assert_eq!(d.read(reg::QUEUE_NUM_MAX, W), 0);
        d.write(&mut ram, reg::QUEUE_READY, W, 1);
        assert_eq!(d.read(reg::QUEUE_READY, W), 0);
        // Size 3 or 256 and a misaligned table are refused.
        d.write(&mut ram, reg::QUEUE_SEL, W, 0);
        for (size, desc) in [(3, 0x1000), (256, 0x1000), (8, 0x1008)] {
            d.write(&mut ram, reg::QUEUE_NUM, W, size);
            d.write(&mut ram, reg::QUEUE_DESC_LOW, W, desc);
            d.write(&mut ram, reg::QUEUE_READY, W, 1);
            assert_eq!(d.read(reg::QUEUE_READY, W), 0);
        }
        d.write(&mut ram, reg::QUEUE_DESC_LOW, W, 0x1000);
        d.write(&mut ram, reg::QUEUE_DESC_LOW + 4, W, 0x1);
        d.write(&mut ram, reg::QUEUE_READY, W, 1);
        assert_eq!(d.queues().q[0].desc, 0x1_0000_1000);
        // A ready queue's registers are frozen.
        d.write(&mut ram, reg::QUEUE_NUM, W, 4);
        assert_eq!(d.queues().q[0].size, 8);
        // Status bits cannot be cleared without reset; 0 resets everything.
        d.write(&mut ram, reg::STATUS, W, 3);
        d.write(&mut ram, reg::STATUS, W, 1);
        assert_eq!(d.read(reg::STATUS, W), 3);
        d.write(&mut ram, reg::STATUS, W, 0);
        assert_eq!(
            (d.read(reg::STATUS, W), d.queues().q[0].ready, d.dev.resets),
            (0, false, 1)
        );
    }

    #[test]
    fn notify_interrupt_ack_and_broken_queue() {
        use crate::virtio::queue::tests::{AVAIL, DESC, Driver, USED};
        let mut m = std::vec![0u8; 0x10000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let mut d = VirtioMmio::new(Echo::default());
        bring_up(&mut d, &mut ram, F_VERSION_1 | 1, &[(DESC, AVAIL, USED, 8)]);
        let mut drv = Driver::new(8);
        drv.publish(&mut ram, 0, &[(0x4000, 10, false)]);
        assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, W, 0));
        assert_eq!(d.read(reg::INTERRUPT_STATUS, W), u64::from(INT_USED_BUFFER));
        assert_eq!(drv.take_used(&ram), Some((0, 10)));
        d.write(&mut ram, reg::INTERRUPT_ACK, W, u64::from(INT_USED_BUFFER));
        assert_eq!(d.interrupt_status(), 0);
        // A looping chain: reported, DEVICE_NEEDS_RESET, config interrupt, no hang.
        drv.publish(&mut ram, 1, &[(0x4000, 4, false), (0x4000, 4, false)]);
        ram.write_u16(DESC + 16 * 2 + 14, 1).unwrap();
        ram.write_u16(DESC + 16 * 2 + 12, 1).unwrap();
        assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, W, 0));
        assert_eq!(d.errors().1, Some(QueueError::Loop));
        assert_ne!(d.status() & STATUS_DEVICE_NEEDS_RESET, 0);
        assert_ne!(d.interrupt_status() & INT_CONFIG, 0);
        // Then stays quiet until reset.
        assert!(!d.write(&mut ram, reg::QUEUE_NOTIFY, W, 0));
    }
}
