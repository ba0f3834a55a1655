// SPDX-License-Identifier: BSD-2-Clause
//! NFSv3 result decoders: each procedure's reply body, `nfsstat3` first, then the success arm
//! (or the failure arm, decoded too so a reply is consumed whole and checked), into the types of
//! [`super`]. Re-exported from there.

use super::*;

/// Decode `nfsstat3`, then the success arm with `ok` or the failure arm with `fail`; the
/// whole body must be consumed.
fn result<'a, T>(
    body: &'a [u8],
    ok: impl FnOnce(&mut Decoder<'a>) -> Result<T, XdrError>,
    fail: impl FnOnce(&mut Decoder<'a>) -> Result<(), XdrError>,
) -> Result<T, Nfs3Error> {
    let mut d = Decoder::new(body);
    let st = checked(&mut d)?;
    if st == status::OK {
        let v = ok(&mut d)?;
        d.finish()?;
        Ok(v)
    } else {
        fail(&mut d)?;
        d.finish()?;
        Err(Nfs3Error::Status(st))
    }
}

fn skip_post_op(d: &mut Decoder<'_>) -> Result<(), XdrError> {
    post_op_attr(d).map(drop)
}

fn skip_wcc(d: &mut Decoder<'_>) -> Result<(), XdrError> {
    Wcc::decode(d).map(drop)
}

/// GETATTR result.
pub fn decode_getattr(body: &[u8]) -> Result<Fattr, Nfs3Error> {
    result(body, Fattr::decode, |_| Ok(()))
}

/// SETATTR result: the file's wcc data.
pub fn decode_setattr(body: &[u8]) -> Result<Wcc, Nfs3Error> {
    result(body, Wcc::decode, skip_wcc)
}

/// LOOKUP result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The object's handle.
    pub fh: FileHandle,
    /// Its attributes, if sent.
    pub attr: Option<Fattr>,
    /// The directory's attributes, if sent.
    pub dir_attr: Option<Fattr>,
}

/// Decode a LOOKUP result.
pub fn decode_lookup(body: &[u8]) -> Result<Lookup, Nfs3Error> {
    result(
        body,
        |d| {
            Ok(Lookup {
                fh: FileHandle::decode(d)?,
                attr: post_op_attr(d)?,
                dir_attr: post_op_attr(d)?,
            })
        },
        skip_post_op,
    )
}

/// Decode an ACCESS result: the granted bits.
pub fn decode_access(body: &[u8]) -> Result<u32, Nfs3Error> {
    result(
        body,
        |d| {
            post_op_attr(d)?;
            d.u32()
        },
        skip_post_op,
    )
}

/// READ result; `data` borrows the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read<'a> {
    /// The file's attributes, if sent.
    pub attr: Option<Fattr>,
    /// The data read.
    pub data: &'a [u8],
    /// The read reached the end of the file.
    pub eof: bool,
}

/// Decode a READ result.
pub fn decode_read(body: &[u8]) -> Result<Read<'_>, Nfs3Error> {
    result(
        body,
        |d| {
            let attr = post_op_attr(d)?;
            let count = d.u32()?;
            let eof = d.bool()?;
            let data = d.opaque(u32::MAX)?;
            if data.len() != count as usize {
                return Err(XdrError::BadDiscriminant(count));
            }
            Ok(Read { attr, data, eof })
        },
        skip_post_op,
    )
}

/// WRITE result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The file's wcc data.
    pub wcc: Wcc,
    /// Bytes written.
    pub count: u32,
    /// How stably they were written.
    pub committed: StableHow,
    /// The server's write verifier (changes when it restarts: uncommitted writes are lost).
    pub verf: [u8; VERFSIZE],
}

fn stable_how(d: &mut Decoder<'_>) -> Result<StableHow, XdrError> {
    Ok(match d.u32()? {
        0 => StableHow::Unstable,
        1 => StableHow::DataSync,
        2 => StableHow::FileSync,
        v => return Err(XdrError::BadDiscriminant(v)),
    })
}

/// Decode a WRITE result.
pub fn decode_write(body: &[u8]) -> Result<Write, Nfs3Error> {
    result(
        body,
        |d| {
            Ok(Write {
                wcc: Wcc::decode(d)?,
                count: d.u32()?,
                committed: stable_how(d)?,
                verf: d.fixed_array()?,
            })
        },
        skip_wcc,
    )
}

/// CREATE or MKDIR result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    /// The new object's handle, if sent (else LOOKUP it).
    pub fh: Option<FileHandle>,
    /// Its attributes, if sent.
    pub attr: Option<Fattr>,
    /// The directory's wcc data.
    pub dir_wcc: Wcc,
}

/// Decode a CREATE or MKDIR result.
pub fn decode_create(body: &[u8]) -> Result<Created, Nfs3Error> {
    result(
        body,
        |d| {
            Ok(Created {
                fh: d.optional(FileHandle::decode)?,
                attr: post_op_attr(d)?,
                dir_wcc: Wcc::decode(d)?,
            })
        },
        skip_wcc,
    )
}

/// Decode a REMOVE or RMDIR result (the directory's wcc data).
pub fn decode_remove(body: &[u8]) -> Result<Wcc, Nfs3Error> {
    result(body, Wcc::decode, skip_wcc)
}

/// Decode a RENAME result (both directories' wcc data).
pub fn decode_rename(body: &[u8]) -> Result<(Wcc, Wcc), Nfs3Error> {
    result(
        body,
        |d| Ok((Wcc::decode(d)?, Wcc::decode(d)?)),
        |d| {
            skip_wcc(d)?;
            skip_wcc(d)
        },
    )
}

/// Decode a COMMIT result: the write verifier.
pub fn decode_commit(body: &[u8]) -> Result<[u8; VERFSIZE], Nfs3Error> {
    result(
        body,
        |d| {
            skip_wcc(d)?;
            d.fixed_array()
        },
        skip_wcc,
    )
}

/// FSSTAT result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStat {
    /// Total bytes.
    pub tbytes: u64,
    /// Free bytes.
    pub fbytes: u64,
    /// Free bytes available to this user.
    pub abytes: u64,
    /// Total file slots.
    pub tfiles: u64,
    /// Free file slots.
    pub ffiles: u64,
    /// Free file slots available to this user.
    pub afiles: u64,
}

/// Decode an FSSTAT result.
pub fn decode_fsstat(body: &[u8]) -> Result<FsStat, Nfs3Error> {
    result(
        body,
        |d| {
            post_op_attr(d)?;
            let s = FsStat {
                tbytes: d.u64()?,
                fbytes: d.u64()?,
                abytes: d.u64()?,
                tfiles: d.u64()?,
                ffiles: d.u64()?,
                afiles: d.u64()?,
            };
            d.u32()?;
            Ok(s)
        },
        skip_post_op,
    )
}

/// FSINFO result (the sizes a client should use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsInfo {
    /// Largest READ.
    pub rtmax: u32,
    /// Preferred READ.
    pub rtpref: u32,
    /// Largest WRITE.
    pub wtmax: u32,
    /// Preferred WRITE.
    pub wtpref: u32,
    /// Preferred READDIR size.
    pub dtpref: u32,
    /// Largest file.
    pub maxfilesize: u64,
}

/// Decode an FSINFO result.
pub fn decode_fsinfo(body: &[u8]) -> Result<FsInfo, Nfs3Error> {
    result(
        body,
        |d| {
            post_op_attr(d)?;
            let rtmax = d.u32()?;
            let rtpref = d.u32()?;
            let _rtmult = d.u32()?;
            let wtmax = d.u32()?;
            let wtpref = d.u32()?;
            let _wtmult = d.u32()?;
            let dtpref = d.u32()?;
            let maxfilesize = d.u64()?;
            Time::decode(d)?;
            d.u32()?;
            Ok(FsInfo {
                rtmax,
                rtpref,
                wtmax,
                wtpref,
                dtpref,
                maxfilesize,
            })
        },
        skip_post_op,
    )
}

/// One directory entry (READDIR has no attributes or handle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// File id.
    pub fileid: u64,
    /// Name (bytes as the server sent them).
    pub name: &'a [u8],
    /// Cookie to resume after this entry.
    pub cookie: u64,
    /// Attributes (READDIRPLUS, if sent).
    pub attr: Option<Fattr>,
    /// Handle (READDIRPLUS, if sent).
    pub fh: Option<FileHandle>,
}

/// A validated READDIR or READDIRPLUS result.
#[derive(Clone, Debug)]
pub struct DirList<'a> {
    /// The cookie verifier to send with the next call.
    pub verf: [u8; VERFSIZE],
    /// The listing reached the end of the directory.
    pub eof: bool,
    plus: bool,
    entries: &'a [u8],
}

impl<'a> DirList<'a> {
    /// The entries, in the server's order.
    pub fn entries(&self) -> DirEntries<'a> {
        DirEntries {
            d: Decoder::new(self.entries),
            plus: self.plus,
        }
    }
}

/// Iterator over a [`DirList`]'s entries.
#[derive(Clone, Debug)]
pub struct DirEntries<'a> {
    d: Decoder<'a>,
    plus: bool,
}

/// Longest name we accept in a listing (`filename3` has no bound in the RFC; 255 is NAME_MAX).
pub const MAX_NAME: u32 = 255;

fn dir_entry<'a>(d: &mut Decoder<'a>, plus: bool) -> Result<Option<DirEntry<'a>>, XdrError> {
    if !d.bool()? {
        return Ok(None);
    }
    let fileid = d.u64()?;
    let name = d.opaque(MAX_NAME)?;
    let cookie = d.u64()?;
    let (attr, fh) = if plus {
        (post_op_attr(d)?, d.optional(FileHandle::decode)?)
    } else {
        (None, None)
    };
    Ok(Some(DirEntry {
        fileid,
        name,
        cookie,
        attr,
        fh,
    }))
}

impl<'a> Iterator for DirEntries<'a> {
    type Item = DirEntry<'a>;
    fn next(&mut self) -> Option<DirEntry<'a>> {
        // Validated when the list was decoded: an error here cannot happen and ends the list.
        dir_entry(&mut self.d, self.plus).ok().flatten()
    }
}

fn decode_dirlist(body: &[u8], plus: bool) -> Result<DirList<'_>, Nfs3Error> {
    result(
        body,
        |d| {
            post_op_attr(d)?;
            let verf = d.fixed_array()?;
            let start = d.remaining();
            while dir_entry(d, plus)?.is_some() {}
            let used = start.len() - d.remaining().len();
            let eof = d.bool()?;
            Ok(DirList {
                verf,
                eof,
                plus,
                entries: &start[..used],
            })
        },
        skip_post_op,
    )
}

/// Decode a READDIR result.
pub fn decode_readdir(body: &[u8]) -> Result<DirList<'_>, Nfs3Error> {
    decode_dirlist(body, false)
}

/// Decode a READDIRPLUS result.
pub fn decode_readdirplus(body: &[u8]) -> Result<DirList<'_>, Nfs3Error> {
    decode_dirlist(body, true)
}
