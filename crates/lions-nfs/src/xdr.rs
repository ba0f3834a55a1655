// SPDX-License-Identifier: BSD-2-Clause
//! XDR (RFC 4506): the external data representation every ONC RPC message uses.
//!
//! Every item is a multiple of four bytes, big-endian: `int`/`unsigned int`/`enum` are 4 bytes,
//! `hyper` 8, `bool` an `enum` that is 0 or 1; variable-length `opaque<N>` and `string<N>` are a
//! 4-byte length, the bytes, and zero padding to the next multiple of four; fixed `opaque[N]` is
//! the bytes and padding; `T *` (optional) is a `bool` then `T` when true.
//!
//! [`Encoder`] appends to a `Vec<u8>`. [`Decoder`] reads from a borrowed slice and is **total**:
//! every read is bounds-checked and returns [`XdrError`] on a short buffer, a bad `bool`, or a
//! length above the item's declared maximum; variable-length items are returned as sub-slices of
//! the input, so decoding never allocates.

use alloc::vec::Vec;

/// Why a decode failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdrError {
    /// The input ended inside an item.
    Truncated,
    /// A `bool` or discriminant had a value the type does not have.
    BadDiscriminant(u32),
    /// A variable-length item declared more bytes (or elements) than its maximum.
    TooLong {
        /// The declared length.
        len: u32,
        /// The maximum the type allows.
        max: u32,
    },
    /// Bytes were left over after the last item.
    TrailingBytes,
}

impl core::fmt::Display for XdrError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XdrError::Truncated => f.write_str("XDR input truncated"),
            XdrError::BadDiscriminant(v) => write!(f, "XDR discriminant {v} out of range"),
            XdrError::TooLong { len, max } => write!(f, "XDR length {len} above maximum {max}"),
            XdrError::TrailingBytes => f.write_str("XDR input has trailing bytes"),
        }
    }
}

/// Padding needed after `len` bytes to reach a multiple of four.
pub const fn pad(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// Appends XDR items to a byte vector.
#[derive(Debug)]
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Encoder { out }
    }

    /// Bytes written so far (the whole vector, including what was there before).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// `unsigned int` (also `enum`).
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `int`.
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `unsigned hyper`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `hyper`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// `bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(u32::from(v))
    }

    /// Fixed-length `opaque[N]`: the bytes and padding.
    pub fn fixed_opaque(&mut self, v: &[u8]) -> &mut Self {
        self.out.extend_from_slice(v);
        self.out.extend_from_slice(&[0; 3][..pad(v.len())]);
        self
    }

    /// Variable-length `opaque<>` or `string<>`: length, bytes, padding. The caller keeps `v`
    /// within the type's maximum (this is what the peer checks); lengths above `u32::MAX` are
    /// a caller bug and are truncated to the encodable prefix.
    pub fn opaque(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        let v = &v[..len as usize];
        self.u32(len).fixed_opaque(v)
    }

    /// `T *` with `T` absent or present (encoded by `f`).
    pub fn optional<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) -> &mut Self {
        match v {
            None => self.bool(false),
            Some(t) => {
                self.bool(true);
                f(self, t);
                self
            }
        }
    }
}

/// Reads XDR items from a borrowed byte slice; never panics, never allocates.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf }
    }

    /// The bytes not yet read.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Error unless every byte was read.
    pub fn finish(&self) -> Result<(), XdrError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(XdrError::TrailingBytes)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        if n > self.buf.len() {
            return Err(XdrError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// `unsigned int` (also `enum`).
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// `int`.
    pub fn i32(&mut self) -> Result<i32, XdrError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// `unsigned hyper`.
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// `hyper`.
    pub fn i64(&mut self) -> Result<i64, XdrError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// `bool`: 0 or 1, anything else an error.
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(XdrError::BadDiscriminant(v)),
        }
    }

    /// Fixed-length `opaque[n]`: `n` bytes and the padding after them.
    pub fn fixed_opaque(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let v = self.take(n)?;
        self.take(pad(n))?;
        Ok(v)
    }

    /// Fixed-length `opaque[N]` as an array.
    pub fn fixed_array<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.fixed_opaque(N)?);
        Ok(a)
    }

    /// Variable-length `opaque<max>` or `string<max>` (use `u32::MAX` for no maximum: the
    /// input's own length still bounds it).
    pub fn opaque(&mut self, max: u32) -> Result<&'a [u8], XdrError> {
        let len = self.u32()?;
        if len > max {
            return Err(XdrError::TooLong { len, max });
        }
        self.fixed_opaque(len as usize)
    }

    /// `T *`: `None` or `Some` of what `f` decodes.
    pub fn optional<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, XdrError>,
    ) -> Result<Option<T>, XdrError> {
        if self.bool()? {
            f(self).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn encodes_padding_and_order() {
        let mut v = Vec::new();
        Encoder::new(&mut v)
            .u32(1)
            .opaque(b"abcde")
            .bool(true)
            .u64(0x0102_0304_0506_0708);
        assert_eq!(
            v,
            vec![
                0, 0, 0, 1, 0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0, 0, 0, 0, 1, 1, 2, 3,
                4, 5, 6, 7, 8
            ]
        );
        let mut d = Decoder::new(&v);
        assert_eq!(d.u32(), Ok(1));
        assert_eq!(d.opaque(5), Ok(&b"abcde"[..]));
        assert_eq!(d.bool(), Ok(true));
        assert_eq!(d.u64(), Ok(0x0102_0304_0506_0708));
        assert_eq!(d.finish(), Ok(()));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            Decoder::new(&[0, 0, 0, 2]).bool(),
            Err(XdrError::BadDiscriminant(2))
        );
        assert_eq!(Decoder::new(&[0, 0, 1]).u32(), Err(XdrError::Truncated));
        assert_eq!(
            Decoder::new(&[0, 0, 0, 9, 1, 2, 3]).opaque(8),
            Err(XdrError::TooLong { len: 9, max: 8 })
        );
        // A huge declared length is bounded by the input, not allocated.
        assert_eq!(
            Decoder::new(&[0xff, 0xff, 0xff, 0xff, 1]).opaque(u32::MAX),
            Err(XdrError::Truncated)
        );
        // Missing padding is truncation.
        assert_eq!(
            Decoder::new(&[0, 0, 0, 1, 7]).opaque(4),
            Err(XdrError::Truncated)
        );
        assert_eq!(Decoder::new(&[0]).finish(), Err(XdrError::TrailingBytes));
    }
}
