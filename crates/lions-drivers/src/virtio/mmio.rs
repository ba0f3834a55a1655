// SPDX-License-Identifier: BSD-2-Clause
//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2), driver side.
//!
//! Registers used (byte offsets, 32 bits each): `MagicValue` 0x000 (`"virt"` = 0x7472_6976),
//! `Version` 0x004 (2), `DeviceID` 0x008, `DeviceFeatures` 0x010 with `DeviceFeaturesSel` 0x014,
//! `DriverFeatures` 0x020 with `DriverFeaturesSel` 0x024, `QueueSel` 0x030, `QueueNumMax` 0x034,
//! `QueueNum` 0x038, `QueueReady` 0x044, `QueueNotify` 0x050, `InterruptStatus` 0x060,
//! `InterruptACK` 0x064, `Status` 0x070, `QueueDesc` 0x080/0x084, `QueueDriver` 0x090/0x094,
//! `QueueDevice` 0x0a0/0x0a4, `ConfigGeneration` 0x0fc, device config from 0x100.
//!
//! Initialisation (§3.1.1): reset (status 0), ACKNOWLEDGE, DRIVER, read the 64 feature bits, write
//! the accepted subset, FEATURES_OK, read it back (a device that clears it refused the subset),
//! set up the queues, DRIVER_OK. Any failure on the way sets FAILED.

use super::queue::SplitQueue;
use crate::mmio::Mmio;

const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC: usize = 0x080;
const QUEUE_DRIVER: usize = 0x090;
const QUEUE_DEVICE: usize = 0x0a0;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

/// `"virt"`, little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Bytes of register space up to the start of the device config.
pub const REGISTER_SPAN: usize = CONFIG;

/// Device status bits (§2.1).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u32 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u32 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u32 = 128;
}

/// Feature bit: the device follows virtio 1.x (not legacy).
pub const F_VERSION_1: u64 = 1 << 32;

/// Why a virtio-mmio device could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioError {
    /// `MagicValue` is not `"virt"`.
    BadMagic(u32),
    /// `Version` is not 2 (1 is the legacy interface).
    Version(u32),
    /// Another kind of device (0: no device behind this slot).
    DeviceId {
        /// What the driver drives.
        expected: u32,
        /// What the slot holds.
        found: u32,
    },
    /// The device lacks required features (the bits missing).
    MissingFeatures(u64),
    /// The device cleared FEATURES_OK: it refused the accepted features.
    FeaturesRefused,
    /// The queue does not exist (`QueueNumMax` 0) or is already in use.
    QueueUnavailable(u32),
    /// The rings do not fit their region.
    QueueMemory,
}

impl core::fmt::Display for VirtioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "virtio-mmio magic {m:#x} is not \"virt\""),
            Self::Version(v) => write!(f, "virtio-mmio version {v} (need 2, non-legacy)"),
            Self::DeviceId { expected, found } => {
                write!(f, "virtio device id {found}, expected {expected}")
            }
            Self::MissingFeatures(b) => write!(f, "virtio device lacks features {b:#x}"),
            Self::FeaturesRefused => write!(f, "virtio device refused the features"),
            Self::QueueUnavailable(q) => write!(f, "virtqueue {q} is unavailable"),
            Self::QueueMemory => write!(f, "virtqueue rings do not fit their region"),
        }
    }
}

impl core::error::Error for VirtioError {}

/// A virtio-mmio register block; see the module docs.
#[derive(Debug)]
pub struct VirtioMmio<M> {
    regs: M,
}

impl<M: Mmio> VirtioMmio<M> {
    /// The device behind `regs`, checked to be a version-2 virtio-mmio device of `device_id`.
    pub fn probe(mut regs: M, device_id: u32) -> Result<Self, VirtioError> {
        let magic = regs.read32(MAGIC_VALUE);
        if magic != MAGIC {
            return Err(VirtioError::BadMagic(magic));
        }
        let version = regs.read32(VERSION);
        if version != 2 {
            return Err(VirtioError::Version(version));
        }
        let found = regs.read32(DEVICE_ID);
        if found != device_id {
            return Err(VirtioError::DeviceId {
                expected: device_id,
                found,
            });
        }
        Ok(Self { regs })
    }

    /// Reset the device and negotiate: accept the features in `wanted` the device offers, which
    /// must include `required`. Returns the accepted set; the device is then FEATURES_OK.
    pub fn negotiate(&mut self, wanted: u64, required: u64) -> Result<u64, VirtioError> {
        self.regs.write32(STATUS, 0);
        self.regs.write32(STATUS, status::ACKNOWLEDGE);
        self.regs
            .write32(STATUS, status::ACKNOWLEDGE | status::DRIVER);
        let mut offered = 0;
        for sel in [1u32, 0] {
            self.regs.write32(DEVICE_FEATURES_SEL, sel);
            offered = (offered << 32) | u64::from(self.regs.read32(DEVICE_FEATURES));
        }
        let missing = required & !offered;
        if missing != 0 {
            self.fail();
            return Err(VirtioError::MissingFeatures(missing));
        }
        let accepted = offered & (wanted | required);
        for (sel, half) in (0u32..).zip(halves(accepted)) {
            self.regs.write32(DRIVER_FEATURES_SEL, sel);
            self.regs.write32(DRIVER_FEATURES, half);
        }
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        self.regs.write32(STATUS, s);
        if self.regs.read32(STATUS) & status::FEATURES_OK == 0 {
            self.fail();
            return Err(VirtioError::FeaturesRefused);
        }
        Ok(accepted)
    }

    /// The largest size queue `index` supports; it must exist and not be in use.
    pub fn queue_max(&mut self, index: u32) -> Result<u16, VirtioError> {
        self.regs.write32(QUEUE_SEL, index);
        let max = self.regs.read32(QUEUE_NUM_MAX);
        if max == 0 || self.regs.read32(QUEUE_READY) != 0 {
            return Err(VirtioError::QueueUnavailable(index));
        }
        Ok(u16::try_from(max).unwrap_or(u16::MAX))
    }

    /// Give queue `index` the rings of `queue` and enable it.
    pub fn setup_queue(&mut self, index: u32, queue: &SplitQueue) {
        self.regs.write32(QUEUE_SEL, index);
        self.regs.write32(QUEUE_NUM, u32::from(queue.size()));
        for (reg, addr) in [
            (QUEUE_DESC, queue.desc_addr()),
            (QUEUE_DRIVER, queue.driver_addr()),
            (QUEUE_DEVICE, queue.device_addr()),
        ] {
            let [lo, hi] = halves(addr);
            self.regs.write32(reg, lo);
            self.regs.write32(reg + 4, hi);
        }
        self.regs.write32(QUEUE_READY, 1);
    }

    /// Tell the device the driver is ready.
    pub fn driver_ok(&mut self) {
        let s = self.regs.read32(STATUS);
        self.regs.write32(STATUS, s | status::DRIVER_OK);
    }

    /// Give up on the device (status FAILED).
    pub fn fail(&mut self) {
        let s = self.regs.read32(STATUS);
        self.regs.write32(STATUS, s | status::FAILED);
    }

    /// The device status register.
    pub fn status(&mut self) -> u32 {
        self.regs.read32(STATUS)
    }

    /// Tell the device queue `index` has new buffers.
    pub fn notify(&mut self, index: u32) {
        self.regs.write32(QUEUE_NOTIFY, index);
    }

    /// Read and acknowledge the interrupt status (bit 0: used buffers, bit 1: config change).
    pub fn ack_interrupt(&mut self) -> u32 {
        let s = self.regs.read32(INTERRUPT_STATUS);
        if s != 0 {
            self.regs.write32(INTERRUPT_ACK, s);
        }
        s
    }

    /// The 32-bit device config field at `offset` (4-aligned).
    pub fn config32(&mut self, offset: usize) -> u32 {
        self.regs.read32(CONFIG + offset)
    }

    /// The 64-bit device config field at `offset`, read as two halves until the config
    /// generation is the same before and after (§4.2.2.2).
    pub fn config64(&mut self, offset: usize) -> u64 {
        loop {
            let generation = self.regs.read32(CONFIG_GENERATION);
            let lo = self.config32(offset);
            let hi = self.config32(offset + 4);
            if self.regs.read32(CONFIG_GENERATION) == generation {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }

    /// The register block (for inspection).
    pub fn regs(&mut self) -> &mut M {
        &mut self.regs
    }
}

/// The low and high 32 bits of `v`.
fn halves(v: u64) -> [u32; 2] {
    let b = v.to_le_bytes();
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    ]
}
