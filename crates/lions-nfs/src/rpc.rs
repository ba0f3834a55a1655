// SPDX-License-Identifier: BSD-2-Clause
//! ONC RPC version 2 messages (RFC 5531) and the AUTH_NONE and AUTH_SYS credentials.
//!
//! A call is `xid, CALL(0), rpcvers = 2, prog, vers, proc, cred, verf` then the procedure's
//! arguments; `cred` and `verf` are `opaque_auth { flavor, opaque body<400> }`. AUTH_SYS's body
//! is `stamp, machinename<255>, uid, gid, gids<16>`. A reply is `xid, REPLY(1)` then either
//! `MSG_ACCEPTED(0), verf, accept_stat` (with the results after `SUCCESS`, or the supported
//! version range after `PROG_MISMATCH`) or `MSG_DENIED(1)` with `RPC_MISMATCH` (version range)
//! or `AUTH_ERROR` (an `auth_stat`). [`decode_reply`] checks all of it and hands back the
//! results' bytes.

use crate::xdr::{Decoder, Encoder, XdrError};
use alloc::vec::Vec;

/// `AUTH_NONE` flavour.
pub const AUTH_NONE: u32 = 0;
/// `AUTH_SYS` (`AUTH_UNIX`) flavour.
pub const AUTH_SYS: u32 = 1;
/// Maximum body of an `opaque_auth`.
pub const MAX_AUTH_BYTES: u32 = 400;

/// The credential sent with every call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No credential.
    None,
    /// UNIX-style identity.
    Sys {
        /// Arbitrary id chosen by the caller.
        stamp: u32,
        /// Client host name, at most 255 bytes (longer is cut).
        machine_name: Vec<u8>,
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
        /// Supplementary groups, at most 16 (more are dropped).
        gids: Vec<u32>,
    },
}

impl Auth {
    /// Encode as an `opaque_auth`.
    pub fn encode(&self, e: &mut Encoder<'_>) {
        match self {
            Auth::None => {
                e.u32(AUTH_NONE).u32(0);
            }
            Auth::Sys {
                stamp,
                machine_name,
                uid,
                gid,
                gids,
            } => {
                let name = &machine_name[..machine_name.len().min(255)];
                let gids = &gids[..gids.len().min(16)];
                // 4 stamp + 4 + name + pad + uid + gid + 4 + 4 * gids
                // At most 4 + 4 + 256 + 8 + 4 + 64 bytes: fits the u32s below.
                let body =
                    4 + 4 + name.len() + crate::xdr::pad(name.len()) + 8 + 4 + 4 * gids.len();
                #[allow(clippy::cast_possible_truncation)]
                e.u32(AUTH_SYS).u32(body as u32);
                e.u32(*stamp).opaque(name).u32(*uid).u32(*gid);
                #[allow(clippy::cast_possible_truncation)]
                e.u32(gids.len() as u32);
                for g in gids {
                    e.u32(*g);
                }
            }
        }
    }
}

/// Encode a call header (everything before the arguments).
pub fn encode_call(e: &mut Encoder<'_>, xid: u32, prog: u32, vers: u32, proc: u32, auth: &Auth) {
    e.u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc);
    auth.encode(e);
    // Verifier: AUTH_NONE.
    e.u32(AUTH_NONE).u32(0);
}

/// Why a reply did not carry results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// The reply could not be decoded.
    Xdr(XdrError),
    /// Not a reply (`msg_type` was this).
    NotReply(u32),
    /// `PROG_UNAVAIL`.
    ProgUnavail,
    /// `PROG_MISMATCH`: the server supports versions `low..=high`.
    ProgMismatch {
        /// Lowest supported.
        low: u32,
        /// Highest supported.
        high: u32,
    },
    /// `PROC_UNAVAIL`.
    ProcUnavail,
    /// `GARBAGE_ARGS`.
    GarbageArgs,
    /// `SYSTEM_ERR`.
    SystemErr,
    /// `MSG_DENIED / RPC_MISMATCH`: the server speaks RPC versions `low..=high`.
    RpcMismatch {
        /// Lowest supported.
        low: u32,
        /// Highest supported.
        high: u32,
    },
    /// `MSG_DENIED / AUTH_ERROR` with this `auth_stat`.
    AuthError(u32),
}

impl From<XdrError> for RpcError {
    fn from(e: XdrError) -> Self {
        RpcError::Xdr(e)
    }
}

/// Peek at a message's xid (the first word).
pub fn reply_xid(msg: &[u8]) -> Result<u32, XdrError> {
    Decoder::new(msg).u32()
}

/// Decode a reply message: its xid, and the results (the bytes after `SUCCESS`) or why there
/// are none.
pub fn decode_reply(msg: &[u8]) -> (Result<u32, XdrError>, Result<&[u8], RpcError>) {
    let mut d = Decoder::new(msg);
    let xid = match d.u32() {
        Ok(x) => x,
        Err(e) => return (Err(e), Err(e.into())),
    };
    (Ok(xid), decode_reply_body(&mut d))
}

fn decode_reply_body<'a>(d: &mut Decoder<'a>) -> Result<&'a [u8], RpcError> {
    match d.u32()? {
        1 => {}
        t => return Err(RpcError::NotReply(t)),
    }
    match d.u32()? {
        0 => {
            let _flavor = d.u32()?;
            d.opaque(MAX_AUTH_BYTES)?;
            match d.u32()? {
                0 => Ok(d.remaining()),
                1 => Err(RpcError::ProgUnavail),
                2 => Err(RpcError::ProgMismatch {
                    low: d.u32()?,
                    high: d.u32()?,
                }),
                3 => Err(RpcError::ProcUnavail),
                4 => Err(RpcError::GarbageArgs),
                5 => Err(RpcError::SystemErr),
                v => Err(XdrError::BadDiscriminant(v).into()),
            }
        }
        1 => match d.u32()? {
            0 => Err(RpcError::RpcMismatch {
                low: d.u32()?,
                high: d.u32()?,
            }),
            1 => Err(RpcError::AuthError(d.u32()?)),
            v => Err(XdrError::BadDiscriminant(v).into()),
        },
        v => Err(XdrError::BadDiscriminant(v).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn auth_sys_length_matches_body() {
        let mut v = Vec::new();
        let a = Auth::Sys {
            stamp: 7,
            machine_name: b"lions".to_vec(),
            uid: 0,
            gid: 0,
            gids: vec![1, 2],
        };
        a.encode(&mut Encoder::new(&mut v));
        let mut d = Decoder::new(&v);
        assert_eq!(d.u32(), Ok(AUTH_SYS));
        let body = d.opaque(MAX_AUTH_BYTES).unwrap();
        assert_eq!(d.finish(), Ok(()));
        let mut b = Decoder::new(body);
        assert_eq!(b.u32(), Ok(7));
        assert_eq!(b.opaque(255), Ok(&b"lions"[..]));
        assert_eq!((b.u32(), b.u32(), b.u32()), (Ok(0), Ok(0), Ok(2)));
        assert_eq!((b.u32(), b.u32()), (Ok(1), Ok(2)));
        assert_eq!(b.finish(), Ok(()));
    }

    #[test]
    fn reply_variants() {
        let ok = [
            0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        ];
        assert_eq!(decode_reply(&ok), (Ok(5), Ok(&[9u8][..])));
        let mismatch = [
            0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0,
            0, 0, 4,
        ];
        assert_eq!(
            decode_reply(&mismatch).1,
            Err(RpcError::ProgMismatch { low: 2, high: 4 })
        );
        let denied = [0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(decode_reply(&denied).1, Err(RpcError::AuthError(2)));
        let call = [0, 0, 0, 5, 0, 0, 0, 0];
        assert_eq!(decode_reply(&call).1, Err(RpcError::NotReply(0)));
    }
}
