// SPDX-License-Identifier: BSD-2-Clause
//! Config blobs (`.data` files) read into memory aligned for any config struct.

use std::path::Path;

/// The bytes of a config blob, 8-byte aligned so a `#[repr(C)]` config can be viewed in place.
#[derive(Debug, Clone)]
pub struct AlignedBlob {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBlob {
    /// Copy `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Self {
            words,
            len: bytes.len(),
        }
    }

    /// Read a file.
    pub fn read(path: impl AsRef<Path>) -> std::io::Result<Self> {
        Ok(Self::new(&std::fs::read(path)?))
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns at least `len` initialised bytes (`len <= 8 * words.len()`), u8 has
        // alignment 1, and the slice borrows `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bytes_and_alignment() {
        let src: Vec<u8> = (0..=20).collect();
        let b = AlignedBlob::new(&src);
        assert_eq!(b.bytes(), &src[..]);
        assert_eq!(b.bytes().as_ptr().align_offset(8), 0);
        assert!(AlignedBlob::new(&[]).bytes().is_empty());
    }
}
