// SPDX-License-Identifier: BSD-2-Clause
//! ONC RPC record marking over a byte stream (RFC 5531 §11).
//!
//! A record (one RPC message) is sent as one or more fragments; each fragment is a 4-byte
//! big-endian header, whose top bit says "last fragment of the record" and whose low 31 bits
//! are the fragment's length, then that many bytes. We send every record as one fragment
//! ([`begin_record`] / [`end_record`]); [`RecordReader`] accepts any fragmentation, and any
//! split of the stream into reads, and refuses a record longer than its configured maximum
//! before buffering it (a server cannot make us allocate without bound).

use alloc::vec::Vec;

/// The "last fragment" bit of a fragment header.
pub const LAST_FRAGMENT: u32 = 1 << 31;

/// Start a record in `out`: reserves its header; returns where it starts.
pub fn begin_record(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Finish the record begun at `start`: writes the header of its single, last fragment.
/// Returns `false` (and leaves the header zero) if the body exceeds 2^31 - 1 bytes.
pub fn end_record(out: &mut [u8], start: usize) -> bool {
    let Some(body) = out.len().checked_sub(start + 4) else {
        return false;
    };
    let Ok(len) = u32::try_from(body) else {
        return false;
    };
    if len & LAST_FRAGMENT != 0 {
        return false;
    }
    out[start..start + 4].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
    true
}

/// Why a stream is no longer readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A record would exceed the reader's maximum size (the fragment headers so far declare
    /// `len` bytes).
    TooLarge {
        /// Bytes the record would have (at least).
        len: u64,
    },
}

/// Reassembles records from a stream read in arbitrary pieces.
#[derive(Debug)]
pub struct RecordReader {
    max_record: usize,
    header: [u8; 4],
    header_len: usize,
    /// Bytes still to come in the current fragment (0: a header is next).
    frag_left: usize,
    /// The current fragment is the record's last.
    last: bool,
    record: Vec<u8>,
}

impl RecordReader {
    /// A reader that accepts records of at most `max_record` bytes.
    pub fn new(max_record: usize) -> Self {
        RecordReader {
            max_record,
            header: [0; 4],
            header_len: 0,
            frag_left: 0,
            last: false,
            record: Vec::new(),
        }
    }

    /// Forget any partial record (the connection was dropped).
    pub fn reset(&mut self) {
        self.header_len = 0;
        self.frag_left = 0;
        self.last = false;
        self.record.clear();
    }

    /// Consume bytes from `input` until it is used up or a record is complete. Returns how many
    /// bytes were consumed and the record, if one completed; the caller calls again with the
    /// rest. An error means the stream cannot be read further (reset and reconnect).
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), FrameError> {
        let mut used = 0;
        loop {
            if self.frag_left == 0 && self.header_len < 4 {
                // Reading a fragment header.
                let n = (4 - self.header_len).min(input.len() - used);
                self.header[self.header_len..self.header_len + n]
                    .copy_from_slice(&input[used..used + n]);
                self.header_len += n;
                used += n;
                if self.header_len < 4 {
                    return Ok((used, None));
                }
                let h = u32::from_be_bytes(self.header);
                self.last = h & LAST_FRAGMENT != 0;
                let len = (h & !LAST_FRAGMENT) as usize;
                let total = self.record.len() as u64 + len as u64;
                if total > self.max_record as u64 {
                    return Err(FrameError::TooLarge { len: total });
                }
                self.frag_left = len;
            }
            // Fragment body (possibly empty).
            let n = self.frag_left.min(input.len() - used);
            self.record.extend_from_slice(&input[used..used + n]);
            self.frag_left -= n;
            used += n;
            if self.frag_left > 0 {
                return Ok((used, None));
            }
            self.header_len = 0;
            if self.last {
                self.last = false;
                return Ok((used, Some(core::mem::take(&mut self.record))));
            }
            if used == input.len() {
                return Ok((used, None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn two_fragments_one_record() {
        let mut r = RecordReader::new(16);
        let s = [0, 0, 0, 2, b'a', b'b', 0x80, 0, 0, 1, b'c', 0x80, 0, 0, 0];
        let (n, rec) = r.push(&s).unwrap();
        assert_eq!((n, rec), (11, Some(vec![b'a', b'b', b'c'])));
        let (n, rec) = r.push(&s[11..]).unwrap();
        assert_eq!((n, rec), (4, Some(vec![])));
    }

    #[test]
    fn refuses_oversized_record_before_buffering() {
        let mut r = RecordReader::new(8);
        assert_eq!(
            r.push(&[0x80, 0, 0, 9]),
            Err(FrameError::TooLarge { len: 9 })
        );
        let mut r = RecordReader::new(8);
        assert_eq!(r.push(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).unwrap(), (9, None));
        assert_eq!(
            r.push(&[0x80, 0, 0, 4]),
            Err(FrameError::TooLarge { len: 9 })
        );
    }

    #[test]
    fn writer_header() {
        let mut v = vec![9];
        let s = begin_record(&mut v);
        v.extend_from_slice(b"xyz");
        assert!(end_record(&mut v, s));
        assert_eq!(v, [9, 0x80, 0, 0, 3, b'x', b'y', b'z']);
    }
}
