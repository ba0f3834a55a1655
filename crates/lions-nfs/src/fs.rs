// SPDX-License-Identifier: BSD-2-Clause
//! [`NfsFs`]: file-system operations by path, each carried out as a chain of NFS calls on one
//! [`RpcClient`] — what an FS server (`fs_nfs`) needs to serve the LionsOS FS command set with
//! asynchronous completions.
//!
//! Operations are started with [`NfsFs::start`] under a caller-chosen [`OpId`] (an FS request
//! id) and finish, in any order, through [`NfsFs::poll`]. A path (`/`-separated, relative to the
//! export's root; empty components and `.` are skipped, at most [`MAX_PATH`] bytes, names at
//! most 255) is walked with one LOOKUP per component; operations on a name (create, remove,
//! mkdir, rmdir, rename) walk to the parent and then call the procedure on the last name.
//! Operations by handle (read, write, commit, getattr, set size, readdir) are one call. Many
//! operations run at once, their calls interleaved on the connection; the transport is the
//! caller's, through [`NfsFs::rpc`] (send, receive, reconnect as [`crate::client`] describes).

use crate::client::{CallError, Reply, RpcClient};
use crate::nfs3::{
    self, CreateHow, Fattr, FileHandle, FsStat, Nfs3Error, Sattr, StableHow, VERFSIZE, proc,
};
use crate::rpc::RpcError;
use crate::xdr::{Encoder, XdrError};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The caller's name for an operation (an FS request id).
pub type OpId = u64;

/// Longest path accepted (LionsOS's `FS_MAX_PATH_LENGTH`).
pub const MAX_PATH: usize = 4095;
/// Longest name (one path component).
pub const MAX_NAME: usize = 255;

/// An operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The handle and attributes of the object at a path ([`Outcome::Object`]).
    Lookup(Vec<u8>),
    /// Attributes of the object at a path ([`Outcome::Attr`]).
    Stat(Vec<u8>),
    /// Create a regular file ([`Outcome::Object`]); `exclusive`: fail with `EXIST` if it exists,
    /// else open the existing file.
    Create {
        /// Path.
        path: Vec<u8>,
        /// Permission bits of a new file.
        mode: u32,
        /// Fail if it exists.
        exclusive: bool,
    },
    /// Attributes by handle ([`Outcome::Attr`]).
    GetAttr(FileHandle),
    /// Set a file's size ([`Outcome::Done`]).
    SetSize(FileHandle, u64),
    /// Read up to `count` bytes at `offset` ([`Outcome::Data`]).
    Read {
        /// File.
        fh: FileHandle,
        /// Offset.
        offset: u64,
        /// Most bytes.
        count: u32,
    },
    /// Write `data` at `offset` ([`Outcome::Written`]).
    Write {
        /// File.
        fh: FileHandle,
        /// Offset.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
        /// Stability asked for.
        stable: StableHow,
    },
    /// Commit a file's unstable writes ([`Outcome::Committed`]).
    Commit(FileHandle),
    /// Remove a file ([`Outcome::Done`]).
    Remove(Vec<u8>),
    /// Create a directory ([`Outcome::Done`]).
    Mkdir(Vec<u8>),
    /// Remove an empty directory ([`Outcome::Done`]).
    Rmdir(Vec<u8>),
    /// Rename or move ([`Outcome::Done`]).
    Rename(Vec<u8>, Vec<u8>),
    /// One page of a directory listing from `cookie` ([`Outcome::Dir`]).
    ReadDir {
        /// Directory.
        fh: FileHandle,
        /// 0, or the cookie of the last entry of the previous page.
        cookie: u64,
        /// The verifier of the previous page (zeros first).
        verf: [u8; VERFSIZE],
    },
    /// Space of the export ([`Outcome::FsStat`]).
    FsStat,
}

/// A directory page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirPage {
    /// Names with their cookies (`.` and `..` included as the server sends them).
    pub entries: Vec<(Vec<u8>, u64)>,
    /// Verifier for the next page.
    pub verf: [u8; VERFSIZE],
    /// Last page.
    pub eof: bool,
}

/// What a finished operation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A handle, and the attributes if the server sent them.
    Object(FileHandle, Option<Fattr>),
    /// Attributes.
    Attr(Fattr),
    /// Data read (an owned copy of the reply's bytes) and whether the end was reached.
    Data(Vec<u8>, bool),
    /// Bytes written, their stability and the server's write verifier.
    Written(u32, StableHow, [u8; VERFSIZE]),
    /// The write verifier after a commit.
    Committed([u8; VERFSIZE]),
    /// Success without data.
    Done,
    /// A directory page.
    Dir(DirPage),
    /// File-system space.
    FsStat(FsStat),
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// The server's `nfsstat3` (see [`nfs3::status`]).
    Nfs(u32),
    /// The RPC layer refused the call.
    Rpc(RpcError),
    /// A reply was malformed.
    Xdr(XdrError),
    /// The path or a name is too long, or a name operation has no name.
    InvalidPath,
    /// The operation could not be started (too many calls in flight).
    Busy,
    /// An operation with this id is in progress.
    DuplicateId,
}

impl From<Nfs3Error> for FsError {
    fn from(e: Nfs3Error) -> Self {
        match e {
            Nfs3Error::Status(s) => FsError::Nfs(s),
            Nfs3Error::Xdr(x) => FsError::Xdr(x),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Walking path A (index of the next component).
    WalkA,
    /// Walking path B (rename's target).
    WalkB,
    /// The operation's own call is in flight.
    Final,
    /// CREATE did not return a handle: LOOKUP of the new name.
    FixupLookup,
}

#[derive(Debug)]
struct Op {
    id: OpId,
    req: Request,
    stage: Stage,
    /// Components of path A and B, as ranges.
    comps_a: Vec<(usize, usize)>,
    comps_b: Vec<(usize, usize)>,
    next: usize,
    dir_a: FileHandle,
    dir_b: FileHandle,
    attr: Option<Fattr>,
}

/// File-system operations over NFS.
#[derive(Debug)]
pub struct NfsFs {
    rpc: RpcClient,
    root: FileHandle,
    ops: Vec<Op>,
    done: VecDeque<(OpId, Result<Outcome, FsError>)>,
}

fn components(path: &[u8]) -> Result<Vec<(usize, usize)>, FsError> {
    if path.len() > MAX_PATH {
        return Err(FsError::InvalidPath);
    }
    let mut v = Vec::new();
    let mut start = 0;
    for (i, &b) in path.iter().chain(core::iter::once(&b'/')).enumerate() {
        if b == b'/' {
            let c = &path[start..i];
            if c.len() > MAX_NAME {
                return Err(FsError::InvalidPath);
            }
            if !c.is_empty() && c != b"." {
                v.push((start, i));
            }
            start = i + 1;
        }
    }
    Ok(v)
}

impl Op {
    fn path_a(&self) -> &[u8] {
        match &self.req {
            Request::Lookup(p)
            | Request::Stat(p)
            | Request::Remove(p)
            | Request::Mkdir(p)
            | Request::Rmdir(p)
            | Request::Rename(p, _)
            | Request::Create { path: p, .. } => p,
            _ => &[],
        }
    }
    fn path_b(&self) -> &[u8] {
        match &self.req {
            Request::Rename(_, p) => p,
            _ => &[],
        }
    }
    /// Whether the last component is walked (else it is the name the operation acts on).
    fn walks_last(&self) -> bool {
        matches!(self.req, Request::Lookup(_) | Request::Stat(_))
    }
    fn walk_len(&self, comps: &[(usize, usize)]) -> usize {
        if self.walks_last() {
            comps.len()
        } else {
            comps.len().saturating_sub(1)
        }
    }
    fn last_a(&self) -> &[u8] {
        self.comps_a
            .last()
            .map_or(&[], |&(s, e)| &self.path_a()[s..e])
    }
    fn last_b(&self) -> &[u8] {
        self.comps_b
            .last()
            .map_or(&[], |&(s, e)| &self.path_b()[s..e])
    }
}

impl NfsFs {
    /// Operations on the export whose root handle MNT returned, over `rpc` (connected to the
    /// NFS port).
    pub fn new(rpc: RpcClient, root: FileHandle) -> Self {
        NfsFs {
            rpc,
            root,
            ops: Vec::new(),
            done: VecDeque::new(),
        }
    }

    /// The RPC client, for the transport: send its queue, feed it what arrives, tell it of a
    /// reconnect.
    pub fn rpc(&mut self) -> &mut RpcClient {
        &mut self.rpc
    }

    /// Operations in progress.
    pub fn in_progress(&self) -> usize {
        self.ops.len()
    }

    /// Start `req` as operation `id` (unique among those in progress). Its result comes from [`poll`](Self::poll); an operation
    /// that cannot start (a bad path, no room for a call) finishes at once with the error.
    pub fn start(&mut self, id: OpId, req: Request) {
        let mut op = Op {
            id,
            req,
            stage: Stage::WalkA,
            comps_a: Vec::new(),
            comps_b: Vec::new(),
            next: 0,
            dir_a: self.root,
            dir_b: self.root,
            attr: None,
        };
        if self.ops.iter().any(|o| o.id == id) {
            return self.done.push_back((id, Err(FsError::DuplicateId)));
        }
        let parsed = components(op.path_a()).and_then(|a| Ok((a, components(op.path_b())?)));
        match parsed {
            Ok((a, b)) => {
                op.comps_a = a;
                op.comps_b = b;
            }
            Err(e) => return self.done.push_back((id, Err(e))),
        }
        let names_needed = matches!(
            op.req,
            Request::Create { .. }
                | Request::Remove(_)
                | Request::Mkdir(_)
                | Request::Rmdir(_)
                | Request::Rename(..)
        );
        if names_needed
            && (op.comps_a.is_empty()
                || (matches!(op.req, Request::Rename(..)) && op.comps_b.is_empty()))
        {
            return self.done.push_back((id, Err(FsError::InvalidPath)));
        }
        self.step(op);
    }

    /// The next finished operation.
    pub fn poll(&mut self) -> Option<(OpId, Result<Outcome, FsError>)> {
        while let Some(r) = self.rpc.poll_reply() {
            self.on_reply(r);
        }
        self.done.pop_front()
    }

    fn call(&mut self, op: Op, p: u32, args: impl FnOnce(&mut Encoder<'_>, &Op)) {
        let tag = op.id;
        let res = {
            let opr = &op;
            self.rpc
                .call(nfs3::PROGRAM, nfs3::VERSION, p, tag, |e| args(e, opr))
        };
        match res {
            Ok(_) => self.ops.push(op),
            Err(CallError::Full | CallError::TooLarge) => {
                self.done.push_back((op.id, Err(FsError::Busy)))
            }
        }
    }

    /// Issue the next call of `op`, or finish it.
    fn step(&mut self, op: Op) {
        let Some(op) = self.walk(op) else {
            return;
        };
        // The walk's last LOOKUP brought the attributes: Lookup and Stat are done.
        match (&op.req, op.attr) {
            (Request::Lookup(_), Some(a)) => {
                let done = Outcome::Object(op.dir_a, Some(a));
                self.done.push_back((op.id, Ok(done)));
            }
            (Request::Stat(_), Some(a)) => self.done.push_back((op.id, Ok(Outcome::Attr(a)))),
            _ => self.final_call(op),
        }
    }

    /// The path walks (a LOOKUP per component of path A, then of path B for a rename): issue the
    /// next LOOKUP (`None`), or give back `op` with both walks done.
    fn walk(&mut self, mut op: Op) -> Option<Op> {
        if op.stage == Stage::WalkA {
            if op.next < op.walk_len(&op.comps_a) {
                self.call(op, proc::LOOKUP, |e, o| {
                    let (s, t) = o.comps_a[o.next];
                    nfs3::encode_dirop(e, &o.dir_a, &o.path_a()[s..t]);
                });
                return None;
            }
            op.next = 0;
            op.stage = if matches!(op.req, Request::Rename(..)) {
                Stage::WalkB
            } else {
                Stage::Final
            };
        }
        if op.stage == Stage::WalkB {
            if op.next < op.walk_len(&op.comps_b) {
                self.call(op, proc::LOOKUP, |e, o| {
                    let (s, t) = o.comps_b[o.next];
                    nfs3::encode_dirop(e, &o.dir_b, &o.path_b()[s..t]);
                });
                return None;
            }
            op.stage = Stage::Final;
        }
        Some(op)
    }

    /// The request's own call, after its walks.
    fn final_call(&mut self, op: Op) {
        match op.req.clone() {
            Request::Lookup(_) | Request::Stat(_) => {
                self.call(op, proc::GETATTR, |e, o| nfs3::encode_fh(e, &o.dir_a))
            }
            Request::GetAttr(fh) => self.call(op, proc::GETATTR, |e, _| nfs3::encode_fh(e, &fh)),
            Request::SetSize(fh, size) => self.call(op, proc::SETATTR, |e, _| {
                nfs3::encode_setattr(
                    e,
                    &fh,
                    &Sattr {
                        size: Some(size),
                        ..Sattr::default()
                    },
                );
            }),
            Request::Create {
                mode, exclusive, ..
            } => {
                let attr = Sattr {
                    mode: Some(mode),
                    ..Sattr::default()
                };
                let how = if exclusive {
                    CreateHow::Guarded(attr)
                } else {
                    CreateHow::Unchecked(attr)
                };
                self.call(op, proc::CREATE, |e, o| {
                    nfs3::encode_create(e, &o.dir_a, o.last_a(), &how)
                })
            }
            Request::Read { fh, offset, count } => self.call(op, proc::READ, |e, _| {
                nfs3::encode_read(e, &fh, offset, count)
            }),
            Request::Write {
                fh, offset, stable, ..
            } => self.call(op, proc::WRITE, |e, o| {
                if let Request::Write { data, .. } = &o.req {
                    nfs3::encode_write(e, &fh, offset, stable, data);
                }
            }),
            Request::Commit(fh) => {
                self.call(op, proc::COMMIT, |e, _| nfs3::encode_commit(e, &fh, 0, 0))
            }
            Request::Remove(_) => self.call(op, proc::REMOVE, |e, o| {
                nfs3::encode_dirop(e, &o.dir_a, o.last_a())
            }),
            Request::Rmdir(_) => self.call(op, proc::RMDIR, |e, o| {
                nfs3::encode_dirop(e, &o.dir_a, o.last_a())
            }),
            Request::Mkdir(_) => self.call(op, proc::MKDIR, |e, o| {
                nfs3::encode_mkdir(
                    e,
                    &o.dir_a,
                    o.last_a(),
                    &Sattr {
                        mode: Some(0o755),
                        ..Sattr::default()
                    },
                );
            }),
            Request::Rename(..) => self.call(op, proc::RENAME, |e, o| {
                nfs3::encode_rename(e, &o.dir_a, o.last_a(), &o.dir_b, o.last_b());
            }),
            Request::ReadDir { fh, cookie, verf } => self.call(op, proc::READDIR, |e, _| {
                nfs3::encode_readdir(e, &fh, cookie, verf, 8192);
            }),
            Request::FsStat => self.call(op, proc::FSSTAT, |e, o| nfs3::encode_fh(e, &o.dir_a)),
        }
    }

    fn on_reply(&mut self, r: Reply) {
        let Some(i) = self.ops.iter().position(|o| o.id == r.tag) else {
            return;
        };
        let mut op = self.ops.swap_remove(i);
        let body = match r.result() {
            Ok(b) => b,
            Err(e) => return self.done.push_back((op.id, Err(FsError::Rpc(e)))),
        };
        let res = match op.stage {
            Stage::WalkA | Stage::WalkB | Stage::FixupLookup => walk_reply(&mut op, body),
            Stage::Final => final_reply(&mut op, body),
        };
        match res {
            Ok(Some(o)) => self.done.push_back((op.id, Ok(o))),
            Err(e) => self.done.push_back((op.id, Err(e))),
            Ok(None) if op.stage == Stage::FixupLookup => {
                self.call(op, proc::LOOKUP, |e, o| {
                    nfs3::encode_dirop(e, &o.dir_a, o.last_a())
                });
            }
            Ok(None) => self.step(op),
        }
    }
}

/// A LOOKUP reply during a path walk: the next directory (`None`: walk on), or, for the lookup
/// after a CREATE that returned no handle, the created object.
fn walk_reply(op: &mut Op, body: &[u8]) -> Result<Option<Outcome>, FsError> {
    let l = nfs3::decode_lookup(body)?;
    if op.stage == Stage::FixupLookup {
        return Ok(Some(Outcome::Object(l.fh, l.attr)));
    }
    if op.stage == Stage::WalkA {
        op.dir_a = l.fh;
    } else {
        op.dir_b = l.fh;
    }
    op.attr = l.attr;
    op.next += 1;
    Ok(None)
}

/// The reply to a request's own call: its outcome (`None`: a CREATE that returned no handle,
/// which a LOOKUP must fix up).
fn final_reply(op: &mut Op, body: &[u8]) -> Result<Option<Outcome>, FsError> {
    Ok(Some(match &op.req {
        Request::Lookup(_) => Outcome::Object(op.dir_a, Some(nfs3::decode_getattr(body)?)),
        Request::Stat(_) | Request::GetAttr(_) => Outcome::Attr(nfs3::decode_getattr(body)?),
        Request::SetSize(..) => {
            nfs3::decode_setattr(body)?;
            Outcome::Done
        }
        Request::Create { .. } => {
            let c = nfs3::decode_create(body)?;
            match c.fh {
                Some(fh) => Outcome::Object(fh, c.attr),
                None => {
                    op.stage = Stage::FixupLookup;
                    return Ok(None);
                }
            }
        }
        Request::Read { .. } => {
            let rd = nfs3::decode_read(body)?;
            Outcome::Data(rd.data.to_vec(), rd.eof)
        }
        Request::Write { .. } => {
            let w = nfs3::decode_write(body)?;
            Outcome::Written(w.count, w.committed, w.verf)
        }
        Request::Commit(_) => Outcome::Committed(nfs3::decode_commit(body)?),
        Request::Remove(_) | Request::Rmdir(_) => {
            nfs3::decode_remove(body)?;
            Outcome::Done
        }
        Request::Mkdir(_) => {
            nfs3::decode_create(body)?;
            Outcome::Done
        }
        Request::Rename(..) => {
            nfs3::decode_rename(body)?;
            Outcome::Done
        }
        Request::ReadDir { .. } => {
            let l = nfs3::decode_readdir(body)?;
            Outcome::Dir(DirPage {
                entries: l.entries().map(|e| (e.name.to_vec(), e.cookie)).collect(),
                verf: l.verf,
                eof: l.eof,
            })
        }
        Request::FsStat => Outcome::FsStat(nfs3::decode_fsstat(body)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        assert_eq!(components(b"/a//./bc/"), Ok(alloc::vec![(1, 2), (6, 8)]));
        assert_eq!(components(b""), Ok(alloc::vec![]));
        assert_eq!(components(&[b'x'; 256]), Err(FsError::InvalidPath));
        assert_eq!(components(&[b'/'; 4096]), Err(FsError::InvalidPath));
    }
}
