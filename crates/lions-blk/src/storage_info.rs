// SPDX-License-Identifier: BSD-2-Clause
//! The storage-info page (`blk_storage_info_t`): what a server tells its requester about the
//! device, published once by a Release store of `ready`.
//!
//! [`BlkStorageInfo`] is the plain wire value (`ready` is a `u8` there so the struct stays
//! `FromBytes`, `IntoBytes` and `Copy`). Shared memory is only touched through the role types:
//! [`StorageInfoPage`] (reader: Acquire load of `ready`, then volatile reads of the other fields)
//! and [`StorageInfoWriter`] (volatile writes of the fields, then a Release store of `ready`).
//! `ready` itself is only ever accessed atomically, so a reader that sees it set sees every field
//! written before it.

use crate::queue::QueueError;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;
use lions_os::RegionResource;
use lions_queue::RegionError;
use lions_queue::atomic::AtomicU8;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Length of the serial number field.
pub const SERIAL_NUMBER_LENGTH: usize = 64;

/// Storage info: `blk_storage_info_t` (88 B, alignment 8), at the start of its own region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkStorageInfo {
    /// NUL-terminated device serial number (offset 0).
    pub serial_number: [u8; SERIAL_NUMBER_LENGTH],
    /// C `bool`: writes are refused (offset 64).
    pub read_only: u8,
    /// C `bool`: the other fields are valid (offset 65). In shared memory, only accessed
    /// atomically through [`StorageInfoPage`] and [`StorageInfoWriter`].
    pub ready: u8,
    /// Device sector size in bytes (offset 66).
    pub sector_size: u16,
    /// Optimal request size in 4 KiB blocks (offset 68).
    pub block_size: u16,
    /// Requests the device can have outstanding (offset 70).
    pub queue_depth: u16,
    /// Geometry: cylinders (offset 72).
    pub cylinders: u16,
    /// Geometry: heads (offset 74).
    pub heads: u16,
    /// Geometry: sectors per track (offset 76).
    pub blocks: u16,
    /// Explicit C padding before the 8-aligned `capacity` (offset 78).
    pub _pad: u16,
    /// Size in 4 KiB blocks (offset 80).
    pub capacity: u64,
}

impl BlkStorageInfo {
    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only != 0
    }

    /// Whether this snapshot was taken from a published page.
    pub fn ready(&self) -> bool {
        self.ready != 0
    }

    /// The serial number up to its first NUL.
    pub fn serial_number(&self) -> &[u8] {
        let end = self
            .serial_number
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SERIAL_NUMBER_LENGTH);
        &self.serial_number[..end]
    }
}

/// Check and cast a storage-info region.
fn page(base: NonNull<u8>, len: usize) -> Result<NonNull<BlkStorageInfo>, QueueError> {
    let needed = size_of::<BlkStorageInfo>();
    if len < needed {
        return Err(QueueError::Region(RegionError::TooSmall {
            needed,
            have: len,
        }));
    }
    if !base.cast::<BlkStorageInfo>().as_ptr().is_aligned() {
        return Err(QueueError::Region(RegionError::Misaligned));
    }
    Ok(base.cast())
}

/// The `ready` byte as an atomic.
///
/// # Safety
/// `info` points to a live, mapped `BlkStorageInfo` for `'a`, whose `ready` byte is only accessed
/// atomically.
unsafe fn ready<'a>(info: NonNull<BlkStorageInfo>) -> &'a AtomicU8 {
    // SAFETY: the pointer is in bounds and `AtomicU8` has alignment 1; per the caller, every access
    // to this byte is atomic for `'a`.
    unsafe { AtomicU8::from_ptr(&raw mut (*info.as_ptr()).ready) }
}

/// Read-only view of a storage-info page (a client, or the virt reading the driver's page). Never
/// writes, so the page may be mapped read-only.
pub struct StorageInfoPage<'a> {
    info: NonNull<BlkStorageInfo>,
    _page: PhantomData<&'a BlkStorageInfo>,
}

impl<'a> StorageInfoPage<'a> {
    /// Reader over the page at `base`.
    ///
    /// # Safety
    /// `base..base + len` is mapped readable for `'a`, and its writer follows the protocol of this
    /// module (fields written before `ready`, `ready` written atomically).
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Result<Self, QueueError> {
        Ok(Self {
            info: page(base, len)?,
            _page: PhantomData,
        })
    }

    /// Reader over the `storage_info` region of a connection from this component's config.
    ///
    /// # Safety
    /// The region is mapped at its vaddr in this component for `'a`; otherwise as for
    /// [`new`](Self::new).
    pub unsafe fn from_region(region: &RegionResource) -> Result<Self, QueueError> {
        let (base, len) = lions_queue::clients::region(region.vaddr, region.size)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(base, len) }
    }

    /// Whether the writer has published (Acquire: its field writes happen before our reads).
    pub fn is_ready(&self) -> bool {
        // SAFETY: `info` is live for `'a` (constructor contract); `ready` is accessed atomically.
        unsafe { ready(self.info) }.load(Ordering::Acquire) != 0
    }

    /// A copy of the page once published, `None` before.
    pub fn read(&self) -> Option<BlkStorageInfo> {
        if !self.is_ready() {
            return None;
        }
        let p = self.info.as_ptr();
        // SAFETY: every field pointer is in bounds and aligned (the constructor checked the base);
        // the reads are volatile because another PD owns the page; `ready` is not read here; every
        // bit pattern is valid for these integer fields.
        unsafe {
            Some(BlkStorageInfo {
                serial_number: (&raw const (*p).serial_number).read_volatile(),
                read_only: (&raw const (*p).read_only).read_volatile(),
                ready: 1,
                sector_size: (&raw const (*p).sector_size).read_volatile(),
                block_size: (&raw const (*p).block_size).read_volatile(),
                queue_depth: (&raw const (*p).queue_depth).read_volatile(),
                cylinders: (&raw const (*p).cylinders).read_volatile(),
                heads: (&raw const (*p).heads).read_volatile(),
                blocks: (&raw const (*p).blocks).read_volatile(),
                _pad: 0,
                capacity: (&raw const (*p).capacity).read_volatile(),
            })
        }
    }
}

/// The writing end of a storage-info page (the driver for its device, the virt for each client).
pub struct StorageInfoWriter<'a> {
    info: NonNull<BlkStorageInfo>,
    _page: PhantomData<&'a BlkStorageInfo>,
}

impl<'a> StorageInfoWriter<'a> {
    /// Writer over the page at `base`.
    ///
    /// # Safety
    /// `base..base + len` is mapped read-write for `'a`, and no other writer of the page exists in
    /// this or any other process while the handle lives.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Result<Self, QueueError> {
        Ok(Self {
            info: page(base, len)?,
            _page: PhantomData,
        })
    }

    /// Writer over the `storage_info` region of a connection from this component's config.
    ///
    /// # Safety
    /// The region is mapped read-write at its vaddr in this component for `'a`; otherwise as for
    /// [`new`](Self::new).
    pub unsafe fn from_region(region: &RegionResource) -> Result<Self, QueueError> {
        let (base, len) = lions_queue::clients::region(region.vaddr, region.size)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(base, len) }
    }

    /// Whether the page is published.
    pub fn is_ready(&self) -> bool {
        // SAFETY: `info` is live for `'a`; `ready` is accessed atomically.
        unsafe { ready(self.info) }.load(Ordering::Acquire) != 0
    }

    /// Write every field of `info` (its `ready` is ignored), then publish with a Release store of
    /// `ready = 1`, so a reader that sees `ready` sees every field. Publish once: a republish while
    /// readers are active may give them a mix of old and new fields (sDDF writes once).
    pub fn publish(&self, info: &BlkStorageInfo) {
        // SAFETY: `info` is live for `'a`; `ready` is accessed atomically.
        let flag = unsafe { ready(self.info) };
        flag.store(0, Ordering::Relaxed);
        let p = self.info.as_ptr();
        // SAFETY: in-bounds, aligned field pointers of a page we alone write; volatile because other
        // PDs read it; `ready` is not written here.
        unsafe {
            (&raw mut (*p).serial_number).write_volatile(info.serial_number);
            (&raw mut (*p).read_only).write_volatile(info.read_only);
            (&raw mut (*p).sector_size).write_volatile(info.sector_size);
            (&raw mut (*p).block_size).write_volatile(info.block_size);
            (&raw mut (*p).queue_depth).write_volatile(info.queue_depth);
            (&raw mut (*p).cylinders).write_volatile(info.cylinders);
            (&raw mut (*p).heads).write_volatile(info.heads);
            (&raw mut (*p).blocks).write_volatile(info.blocks);
            (&raw mut (*p).capacity).write_volatile(info.capacity);
        }
        // Release: the field writes above happen before a reader's Acquire load that sees 1.
        flag.store(1, Ordering::Release);
    }

    /// Withdraw the page (device gone, component restarting): readers see "not ready".
    pub fn withdraw(&self) {
        // SAFETY: `info` is live for `'a`; `ready` is accessed atomically.
        unsafe { ready(self.info) }.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layout_matches_c() {
        // char[64], two bools (64, 65), six u16s (66..78), u64 needs 8-alignment: 78 → 80; 88.
        assert_eq!(size_of::<BlkStorageInfo>(), 88);
        assert_eq!(align_of::<BlkStorageInfo>(), 8);
        assert_eq!(offset_of!(BlkStorageInfo, serial_number), 0);
        assert_eq!(offset_of!(BlkStorageInfo, read_only), 64);
        assert_eq!(offset_of!(BlkStorageInfo, ready), 65);
        assert_eq!(offset_of!(BlkStorageInfo, sector_size), 66);
        assert_eq!(offset_of!(BlkStorageInfo, block_size), 68);
        assert_eq!(offset_of!(BlkStorageInfo, queue_depth), 70);
        assert_eq!(offset_of!(BlkStorageInfo, cylinders), 72);
        assert_eq!(offset_of!(BlkStorageInfo, heads), 74);
        assert_eq!(offset_of!(BlkStorageInfo, blocks), 76);
        assert_eq!(offset_of!(BlkStorageInfo, _pad), 78);
        assert_eq!(offset_of!(BlkStorageInfo, capacity), 80);
    }

    fn sample() -> BlkStorageInfo {
        let mut info = BlkStorageInfo::new_zeroed();
        info.serial_number[..6].copy_from_slice(b"QM0001");
        info.read_only = 1;
        info.sector_size = 512;
        info.block_size = 1;
        info.queue_depth = 32;
        info.capacity = 0x1_0000_0001;
        info
    }

    #[test]
    fn publish_then_read() {
        let mut page_mem = vec![0u64; 512];
        let base = NonNull::new(page_mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives both views; one writer.
        let (w, r) = unsafe {
            (
                StorageInfoWriter::new(base, 4096).unwrap(),
                StorageInfoPage::new(base, 4096).unwrap(),
            )
        };
        assert!(!r.is_ready());
        assert_eq!(r.read(), None, "nothing is trusted before ready");
        let mut info = sample();
        info.ready = 0;
        w.publish(&info);
        assert!(r.is_ready() && w.is_ready());
        let got = r.read().unwrap();
        assert!(got.ready());
        assert!(got.read_only());
        assert_eq!(got.serial_number(), b"QM0001");
        assert_eq!(
            (got.sector_size, got.queue_depth, got.capacity),
            (512, 32, 0x1_0000_0001)
        );
        // The bytes in shared memory are the C layout: ready at 65, capacity at 80.
        let bytes = page_mem.as_bytes();
        assert_eq!(bytes[65], 1);
        assert_eq!(&bytes[80..88], &0x1_0000_0001u64.to_le_bytes());
        assert_eq!(&bytes[66..68], &512u16.to_le_bytes());
        w.withdraw();
        assert_eq!(r.read(), None);
    }

    #[test]
    fn regions_are_checked() {
        let mut page_mem = vec![0u64; 16];
        let base = NonNull::new(page_mem.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: every call fails or only builds a view over the live buffer.
        unsafe {
            assert_eq!(
                StorageInfoPage::new(base, 87).err(),
                Some(QueueError::Region(RegionError::TooSmall {
                    needed: 88,
                    have: 87
                }))
            );
            let odd = NonNull::new(base.as_ptr().add(4)).unwrap();
            assert_eq!(
                StorageInfoWriter::new(odd, 100).err(),
                Some(QueueError::Region(RegionError::Misaligned))
            );
            let unmapped = RegionResource {
                vaddr: 0,
                size: 0x1000,
            };
            assert_eq!(
                StorageInfoPage::from_region(&unmapped).err(),
                Some(QueueError::Unmapped)
            );
        }
    }
}
