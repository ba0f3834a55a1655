// SPDX-License-Identifier: BSD-2-Clause
//! The FAT backend ([`FatFs`]): FAT12/16/32 with long names over a [`BlockDevice`], on every
//! target (no_std + alloc, seL4 included).
//!
//! ## The FAT library, and why this one
//!
//! The crates.io `fatfs` 0.3.6 builds only with `std`: its no_std path needs `core_io`, which no
//! longer builds on stable. So the backend is written once against the rust-fatfs **0.4** API,
//! as republished on crates.io by `lamfat` (pinned `=0.4.3`: its own `Read`/`Write`/`Seek`
//! traits, long names, rename, format), and the same code runs in the host tests and in a seL4
//! PD. The crates.io `fatfs` 0.3.6 and `fsck.fat` are independent readers and writers in this
//! crate's tests (an image written here is read back by them, and an image they wrote is served
//! here).
//!
//! ## Serialised access (LionsOS's race cannot happen)
//!
//! The C server runs four FatFs workers as cothreads that interleave at disk-I/O yield points in a
//! non-reentrant FatFs. Here a command runs to completion inside one `&mut self` call, and the
//! volume is owned by the backend: two operations on one volume cannot overlap, by construction.
//!
//! ## Semantics
//!
//! - Paths: `/` separated, leading and repeated `/` and `.` ignored, `..` goes up (not above the
//!   root). Names match case-insensitively (long or short name), as FAT does.
//! - **Open objects are tracked by identity** (the chain of short names from the root). A file
//!   opened twice shares one object, so two fds never hold diverging copies of its directory
//!   entry. Removing or renaming an open file or directory, or renaming a directory with anything
//!   open below it, is refused with [`Status::OutstandingOperations`] (as FatFs's `FF_FS_LOCK`
//!   refuses it); moving a directory into itself is [`Status::InvalidPath`].
//! - A new name (create, mkdir, rename target) must begin with an ASCII character
//!   ([`Status::InvalidName`] otherwise): `lamfat` 0.4.3 panics making the short name of one that
//!   begins with a multi-byte character. Such names made elsewhere are served normally.
//! - Writes past the end fill the gap with zeros; `FILE_TRUNCATE` shrinks or extends with zeros.
//!   Files stop at 4 GiB − 1 (a write there is short).
//! - `DIR_READ` skips `.` and `..` and returns [`Status::EndOfDirectory`] at the end (LionsOS
//!   answered a plain `ERROR`); a name that does not fit the client's buffer is
//!   [`Status::InvalidBuffer`] and the entry is not consumed. `DIR_TELL` counts entries read;
//!   `DIR_SEEK` rewinds and skips.
//! - Errors: not found → [`Status::NoFile`]; a file where a directory is needed →
//!   [`Status::NotDirectory`]; a directory where a file is needed → [`Status::NoFile`] (FatFs's
//!   `FR_NO_FILE`); exists → [`Status::AlreadyExists`]; not empty → [`Status::NotEmpty`]; bad
//!   name → [`Status::InvalidName`]; no space → [`Status::ServerWasDenied`] (FatFs's
//!   `FR_DENIED`); device or corruption errors → [`Status::Error`].
//! - `STAT` synthesises a mode (`S_IFDIR | 0755`, `S_IFREG | 0644`, write bits cleared for
//!   read-only files), the modification time as a/m/ctime (no time zone: FAT time read as UTC),
//!   `blksize` = cluster size, `blocks` in 512-byte units, and the current size of an open file.
//! - Until a file is synced or closed its directory entry (size) on disk may be stale, as with
//!   FatFs; `DEINITIALISE` writes everything back and clears the volume's dirty flag.

use crate::block::{BlockDevice, BlockError};
use crate::cache::{BlockCache, CacheConfig};
use crate::queue::{FsStat, OpenFlags, OpenOptions, Status};
use crate::server::FsBackend;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use lamfat::{IoBase, Read, Seek, SeekFrom, Write};

/// Why the disk adaptor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// The block device failed.
    Block(BlockError),
    /// A read ended early.
    UnexpectedEof,
    /// A write made no progress.
    WriteZero,
    /// A seek before the start or past the end of the device.
    Seek,
}

impl lamfat::IoError for DiskError {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        Self::UnexpectedEof
    }
    fn new_write_zero_error() -> Self {
        Self::WriteZero
    }
}

impl From<BlockError> for DiskError {
    fn from(e: BlockError) -> Self {
        Self::Block(e)
    }
}

/// A block device as the byte stream the FAT library reads: arbitrary offsets and lengths,
/// through the one [`BlockCache`] (whole blocks at a block boundary go to the cache as runs;
/// the rest as parts of one block).
pub struct BlockIo {
    cache: BlockCache,
    block: usize,
    size: u64,
    pos: u64,
}

impl BlockIo {
    /// The stream over `dev` with a cache of [`CacheConfig::default`].
    pub fn new(dev: Box<dyn BlockDevice>) -> Self {
        Self::with_cache(dev, CacheConfig::default())
    }

    /// The stream over `dev` with a cache of `cfg`.
    pub fn with_cache(dev: Box<dyn BlockDevice>, cfg: CacheConfig) -> Self {
        let cache = BlockCache::new(dev, cfg);
        let block = cache.block_size();
        let size = cache.block_count().saturating_mul(block as u64);
        Self {
            cache,
            block,
            size,
            pos: 0,
        }
    }

    /// The device back (after a [`flush`](Write::flush), or cached writes are lost).
    pub fn into_device(self) -> Box<dyn BlockDevice> {
        self.cache.into_device()
    }

    /// The cache.
    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// Where the current position is: block, offset in it, and whole blocks available from it
    /// for a transfer of `len` bytes (0 unless the position is aligned).
    fn locate(&self, len: usize) -> (u64, usize, u64) {
        let bs = self.block as u64;
        let (lba, off) = (self.pos / bs, self.pos % bs);
        let whole = if off == 0 {
            (len as u64 / bs).min((self.size - self.pos) / bs)
        } else {
            0
        };
        // `off < block`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        (lba, off as usize, whole)
    }

    /// Bytes of a partial transfer of `len` at the current position (inside one block).
    fn part(&self, off: usize, len: usize) -> usize {
        let left = usize::try_from(self.size - self.pos).unwrap_or(usize::MAX);
        len.min(self.block - off).min(left)
    }
}

impl IoBase for BlockIo {
    type Error = DiskError;
}

impl Read for BlockIo {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DiskError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (lba, off, whole) = self.locate(buf.len());
        let n = if whole > 0 {
            // `whole * block <= buf.len()`.
            #[allow(clippy::cast_possible_truncation)]
            let n = whole as usize * self.block;
            self.cache.read(lba, &mut buf[..n])?;
            n
        } else {
            let n = self.part(off, buf.len());
            self.cache.read_part(lba, off, &mut buf[..n])?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for BlockIo {
    fn write(&mut self, buf: &[u8]) -> Result<usize, DiskError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (lba, off, whole) = self.locate(buf.len());
        let n = if whole > 0 {
            #[allow(clippy::cast_possible_truncation)]
            let n = whole as usize * self.block;
            self.cache.write(lba, &buf[..n])?;
            n
        } else {
            let n = self.part(off, buf.len());
            self.cache.write_part(lba, off, &buf[..n])?;
            n
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.cache.flush()?;
        Ok(())
    }
}

impl Seek for BlockIo {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, DiskError> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.size => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(DiskError::Seek),
        }
    }
}

/// The disk as the volume holds it: shared with [`FatFs`], which takes the device back after an
/// unmount. Only the volume uses it while mounted, one call at a time.
struct SharedDisk(Rc<RefCell<BlockIo>>);

impl IoBase for SharedDisk {
    type Error = DiskError;
}

impl Read for SharedDisk {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DiskError> {
        self.0.borrow_mut().read(buf)
    }
}

impl Write for SharedDisk {
    fn write(&mut self, buf: &[u8]) -> Result<usize, DiskError> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        self.0.borrow_mut().flush()
    }
}

impl Seek for SharedDisk {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, DiskError> {
        self.0.borrow_mut().seek(pos)
    }
}

type Tp = lamfat::DefaultTimeProvider;
type Occ = lamfat::LossyOemCpConverter;
type Volume = lamfat::FileSystem<SharedDisk, Tp, Occ>;
type LFile<'a> = lamfat::File<'a, SharedDisk, Tp, Occ>;
type LDir<'a> = lamfat::Dir<'a, SharedDisk, Tp, Occ>;
type LIter<'a> = lamfat::DirIter<'a, SharedDisk, Tp, Occ>;
type LEntry<'a> = lamfat::DirEntry<'a, SharedDisk, Tp, Occ>;
type LError = lamfat::Error<DiskError>;

/// The identity of an object: its short names from the root, `/`-separated (root: empty).
type Key = Vec<u8>;

enum Object<'a> {
    File {
        file: LFile<'a>,
        key: Key,
        refs: u32,
    },
    Dir {
        dir: LDir<'a>,
        iter: LIter<'a>,
        pos: u64,
        key: Key,
    },
}

impl Object<'_> {
    fn key(&self) -> &[u8] {
        match self {
            Self::File { key, .. } | Self::Dir { key, .. } => key,
        }
    }
}

/// Everything open on a mounted volume.
#[derive(Default)]
struct Opens<'a> {
    objects: Vec<Option<Object<'a>>>,
}

self_cell::self_cell!(
    /// A mounted volume and the objects open on it (which borrow it).
    struct Mounted {
        owner: Volume,
        #[not_covariant]
        dependent: Opens,
    }
);

/// The FAT backend; see the module docs. Handles index its table of open objects.
pub struct FatFs {
    disk: Rc<RefCell<BlockIo>>,
    mounted: Option<Mounted>,
}

impl FatFs {
    /// A backend over `dev` (mounted by `INITIALISE`) with a cache of [`CacheConfig::default`].
    pub fn new(dev: impl BlockDevice + 'static) -> Self {
        Self::with_cache(dev, CacheConfig::default())
    }

    /// A backend over `dev` with a cache of `cfg` (see [`crate::cache`]).
    pub fn with_cache(dev: impl BlockDevice + 'static, cfg: CacheConfig) -> Self {
        Self {
            disk: Rc::new(RefCell::new(BlockIo::with_cache(Box::new(dev), cfg))),
            mounted: None,
        }
    }

    /// The device back; `None` while mounted.
    pub fn into_device(self) -> Option<Box<dyn BlockDevice>> {
        if self.mounted.is_some() {
            return None;
        }
        Rc::try_unwrap(self.disk)
            .ok()
            .map(|d| d.into_inner().into_device())
    }

    /// Whether the volume is mounted.
    pub fn is_mounted(&self) -> bool {
        self.mounted.is_some()
    }

    /// Objects open (files opened by several fds count once).
    pub fn open_objects(&self) -> usize {
        self.mounted.as_ref().map_or(0, |m| {
            m.with_dependent(|_, o| o.objects.iter().flatten().count())
        })
    }

    fn with<R>(
        &mut self,
        f: impl for<'a> FnOnce(&'a Volume, &mut Opens<'a>) -> Result<R, Status>,
    ) -> Result<R, Status> {
        match &mut self.mounted {
            Some(m) => m.with_dependent_mut(|fs, opens| f(fs, opens)),
            None => Err(Status::Error),
        }
    }
}

/// Format `dev` with a FAT file system (type and cluster size chosen for its size).
pub fn format(dev: impl BlockDevice + 'static) -> Result<Box<dyn BlockDevice>, Status> {
    format_with(dev, lamfat::FormatVolumeOptions::new())
}

/// Format `dev` with the given options.
pub fn format_with(
    dev: impl BlockDevice + 'static,
    options: lamfat::FormatVolumeOptions,
) -> Result<Box<dyn BlockDevice>, Status> {
    let mut io = BlockIo::new(Box::new(dev));
    lamfat::format_volume(&mut io, options).map_err(status_of)?;
    io.flush().map_err(|_| Status::Error)?;
    Ok(io.into_device())
}

/// The protocol status of a FAT library error.
fn status_of(e: LError) -> Status {
    match e {
        LError::NotFound => Status::NoFile,
        LError::AlreadyExists => Status::AlreadyExists,
        LError::DirectoryIsNotEmpty => Status::NotEmpty,
        LError::InvalidFileNameLength | LError::UnsupportedFileNameCharacter => Status::InvalidName,
        LError::NotEnoughSpace => Status::ServerWasDenied,
        _ => Status::Error,
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

/// The path's components after dropping empty and `.` ones and resolving `..`.
fn components(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The entry called `name` in `dir`.
fn find<'a>(dir: &LDir<'a>, name: &str) -> Result<Option<LEntry<'a>>, Status> {
    for e in dir.iter() {
        let e = e.map_err(status_of)?;
        let long = e.file_name();
        if long == "." || long == ".." {
            continue;
        }
        if same_name(&long, name) || same_name(&e.short_file_name(), name) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// A name the library can create: it must begin with an ASCII character, because `lamfat` 0.4.3
/// slices the name at byte 1 when it makes the short name, which panics inside a multi-byte
/// character. Existing names of any kind can still be opened, read and removed.
fn creatable(name: &str) -> Result<&str, Status> {
    match name.as_bytes().first() {
        Some(b) if b.is_ascii() => Ok(name),
        _ => Err(Status::InvalidName),
    }
}

fn child_key(parent: &[u8], e: &LEntry<'_>) -> Key {
    let mut k = parent.to_vec();
    k.push(b'/');
    k.extend_from_slice(e.short_file_name_as_bytes());
    k
}

/// A path looked up: its parent directory, and the last component with its entry if it exists.
struct Lookup<'a, 'p> {
    parent: LDir<'a>,
    parent_key: Key,
    /// `None` for the root itself.
    last: Option<(&'p str, Option<LEntry<'a>>)>,
}

fn lookup<'a, 'p>(fs: &'a Volume, path: &'p str) -> Result<Lookup<'a, 'p>, Status> {
    let comps = components(path);
    let mut dir = fs.root_dir();
    let mut key = Key::new();
    let Some((&last, dirs)) = comps.split_last() else {
        return Ok(Lookup {
            parent: dir,
            parent_key: key,
            last: None,
        });
    };
    for &c in dirs {
        let e = find(&dir, c)?.ok_or(Status::NoFile)?;
        if !e.is_dir() {
            return Err(Status::NotDirectory);
        }
        key = child_key(&key, &e);
        dir = e.to_dir();
    }
    let found = find(&dir, last)?;
    Ok(Lookup {
        parent: dir,
        parent_key: key,
        last: Some((last, found)),
    })
}

/// Whether the object `key` or anything below it is open.
fn in_use(opens: &Opens<'_>, key: &[u8]) -> bool {
    opens.objects.iter().flatten().any(|o| {
        let k = o.key();
        k == key || (k.len() > key.len() && k.starts_with(key) && k[key.len()] == b'/')
    })
}

fn insert<'a>(opens: &mut Opens<'a>, o: Object<'a>) -> Result<u32, Status> {
    let i = match opens.objects.iter().position(Option::is_none) {
        Some(i) => {
            opens.objects[i] = Some(o);
            i
        }
        None => {
            opens.objects.push(Some(o));
            opens.objects.len() - 1
        }
    };
    u32::try_from(i).map_err(|_| Status::TooManyOpenFiles)
}

fn file<'o, 'a>(opens: &'o mut Opens<'a>, h: u32) -> Result<&'o mut LFile<'a>, Status> {
    match opens.objects.get_mut(h as usize) {
        Some(Some(Object::File { file, .. })) => Ok(file),
        _ => Err(Status::InvalidFd),
    }
}

fn size_of_file(f: &mut LFile<'_>) -> Result<u64, Status> {
    f.seek(SeekFrom::End(0)).map_err(status_of)
}

/// Append `n` zero bytes at the end of `f`.
fn zero_fill(f: &mut LFile<'_>, mut n: u64) -> Result<(), Status> {
    f.seek(SeekFrom::End(0)).map_err(status_of)?;
    let zeros = [0u8; 512];
    while n > 0 {
        let k = usize::try_from(n).map_or(zeros.len(), |n| n.min(zeros.len()));
        match f.write(&zeros[..k]).map_err(status_of)? {
            0 => return Err(Status::ServerWasDenied),
            w => n -= w as u64,
        }
    }
    Ok(())
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_time(t: lamfat::DateTime) -> u64 {
    let days = days_from_civil(
        i64::from(t.date.year),
        i64::from(t.date.month),
        i64::from(t.date.day),
    );
    let secs = days * 86_400
        + i64::from(t.time.hour) * 3600
        + i64::from(t.time.min) * 60
        + i64::from(t.time.sec);
    u64::try_from(secs).unwrap_or(0)
}

/// `S_IFDIR`.
pub const S_IFDIR: u64 = 0o040_000;
/// `S_IFREG`.
pub const S_IFREG: u64 = 0o100_000;

fn stat_of(fs: &Volume, dir: bool, read_only: bool, size: u64, mtime: u64) -> FsStat {
    let perm = if dir { 0o755 } else { 0o644 };
    let perm = if read_only { perm & !0o222 } else { perm };
    FsStat {
        mode: if dir { S_IFDIR } else { S_IFREG } | perm,
        nlink: 1,
        size,
        blksize: u64::from(fs.cluster_size()),
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        ..FsStat::default()
    }
}

impl FsBackend for FatFs {
    type Handle = u32;

    fn mount(&mut self) -> Result<(), Status> {
        if self.mounted.is_some() {
            return Err(Status::Error);
        }
        // The library expects the stream at 0 (a remount finds it where the last unmount left it).
        self.disk
            .borrow_mut()
            .seek(SeekFrom::Start(0))
            .map_err(|_| Status::Error)?;
        let disk = SharedDisk(Rc::clone(&self.disk));
        let fs = Volume::new(disk, lamfat::FsOptions::new()).map_err(status_of)?;
        self.mounted = Some(Mounted::new(fs, |_| Opens::default()));
        Ok(())
    }

    fn unmount(&mut self) -> Result<(), Status> {
        let m = self.mounted.take().ok_or(Status::Error)?;
        // Objects still open flush as they drop; then the volume clears its dirty flag.
        let fs = m.into_owner();
        let r = fs.unmount().map_err(status_of);
        self.disk.borrow_mut().flush().map_err(|_| Status::Error)?;
        r
    }

    fn open(&mut self, path: &str, flags: OpenFlags) -> Result<u32, Status> {
        self.with(|fs, opens| {
            let l = lookup(fs, path)?;
            let Some((name, found)) = l.last else {
                return Err(Status::NoFile);
            };
            let entry = match found {
                Some(e) => e,
                None if flags.options.contains(OpenOptions::CREATE) => {
                    drop(l.parent.create_file(creatable(name)?).map_err(status_of)?);
                    find(&l.parent, name)?.ok_or(Status::Error)?
                }
                None => return Err(Status::NoFile),
            };
            if entry.is_dir() {
                return Err(Status::NoFile);
            }
            let key = child_key(&l.parent_key, &entry);
            for (i, o) in opens.objects.iter_mut().enumerate() {
                if let Some(Object::File { key: k, refs, .. }) = o
                    && *k == key
                {
                    *refs = refs.checked_add(1).ok_or(Status::TooManyOpenFiles)?;
                    return u32::try_from(i).map_err(|_| Status::TooManyOpenFiles);
                }
            }
            let file = entry.to_file();
            insert(opens, Object::File { file, key, refs: 1 })
        })
    }

    fn close(&mut self, h: u32) -> Result<(), Status> {
        self.with(|_, opens| {
            let slot = opens.objects.get_mut(h as usize).ok_or(Status::InvalidFd)?;
            let Some(Object::File { refs, .. }) = slot else {
                return Err(Status::InvalidFd);
            };
            *refs -= 1;
            if *refs == 0
                && let Some(Object::File { mut file, .. }) = slot.take()
            {
                file.flush().map_err(status_of)?;
            }
            Ok(())
        })
    }

    fn stat(&mut self, path: &str) -> Result<FsStat, Status> {
        self.with(|fs, opens| {
            let l = lookup(fs, path)?;
            let Some((_, found)) = l.last else {
                return Ok(stat_of(fs, true, false, 0, 0));
            };
            let e = found.ok_or(Status::NoFile)?;
            let key = child_key(&l.parent_key, &e);
            let mut size = e.len();
            for o in opens.objects.iter_mut().flatten() {
                if let Object::File { file, key: k, .. } = o
                    && *k == key
                {
                    size = size_of_file(file)?;
                }
            }
            let ro = e.attributes().contains(lamfat::FileAttributes::READ_ONLY);
            Ok(stat_of(fs, e.is_dir(), ro, size, unix_time(e.modified())))
        })
    }

    fn read(&mut self, h: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Status> {
        self.with(|_, opens| {
            let f = file(opens, h)?;
            // A seek stops at the end of the file, and from the current position it walks only
            // the clusters in between: sequential reads never walk the chain from its start
            // (asking for the size first did, on every call).
            if f.seek(SeekFrom::Start(offset)).map_err(status_of)? < offset {
                return Ok(0);
            }
            let mut done = 0;
            while done < buf.len() {
                match f.read(&mut buf[done..]) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if done == 0 => return Err(status_of(e)),
                    Err(_) => break,
                }
            }
            Ok(done)
        })
    }

    fn write(&mut self, h: u32, offset: u64, buf: &[u8]) -> Result<usize, Status> {
        self.with(|_, opens| {
            let f = file(opens, h)?;
            if offset > u64::from(u32::MAX) {
                return Ok(0);
            }
            // As in `read`: the seek stops at the end; a gap up to `offset` is filled with zeros.
            let at = f.seek(SeekFrom::Start(offset)).map_err(status_of)?;
            if at < offset {
                zero_fill(f, offset - at)?;
            }
            let mut done = 0;
            while done < buf.len() {
                match f.write(&buf[done..]) {
                    Ok(0) => break,
                    Ok(n) => done += n,
                    Err(e) if done == 0 => return Err(status_of(e)),
                    Err(_) => break,
                }
            }
            Ok(done)
        })
    }

    fn size(&mut self, h: u32) -> Result<u64, Status> {
        self.with(|_, opens| size_of_file(file(opens, h)?))
    }

    fn rename(&mut self, old: &str, new: &str) -> Result<(), Status> {
        self.with(|fs, opens| {
            let from = lookup(fs, old)?;
            let (old_name, found) = from.last.ok_or(Status::InvalidPath)?;
            let e = found.ok_or(Status::NoFile)?;
            let key = child_key(&from.parent_key, &e);
            if in_use(opens, &key) {
                return Err(Status::OutstandingOperations);
            }
            let to = lookup(fs, new)?;
            let (new_name, existing) = to.last.ok_or(Status::InvalidPath)?;
            let into_itself = to.parent_key == key
                || (to.parent_key.starts_with(&key) && to.parent_key.get(key.len()) == Some(&b'/'));
            if into_itself {
                return Err(Status::InvalidPath);
            }
            if let Some(x) = existing
                && child_key(&to.parent_key, &x) != key
            {
                return Err(Status::AlreadyExists);
            }
            from.parent
                .rename(old_name, &to.parent, creatable(new_name)?)
                .map_err(status_of)
        })
    }

    fn remove(&mut self, path: &str) -> Result<(), Status> {
        self.with(|fs, opens| {
            let l = lookup(fs, path)?;
            let (name, found) = l.last.ok_or(Status::NoFile)?;
            let e = found.ok_or(Status::NoFile)?;
            if e.is_dir() {
                return Err(Status::NoFile);
            }
            if in_use(opens, &child_key(&l.parent_key, &e)) {
                return Err(Status::OutstandingOperations);
            }
            l.parent.remove(name).map_err(status_of)
        })
    }

    fn truncate(&mut self, h: u32, length: u64) -> Result<(), Status> {
        self.with(|_, opens| {
            let f = file(opens, h)?;
            if length > u64::from(u32::MAX) {
                return Err(Status::ServerWasDenied);
            }
            let size = size_of_file(f)?;
            if length < size {
                f.seek(SeekFrom::Start(length)).map_err(status_of)?;
                f.truncate().map_err(status_of)
            } else {
                zero_fill(f, length - size)
            }
        })
    }

    fn dir_create(&mut self, path: &str) -> Result<(), Status> {
        self.with(|fs, _| {
            let l = lookup(fs, path)?;
            match l.last {
                None | Some((_, Some(_))) => Err(Status::AlreadyExists),
                Some((name, None)) => l
                    .parent
                    .create_dir(creatable(name)?)
                    .map(drop)
                    .map_err(status_of),
            }
        })
    }

    fn dir_remove(&mut self, path: &str) -> Result<(), Status> {
        self.with(|fs, opens| {
            let l = lookup(fs, path)?;
            let (name, found) = l.last.ok_or(Status::InvalidPath)?;
            let e = found.ok_or(Status::NoFile)?;
            if !e.is_dir() {
                return Err(Status::NotDirectory);
            }
            if in_use(opens, &child_key(&l.parent_key, &e)) {
                return Err(Status::OutstandingOperations);
            }
            l.parent.remove(name).map_err(status_of)
        })
    }

    fn dir_open(&mut self, path: &str) -> Result<u32, Status> {
        self.with(|fs, opens| {
            let l = lookup(fs, path)?;
            let (dir, key) = match l.last {
                None => (l.parent, l.parent_key),
                Some((_, None)) => return Err(Status::NoFile),
                Some((_, Some(e))) if !e.is_dir() => return Err(Status::NotDirectory),
                Some((_, Some(e))) => (e.to_dir(), child_key(&l.parent_key, &e)),
            };
            let iter = dir.iter();
            insert(
                opens,
                Object::Dir {
                    dir,
                    iter,
                    pos: 0,
                    key,
                },
            )
        })
    }

    fn dir_close(&mut self, h: u32) -> Result<(), Status> {
        self.with(|_, opens| match opens.objects.get_mut(h as usize) {
            Some(slot @ Some(Object::Dir { .. })) => {
                *slot = None;
                Ok(())
            }
            _ => Err(Status::InvalidFd),
        })
    }

    fn sync(&mut self, h: u32) -> Result<(), Status> {
        self.with(|_, opens| file(opens, h)?.flush().map_err(status_of))
    }

    fn dir_read(&mut self, h: u32, name: &mut [u8]) -> Result<usize, Status> {
        self.with(|_, opens| {
            let Some(Some(Object::Dir { iter, pos, .. })) = opens.objects.get_mut(h as usize)
            else {
                return Err(Status::InvalidFd);
            };
            loop {
                let mut next = iter.clone();
                let e = next
                    .next()
                    .ok_or(Status::EndOfDirectory)?
                    .map_err(status_of)?;
                let n = e.file_name();
                if n == "." || n == ".." {
                    *iter = next;
                    continue;
                }
                let out = name.get_mut(..n.len()).ok_or(Status::InvalidBuffer)?;
                out.copy_from_slice(n.as_bytes());
                *iter = next;
                *pos += 1;
                return Ok(n.len());
            }
        })
    }

    fn dir_seek(&mut self, h: u32, loc: i64) -> Result<(), Status> {
        let loc = u64::try_from(loc).map_err(|_| Status::Error)?;
        self.with(|_, opens| {
            let Some(Some(Object::Dir { dir, iter, pos, .. })) = opens.objects.get_mut(h as usize)
            else {
                return Err(Status::InvalidFd);
            };
            *iter = dir.iter();
            *pos = 0;
            while *pos < loc {
                match iter.next() {
                    None => break,
                    Some(Err(e)) => return Err(status_of(e)),
                    Some(Ok(e)) => {
                        let n = e.file_name();
                        if n != "." && n != ".." {
                            *pos += 1;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    fn device_notified(&mut self) {
        self.disk.borrow_mut().cache.poll();
    }

    fn dir_tell(&mut self, h: u32) -> Result<u64, Status> {
        self.with(|_, opens| match opens.objects.get(h as usize) {
            Some(Some(Object::Dir { pos, .. })) => Ok(*pos),
            _ => Err(Status::InvalidFd),
        })
    }

    fn dir_rewind(&mut self, h: u32) -> Result<(), Status> {
        self.with(|_, opens| match opens.objects.get_mut(h as usize) {
            Some(Some(Object::Dir { dir, iter, pos, .. })) => {
                *iter = dir.iter();
                *pos = 0;
                Ok(())
            }
            _ => Err(Status::InvalidFd),
        })
    }
}

/// Shared state of a [`RamDisk`].
struct RamState {
    data: Vec<u8>,
    block: usize,
    fail: bool,
    reads: u64,
    writes: u64,
    flushes: u64,
}

/// A block device in memory (tests, RAM disks). Clones share the same blocks, so a test keeps
/// one to look at the image while the backend owns another; [`set_failing`](Self::set_failing)
/// makes every operation fail.
#[derive(Clone)]
pub struct RamDisk(Rc<RefCell<RamState>>);

impl RamDisk {
    /// `blocks` zeroed blocks of `block_size` bytes.
    pub fn new(block_size: usize, blocks: u64) -> Self {
        let len = usize::try_from(blocks)
            .ok()
            .and_then(|b| b.checked_mul(block_size))
            .unwrap_or(0);
        Self::from_image(vec![0; len], block_size)
    }

    /// A disk holding `image` (its length rounded down to whole blocks).
    pub fn from_image(mut image: Vec<u8>, block_size: usize) -> Self {
        let block = block_size.max(1);
        image.truncate(image.len() / block * block);
        Self(Rc::new(RefCell::new(RamState {
            data: image,
            block,
            fail: false,
            reads: 0,
            writes: 0,
            flushes: 0,
        })))
    }

    /// A copy of the image.
    pub fn image(&self) -> Vec<u8> {
        self.0.borrow().data.clone()
    }

    /// Make every operation fail with [`BlockError::Io`] (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        self.0.borrow_mut().fail = fail;
    }

    /// Operations so far: `(reads, writes, flushes)`.
    pub fn counts(&self) -> (u64, u64, u64) {
        let s = self.0.borrow();
        (s.reads, s.writes, s.flushes)
    }

    fn range(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        crate::block::check_transfer(self, lba, len)?;
        let block = self.0.borrow().block;
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(block))
            .ok_or(BlockError::OutOfRange)?;
        Ok(start..start + len)
    }
}

impl BlockDevice for RamDisk {
    fn block_size(&self) -> usize {
        self.0.borrow().block
    }

    fn block_count(&self) -> u64 {
        let s = self.0.borrow();
        (s.data.len() / s.block) as u64
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.reads += 1;
        buf.copy_from_slice(&s.data[r]);
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.writes += 1;
        s.data[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlockError> {
        let mut s = self.0.borrow_mut();
        if s.fail {
            return Err(BlockError::Io);
        }
        s.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn block_io_reads_and_writes_any_span() {
        let disk = RamDisk::new(512, 16);
        let mut io = BlockIo::new(Box::new(disk.clone()));
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        io.seek(SeekFrom::Start(100)).unwrap();
        io.write_all(&data).unwrap();
        io.flush().unwrap();
        let img = disk.image();
        assert_eq!(&img[100..3100], &data[..]);
        assert!(img[..100].iter().all(|&b| b == 0) && img[3100..].iter().all(|&b| b == 0));
        let mut back = vec![0u8; 3000];
        io.seek(SeekFrom::Start(100)).unwrap();
        io.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
        // Aligned whole blocks bypass the cache but see its dirty contents.
        io.seek(SeekFrom::Start(1024 + 7)).unwrap();
        io.write_all(b"dirty").unwrap();
        io.seek(SeekFrom::Start(1024)).unwrap();
        let mut blocks = vec![0u8; 1024];
        io.read_exact(&mut blocks).unwrap();
        assert_eq!(&blocks[7..12], b"dirty");
        // And an aligned write over a dirty cached block is not undone by a later write-back.
        io.seek(SeekFrom::Start(1024)).unwrap();
        io.write_all(&[9u8; 1024]).unwrap();
        io.flush().unwrap();
        assert!(disk.image()[1024..2048].iter().all(|&b| b == 9));
        assert_eq!(io.seek(SeekFrom::End(0)).unwrap(), 8192);
        assert_eq!(io.seek(SeekFrom::End(1)), Err(DiskError::Seek));
        assert_eq!(io.read(&mut back).unwrap(), 0, "end of device");
        assert_eq!(io.write(&back).unwrap(), 0, "end of device");
    }

    #[test]
    fn device_errors_surface() {
        let disk = RamDisk::new(4096, 4);
        let mut io = BlockIo::new(Box::new(disk.clone()));
        disk.set_failing(true);
        let mut b = [0u8; 10];
        assert_eq!(io.read(&mut b), Err(DiskError::Block(BlockError::Io)));
        let mut d = disk.clone();
        assert_eq!(
            d.read_blocks(4, &mut [0u8; 4096]),
            Err(BlockError::OutOfRange)
        );
        assert_eq!(
            d.read_blocks(0, &mut [0u8; 100]),
            Err(BlockError::OutOfRange)
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1980, 1, 1), 3652);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2107, 12, 31), 50_402);
    }

    #[test]
    fn paths_normalise() {
        assert_eq!(components("/a//b/./c/"), ["a", "b", "c"]);
        assert_eq!(components("../a/../../b"), ["b"]);
        assert!(components("/").is_empty());
        assert!(same_name("grüße.txt", "GRÜSSE.TXT"));
        assert!(!same_name("a.txt", "b.txt"));
        assert!(same_name("readme.TXT", "README.txt"));
    }
}
