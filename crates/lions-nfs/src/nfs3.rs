// SPDX-License-Identifier: BSD-2-Clause
//! NFS version 3 (RFC 1813), program 100003: argument encoders and total result decoders for
//! the procedures a file-system server needs.
//!
//! Every result starts with `nfsstat3`; on `NFS3_OK` the procedure's success arm follows, on
//! any other status its failure arm (usually attributes), which we decode too so that a broken
//! reply is an error whichever arm it takes. Decoders return [`Nfs3Error::Status`] for a
//! non-OK status and borrow variable-length data (file handles, names, read data) from the
//! reply. Directory listings are validated whole, then iterated without allocation.

use crate::xdr::{Decoder, Encoder, XdrError};

/// NFS program number.
pub const PROGRAM: u32 = 100_003;
/// NFS version.
pub const VERSION: u32 = 3;
/// Largest file handle (`NFS3_FHSIZE`).
pub const FHSIZE: usize = 64;
const FHSIZE_U32: u32 = 64;
/// Write and cookie verifier size (`NFS3_WRITEVERFSIZE`, `NFS3_COOKIEVERFSIZE`).
pub const VERFSIZE: usize = 8;

/// Procedure numbers.
#[allow(missing_docs)]
pub mod proc {
    pub const NULL: u32 = 0;
    pub const GETATTR: u32 = 1;
    pub const SETATTR: u32 = 2;
    pub const LOOKUP: u32 = 3;
    pub const ACCESS: u32 = 4;
    pub const READ: u32 = 6;
    pub const WRITE: u32 = 7;
    pub const CREATE: u32 = 8;
    pub const MKDIR: u32 = 9;
    pub const REMOVE: u32 = 12;
    pub const RMDIR: u32 = 13;
    pub const RENAME: u32 = 14;
    pub const READDIR: u32 = 16;
    pub const READDIRPLUS: u32 = 17;
    pub const FSSTAT: u32 = 18;
    pub const FSINFO: u32 = 19;
    pub const COMMIT: u32 = 21;
}

/// `ACCESS` bits.
#[allow(missing_docs)]
pub mod access {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

/// An error from an NFS result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nfs3Error {
    /// The reply was malformed.
    Xdr(XdrError),
    /// The server answered with this non-OK `nfsstat3` (e.g. 2 `NOENT`, 17 `EXIST`, 13 `ACCES`,
    /// 20 `NOTDIR`, 21 `ISDIR`, 66 `NOTEMPTY`, 70 `STALE`, 10008 `JUKEBOX`).
    Status(u32),
}

impl From<XdrError> for Nfs3Error {
    fn from(e: XdrError) -> Self {
        Nfs3Error::Xdr(e)
    }
}

/// `nfsstat3` values callers match on.
#[allow(missing_docs)]
pub mod status {
    pub const OK: u32 = 0;
    pub const PERM: u32 = 1;
    pub const NOENT: u32 = 2;
    pub const IO: u32 = 5;
    pub const ACCES: u32 = 13;
    pub const EXIST: u32 = 17;
    pub const NOTDIR: u32 = 20;
    pub const ISDIR: u32 = 21;
    pub const INVAL: u32 = 22;
    pub const FBIG: u32 = 27;
    pub const NOSPC: u32 = 28;
    pub const ROFS: u32 = 30;
    pub const NAMETOOLONG: u32 = 63;
    pub const NOTEMPTY: u32 = 66;
    pub const STALE: u32 = 70;
    pub const BAD_COOKIE: u32 = 10003;
    pub const NOTSUPP: u32 = 10004;
    pub const JUKEBOX: u32 = 10008;
}

/// A file handle (`nfs_fh3`: opaque, at most 64 bytes), stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileHandle {
    len: u8,
    bytes: [u8; FHSIZE],
}

impl core::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FileHandle(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl FileHandle {
    /// A handle from its bytes; `None` if longer than 64.
    pub fn new(b: &[u8]) -> Option<Self> {
        let len = u8::try_from(b.len())
            .ok()
            .filter(|&l| usize::from(l) <= FHSIZE)?;
        let mut bytes = [0; FHSIZE];
        bytes[..b.len()].copy_from_slice(b);
        Some(FileHandle { len, bytes })
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Encode as `nfs_fh3`.
    pub fn encode(&self, e: &mut Encoder<'_>) {
        e.opaque(self.as_bytes());
    }

    /// Decode an `nfs_fh3`.
    pub fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let b = d.opaque(FHSIZE_U32)?;
        // Length checked by `opaque`.
        FileHandle::new(b).ok_or(XdrError::TooLong {
            len: FHSIZE_U32 + 1,
            max: FHSIZE_U32,
        })
    }
}

/// `ftype3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// Regular file.
    Reg,
    /// Directory.
    Dir,
    /// Block device.
    Blk,
    /// Character device.
    Chr,
    /// Symbolic link.
    Lnk,
    /// Socket.
    Sock,
    /// Named pipe.
    Fifo,
}

impl FileType {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(match d.u32()? {
            1 => FileType::Reg,
            2 => FileType::Dir,
            3 => FileType::Blk,
            4 => FileType::Chr,
            5 => FileType::Lnk,
            6 => FileType::Sock,
            7 => FileType::Fifo,
            v => return Err(XdrError::BadDiscriminant(v)),
        })
    }
}

/// `nfstime3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    /// Seconds since the epoch.
    pub seconds: u32,
    /// Nanoseconds.
    pub nseconds: u32,
}

impl Time {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Time {
            seconds: d.u32()?,
            nseconds: d.u32()?,
        })
    }
    fn encode(&self, e: &mut Encoder<'_>) {
        e.u32(self.seconds).u32(self.nseconds);
    }
}

/// `fattr3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fattr {
    /// Type.
    pub ftype: FileType,
    /// Permission bits.
    pub mode: u32,
    /// Links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Bytes used on disk.
    pub used: u64,
    /// Device numbers (`specdata3`).
    pub rdev: (u32, u32),
    /// File system id.
    pub fsid: u64,
    /// File id (inode number).
    pub fileid: u64,
    /// Access time.
    pub atime: Time,
    /// Modification time.
    pub mtime: Time,
    /// Change time.
    pub ctime: Time,
}

impl Fattr {
    /// Decode a `fattr3`.
    pub fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Fattr {
            ftype: FileType::decode(d)?,
            mode: d.u32()?,
            nlink: d.u32()?,
            uid: d.u32()?,
            gid: d.u32()?,
            size: d.u64()?,
            used: d.u64()?,
            rdev: (d.u32()?, d.u32()?),
            fsid: d.u64()?,
            fileid: d.u64()?,
            atime: Time::decode(d)?,
            mtime: Time::decode(d)?,
            ctime: Time::decode(d)?,
        })
    }
}

fn post_op_attr(d: &mut Decoder<'_>) -> Result<Option<Fattr>, XdrError> {
    d.optional(Fattr::decode)
}

/// `wcc_data`: attributes before (size, mtime, ctime) and after an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wcc {
    /// `pre_op_attr`: size, mtime, ctime.
    pub before: Option<(u64, Time, Time)>,
    /// `post_op_attr`.
    pub after: Option<Fattr>,
}

impl Wcc {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Wcc {
            before: d.optional(|d| Ok((d.u64()?, Time::decode(d)?, Time::decode(d)?)))?,
            after: post_op_attr(d)?,
        })
    }
}

/// How to set a time in [`Sattr`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetTime {
    /// Leave it.
    #[default]
    DontChange,
    /// The server's clock.
    ServerTime,
    /// This value.
    ClientTime(Time),
}

/// `sattr3`: attributes to set (each `None` leaves it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sattr {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Size (truncate or extend).
    pub size: Option<u64>,
    /// Access time.
    pub atime: SetTime,
    /// Modification time.
    pub mtime: SetTime,
}

impl Sattr {
    /// Encode a `sattr3`.
    pub fn encode(&self, e: &mut Encoder<'_>) {
        e.optional(self.mode, |e, v| {
            e.u32(v);
        });
        e.optional(self.uid, |e, v| {
            e.u32(v);
        });
        e.optional(self.gid, |e, v| {
            e.u32(v);
        });
        e.optional(self.size, |e, v| {
            e.u64(v);
        });
        for t in [self.atime, self.mtime] {
            match t {
                SetTime::DontChange => {
                    e.u32(0);
                }
                SetTime::ServerTime => {
                    e.u32(1);
                }
                SetTime::ClientTime(t) => {
                    e.u32(2);
                    t.encode(e);
                }
            }
        }
    }
}

/// `stable_how` of a WRITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StableHow {
    /// The server may cache; COMMIT later.
    Unstable = 0,
    /// Data on stable storage before the reply.
    DataSync = 1,
    /// Data and metadata on stable storage before the reply.
    FileSync = 2,
}

/// `createhow3` of a CREATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateHow {
    /// Create, or open (and apply the attributes to) an existing file.
    Unchecked(Sattr),
    /// Create; `EXIST` if it exists.
    Guarded(Sattr),
    /// Exclusive create with this verifier.
    Exclusive([u8; VERFSIZE]),
}

fn checked<'a>(d: &mut Decoder<'a>) -> Result<u32, XdrError> {
    d.u32()
}

// ---- argument encoders -------------------------------------------------------------------

/// `diropargs3`.
pub fn encode_dirop(e: &mut Encoder<'_>, dir: &FileHandle, name: &[u8]) {
    dir.encode(e);
    e.opaque(name);
}

/// GETATTR, FSSTAT, FSINFO arguments: a handle.
pub fn encode_fh(e: &mut Encoder<'_>, fh: &FileHandle) {
    fh.encode(e);
}

/// SETATTR arguments (no guard).
pub fn encode_setattr(e: &mut Encoder<'_>, fh: &FileHandle, attr: &Sattr) {
    fh.encode(e);
    attr.encode(e);
    e.bool(false);
}

/// ACCESS arguments.
pub fn encode_access(e: &mut Encoder<'_>, fh: &FileHandle, access: u32) {
    fh.encode(e);
    e.u32(access);
}

/// READ arguments.
pub fn encode_read(e: &mut Encoder<'_>, fh: &FileHandle, offset: u64, count: u32) {
    fh.encode(e);
    e.u64(offset).u32(count);
}

/// WRITE arguments (`data` is cut at 4 GiB - 1, far above any server's `wtmax`).
pub fn encode_write(
    e: &mut Encoder<'_>,
    fh: &FileHandle,
    offset: u64,
    stable: StableHow,
    data: &[u8],
) {
    fh.encode(e);
    let count = u32::try_from(data.len()).unwrap_or(u32::MAX);
    e.u64(offset)
        .u32(count)
        .u32(stable as u32)
        .opaque(&data[..count as usize]);
}

/// CREATE arguments.
pub fn encode_create(e: &mut Encoder<'_>, dir: &FileHandle, name: &[u8], how: &CreateHow) {
    encode_dirop(e, dir, name);
    match how {
        CreateHow::Unchecked(a) => {
            e.u32(0);
            a.encode(e);
        }
        CreateHow::Guarded(a) => {
            e.u32(1);
            a.encode(e);
        }
        CreateHow::Exclusive(v) => {
            e.u32(2).fixed_opaque(v);
        }
    }
}

/// MKDIR arguments.
pub fn encode_mkdir(e: &mut Encoder<'_>, dir: &FileHandle, name: &[u8], attr: &Sattr) {
    encode_dirop(e, dir, name);
    attr.encode(e);
}

/// RENAME arguments.
pub fn encode_rename(
    e: &mut Encoder<'_>,
    from: &FileHandle,
    from_name: &[u8],
    to: &FileHandle,
    to_name: &[u8],
) {
    encode_dirop(e, from, from_name);
    encode_dirop(e, to, to_name);
}

/// READDIR arguments.
pub fn encode_readdir(
    e: &mut Encoder<'_>,
    dir: &FileHandle,
    cookie: u64,
    verf: [u8; VERFSIZE],
    count: u32,
) {
    dir.encode(e);
    e.u64(cookie).fixed_opaque(&verf).u32(count);
}

/// READDIRPLUS arguments.
pub fn encode_readdirplus(
    e: &mut Encoder<'_>,
    dir: &FileHandle,
    cookie: u64,
    verf: [u8; VERFSIZE],
    dircount: u32,
    maxcount: u32,
) {
    dir.encode(e);
    e.u64(cookie)
        .fixed_opaque(&verf)
        .u32(dircount)
        .u32(maxcount);
}

/// COMMIT arguments.
pub fn encode_commit(e: &mut Encoder<'_>, fh: &FileHandle, offset: u64, count: u32) {
    fh.encode(e);
    e.u64(offset).u32(count);
}

mod decode;
pub use decode::*;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn readdir_list_roundtrip() {
        let mut v = Vec::new();
        let mut e = Encoder::new(&mut v);
        e.u32(0).bool(false).fixed_opaque(&[1; 8]);
        for (i, n) in [&b"a"[..], b"bcdef"].iter().enumerate() {
            e.bool(true).u64(i as u64 + 10).opaque(n).u64(i as u64 + 1);
        }
        e.bool(false).bool(true);
        let l = decode_readdir(&v).unwrap();
        assert!(l.eof);
        assert_eq!(l.verf, [1; 8]);
        let names: Vec<_> = l.entries().map(|e| (e.name, e.cookie)).collect();
        assert_eq!(names, [(&b"a"[..], 1), (&b"bcdef"[..], 2)]);
        // Cut anywhere: an error, never a panic.
        for n in 0..v.len() {
            assert!(decode_readdir(&v[..n]).is_err());
        }
    }

    #[test]
    fn status_and_failure_arm() {
        // NOENT with no dir attributes.
        assert_eq!(
            decode_lookup(&[0, 0, 0, 2, 0, 0, 0, 0]),
            Err(Nfs3Error::Status(2))
        );
        // NOENT with a broken failure arm is an XDR error.
        assert_eq!(
            decode_lookup(&[0, 0, 0, 2, 0, 0, 0, 1]),
            Err(Nfs3Error::Xdr(XdrError::Truncated))
        );
    }

    #[test]
    fn read_count_must_match_data() {
        let mut v = Vec::new();
        Encoder::new(&mut v)
            .u32(0)
            .bool(false)
            .u32(3)
            .bool(true)
            .opaque(b"ab");
        assert!(decode_read(&v).is_err());
        let mut v = Vec::new();
        Encoder::new(&mut v)
            .u32(0)
            .bool(false)
            .u32(2)
            .bool(true)
            .opaque(b"ab");
        assert_eq!(decode_read(&v).unwrap().data, b"ab");
    }
}
