// SPDX-License-Identifier: BSD-2-Clause
//! Guest RAM and guest-physical translation.
//!
//! A guest's RAM is up to [`MAX_REGIONS`] disjoint regions, each a guest-physical base address
//! (GPA) and the VMM's view of those bytes. Every device model reaches guest memory only through
//! the [`GuestMemory`] trait, whose accesses are **checked**: an access is served only when all of
//! `[gpa, gpa + len)` lies inside one region; anything else (a hole, a region's end, an overflowing
//! address) is a [`MemError`] and no byte is touched. Guest-supplied addresses are therefore never
//! followed outside guest RAM.
//!
//! [`GuestRam`] is the implementation over byte slices: on the host the slices are test buffers;
//! in a VMM PD they are the guest RAM mapped into the VMM's address space (the vCPU that could
//! write them concurrently is stopped while the VMM handles its fault).

/// Most RAM regions one guest has (libvmm allows 3).
pub const MAX_REGIONS: usize = 4;

/// Why a guest-memory access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// `[gpa, gpa + len)` is not entirely inside one RAM region (or overflows the address space).
    OutOfRange {
        /// First guest-physical address of the access.
        gpa: u64,
        /// Length of the access in bytes.
        len: u64,
    },
}

/// Why a region could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// Already [`MAX_REGIONS`] regions.
    TooMany,
    /// The region is empty or its end overflows the guest-physical address space.
    BadRange,
    /// The region overlaps one added before.
    Overlap,
}

/// Checked access to guest-physical memory: the only way device models touch guest RAM.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes from `gpa` into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `data` to `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
    /// True when all of `[gpa, gpa + len)` is guest RAM (in one region).
    fn contains(&self, gpa: u64, len: u64) -> bool;

    /// Reads a little-endian `u16`.
    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads a little-endian `u32`.
    fn read_u32(&self, gpa: u64) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian `u64`.
    fn read_u64(&self, gpa: u64) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Writes a little-endian `u16`.
    fn write_u16(&mut self, gpa: u64, v: u16) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
    /// Writes a little-endian `u32`.
    fn write_u32(&mut self, gpa: u64, v: u32) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
    /// Writes a little-endian `u64`.
    fn write_u64(&mut self, gpa: u64, v: u64) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
}

/// One guest RAM region: a guest-physical base and the VMM's view of its bytes.
#[derive(Debug)]
pub struct RamRegion<'a> {
    gpa: u64,
    mem: &'a mut [u8],
}

impl RamRegion<'_> {
    /// Guest-physical base address.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.mem.len() as u64
    }
    /// Offset of `[gpa, gpa + len)` in this region, if it lies entirely inside.
    fn offset(&self, gpa: u64, len: u64) -> Option<usize> {
        let off = gpa.checked_sub(self.gpa)?;
        let end = off.checked_add(len)?;
        if end <= self.size() {
            usize::try_from(off).ok()
        } else {
            None
        }
    }
}

/// Guest RAM as up to [`MAX_REGIONS`] disjoint byte slices.
#[derive(Debug, Default)]
pub struct GuestRam<'a> {
    regions: [Option<RamRegion<'a>>; MAX_REGIONS],
}

impl<'a> GuestRam<'a> {
    /// No RAM yet.
    pub fn new() -> Self {
        Self {
            regions: [const { None }; MAX_REGIONS],
        }
    }

    /// Guest RAM of one region at `gpa`.
    pub fn single(gpa: u64, mem: &'a mut [u8]) -> Result<Self, RegionError> {
        let mut ram = Self::new();
        ram.add_region(gpa, mem)?;
        Ok(ram)
    }

    /// Adds the region `[gpa, gpa + mem.len())`, backed by `mem`.
    pub fn add_region(&mut self, gpa: u64, mem: &'a mut [u8]) -> Result<(), RegionError> {
        let len = mem.len() as u64;
        // The end is exclusive; the last byte must be addressable.
        let end = gpa.checked_add(len).ok_or(RegionError::BadRange)?;
        if len == 0 {
            return Err(RegionError::BadRange);
        }
        for r in self.regions.iter().flatten() {
            if gpa < r.gpa + r.size() && r.gpa < end {
                return Err(RegionError::Overlap);
            }
        }
        let slot = self
            .regions
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(RegionError::TooMany)?;
        *slot = Some(RamRegion { gpa, mem });
        Ok(())
    }

    /// The regions, in the order they were added.
    pub fn regions(&self) -> impl Iterator<Item = &RamRegion<'a>> {
        self.regions.iter().flatten()
    }

    /// The bytes `[gpa, gpa + len)` if they lie in one region.
    pub fn slice(&self, gpa: u64, len: usize) -> Result<&[u8], MemError> {
        let err = MemError::OutOfRange {
            gpa,
            len: len as u64,
        };
        for r in self.regions.iter().flatten() {
            if let Some(off) = r.offset(gpa, len as u64) {
                return r.mem.get(off..off + len).ok_or(err);
            }
        }
        Err(err)
    }

    /// The bytes `[gpa, gpa + len)`, writable, if they lie in one region.
    pub fn slice_mut(&mut self, gpa: u64, len: usize) -> Result<&mut [u8], MemError> {
        let err = MemError::OutOfRange {
            gpa,
            len: len as u64,
        };
        for r in self.regions.iter_mut().flatten() {
            if let Some(off) = r.offset(gpa, len as u64) {
                return r.mem.get_mut(off..off + len).ok_or(err);
            }
        }
        Err(err)
    }
}

impl GuestMemory for GuestRam<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(self.slice(gpa, buf.len())?);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.slice_mut(gpa, data.len())?.copy_from_slice(data);
        Ok(())
    }
    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.regions
            .iter()
            .flatten()
            .any(|r| r.offset(gpa, len).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn translation_inside_and_at_edges() {
        let mut a = [0u8; 0x100];
        let mut b = [0u8; 0x80];
        let mut ram = GuestRam::new();
        ram.add_region(0x4000_0000, &mut a).unwrap();
        ram.add_region(0x8000_0000, &mut b).unwrap();
        ram.write_u32(0x4000_00fc, 0xdead_beef).unwrap();
        assert_eq!(ram.read_u32(0x4000_00fc), Ok(0xdead_beef));
        ram.write_u64(0x8000_0000, 7).unwrap();
        assert_eq!(ram.read_u64(0x8000_0000), Ok(7));
        assert_eq!(ram.regions().count(), 2);
        // One byte past each end; a span across the gap; below the base.
        assert!(ram.write_u32(0x4000_00fd, 1).is_err());
        assert!(ram.read_u16(0x8000_007f).is_err());
        assert!(ram.read_u8_span(0x4000_0000, 0x101).is_err());
        assert!(ram.read_u8_span(0x3fff_ffff, 1).is_err());
        assert!(ram.contains(0x8000_0000, 0x80));
        assert!(!ram.contains(0x8000_0000, 0x81));
        // Nothing was written by the refused accesses.
        assert_eq!(ram.read_u32(0x4000_00fc), Ok(0xdead_beef));
    }

    #[test]
    fn overflow_addresses_refused() {
        let mut a = [0u8; 16];
        let ram = GuestRam::single(u64::MAX - 16, &mut a).unwrap();
        assert!(ram.contains(u64::MAX - 16, 16));
        assert!(!ram.contains(u64::MAX - 1, 2));
        assert!(!ram.contains(u64::MAX - 16, u64::MAX));
        assert_eq!(
            ram.read_u16(u64::MAX),
            Err(MemError::OutOfRange {
                gpa: u64::MAX,
                len: 2
            })
        );
        let mut b = [0u8; 16];
        // The exclusive end u64::MAX + 1 does not exist.
        assert_eq!(
            GuestRam::single(u64::MAX - 15, &mut b).err(),
            Some(RegionError::BadRange)
        );
    }

    #[test]
    fn regions_checked() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        let mut c = [0u8; 0];
        let mut ram = GuestRam::single(0x1000, &mut a).unwrap();
        assert_eq!(ram.add_region(0x100f, &mut b), Err(RegionError::Overlap));
        assert_eq!(ram.add_region(0x1000, &mut c), Err(RegionError::BadRange));
        let mut bufs = [[0u8; 1]; MAX_REGIONS];
        let mut it = bufs.iter_mut();
        for i in 1..MAX_REGIONS as u64 {
            ram.add_region(0x2000 * i, it.next().unwrap()).unwrap();
        }
        assert_eq!(
            ram.add_region(0x10_0000, it.next().unwrap()),
            Err(RegionError::TooMany)
        );
    }

    impl GuestRam<'_> {
        fn read_u8_span(&self, gpa: u64, len: usize) -> Result<(), MemError> {
            self.slice(gpa, len).map(|_| ())
        }
    }

    proptest! {
        /// Any access is served exactly when it lies inside the region; a model says which.
        #[test]
        fn checked_against_model(base in any::<u64>(), gpa in any::<u64>(), len in 0usize..80) {
            let mut a = [0u8; 64];
            let base = base.min(u64::MAX - 64);
            let mut ram = GuestRam::single(base, &mut a).unwrap();
            let inside = gpa >= base && (gpa as u128 + len as u128) <= base as u128 + 64;
            let data = [0xa5u8; 80];
            prop_assert_eq!(ram.write(gpa, &data[..len]).is_ok(), inside);
            prop_assert_eq!(ram.contains(gpa, len as u64), inside);
        }
    }
}
