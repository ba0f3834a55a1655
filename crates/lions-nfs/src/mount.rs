// SPDX-License-Identifier: BSD-2-Clause
//! MOUNT version 3 (RFC 1813 appendix I), program 100005: MNT and UMNT.
//!
//! MNT takes a `dirpath` (`string<1024>`) and returns `mountstat3`, then on success the export's
//! root `fhandle3` (`opaque<64>`) and the auth flavours the server accepts (`int<>`). UMNT takes
//! the same `dirpath` and returns nothing.

use crate::nfs3::FileHandle;
use crate::xdr::{Decoder, Encoder, XdrError};

/// MOUNT program number.
pub const PROGRAM: u32 = 100_005;
/// MOUNT version.
pub const VERSION: u32 = 3;
/// MNT procedure.
pub const MNT: u32 = 1;
/// UMNT procedure.
pub const UMNT: u32 = 3;
/// Longest `dirpath`.
pub const MNTPATHLEN: usize = 1024;

/// MNT or UMNT arguments: the export path (cut at 1024 bytes).
pub fn encode_dirpath(e: &mut Encoder<'_>, path: &[u8]) {
    e.opaque(&path[..path.len().min(MNTPATHLEN)]);
}

/// Why MNT failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// Malformed reply.
    Xdr(XdrError),
    /// Non-zero `mountstat3` (e.g. 2 `NOENT`, 13 `ACCES`).
    Status(u32),
}

impl From<XdrError> for MountError {
    fn from(e: XdrError) -> Self {
        MountError::Xdr(e)
    }
}

/// Decode an MNT result: the root handle and whether AUTH_SYS (1) is among the flavours
/// (`true` also when the server lists none).
pub fn decode_mnt(body: &[u8]) -> Result<(FileHandle, bool), MountError> {
    let mut d = Decoder::new(body);
    let st = d.u32()?;
    if st != 0 {
        return Err(MountError::Status(st));
    }
    let fh = FileHandle::decode(&mut d)?;
    let n = d.u32()?;
    // Each flavour is 4 bytes: a count above what is left is malformed.
    if n as usize > d.remaining().len() / 4 {
        return Err(XdrError::Truncated.into());
    }
    let mut sys = n == 0;
    for _ in 0..n {
        sys |= d.u32()? == crate::rpc::AUTH_SYS;
    }
    d.finish()?;
    Ok((fh, sys))
}
