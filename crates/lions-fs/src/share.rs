// SPDX-License-Identifier: BSD-2-Clause
//! The share region: the data region of one FS connection, which both the client and the server
//! map. Buffers are `{offset, size}` pairs into it ([`FsBuffer`]); every access goes through a
//! bounds check ([`check_buffer`]) and is a copy: no reference into the region is ever made, so
//! a peer writing the region at the same time can garble only the bytes of its own request.

use crate::queue::{
    BufferError, FS_MAX_NAME_LENGTH, FS_MAX_PATH_LENGTH, FsBuffer, Status, check_buffer,
};
use core::marker::PhantomData;
use core::ptr::NonNull;
use lions_os::RegionResource;

/// Bytes of a path buffer: the longest path the protocol allows.
#[allow(clippy::cast_possible_truncation)] // 4095
pub const PATH_BUFFER_BYTES: usize = FS_MAX_PATH_LENGTH as usize;

/// A share region mapped in this component for `'a`.
#[derive(Debug)]
pub struct ShareRegion<'a> {
    base: NonNull<u8>,
    len: u64,
    _region: PhantomData<&'a [u8]>,
}

impl<'a> ShareRegion<'a> {
    /// The region of `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + len` is mapped read-write in this component for `'a` and is only ever
    /// accessed by copies (this type, and the peer).
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self {
            base,
            len: len as u64,
            _region: PhantomData,
        }
    }

    /// The region a config names; `None` when it is not mapped here.
    ///
    /// # Safety
    /// As for [`new`](Self::new), for the region `r` describes.
    pub unsafe fn from_resource(r: &RegionResource) -> Option<Self> {
        let (base, len) = r.as_raw_parts()?;
        // SAFETY: forwarded from the caller.
        Some(unsafe { Self::new(base, len) })
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the region is empty (then every buffer is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checked byte range `buf` covers, for `len` bytes from `at` inside it.
    fn span(&self, buf: FsBuffer, at: u64, len: usize) -> Result<usize, BufferError> {
        let r = check_buffer(buf, self.len)?;
        let start = r.start.checked_add(at);
        match start.and_then(|s| Some((s, s.checked_add(len as u64)?))) {
            // `end <= self.len`, which came from a `usize`.
            #[allow(clippy::cast_possible_truncation)]
            Some((s, end)) if end <= r.end => Ok(s as usize),
            _ => Err(BufferError::OutOfBounds(buf)),
        }
    }

    /// Copy `out.len()` bytes from `at` bytes into `buf` out of the region.
    pub fn read(&self, buf: FsBuffer, at: u64, out: &mut [u8]) -> Result<(), BufferError> {
        let start = self.span(buf, at, out.len())?;
        // SAFETY: `start + out.len()` lies inside the region (checked above), which is mapped for
        // `'a`; `out` is local memory, so the two do not overlap. A raw copy, no reference into
        // the region: bytes the peer changes meanwhile are only garbled, never invalid (`u8`).
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(start),
                out.as_mut_ptr(),
                out.len(),
            );
        }
        Ok(())
    }

    /// Copy `data` into the region, `at` bytes into `buf`.
    pub fn write(&self, buf: FsBuffer, at: u64, data: &[u8]) -> Result<(), BufferError> {
        let start = self.span(buf, at, data.len())?;
        // SAFETY: as in `read`, with the roles of the two ranges swapped.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.base.as_ptr().add(start),
                data.len(),
            );
        }
        Ok(())
    }

    /// Copy the path in `buf` into `scratch` and check it: inside the region, at most
    /// [`FS_MAX_PATH_LENGTH`] bytes, UTF-8 without NUL ([`Status::InvalidPath`] otherwise), every
    /// component at most [`FS_MAX_NAME_LENGTH`] bytes ([`Status::InvalidName`]). A buffer outside
    /// the region is [`Status::InvalidBuffer`].
    pub fn copy_path<'s>(
        &self,
        buf: FsBuffer,
        scratch: &'s mut [u8; PATH_BUFFER_BYTES],
    ) -> Result<&'s str, Status> {
        let r = check_buffer(buf, self.len).map_err(BufferError::status)?;
        let n = r.end - r.start;
        if n > FS_MAX_PATH_LENGTH {
            return Err(Status::InvalidPath);
        }
        // `n <= 4095`.
        #[allow(clippy::cast_possible_truncation)]
        let out = &mut scratch[..n as usize];
        self.read(buf, 0, out).map_err(BufferError::status)?;
        check_path_text(out)
    }
}

/// The checks of [`ShareRegion::copy_path`] on bytes already copied.
pub fn check_path_text(bytes: &[u8]) -> Result<&str, Status> {
    if bytes.contains(&0) {
        return Err(Status::InvalidPath);
    }
    let path = core::str::from_utf8(bytes).map_err(|_| Status::InvalidPath)?;
    if path.split('/').any(|c| c.len() as u64 > FS_MAX_NAME_LENGTH) {
        return Err(Status::InvalidName);
    }
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn region(mem: &mut [u8]) -> ShareRegion<'_> {
        // SAFETY: `mem` is borrowed for the region's lifetime and accessed only through it.
        unsafe { ShareRegion::new(NonNull::new(mem.as_mut_ptr()).unwrap(), mem.len()) }
    }

    #[test]
    fn reads_and_writes_stay_inside_the_buffer() {
        let mut mem = [0u8; 64];
        let r = region(&mut mem);
        let b = FsBuffer {
            offset: 8,
            size: 16,
        };
        r.write(b, 4, b"abcd").unwrap();
        let mut out = [0u8; 4];
        r.read(b, 4, &mut out).unwrap();
        assert_eq!(&out, b"abcd");
        r.write(b, 12, b"wxyz").unwrap();
        assert!(r.write(b, 13, b"wxyz").is_err(), "one byte past the buffer");
        assert!(r.read(b, u64::MAX, &mut out).is_err(), "offset overflow");
        let past = FsBuffer {
            offset: 60,
            size: 8,
        };
        assert_eq!(
            r.read(past, 0, &mut out),
            Err(BufferError::OutOfBounds(past))
        );
        let wrap = FsBuffer {
            offset: u64::MAX - 1,
            size: 4,
        };
        assert!(r.write(wrap, 0, b"x").is_err(), "offset + size overflows");
        let _ = r;
        assert_eq!(&mem[12..16], b"abcd");
        assert_eq!(&mem[20..24], b"wxyz");
    }

    #[test]
    fn paths_are_checked() {
        let mut mem = vec![b'a'; 8192];
        mem[300] = b'/';
        let r = region(&mut mem);
        let mut scratch = [0u8; PATH_BUFFER_BYTES];
        let b = |offset, size| FsBuffer { offset, size };
        assert_eq!(r.copy_path(b(0, 4), &mut scratch), Ok("aaaa"));
        assert_eq!(
            r.copy_path(b(0, 4095), &mut scratch),
            Err(Status::InvalidName),
            "a 4095-byte path whose components exceed 255"
        );
        assert_eq!(
            r.copy_path(b(0, 4096), &mut scratch),
            Err(Status::InvalidPath)
        );
        assert_eq!(
            r.copy_path(b(0, 0), &mut scratch),
            Err(Status::InvalidBuffer)
        );
        assert_eq!(
            r.copy_path(b(8190, 4), &mut scratch),
            Err(Status::InvalidBuffer)
        );
        assert_eq!(
            r.copy_path(b(300 - 255, 255 + 1 + 255), &mut scratch),
            Ok(&*format!("{}/{}", "a".repeat(255), "a".repeat(255)))
        );
        assert_eq!(
            r.copy_path(b(300 - 256, 256 + 1), &mut scratch),
            Err(Status::InvalidName),
            "256-byte component"
        );
        assert_eq!(check_path_text(b"a\0b"), Err(Status::InvalidPath));
        assert_eq!(check_path_text(&[0xff, 0xfe]), Err(Status::InvalidPath));
        assert_eq!(check_path_text("/dir/ü".as_bytes()), Ok("/dir/ü"));
    }

    proptest! {
        #[test]
        fn access_is_in_bounds_exactly_when_the_arithmetic_says(
            offset in any::<u64>(), size in any::<u64>(), at in any::<u64>(), len in 0usize..80,
        ) {
            let mut mem = [0u8; 64];
            let r = region(&mut mem);
            let b = FsBuffer { offset, size };
            let ok = size != 0
                && u128::from(offset) + u128::from(size) <= 64
                && u128::from(at) + len as u128 <= u128::from(size);
            let mut out = vec![0u8; len];
            prop_assert_eq!(r.read(b, at, &mut out).is_ok(), ok);
            prop_assert_eq!(r.write(b, at, &out).is_ok(), ok);
        }
    }
}
