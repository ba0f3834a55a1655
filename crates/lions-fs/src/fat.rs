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

use crate::block::BlockDevice;
use crate::cache::CacheConfig;
use crate::queue::{FsStat, OpenFlags, OpenOptions, Status};
use crate::server::FsBackend;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use lamfat::{Read, Seek, SeekFrom, Write};

mod disk;
mod ramdisk;

use disk::SharedDisk;
pub use disk::{BlockIo, DiskError};
pub use ramdisk::RamDisk;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
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
