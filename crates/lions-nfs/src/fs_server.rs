// SPDX-License-Identifier: BSD-2-Clause
//! [`NfsBackend`]: the LionsOS FS protocol served from an NFS export — a
//! [`DeferredBackend`] for lions-fs's [`DeferredServer`](lions_fs::DeferredServer) over
//! [`NfsFs`] (feature `fs-server`). This is the core of the `fs_nfs` component.
//!
//! | FS command | NFS calls | notes |
//! |---|---|---|
//! | `INITIALISE` / `DEINITIALISE` | none | the export was mounted (MNT) before the backend was built; deinitialise drops every handle |
//! | `FILE_OPEN` | LOOKUP per component; CREATE (unchecked) with the `CREATE` option | |
//! | `STAT` | LOOKUP per component (GETATTR for the root) | `FsStat` written into the client's buffer |
//! | `FILE_READ` | one READ of at most [`MAX_IO`] bytes | the data goes into the share region when the reply comes |
//! | `FILE_WRITE` | one WRITE (`UNSTABLE`) of at most [`MAX_IO`] bytes | a short write reports the bytes written |
//! | `FILE_SYNC`, `FILE_CLOSE` of a written file | COMMIT | `Error` when the write verifier changed since the unstable writes (the server restarted and may have lost them) |
//! | `FILE_SIZE` / `FILE_TRUNCATE` | GETATTR / SETATTR | |
//! | `RENAME`, `FILE_REMOVE`, `DIR_CREATE`, `DIR_REMOVE` | walk, then RENAME, REMOVE, MKDIR, RMDIR | |
//! | `DIR_OPEN` | walk | `NotDirectory` for a file |
//! | `DIR_READ` | READDIR pages, one name per command | `.` and `..` skipped; `EndOfDirectory` at the end |
//! | `DIR_TELL` / `DIR_SEEK` / `DIR_REWIND` | none (the next `DIR_READ` restarts the listing and skips) | position = names returned |

use crate::fs::{DirPage, FsError, MAX_PATH, NfsFs, OpId, Outcome, Request};
use crate::nfs3::{self, Fattr, FileHandle, FileType, StableHow, VERFSIZE};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use lions_fs::deferred::{DeferredBackend, Done, Finished, Op};
use lions_fs::queue::CompletionData;
use lions_fs::{FsBuffer, FsStat, OpenOptions, ShareRegion, Status};
use zerocopy::IntoBytes;

/// Largest READ or WRITE one command becomes (ganesha's default `MaxRead`/`MaxWrite` is 1 MiB).
pub const MAX_IO: u64 = 1 << 20;

#[derive(Debug)]
struct OpenFile {
    fh: FileHandle,
    dirty: bool,
    /// The server's write verifier of the unstable writes since the last commit.
    verf: Option<[u8; VERFSIZE]>,
    /// The verifier changed between those writes: the server restarted and may have lost some.
    lost: bool,
}

#[derive(Debug)]
struct OpenDir {
    fh: FileHandle,
    cookie: u64,
    verf: [u8; VERFSIZE],
    page: VecDeque<(Vec<u8>, u64)>,
    eof: bool,
    /// Names returned since the start.
    pos: u64,
    /// Names still to skip (after a seek).
    skip: u64,
}

/// What to do when request `id`'s NFS operation finishes.
#[derive(Debug, Clone, Copy)]
enum Then {
    Opened,
    DirOpened,
    Stat(FsBuffer),
    Read(FsBuffer),
    Written(u32, u32),
    /// A COMMIT: the verifier the unstable writes had (if any), and whether it changed already.
    Committed(Option<[u8; VERFSIZE]>, bool),
    Size,
    Done,
    DirPage(u32, FsBuffer),
}

/// The FS protocol over an NFS export; see the module docs.
#[derive(Debug)]
pub struct NfsBackend {
    fs: NfsFs,
    files: Vec<Option<OpenFile>>,
    dirs: Vec<Option<OpenDir>>,
    waiting: Vec<(OpId, Then)>,
    done: VecDeque<Finished<u32>>,
}

/// The protocol's status for an NFS failure.
pub fn status_of(e: FsError) -> Status {
    match e {
        FsError::Nfs(nfs3::status::NOENT | nfs3::status::STALE) => Status::NoFile,
        FsError::Nfs(nfs3::status::EXIST) => Status::AlreadyExists,
        FsError::Nfs(nfs3::status::NOTDIR) => Status::NotDirectory,
        FsError::Nfs(nfs3::status::NOTEMPTY) => Status::NotEmpty,
        FsError::Nfs(nfs3::status::NAMETOOLONG) => Status::InvalidName,
        FsError::Nfs(nfs3::status::ACCES | nfs3::status::PERM | nfs3::status::ROFS) => {
            Status::ServerWasDenied
        }
        FsError::InvalidPath => Status::InvalidPath,
        FsError::Busy => Status::AllocationError,
        _ => Status::Error,
    }
}

/// `FsStat` from NFS attributes.
pub fn fs_stat(a: &Fattr) -> FsStat {
    let kind = match a.ftype {
        FileType::Reg => 0o100_000,
        FileType::Dir => 0o040_000,
        FileType::Blk => 0o060_000,
        FileType::Chr => 0o020_000,
        FileType::Lnk => 0o120_000,
        FileType::Sock => 0o140_000,
        FileType::Fifo => 0o010_000,
    };
    FsStat {
        dev: a.fsid,
        ino: a.fileid,
        mode: u64::from(kind | (a.mode & 0o7777)),
        nlink: u64::from(a.nlink),
        uid: u64::from(a.uid),
        gid: u64::from(a.gid),
        rdev: (u64::from(a.rdev.0) << 32) | u64::from(a.rdev.1),
        size: a.size,
        blksize: 4096,
        blocks: a.used.div_ceil(512),
        atime: u64::from(a.atime.seconds),
        mtime: u64::from(a.mtime.seconds),
        ctime: u64::from(a.ctime.seconds),
        atime_nsec: u64::from(a.atime.nseconds),
        mtime_nsec: u64::from(a.mtime.nseconds),
        ctime_nsec: u64::from(a.ctime.nseconds),
        used: a.used,
    }
}

fn slot<T>(v: &mut Vec<Option<T>>, t: T) -> u32 {
    let i = match v.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            v.push(None);
            v.len() - 1
        }
    };
    v[i] = Some(t);
    // At most one slot per fd of the server's table (256).
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn io_len(buf: FsBuffer) -> u32 {
    // `MAX_IO` fits in u32.
    u32::try_from(buf.size.min(MAX_IO)).unwrap_or(0)
}

impl NfsBackend {
    /// A backend over `fs` (whose export is mounted).
    pub fn new(fs: NfsFs) -> Self {
        NfsBackend {
            fs,
            files: Vec::new(),
            dirs: Vec::new(),
            waiting: Vec::new(),
            done: VecDeque::new(),
        }
    }

    /// The NFS operations (and through them the RPC client, for the transport).
    pub fn fs(&mut self) -> &mut NfsFs {
        &mut self.fs
    }

    fn file(&mut self, h: u32) -> Result<&mut OpenFile, Status> {
        self.files
            .get_mut(h as usize)
            .and_then(Option::as_mut)
            .ok_or(Status::InvalidFd)
    }

    fn dir(&mut self, h: u32) -> Result<&mut OpenDir, Status> {
        self.dirs
            .get_mut(h as usize)
            .and_then(Option::as_mut)
            .ok_or(Status::InvalidFd)
    }

    fn now(&mut self, id: u64, r: Result<CompletionData, Status>) {
        self.done.push_back((id, r.map(Done::Data)));
    }

    fn nfs(&mut self, id: u64, req: Request, then: Then) {
        self.waiting.push((id, then));
        self.fs.start(id, req);
    }

    /// Serve a `DIR_READ` from the cached page, or fetch the next page.
    fn dir_read(
        &mut self,
        id: u64,
        h: u32,
        buf: FsBuffer,
        share: &ShareRegion<'_>,
    ) -> Result<(), Status> {
        let d = self.dir(h)?;
        while let Some((name, _)) = d.page.front() {
            if name == b"." || name == b".." || d.skip > 0 {
                if name != b"." && name != b".." {
                    d.skip -= 1;
                }
                d.page.pop_front();
                continue;
            }
            if name.len() as u64 > buf.size {
                return Err(Status::InvalidBuffer);
            }
            share.write(buf, 0, name).map_err(|e| e.status())?;
            let n = name.len() as u64;
            d.page.pop_front();
            d.pos += 1;
            self.now(id, Ok(CompletionData::PathLen(n)));
            return Ok(());
        }
        if d.eof {
            return Err(Status::EndOfDirectory);
        }
        let (fh, cookie, verf) = (d.fh, d.cookie, d.verf);
        self.nfs(
            id,
            Request::ReadDir { fh, cookie, verf },
            Then::DirPage(h, buf),
        );
        Ok(())
    }

    fn restart_dir(&mut self, h: u32, skip: u64) -> Result<(), Status> {
        let d = self.dir(h)?;
        d.cookie = 0;
        d.verf = [0; VERFSIZE];
        d.page.clear();
        d.eof = false;
        d.pos = skip;
        d.skip = skip;
        Ok(())
    }

    /// A looked-up object opened as a file (a directory is refused).
    fn open_file(&mut self, fh: FileHandle, attr: Option<&Fattr>) -> Result<Done<u32>, Status> {
        if attr.is_some_and(|a| a.ftype == FileType::Dir) {
            return Err(Status::InvalidPath);
        }
        let f = OpenFile {
            fh,
            dirty: false,
            verf: None,
            lost: false,
        };
        Ok(Done::Opened(slot(&mut self.files, f)))
    }

    /// A looked-up object opened as a directory (anything known to be another type is refused).
    fn open_dir(&mut self, fh: FileHandle, attr: Option<&Fattr>) -> Result<Done<u32>, Status> {
        if attr.is_some_and(|a| a.ftype != FileType::Dir) {
            return Err(Status::NotDirectory);
        }
        let d = OpenDir {
            fh,
            cookie: 0,
            verf: [0; VERFSIZE],
            page: VecDeque::new(),
            eof: false,
            pos: 0,
            skip: 0,
        };
        Ok(Done::Opened(slot(&mut self.dirs, d)))
    }

    /// A READDIR page for directory `h`: its entries queued, the cookie, verifier and end noted.
    fn take_page(&mut self, h: u32, page: DirPage) -> Result<(), Status> {
        let d = self.dir(h)?;
        if let Some(&(_, c)) = page.entries.last() {
            d.cookie = c;
        }
        d.verf = page.verf;
        d.eof = page.eof;
        d.page.extend(page.entries);
        Ok(())
    }

    fn finished(&mut self, id: OpId, r: Result<Outcome, FsError>, share: &ShareRegion<'_>) {
        let Some(i) = self.waiting.iter().position(|w| w.0 == id) else {
            return;
        };
        let (_, then) = self.waiting.swap_remove(i);
        let r = r.map_err(status_of);
        let data = |d| Ok(Done::Data(d));
        let res: Result<Done<u32>, Status> = match (then, r) {
            (_, Err(e)) => Err(e),
            (Then::Opened, Ok(Outcome::Object(fh, attr))) => self.open_file(fh, attr.as_ref()),
            (Then::DirOpened, Ok(Outcome::Object(fh, attr))) => self.open_dir(fh, attr.as_ref()),
            (Then::Stat(buf), Ok(Outcome::Attr(a))) => share
                .write(buf, 0, fs_stat(&a).as_bytes())
                .map_err(|e| e.status())
                .and_then(|()| data(CompletionData::None)),
            (Then::Read(buf), Ok(Outcome::Data(d, _))) => {
                let n = d.len().min(usize::try_from(buf.size).unwrap_or(usize::MAX));
                share
                    .write(buf, 0, &d[..n])
                    .map_err(|e| e.status())
                    .and_then(|()| data(CompletionData::LenRead(n as u64)))
            }
            (Then::Written(asked, h), Ok(Outcome::Written(n, how, verf))) => {
                if how == StableHow::Unstable
                    && let Some(Some(f)) = self.files.get_mut(h as usize)
                {
                    f.lost |= f.verf.is_some_and(|v| v != verf);
                    f.verf = Some(verf);
                }
                data(CompletionData::LenWritten(u64::from(n.min(asked))))
            }
            (Then::Size, Ok(Outcome::Attr(a))) => data(CompletionData::Size(a.size)),
            (Then::Committed(expect, lost), Ok(Outcome::Committed(verf))) => {
                // A new verifier: the server restarted after (some of) the unstable writes and
                // may have lost them. The client is told; the data is not kept to resend.
                if lost || expect.is_some_and(|v| v != verf) {
                    Err(Status::Error)
                } else {
                    data(CompletionData::None)
                }
            }
            (Then::Done, Ok(_)) => data(CompletionData::None),
            (Then::DirPage(h, buf), Ok(Outcome::Dir(page))) => {
                // Serve from the new page (or fetch the next one).
                if let Err(e) = self
                    .take_page(h, page)
                    .and_then(|()| self.dir_read(id, h, buf, share))
                {
                    self.done.push_back((id, Err(e)));
                }
                return;
            }
            _ => Err(Status::Error),
        };
        self.done.push_back((id, res));
    }
}

impl NfsBackend {
    /// Start an operation on a file (open, close, read, write, size, truncate, sync).
    fn start_file(
        &mut self,
        id: u64,
        op: Op<'_, u32>,
        share: &ShareRegion<'_>,
    ) -> Result<(), Status> {
        match op {
            Op::Open { path: p, flags } => {
                let p = path(p)?;
                let req = if flags.options.contains(OpenOptions::CREATE) {
                    Request::Create {
                        path: p,
                        mode: 0o644,
                        exclusive: false,
                    }
                } else {
                    Request::Lookup(p)
                };
                self.nfs(id, req, Then::Opened);
            }
            Op::Close(h) => {
                let f = self
                    .files
                    .get_mut(h as usize)
                    .and_then(Option::take)
                    .ok_or(Status::InvalidFd)?;
                if f.dirty {
                    self.nfs(id, Request::Commit(f.fh), Then::Committed(f.verf, f.lost));
                } else {
                    self.now(id, Ok(CompletionData::None));
                }
            }
            Op::Read { file, offset, buf } => {
                let fh = self.file(file)?.fh;
                let count = io_len(buf);
                self.nfs(id, Request::Read { fh, offset, count }, Then::Read(buf));
            }
            Op::Write { file, offset, buf } => {
                let f = self.file(file)?;
                f.dirty = true;
                let fh = f.fh;
                let n = io_len(buf);
                let mut data = vec![0; n as usize];
                share.read(buf, 0, &mut data).map_err(|e| e.status())?;
                let req = Request::Write {
                    fh,
                    offset,
                    data,
                    stable: StableHow::Unstable,
                };
                self.nfs(id, req, Then::Written(n, file));
            }
            Op::Size(h) => {
                let fh = self.file(h)?.fh;
                self.nfs(id, Request::GetAttr(fh), Then::Size);
            }
            Op::Truncate(h, len) => {
                let fh = self.file(h)?.fh;
                self.nfs(id, Request::SetSize(fh, len), Then::Done);
            }
            Op::Sync(h) => {
                let f = self.file(h)?;
                let then = Then::Committed(f.verf.take(), core::mem::take(&mut f.lost));
                f.dirty = false;
                let fh = f.fh;
                self.nfs(id, Request::Commit(fh), then);
            }
            _ => return Err(Status::InvalidCommand),
        }
        Ok(())
    }

    /// Start an operation on an open directory (close, read, tell, seek, rewind).
    fn start_dir(
        &mut self,
        id: u64,
        op: Op<'_, u32>,
        share: &ShareRegion<'_>,
    ) -> Result<(), Status> {
        match op {
            Op::DirClose(h) => {
                self.dirs
                    .get_mut(h as usize)
                    .and_then(Option::take)
                    .ok_or(Status::InvalidFd)?;
                self.now(id, Ok(CompletionData::None));
            }
            Op::DirRead { dir, buf } => self.dir_read(id, dir, buf, share)?,
            Op::DirTell(h) => {
                let pos = self.dir(h)?.pos;
                self.now(id, Ok(CompletionData::Location(pos)));
            }
            Op::DirSeek(h, loc) => {
                self.restart_dir(h, u64::try_from(loc).map_err(|_| Status::Error)?)?;
                self.now(id, Ok(CompletionData::None));
            }
            Op::DirRewind(h) => {
                self.restart_dir(h, 0)?;
                self.now(id, Ok(CompletionData::None));
            }
            _ => return Err(Status::InvalidCommand),
        }
        Ok(())
    }
}

/// A path for an NFS request: at most [`MAX_PATH`] bytes.
fn path(p: &str) -> Result<Vec<u8>, Status> {
    if p.len() > MAX_PATH {
        Err(Status::InvalidPath)
    } else {
        Ok(p.as_bytes().to_vec())
    }
}

impl DeferredBackend for NfsBackend {
    type Handle = u32;

    fn start(&mut self, id: u64, op: Op<'_, u32>, share: &ShareRegion<'_>) -> Result<(), Status> {
        match op {
            Op::Mount => self.now(id, Ok(CompletionData::None)),
            Op::Unmount => {
                self.files.clear();
                self.dirs.clear();
                self.now(id, Ok(CompletionData::None));
            }
            Op::Open { .. }
            | Op::Close(_)
            | Op::Read { .. }
            | Op::Write { .. }
            | Op::Size(_)
            | Op::Truncate(..)
            | Op::Sync(_) => self.start_file(id, op, share)?,
            Op::DirClose(_)
            | Op::DirRead { .. }
            | Op::DirTell(_)
            | Op::DirSeek(..)
            | Op::DirRewind(_) => self.start_dir(id, op, share)?,
            Op::Stat { path: p, buf } => self.nfs(id, Request::Stat(path(p)?), Then::Stat(buf)),
            Op::Rename { old, new } => {
                self.nfs(id, Request::Rename(path(old)?, path(new)?), Then::Done)
            }
            Op::Remove(p) => self.nfs(id, Request::Remove(path(p)?), Then::Done),
            Op::DirCreate(p) => self.nfs(id, Request::Mkdir(path(p)?), Then::Done),
            Op::DirRemove(p) => self.nfs(id, Request::Rmdir(path(p)?), Then::Done),
            Op::DirOpen(p) => self.nfs(id, Request::Lookup(path(p)?), Then::DirOpened),
        }
        Ok(())
    }

    fn poll(&mut self, share: &ShareRegion<'_>) -> Option<Finished<u32>> {
        loop {
            if let Some(d) = self.done.pop_front() {
                return Some(d);
            }
            let (id, r) = self.fs.poll()?;
            self.finished(id, r, share);
        }
    }
}
