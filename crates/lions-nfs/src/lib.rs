// SPDX-License-Identifier: BSD-2-Clause
//! # lions-nfs: an NFSv3 client for LionsOS components
//!
//! No NFS, XDR or ONC RPC crate on crates.io builds without `std`, so this is ours: no_std +
//! `alloc`, sans-IO (the caller owns the TCP connection: a smoltcp socket through
//! `lions_net::client` on seL4, a `std::net::TcpStream` in tests).
//!
//! | module | protocol |
//! |---|---|
//! | [`xdr`] | XDR (RFC 4506): [`Encoder`](xdr::Encoder), total [`Decoder`](xdr::Decoder) |
//! | [`record`] | ONC RPC record marking over TCP (RFC 5531 §11) |
//! | [`rpc`] | RPC v2 call and reply messages, AUTH_NONE and AUTH_SYS |
//! | [`client`] | [`RpcClient`]: many calls in flight matched by xid, retransmission after reconnect |
//! | [`portmap`] | portmapper v2 GETPORT (program 100000) |
//! | [`mount_session`] | [`Mounter`](mount_session::Mounter): GETPORT (unless configured) and MNT, sans-IO, to the root handle and NFS port |
//! | [`mount`] | MOUNT v3 MNT and UMNT (program 100005) |
//! | [`fs`] | [`NfsFs`](fs::NfsFs): file-system operations by path (the LionsOS FS command set) as chains of NFS calls, many at once |
//! | `fs_server` | `NfsBackend`: the LionsOS FS protocol over [`NfsFs`](fs::NfsFs), a `lions_fs::DeferredBackend` (feature `fs-server`) |
//! | [`nfs3`] | NFS v3 (program 100003): GETATTR, SETATTR, LOOKUP, ACCESS, READ, WRITE, CREATE, MKDIR, REMOVE, RMDIR, RENAME, READDIR, READDIRPLUS, FSSTAT, FSINFO, COMMIT |
//!
//! ## Operation
//!
//! A session is: GETPORT of MOUNT and NFS from the portmapper at port 111 (or ports from the
//! configuration); MNT of the export path on the MOUNT port, which yields the root file handle;
//! then NFS calls on the NFS port, each naming objects by handle (LOOKUP walks a path one name
//! at a time). Writes are sent `UNSTABLE` and made durable by COMMIT, or sent `FILE_SYNC`; the
//! write verifier in WRITE and COMMIT replies changes when the server restarts, which tells the
//! client to send uncommitted data again. A dropped connection is replaced by the caller, and
//! [`RpcClient::reconnected`] resends every unanswered call.
//!
//! ## Safety against the server
//!
//! Every decoder is total: malformed input is an error value, never a panic, and no length a
//! server sends is allocated before the bytes have arrived; a reply record is bounded by the
//! client's `max_record`. The tests feed random and truncated replies to every decoder.
//!
//! `alloc` is used for the records kept for retransmission and for reassembled replies, whose
//! sizes vary per call up to the negotiated transfer size.

#![no_std]

extern crate alloc;

pub mod client;
pub mod fs;
#[cfg(feature = "fs-nfs")]
pub mod fs_nfs;
#[cfg(feature = "fs-server")]
pub mod fs_server;
pub mod mount;
pub mod mount_session;
pub mod nfs3;
pub mod portmap;
pub mod record;
pub mod rpc;
pub mod xdr;

pub use client::{Config, Reply, RpcClient};
pub use nfs3::FileHandle;
