// SPDX-License-Identifier: BSD-2-Clause
//! arm64 Linux boot: the `Image` header, image placement and the entry registers.
//!
//! Facts from the arm64 boot protocol (Linux `Documentation/arch/arm64/booting.rst`):
//!
//! - The `Image` starts with a 64-byte little-endian header: `code0`, `code1` (u32), `text_offset`,
//!   `image_size`, `flags` (u64), three reserved u64, the magic `"ARM\x64"` (u32 at byte 56) and a
//!   reserved u32. `image_size` is the memory the kernel needs from its load address (BSS
//!   included); 0 means a kernel older than 3.17, whose `text_offset` is then 0x80000.
//! - `flags` bit 0 is the kernel's endianness (1 = big endian, refused here); bit 3 set means the
//!   2 MiB-aligned base may be anywhere in RAM, clear means as low as possible.
//! - The kernel is loaded at a **2 MiB-aligned base + `text_offset`**.
//! - The DTB is placed on an **8-byte boundary** and is at most **2 MiB**.
//! - The initrd is described by `/chosen` (`linux,initrd-start`/`-end`, see [`crate::fdt`]); we
//!   place it on a 4 KiB page boundary (our rule, so Linux can free it by pages).
//! - Entry: `x0` = the DTB's physical address, `x1`-`x3` = 0, PC = the kernel's load address,
//!   EL1h with D, A, I and F masked ([`SPSR_EL1H_MASKED`]), MMU and D-cache off (the seL4 side
//!   cleans the images to the point of coherency before it starts the vCPU).
//!
//! [`plan`] checks everything and computes a [`BootLayout`] (no overlap, all inside the RAM
//! region); [`load`] copies the images into guest RAM and returns the [`EntryRegs`].

use crate::ram::{GuestMemory, MemError};

/// The `Image` header magic, `"ARM\x64"` little endian.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Size of the `Image` header.
pub const IMAGE_HEADER_SIZE: usize = 64;
/// The flattened-device-tree magic (big endian in the blob).
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Alignment of the kernel's base.
pub const KERNEL_BASE_ALIGN: u64 = 2 << 20;
/// Alignment of the DTB.
pub const DTB_ALIGN: u64 = 8;
/// Largest DTB.
pub const DTB_MAX: u64 = 2 << 20;
/// Alignment of the initrd (ours).
pub const INITRD_ALIGN: u64 = 4096;
/// `text_offset` of a kernel whose `image_size` is 0.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// SPSR at entry: EL1h (mode 5) with D, A, I, F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// Why a guest could not be laid out or loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// The kernel is shorter than its header.
    KernelTooShort,
    /// The header magic is not `"ARM\x64"`.
    BadImageMagic,
    /// A big-endian kernel (flags bit 0).
    BigEndian,
    /// `image_size` is smaller than the file.
    BadImageSize,
    /// The DTB does not start with the FDT magic, or its `totalsize` disagrees with its length.
    BadDtb,
    /// The DTB is larger than 2 MiB.
    DtbTooBig,
    /// A given placement breaks an alignment rule.
    Misaligned,
    /// An image does not fit in the RAM region.
    OutOfRam,
    /// Two images overlap.
    Overlap,
    /// Guest memory refused a copy.
    Memory(MemError),
}

impl From<MemError> for BootError {
    fn from(e: MemError) -> Self {
        BootError::Memory(e)
    }
}

/// The fields of an arm64 `Image` header the loader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the load address from a 2 MiB-aligned base.
    pub text_offset: u64,
    /// Memory the kernel needs from its load address.
    pub image_size: u64,
    /// The flags word.
    pub flags: u64,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks an `Image` and reads its header.
pub fn parse_image(kernel: &[u8]) -> Result<ImageHeader, BootError> {
    let h = kernel
        .get(..IMAGE_HEADER_SIZE)
        .ok_or(BootError::KernelTooShort)?;
    let magic = u32::from_le_bytes([h[56], h[57], h[58], h[59]]);
    if magic != IMAGE_MAGIC {
        return Err(BootError::BadImageMagic);
    }
    let flags = le_u64(h, 24);
    if flags & 1 != 0 {
        return Err(BootError::BigEndian);
    }
    let (text_offset, image_size) = match le_u64(h, 16) {
        0 => (LEGACY_TEXT_OFFSET, kernel.len() as u64),
        size => (le_u64(h, 8), size),
    };
    if image_size < kernel.len() as u64 {
        return Err(BootError::BadImageSize);
    }
    Ok(ImageHeader {
        text_offset,
        image_size,
        flags,
    })
}

/// Checks a DTB (magic, `totalsize` within the blob, at most 2 MiB); returns its `totalsize`.
pub fn check_dtb(dtb: &[u8]) -> Result<u64, BootError> {
    if be_u32(dtb, 0) != Some(FDT_MAGIC) {
        return Err(BootError::BadDtb);
    }
    let total = u64::from(be_u32(dtb, 4).ok_or(BootError::BadDtb)?);
    if total > DTB_MAX {
        return Err(BootError::DtbTooBig);
    }
    if total > dtb.len() as u64 || total < 40 {
        return Err(BootError::BadDtb);
    }
    Ok(total)
}

/// Where each image goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// Guest-physical load address of the kernel (the entry point).
    pub kernel: u64,
    /// Memory reserved for the kernel from [`Self::kernel`] (its `image_size`).
    pub kernel_size: u64,
    /// Guest-physical address of the DTB.
    pub dtb: u64,
    /// Its size.
    pub dtb_size: u64,
    /// Guest-physical address and size of the initrd, if there is one.
    pub initrd: Option<(u64, u64)>,
}

/// Where the caller wants the DTB and initrd (`None`: after the kernel, aligned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placement {
    /// Guest-physical address of the DTB.
    pub dtb: Option<u64>,
    /// Guest-physical address of the initrd.
    pub initrd: Option<u64>,
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// Computes and checks the layout of a kernel with header `hdr`, a DTB of `dtb_size` bytes and
/// an initrd of `initrd_size` bytes (0: none) in the RAM region `[ram_base, ram_base + ram_size)`.
pub fn plan(
    hdr: &ImageHeader,
    dtb_size: u64,
    initrd_size: u64,
    ram_base: u64,
    ram_size: u64,
    at: Placement,
) -> Result<BootLayout, BootError> {
    let ram_end = ram_base.checked_add(ram_size).ok_or(BootError::OutOfRam)?;
    let fits = |a: u64, len: u64| a >= ram_base && a.checked_add(len).is_some_and(|e| e <= ram_end);
    let base = align_up(ram_base, KERNEL_BASE_ALIGN).ok_or(BootError::OutOfRam)?;
    let kernel = base
        .checked_add(hdr.text_offset)
        .ok_or(BootError::OutOfRam)?;
    if !fits(kernel, hdr.image_size) {
        return Err(BootError::OutOfRam);
    }
    if dtb_size > DTB_MAX {
        return Err(BootError::DtbTooBig);
    }
    let kernel_end = kernel + hdr.image_size;
    let dtb = match at.dtb {
        Some(a) if !a.is_multiple_of(DTB_ALIGN) => return Err(BootError::Misaligned),
        Some(a) => a,
        None => align_up(kernel_end, KERNEL_BASE_ALIGN).ok_or(BootError::OutOfRam)?,
    };
    if !fits(dtb, dtb_size) {
        return Err(BootError::OutOfRam);
    }
    let overlaps = |a: u64, al: u64, b: u64, bl: u64| a < b + bl && b < a + al;
    if overlaps(dtb, dtb_size, kernel, hdr.image_size) {
        return Err(BootError::Overlap);
    }
    let initrd = if initrd_size == 0 {
        None
    } else {
        let a = match at.initrd {
            Some(a) if !a.is_multiple_of(INITRD_ALIGN) => return Err(BootError::Misaligned),
            Some(a) => a,
            None => {
                let after = kernel_end.max(dtb + dtb_size);
                align_up(after, INITRD_ALIGN).ok_or(BootError::OutOfRam)?
            }
        };
        if !fits(a, initrd_size) {
            return Err(BootError::OutOfRam);
        }
        if overlaps(a, initrd_size, kernel, hdr.image_size)
            || overlaps(a, initrd_size, dtb, dtb_size)
        {
            return Err(BootError::Overlap);
        }
        Some((a, initrd_size))
    };
    Ok(BootLayout {
        kernel,
        kernel_size: hdr.image_size,
        dtb,
        dtb_size,
        initrd,
    })
}

/// The registers a boot vCPU starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRegs {
    /// Program counter: the kernel's load address.
    pub pc: u64,
    /// x0..x3: the DTB address, then zeros.
    pub x: [u64; 4],
    /// Saved program status: [`SPSR_EL1H_MASKED`].
    pub spsr: u64,
}

impl EntryRegs {
    /// The registers in seL4's `seL4_UserContext` order (pc, sp, spsr, x0, ...; the rest 0), for
    /// `seL4_TCB_WriteRegisters` with resume.
    pub fn sel4_context(&self) -> crate::fault::Sel4Context {
        use crate::fault::VcpuRegs;
        let mut c = crate::fault::Sel4Context([0; crate::fault::SEL4_CONTEXT_WORDS]);
        c.set_pc(self.pc);
        c.0[2] = self.spsr;
        for (n, &v) in (0u8..).zip(&self.x) {
            c.set_x(n, v);
        }
        c
    }
}

impl BootLayout {
    /// The boot vCPU's entry registers for this layout.
    pub fn entry(&self) -> EntryRegs {
        EntryRegs {
            pc: self.kernel,
            x: [self.dtb, 0, 0, 0],
            spsr: SPSR_EL1H_MASKED,
        }
    }
}

/// Checks the images, lays them out in `[ram_base, ram_base + ram_size)` and copies them into
/// `ram`. Returns the layout; [`BootLayout::entry`] gives the registers.
pub fn load<M: GuestMemory>(
    ram: &mut M,
    ram_base: u64,
    ram_size: u64,
    kernel: &[u8],
    dtb: &[u8],
    initrd: &[u8],
    at: Placement,
) -> Result<BootLayout, BootError> {
    let hdr = parse_image(kernel)?;
    let dtb_size = check_dtb(dtb)?;
    let layout = plan(&hdr, dtb_size, initrd.len() as u64, ram_base, ram_size, at)?;
    if !ram.contains(ram_base, ram_size) {
        return Err(BootError::OutOfRam);
    }
    ram.write(layout.kernel, kernel)?;
    // The rest of the kernel's reservation (its BSS) starts zeroed.
    let zeros = [0u8; 256];
    let mut at_bss = layout.kernel + kernel.len() as u64;
    let bss_end = layout.kernel + layout.kernel_size;
    while at_bss < bss_end {
        let n = usize::try_from((bss_end - at_bss).min(zeros.len() as u64)).unwrap_or(zeros.len());
        ram.write(at_bss, &zeros[..n])?;
        at_bss += n as u64;
    }
    let dtb_len = usize::try_from(dtb_size).map_err(|_| BootError::BadDtb)?;
    ram.write(layout.dtb, &dtb[..dtb_len])?;
    if let Some((a, _)) = layout.initrd {
        ram.write(a, initrd)?;
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::*;
    use crate::ram::GuestRam;
    use alloc::vec;
    use alloc::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn image(text_offset: u64, image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut k = vec![0u8; len];
        k[8..16].copy_from_slice(&text_offset.to_le_bytes());
        k[16..24].copy_from_slice(&image_size.to_le_bytes());
        k[24..32].copy_from_slice(&flags.to_le_bytes());
        k[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        for (i, b) in k.iter_mut().enumerate().skip(64) {
            *b = u8::try_from(i % 251).unwrap();
        }
        k
    }

    fn dtb(total: u32, len: usize) -> Vec<u8> {
        let mut d = vec![0x5au8; len];
        d[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        d[4..8].copy_from_slice(&total.to_be_bytes());
        d
    }

    #[test]
    fn header_checks() {
        let k = image(0x8_0000, 0x2000, 0b1010, 0x1000);
        assert_eq!(
            parse_image(&k),
            Ok(ImageHeader {
                text_offset: 0x8_0000,
                image_size: 0x2000,
                flags: 0b1010
            })
        );
        assert_eq!(parse_image(&k[..63]), Err(BootError::KernelTooShort));
        let mut bad = k.clone();
        bad[56] ^= 1;
        assert_eq!(parse_image(&bad), Err(BootError::BadImageMagic));
        assert_eq!(
            parse_image(&image(0, 0x2000, 1, 0x1000)),
            Err(BootError::BigEndian)
        );
        assert_eq!(
            parse_image(&image(0, 0x800, 0, 0x1000)),
            Err(BootError::BadImageSize)
        );
        // image_size 0: a pre-3.17 kernel, text_offset 0x80000 whatever the field says.
        let old = parse_image(&image(0x1234, 0, 0, 0x1000)).unwrap();
        assert_eq!(
            (old.text_offset, old.image_size),
            (LEGACY_TEXT_OFFSET, 0x1000)
        );
    }

    #[test]
    fn dtb_checks() {
        assert_eq!(check_dtb(&dtb(64, 100)), Ok(64));
        assert_eq!(check_dtb(&dtb(101, 100)), Err(BootError::BadDtb));
        assert_eq!(check_dtb(&dtb(8, 100)), Err(BootError::BadDtb));
        assert_eq!(
            check_dtb(&dtb(2 * 1024 * 1024 + 8, 100)),
            Err(BootError::DtbTooBig)
        );
        let mut d = dtb(64, 64);
        d[0] = 0;
        assert_eq!(check_dtb(&d), Err(BootError::BadDtb));
        assert_eq!(check_dtb(&[0xd0, 0x0d]), Err(BootError::BadDtb));
    }

    #[test]
    fn placement_rules() {
        let h = ImageHeader {
            text_offset: 0x8_0000,
            image_size: 3 * MIB,
            flags: 0,
        };
        // RAM not 2 MiB aligned: the kernel base is rounded up.
        let l = plan(
            &h,
            0x1000,
            0x3000,
            0x4010_0000,
            64 * MIB,
            Placement::default(),
        )
        .unwrap();
        assert_eq!(l.kernel, 0x4020_0000 + 0x8_0000);
        assert_eq!(l.kernel % KERNEL_BASE_ALIGN, 0x8_0000);
        assert_eq!(l.dtb % DTB_ALIGN, 0);
        assert!(l.dtb >= l.kernel + 3 * MIB);
        let (i, n) = l.initrd.unwrap();
        assert_eq!((i % INITRD_ALIGN, n), (0, 0x3000));
        assert!(i >= l.dtb + 0x1000);
        let ctx = l.entry().sel4_context().0;
        assert_eq!(&ctx[..4], &[l.kernel, 0, SPSR_EL1H_MASKED, l.dtb]);
        assert!(ctx[4..].iter().all(|&r| r == 0));
        assert_eq!(
            l.entry(),
            EntryRegs {
                pc: l.kernel,
                x: [l.dtb, 0, 0, 0],
                spsr: SPSR_EL1H_MASKED
            }
        );
        // Explicit placements: alignment, overlap, RAM bounds.
        let at = |dtb, initrd| Placement {
            dtb: Some(dtb),
            initrd: Some(initrd),
        };
        let base = 0x4000_0000;
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x2f0_0004, base + 0x300_0000)
            ),
            Err(BootError::Misaligned)
        );
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x2f0_0000, base + 0x300_0010)
            ),
            Err(BootError::Misaligned)
        );
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x10_0000, base + 0x300_0000)
            ),
            Err(BootError::Overlap)
        );
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x2f0_0000, base + 0x2f0_0000)
            ),
            Err(BootError::Overlap)
        );
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 64 * MIB, base + 0x300_0000)
            ),
            Err(BootError::OutOfRam)
        );
        assert_eq!(
            plan(&h, 64, 1, base, 64 * MIB, at(base - 8, base + 0x300_0000)),
            Err(BootError::OutOfRam)
        );
        assert_eq!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x3f0_0000, base + 0x400_0000)
            ),
            Err(BootError::OutOfRam)
        );
        assert!(
            plan(
                &h,
                64,
                1,
                base,
                64 * MIB,
                at(base + 0x3f0_0000, base + 0x3ff_f000)
            )
            .is_ok()
        );
        // Kernel too big for RAM; DTB over 2 MiB; address-space overflow.
        assert_eq!(
            plan(&h, 64, 0, base, 3 * MIB, Placement::default()),
            Err(BootError::OutOfRam)
        );
        assert_eq!(
            plan(&h, DTB_MAX + 8, 0, base, 64 * MIB, Placement::default()),
            Err(BootError::DtbTooBig)
        );
        assert_eq!(
            plan(&h, 64, 0, u64::MAX - MIB, MIB, Placement::default()),
            Err(BootError::OutOfRam)
        );
        let huge = ImageHeader {
            text_offset: u64::MAX,
            image_size: 1,
            flags: 0,
        };
        assert_eq!(
            plan(&huge, 64, 0, base, 64 * MIB, Placement::default()),
            Err(BootError::OutOfRam)
        );
    }

    #[test]
    fn load_copies_into_guest_ram() {
        let size = 8 * MIB;
        let mut mem = vec![0xffu8; usize::try_from(size).unwrap()];
        let base = 0x4000_0000;
        let mut ram = GuestRam::single(base, &mut mem).unwrap();
        let k = image(0x8_0000, 0x3000, 0, 0x1800);
        let d = dtb(48, 64);
        let initrd = [7u8; 100];
        let l = load(&mut ram, base, size, &k, &d, &initrd, Placement::default()).unwrap();
        let mut got = vec![0u8; k.len()];
        ram.read(l.kernel, &mut got).unwrap();
        assert_eq!(got, k);
        // BSS zeroed up to image_size, the byte after untouched.
        assert!(
            ram.slice(l.kernel + 0x1800, 0x1800)
                .unwrap()
                .iter()
                .all(|&b| b == 0)
        );
        assert_eq!(ram.slice(l.kernel + 0x3000, 1).unwrap(), &[0xff]);
        // Only totalsize bytes of the DTB are copied.
        assert_eq!(ram.slice(l.dtb, 48).unwrap(), &d[..48]);
        assert_eq!(ram.slice(l.dtb + 48, 1).unwrap(), &[0xff]);
        let (ia, _) = l.initrd.unwrap();
        assert_eq!(ram.slice(ia, 100).unwrap(), &initrd);
        // RAM that the region claims but guest memory lacks is refused.
        assert_eq!(
            load(
                &mut ram,
                base,
                2 * size,
                &k,
                &d,
                &initrd,
                Placement::default()
            ),
            Err(BootError::OutOfRam)
        );
    }
}
