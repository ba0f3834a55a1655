// SPDX-License-Identifier: BSD-2-Clause
//! The FS server library: what every FS server (FAT, NFS, ...) shares. A file-system backend
//! implements [`FsBackend`]; [`FsServer`] owns the queues, the share region and the [`FdTable`],
//! and turns commands into backend calls and results into completions.
//!
//! ## Protocol (server side)
//!
//! - **Taking commands**: on a notification, take commands while the completion queue has room
//!   for their completions (so no completion is ever dropped), decode, validate, execute, stage the
//!   completion. Then publish both queues once and notify the client once if any completion was
//!   published.
//! - **Every command gets exactly one completion** with the command's id, including commands whose
//!   type is unknown ([`Status::InvalidCommand`]) or whose open flags are invalid.
//! - **Validation before the backend runs**: buffers must lie inside the share region
//!   ([`Status::InvalidBuffer`]); paths at most 4095 bytes, UTF-8, no NUL
//!   ([`Status::InvalidPath`]), components at most 255 bytes ([`Status::InvalidName`]); fds must
//!   name an open slot of the right kind with the current generation ([`Status::InvalidFd`]);
//!   reads and writes need the access the fd was opened with ([`Status::InvalidRead`],
//!   [`Status::InvalidWrite`]); `STAT` needs a buffer of at least `size_of::<FsStat>()` bytes.
//! - **Mounting**: every command but `INITIALISE` fails with [`Status::Error`] until
//!   `INITIALISE` succeeded; `INITIALISE` while mounted and `DEINITIALISE` while unmounted fail
//!   with [`Status::Error`]. `DEINITIALISE` closes every open fd first.
//! - **Data never leaves local memory inside the backend**: reads and writes move through a
//!   bounce buffer of [`BOUNCE_BYTES`] in the server, so a backend never sees a reference into
//!   memory the client can change.
//! - **A misbehaving client** (impossible queue indices) is marked [`faulty`](FsServer::faulty)
//!   and ignored from then on; the server itself never panics and never faults because of it.

use crate::queue::{
    Command, CompletionData, FsBuffer, FsCmd, FsCmpl, FsServerQueues, FsStat, OpenFlags,
    QueueError, Status,
};
use crate::share::{PATH_BUFFER_BYTES, ShareRegion};
use lions_os::{Channel, ChannelSet, Handler, OsError};
use zerocopy::IntoBytes;

/// Slots of the fd table (`MAX_OPEN_FILES` of the C server library).
pub const MAX_OPEN_FILES: usize = 256;

/// Bytes moved per backend call when serving a read or a write.
pub const BOUNCE_BYTES: usize = 4096;

/// Longest directory entry name a backend may return, in bytes (255 UTF-16 units as UTF-8).
pub const NAME_BUFFER_BYTES: usize = 3 * 255;

/// What an fd names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// An open file.
    File,
    /// An open directory.
    Dir,
}

#[derive(Debug, Clone, Copy)]
enum SlotState<H> {
    Free,
    Reserved,
    Open {
        kind: FdKind,
        flags: OpenFlags,
        handle: H,
    },
}

#[derive(Debug, Clone, Copy)]
struct Slot<H> {
    generation: u64,
    busy: u32,
    state: SlotState<H>,
}

/// A reserved fd slot, to be [`fill`](FdTable::fill)ed or [`cancel`](FdTable::cancel)led.
#[must_use]
#[derive(Debug)]
pub struct Reservation {
    index: usize,
}

/// An operation in flight on an fd (its busy count holds one for it); hand it back with
/// [`FdTable::end`].
#[must_use]
#[derive(Debug)]
pub struct InFlight<H> {
    index: usize,
    generation: u64,
    /// The backend's handle of the open object.
    pub handle: H,
    /// The flags the fd was opened with.
    pub flags: OpenFlags,
}

/// The fd table: `N` slots, each free → reserved → open (file or directory), with a generation
/// and a busy count.
///
/// - An fd is `index + generation × N`. The generation advances whenever a slot is freed, so a
///   stale fd (closed, then the slot reused) is rejected; so is a generation *newer* than the
///   slot's (LionsOS's `fd_to_of` accepted those).
/// - [`begin`](Self::begin) counts an operation in; [`close`](Self::close) refuses a busy fd with
///   [`Status::OutstandingOperations`]. A synchronous server uses [`with_op`](Self::with_op), which
///   cannot forget the matching [`end`](Self::end).
/// - Handles are the backend's (`H: Copy`): the table never interprets them.
#[derive(Debug)]
pub struct FdTable<H, const N: usize = MAX_OPEN_FILES> {
    slots: [Slot<H>; N],
}

impl<H: Copy, const N: usize> Default for FdTable<H, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Copy, const N: usize> FdTable<H, N> {
    /// Generations run modulo this, so `index + generation × N` never overflows.
    const GENERATIONS: u64 = u64::MAX / N as u64;

    /// An empty table.
    pub fn new() -> Self {
        const { assert!(N > 0) };
        Self {
            slots: [Slot {
                generation: 0,
                busy: 0,
                state: SlotState::Free,
            }; N],
        }
    }

    fn fd_of(&self, index: usize) -> u64 {
        index as u64 + self.slots[index].generation * N as u64
    }

    /// The slot index of `fd`, if its generation is the slot's current one.
    fn index_of(&self, fd: u64) -> Option<usize> {
        // `fd % N < N`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        let index = (fd % N as u64) as usize;
        (self.slots[index].generation == fd / N as u64).then_some(index)
    }

    /// Reserve a free slot ([`Status::TooManyOpenFiles`] when none is left).
    pub fn reserve(&mut self) -> Result<Reservation, Status> {
        let index = self
            .slots
            .iter()
            .position(|s| matches!(s.state, SlotState::Free))
            .ok_or(Status::TooManyOpenFiles)?;
        self.slots[index].state = SlotState::Reserved;
        Ok(Reservation { index })
    }

    /// Make a reserved slot an open fd; returns the fd.
    pub fn fill(&mut self, r: Reservation, kind: FdKind, flags: OpenFlags, handle: H) -> u64 {
        self.slots[r.index].state = SlotState::Open {
            kind,
            flags,
            handle,
        };
        self.fd_of(r.index)
    }

    /// Give a reserved slot back (the open failed).
    pub fn cancel(&mut self, r: Reservation) {
        self.free(r.index);
    }

    fn free(&mut self, index: usize) {
        let s = &mut self.slots[index];
        s.state = SlotState::Free;
        s.busy = 0;
        s.generation = (s.generation + 1) % Self::GENERATIONS;
    }

    /// Open through `open`, which runs only when a slot is free; returns the new fd.
    pub fn open(
        &mut self,
        kind: FdKind,
        flags: OpenFlags,
        open: impl FnOnce() -> Result<H, Status>,
    ) -> Result<u64, Status> {
        let r = self.reserve()?;
        match open() {
            Ok(h) => Ok(self.fill(r, kind, flags, h)),
            Err(e) => {
                self.cancel(r);
                Err(e)
            }
        }
    }

    /// Count an operation in on `fd`, which must be open as `kind` ([`Status::InvalidFd`]).
    pub fn begin(&mut self, fd: u64, kind: FdKind) -> Result<InFlight<H>, Status> {
        let index = self.index_of(fd).ok_or(Status::InvalidFd)?;
        let slot = &mut self.slots[index];
        match slot.state {
            SlotState::Open {
                kind: k,
                flags,
                handle,
            } if k == kind => {
                slot.busy = slot.busy.checked_add(1).ok_or(Status::AllocationError)?;
                Ok(InFlight {
                    index,
                    generation: slot.generation,
                    handle,
                    flags,
                })
            }
            _ => Err(Status::InvalidFd),
        }
    }

    /// Count an operation out.
    pub fn end(&mut self, op: InFlight<H>) {
        let slot = &mut self.slots[op.index];
        // A busy slot cannot be closed, so the generation still matches; checked all the same.
        if slot.generation == op.generation {
            slot.busy = slot.busy.saturating_sub(1);
        }
    }

    /// Run `f` as one operation on `fd` (begin, `f`, end).
    pub fn with_op<R>(
        &mut self,
        fd: u64,
        kind: FdKind,
        f: impl FnOnce(H, OpenFlags) -> R,
    ) -> Result<R, Status> {
        let op = self.begin(fd, kind)?;
        let r = f(op.handle, op.flags);
        self.end(op);
        Ok(r)
    }

    /// Operations in flight on `fd` (0 for an invalid fd).
    pub fn busy(&self, fd: u64) -> u32 {
        self.index_of(fd).map_or(0, |i| self.slots[i].busy)
    }

    /// Close `fd`, which must be open as `kind` and not busy
    /// ([`Status::OutstandingOperations`]); returns its handle for the backend to close.
    pub fn close(&mut self, fd: u64, kind: FdKind) -> Result<H, Status> {
        let index = self.index_of(fd).ok_or(Status::InvalidFd)?;
        let slot = &self.slots[index];
        match slot.state {
            SlotState::Open {
                kind: k, handle, ..
            } if k == kind => {
                if slot.busy > 0 {
                    return Err(Status::OutstandingOperations);
                }
                self.free(index);
                Ok(handle)
            }
            _ => Err(Status::InvalidFd),
        }
    }

    /// Open fds: `(fd, kind, handle)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, FdKind, H)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                SlotState::Open { kind, handle, .. } => Some((self.fd_of(i), kind, handle)),
                _ => None,
            })
    }

    /// How many fds are open.
    pub fn open_count(&self) -> usize {
        self.iter().count()
    }
}

/// A file system behind an FS server. The server has validated everything it can before a call:
/// paths are UTF-8 within the length limits, fds are open with the right kind and access, and
/// buffers are local memory. Handles are the backend's own (an index into its open table).
///
/// Errors are the protocol's [`Status`] values; each method's docs name the ones it is expected
/// to return, and [`Status::Error`] is always possible (an I/O error).
pub trait FsBackend {
    /// The backend's handle of an open file or directory.
    type Handle: Copy;

    /// Mount (`INITIALISE`).
    fn mount(&mut self) -> Result<(), Status>;
    /// Unmount (`DEINITIALISE`), after the server closed every handle.
    fn unmount(&mut self) -> Result<(), Status>;
    /// Open a file, creating it with [`OpenOptions::CREATE`](crate::OpenOptions::CREATE)
    /// ([`Status::NoFile`], [`Status::NotDirectory`], [`Status::InvalidName`]).
    fn open(&mut self, path: &str, flags: OpenFlags) -> Result<Self::Handle, Status>;
    /// Close a file.
    fn close(&mut self, file: Self::Handle) -> Result<(), Status>;
    /// Metadata of a path ([`Status::NoFile`]).
    fn stat(&mut self, path: &str) -> Result<FsStat, Status>;
    /// Read at `offset` into `buf`; 0 at or past the end of the file.
    fn read(&mut self, file: Self::Handle, offset: u64, buf: &mut [u8]) -> Result<usize, Status>;
    /// Write `buf` at `offset` (a gap past the end reads as zeros); returns bytes written.
    fn write(&mut self, file: Self::Handle, offset: u64, buf: &[u8]) -> Result<usize, Status>;
    /// File size.
    fn size(&mut self, file: Self::Handle) -> Result<u64, Status>;
    /// Rename or move ([`Status::NoFile`], [`Status::AlreadyExists`]).
    fn rename(&mut self, old: &str, new: &str) -> Result<(), Status>;
    /// Remove a file ([`Status::NoFile`]).
    fn remove(&mut self, path: &str) -> Result<(), Status>;
    /// Set a file's length (shrink, or extend with zeros).
    fn truncate(&mut self, file: Self::Handle, length: u64) -> Result<(), Status>;
    /// Create a directory ([`Status::AlreadyExists`], [`Status::NoFile`]).
    fn dir_create(&mut self, path: &str) -> Result<(), Status>;
    /// Remove an empty directory ([`Status::NotEmpty`], [`Status::NotDirectory`]).
    fn dir_remove(&mut self, path: &str) -> Result<(), Status>;
    /// Open a directory for reading ([`Status::NoFile`], [`Status::NotDirectory`]).
    fn dir_open(&mut self, path: &str) -> Result<Self::Handle, Status>;
    /// Close a directory.
    fn dir_close(&mut self, dir: Self::Handle) -> Result<(), Status>;
    /// Write a file's data and metadata to the device.
    fn sync(&mut self, file: Self::Handle) -> Result<(), Status>;
    /// The next entry's name into `name`, returning its length; [`Status::EndOfDirectory`] at the
    /// end; [`Status::InvalidBuffer`] (without moving on) when the name does not fit.
    fn dir_read(&mut self, dir: Self::Handle, name: &mut [u8]) -> Result<usize, Status>;
    /// Move to position `loc` (as [`dir_tell`](Self::dir_tell) returned).
    fn dir_seek(&mut self, dir: Self::Handle, loc: i64) -> Result<(), Status>;
    /// The current position.
    fn dir_tell(&mut self, dir: Self::Handle) -> Result<u64, Status>;
    /// Back to the first entry.
    fn dir_rewind(&mut self, dir: Self::Handle) -> Result<(), Status>;
    /// A channel other than the client's notified (the block device underneath answered): take
    /// what it finished without waiting. The default does nothing.
    fn device_notified(&mut self) {}
}

/// Counters of a server.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Commands taken.
    pub commands: u64,
    /// Completions with a status other than success.
    pub failed: u64,
    /// Commands with an unknown type or undecodable params.
    pub invalid: u64,
}

/// Why a server's event handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerError {
    /// Notifying the client was refused.
    Os(OsError),
}

impl From<OsError> for ServerError {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl core::fmt::Display for ServerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Os(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ServerError {}

/// An FS server: one client connection served by backend `B`; see the module docs.
pub struct FsServer<'a, B: FsBackend> {
    queues: FsServerQueues<'a>,
    share: ShareRegion<'a>,
    client: Channel,
    backend: B,
    fds: FdTable<B::Handle>,
    mounted: bool,
    faulty: bool,
    stats: ServerStats,
    paths: [[u8; PATH_BUFFER_BYTES]; 2],
    bounce: [u8; BOUNCE_BYTES],
}

/// The result of one command.
type Outcome = Result<CompletionData, Status>;

impl<'a, B: FsBackend> FsServer<'a, B> {
    /// A server over its queues and share region, notifying the client on `client`.
    pub fn new(
        queues: FsServerQueues<'a>,
        share: ShareRegion<'a>,
        client: Channel,
        backend: B,
    ) -> Self {
        Self {
            queues,
            share,
            client,
            backend,
            fds: FdTable::new(),
            mounted: false,
            faulty: false,
            stats: ServerStats::default(),
            paths: [[0; PATH_BUFFER_BYTES]; 2],
            bounce: [0; BOUNCE_BYTES],
        }
    }

    /// The server of the connection in `config`.
    ///
    /// # Safety
    /// The config's regions are mapped in this component for `'a`, shared only with the client,
    /// and no other server side exists over them (see [`FsServerQueues::from_connection`]).
    pub unsafe fn from_config(
        config: &crate::FsServerConfig,
        backend: B,
    ) -> Result<Self, QueueError> {
        let channel = config
            .client
            .channel()
            .ok_or(QueueError::Channel(config.client.id))?;
        // SAFETY: forwarded from the caller.
        let queues = unsafe { FsServerQueues::from_connection(&config.client) }?;
        // SAFETY: forwarded from the caller.
        let share = unsafe { ShareRegion::from_resource(&config.client.share) }
            .ok_or(QueueError::Unmapped)?;
        Ok(Self::new(queues, share, channel, backend))
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (tests, inspection between events).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The fd table.
    pub fn fds(&self) -> &FdTable<B::Handle> {
        &self.fds
    }

    /// Whether the client wrote impossible queue indices (it is ignored from then on).
    pub fn faulty(&self) -> bool {
        self.faulty
    }

    /// Whether the file system is mounted.
    pub fn mounted(&self) -> bool {
        self.mounted
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The channel to the client.
    pub fn client_channel(&self) -> Channel {
        self.client
    }

    /// Serve every command the completion queue has room for; publish both queues. Returns how
    /// many completions were published (the client is to be notified when > 0). A client that
    /// corrupted its queue indices is marked faulty and nothing more is done.
    pub fn process(&mut self) -> u64 {
        let mut published = 0;
        while !self.faulty {
            let room = match self.queues.completions.free() {
                Ok(n) => n,
                Err(_) => {
                    self.faulty = true;
                    break;
                }
            };
            let mut served = 0;
            while served < room {
                let cmd = match self.queues.commands.pop() {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(_) => {
                        self.faulty = true;
                        break;
                    }
                };
                let done = self.serve(&cmd);
                if self.queues.completions.push(done).is_err() {
                    // Room was checked above and only we push; a peer error here means the
                    // client moved the head impossibly.
                    self.faulty = true;
                    break;
                }
                served += 1;
            }
            self.queues.commands.release();
            // Faulty or not, what was staged was answered: publish it.
            let n = self.queues.completions.publish();
            published += n;
            if served < room || n == 0 {
                break;
            }
        }
        published
    }

    /// Execute one command and build its completion.
    pub fn serve(&mut self, cmd: &FsCmd) -> FsCmpl {
        self.stats.commands += 1;
        let outcome = match cmd.decode() {
            Ok(c) => self.execute(c),
            Err(_) => {
                self.stats.invalid += 1;
                Err(Status::InvalidCommand)
            }
        };
        match outcome {
            Ok(data) => FsCmpl::new(cmd.id, Status::Success, data),
            Err(s) => {
                self.stats.failed += 1;
                FsCmpl::new(cmd.id, s, CompletionData::None)
            }
        }
    }

    fn execute(&mut self, c: Command) -> Outcome {
        match c {
            Command::Initialise => return self.initialise(),
            Command::Deinitialise => return self.deinitialise(),
            _ if !self.mounted => return Err(Status::Error),
            _ => {}
        }
        let Self {
            share,
            backend,
            fds,
            paths: [p0, p1],
            bounce,
            ..
        } = self;
        let none = |r: Result<(), Status>| r.map(|()| CompletionData::None);
        match c {
            Command::Initialise | Command::Deinitialise => Err(Status::InvalidCommand),
            Command::FileOpen { path, flags } => {
                let path = share.copy_path(path, p0)?;
                fds.open(FdKind::File, flags, || backend.open(path, flags))
                    .map(CompletionData::Fd)
            }
            Command::FileClose { fd } => none(backend.close(fds.close(fd, FdKind::File)?)),
            Command::Stat { path, buf } => {
                let path = share.copy_path(path, p0)?;
                if buf.size < size_of::<FsStat>() as u64 {
                    return Err(Status::InvalidBuffer);
                }
                crate::check_buffer(buf, share.len()).map_err(|e| e.status())?;
                let st = backend.stat(path)?;
                share.write(buf, 0, st.as_bytes()).map_err(|e| e.status())?;
                Ok(CompletionData::None)
            }
            Command::FileRead { fd, offset, buf } => {
                crate::check_buffer(buf, share.len()).map_err(|e| e.status())?;
                fds.with_op(fd, FdKind::File, |h, flags| {
                    if !flags.readable() {
                        return Err(Status::InvalidRead);
                    }
                    read_into(backend, share, bounce, h, offset, buf).map(CompletionData::LenRead)
                })?
            }
            Command::FileWrite { fd, offset, buf } => {
                crate::check_buffer(buf, share.len()).map_err(|e| e.status())?;
                fds.with_op(fd, FdKind::File, |h, flags| {
                    if !flags.writable() {
                        return Err(Status::InvalidWrite);
                    }
                    write_from(backend, share, bounce, h, offset, buf)
                        .map(CompletionData::LenWritten)
                })?
            }
            Command::FileSize { fd } => fds
                .with_op(fd, FdKind::File, |h, _| backend.size(h))?
                .map(CompletionData::Size),
            Command::Rename { old_path, new_path } => {
                let old = share.copy_path(old_path, p0)?;
                let new = share.copy_path(new_path, p1)?;
                none(backend.rename(old, new))
            }
            Command::FileRemove { path } => none(backend.remove(share.copy_path(path, p0)?)),
            Command::FileTruncate { fd, length } => fds.with_op(fd, FdKind::File, |h, flags| {
                if !flags.writable() {
                    return Err(Status::InvalidWrite);
                }
                none(backend.truncate(h, length))
            })?,
            Command::DirCreate { path } => none(backend.dir_create(share.copy_path(path, p0)?)),
            Command::DirRemove { path } => none(backend.dir_remove(share.copy_path(path, p0)?)),
            Command::DirOpen { path } => {
                let path = share.copy_path(path, p0)?;
                let flags = OpenFlags::new(crate::AccessMode::ReadOnly);
                fds.open(FdKind::Dir, flags, || backend.dir_open(path))
                    .map(CompletionData::Fd)
            }
            Command::DirClose { fd } => none(backend.dir_close(fds.close(fd, FdKind::Dir)?)),
            Command::FileSync { fd } => {
                none(fds.with_op(fd, FdKind::File, |h, _| backend.sync(h))?)
            }
            Command::DirRead { fd, buf } => {
                crate::check_buffer(buf, share.len()).map_err(|e| e.status())?;
                let name = &mut bounce[..NAME_BUFFER_BYTES];
                // `buf.size` is within the share region, but may exceed the local buffer.
                let room = usize::try_from(buf.size)
                    .unwrap_or(usize::MAX)
                    .min(name.len());
                let n = fds.with_op(fd, FdKind::Dir, |h, _| {
                    backend.dir_read(h, &mut name[..room])
                })??;
                let n = n.min(room);
                share.write(buf, 0, &name[..n]).map_err(|e| e.status())?;
                Ok(CompletionData::PathLen(n as u64))
            }
            Command::DirSeek { fd, loc } => {
                none(fds.with_op(fd, FdKind::Dir, |h, _| backend.dir_seek(h, loc))?)
            }
            Command::DirTell { fd } => fds
                .with_op(fd, FdKind::Dir, |h, _| backend.dir_tell(h))?
                .map(CompletionData::Location),
            Command::DirRewind { fd } => {
                none(fds.with_op(fd, FdKind::Dir, |h, _| backend.dir_rewind(h))?)
            }
        }
    }

    fn initialise(&mut self) -> Outcome {
        if self.mounted {
            return Err(Status::Error);
        }
        self.backend.mount()?;
        self.mounted = true;
        Ok(CompletionData::None)
    }

    fn deinitialise(&mut self) -> Outcome {
        if !self.mounted {
            return Err(Status::Error);
        }
        if self.fds.iter().any(|(fd, ..)| self.fds.busy(fd) > 0) {
            return Err(Status::OutstandingOperations);
        }
        let open: [Option<(u64, FdKind)>; MAX_OPEN_FILES] = {
            let mut out = [None; MAX_OPEN_FILES];
            for (slot, (fd, kind, _)) in out.iter_mut().zip(self.fds.iter()) {
                *slot = Some((fd, kind));
            }
            out
        };
        for (fd, kind) in open.into_iter().flatten() {
            if let Ok(h) = self.fds.close(fd, kind) {
                // The volume goes away next: a failed close changes nothing for the client.
                let _ = match kind {
                    FdKind::File => self.backend.close(h),
                    FdKind::Dir => self.backend.dir_close(h),
                };
            }
        }
        self.mounted = false;
        self.backend.unmount()?;
        Ok(CompletionData::None)
    }
}

/// Serve a read through the bounce buffer: backend reads into it, then a copy into the share
/// region; stops at a short read (end of file).
fn read_into<B: FsBackend>(
    backend: &mut B,
    share: &ShareRegion<'_>,
    bounce: &mut [u8; BOUNCE_BYTES],
    h: B::Handle,
    offset: u64,
    buf: FsBuffer,
) -> Result<u64, Status> {
    let mut done = 0u64;
    while done < buf.size {
        let want = usize::try_from(buf.size - done).map_or(BOUNCE_BYTES, |n| n.min(BOUNCE_BYTES));
        let Some(at) = offset.checked_add(done) else {
            break;
        };
        let n = match backend.read(h, at, &mut bounce[..want]) {
            Ok(n) => n.min(want),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        share
            .write(buf, done, &bounce[..n])
            .map_err(|e| e.status())?;
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

/// Serve a write through the bounce buffer; a failure after some bytes were written reports the
/// bytes written (as a short write does).
fn write_from<B: FsBackend>(
    backend: &mut B,
    share: &ShareRegion<'_>,
    bounce: &mut [u8; BOUNCE_BYTES],
    h: B::Handle,
    offset: u64,
    buf: FsBuffer,
) -> Result<u64, Status> {
    let mut done = 0u64;
    while done < buf.size {
        let want = usize::try_from(buf.size - done).map_or(BOUNCE_BYTES, |n| n.min(BOUNCE_BYTES));
        let at = offset.checked_add(done).ok_or(Status::InvalidWrite)?;
        share
            .read(buf, done, &mut bounce[..want])
            .map_err(|e| e.status())?;
        let n = match backend.write(h, at, &bounce[..want]) {
            Ok(n) => n.min(want),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n as u64;
        if n < want {
            break;
        }
    }
    Ok(done)
}

impl<B: FsBackend> Handler for FsServer<'_, B> {
    type Error = ServerError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), ServerError> {
        if channels.bits() & !ChannelSet::default().with(self.client).bits() != 0 {
            self.backend.device_notified();
        }
        if channels.contains(self.client) && self.process() > 0 {
            self.client.notify()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::AccessMode;

    const RO: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);

    #[test]
    fn fds_carry_generations() {
        let mut t: FdTable<u32, 4> = FdTable::new();
        let a = t.open(FdKind::File, RO, || Ok(10)).unwrap();
        assert_eq!(a, 0, "slot 0, generation 0");
        assert_eq!(t.close(a, FdKind::File), Ok(10));
        assert_eq!(t.close(a, FdKind::File), Err(Status::InvalidFd), "twice");
        let b = t.open(FdKind::File, RO, || Ok(11)).unwrap();
        assert_eq!(b, 4, "slot 0 again, generation 1");
        assert_eq!(
            t.begin(a, FdKind::File).map(|_| ()),
            Err(Status::InvalidFd),
            "stale"
        );
        assert_eq!(
            t.with_op(b + 4, FdKind::File, |h, _| h),
            Err(Status::InvalidFd),
            "a newer generation is as invalid as an older one"
        );
        assert_eq!(t.with_op(b, FdKind::File, |h, _| h), Ok(11));
        assert_eq!(
            t.with_op(b, FdKind::Dir, |h, _| h),
            Err(Status::InvalidFd),
            "a file fd is not a directory fd"
        );
        assert_eq!(t.close(b, FdKind::Dir), Err(Status::InvalidFd));
        assert_eq!(
            t.with_op(3, FdKind::File, |h, _| h),
            Err(Status::InvalidFd),
            "free slot"
        );
        assert_eq!(
            t.with_op(u64::MAX, FdKind::File, |h, _| h),
            Err(Status::InvalidFd)
        );
    }

    #[test]
    fn busy_fds_cannot_close() {
        let mut t: FdTable<u32, 4> = FdTable::new();
        let fd = t.open(FdKind::Dir, RO, || Ok(1)).unwrap();
        let op1 = t.begin(fd, FdKind::Dir).unwrap();
        let op2 = t.begin(fd, FdKind::Dir).unwrap();
        assert_eq!(t.busy(fd), 2);
        assert_eq!(t.close(fd, FdKind::Dir), Err(Status::OutstandingOperations));
        t.end(op1);
        assert_eq!(t.close(fd, FdKind::Dir), Err(Status::OutstandingOperations));
        t.end(op2);
        assert_eq!(t.busy(fd), 0);
        assert_eq!(t.close(fd, FdKind::Dir), Ok(1));
    }

    #[test]
    fn the_table_fills_and_failed_opens_free_their_slot() {
        let mut t: FdTable<usize, 3> = FdTable::new();
        let fds: Vec<u64> = (0..3)
            .map(|i| t.open(FdKind::File, RO, || Ok(i)).unwrap())
            .collect();
        let mut called = false;
        assert_eq!(
            t.open(FdKind::File, RO, || {
                called = true;
                Ok(9)
            }),
            Err(Status::TooManyOpenFiles)
        );
        assert!(!called, "the backend is not asked when no slot is free");
        assert_eq!(t.open_count(), 3);
        t.close(fds[1], FdKind::File).unwrap();
        assert_eq!(
            t.open(FdKind::File, RO, || Err(Status::NoFile)),
            Err(Status::NoFile)
        );
        assert_eq!(t.open_count(), 2, "the failed open left its slot free");
        let again = t.open(FdKind::File, RO, || Ok(7)).unwrap();
        assert_eq!(again, 1 + 2 * 3, "slot 1 after two frees");
        let r = t.reserve().unwrap_err();
        assert_eq!(r, Status::TooManyOpenFiles);
    }

    #[test]
    fn generations_wrap_without_overflow() {
        let mut t: FdTable<u8, 256> = FdTable::new();
        t.slots[5].generation = FdTable::<u8, 256>::GENERATIONS - 1;
        let fd = t.open(FdKind::File, RO, || Ok(0)).unwrap();
        assert_eq!(fd, 0);
        // Use slot 5 at the last generation.
        for i in 1..5 {
            t.open(FdKind::File, RO, || Ok(i)).unwrap();
        }
        let last = t.open(FdKind::File, RO, || Ok(5)).unwrap();
        assert_eq!(last, 5 + (FdTable::<u8, 256>::GENERATIONS - 1) * 256);
        t.close(last, FdKind::File).unwrap();
        let next = t.open(FdKind::File, RO, || Ok(6)).unwrap();
        assert_eq!(next, 5, "generation wrapped to 0");
        assert_eq!(
            t.with_op(last, FdKind::File, |h, _| h),
            Err(Status::InvalidFd)
        );
    }
}
