// SPDX-License-Identifier: BSD-2-Clause
//! Portmapper / rpcbind version 2 (RFC 1833), program 100000: GETPORT.
//!
//! GETPORT takes `mapping { prog, vers, prot, port }` (port ignored; `prot` 6 for TCP) and
//! returns the port as an `unsigned int`, 0 when the program is not registered.

use crate::xdr::{Decoder, Encoder, XdrError};

/// Portmapper program number.
pub const PROGRAM: u32 = 100_000;
/// Portmapper version.
pub const VERSION: u32 = 2;
/// The port the portmapper listens on.
pub const PORT: u16 = 111;
/// GETPORT procedure.
pub const GETPORT: u32 = 3;
/// `IPPROTO_TCP`.
pub const PROT_TCP: u32 = 6;

/// GETPORT arguments for `prog`/`vers` over TCP.
pub fn encode_getport(e: &mut Encoder<'_>, prog: u32, vers: u32) {
    e.u32(prog).u32(vers).u32(PROT_TCP).u32(0);
}

/// Decode a GETPORT result: `None` when not registered; an error if not a port.
pub fn decode_getport(body: &[u8]) -> Result<Option<u16>, XdrError> {
    let mut d = Decoder::new(body);
    let p = d.u32()?;
    d.finish()?;
    match p {
        0 => Ok(None),
        p => u16::try_from(p)
            .map(Some)
            .map_err(|_| XdrError::BadDiscriminant(p)),
    }
}
