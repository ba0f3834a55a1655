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

use crate::connection::Connection;
use crate::queue::{
    Command, CompletionData, FsBuffer, FsCmd, FsCmpl, FsServerQueues, FsStat, OpenFlags,
    QueueError, Status,
};
use crate::share::ShareRegion;
use lions_os::{Channel, ChannelSet, Handler, Mapped, OsError};

/// The server side of the connection in `config`: its queues, share region and channel to the
/// client (for [`FsServer::from_config`], or a server of its own such as the NFS one). The token
/// says the regions are mapped read-write here for `'a`, and that this is the one server side
/// built from them.
pub fn open<'a>(
    config: Mapped<'a, crate::FsServerConfig>,
) -> Result<(FsServerQueues<'a>, ShareRegion<'a>, Channel), QueueError> {
    let config = config.config();
    let channel = config
        .client
        .channel()
        .ok_or(QueueError::Channel(config.client.id))?;
    // SAFETY: the token: mapped read-write here for `'a`, shared only with the client, and this
    // is the only server side over them (here and below).
    let queues = unsafe { FsServerQueues::from_connection(&config.client) }?;
    // SAFETY: as above.
    let share =
        unsafe { ShareRegion::from_resource(&config.client.share) }.ok_or(QueueError::Unmapped)?;
    Ok((queues, share, channel))
}
use zerocopy::IntoBytes;

pub use crate::fd::{FdKind, FdTable, InFlight, MAX_OPEN_FILES, Reservation};

/// Bytes moved per backend call when serving a read or a write.
pub const BOUNCE_BYTES: usize = 4096;

/// Longest directory entry name a backend may return, in bytes (255 UTF-16 units as UTF-8).
pub const NAME_BUFFER_BYTES: usize = 3 * 255;

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
    conn: Connection<'a, B::Handle>,
    backend: B,
    bounce: [u8; BOUNCE_BYTES],
}

/// The result of one command.
type Outcome = Result<CompletionData, Status>;

/// A backend result without data as an [`Outcome`].
fn none(r: Result<(), Status>) -> Outcome {
    r.map(|()| CompletionData::None)
}

impl<'a, B: FsBackend> FsServer<'a, B> {
    /// A server over its queues and share region, notifying the client on `client`.
    pub fn new(
        queues: FsServerQueues<'a>,
        share: ShareRegion<'a>,
        client: Channel,
        backend: B,
    ) -> Self {
        Self {
            conn: Connection::new(queues, share, client),
            backend,
            bounce: [0; BOUNCE_BYTES],
        }
    }

    /// The server of the connection in `config` (its parts from [`open`]).
    pub fn from_config(
        config: Mapped<'a, crate::FsServerConfig>,
        backend: B,
    ) -> Result<Self, QueueError> {
        let (queues, share, channel) = open(config)?;
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
        &self.conn.fds
    }

    /// Whether the client wrote impossible queue indices (it is ignored from then on).
    pub fn faulty(&self) -> bool {
        self.conn.faulty
    }

    /// Whether the file system is mounted.
    pub fn mounted(&self) -> bool {
        self.conn.mounted
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.conn.stats
    }

    /// The channel to the client.
    pub fn client_channel(&self) -> Channel {
        self.conn.client
    }

    /// Serve every command the completion queue has room for; publish both queues. Returns how
    /// many completions were published (the client is to be notified when > 0). A client that
    /// corrupted its queue indices is marked faulty and nothing more is done.
    pub fn process(&mut self) -> u64 {
        let mut published = 0;
        while let Some(room) = self.conn.room() {
            let mut served = 0;
            while served < room {
                let Some(cmd) = self.conn.next_command() else {
                    break;
                };
                let done = self.serve(&cmd);
                if !self.conn.push(done) {
                    break;
                }
                served += 1;
            }
            let n = self.conn.publish();
            published += n;
            if served < room || n == 0 {
                break;
            }
        }
        published
    }

    /// Execute one command and build its completion.
    pub fn serve(&mut self, cmd: &FsCmd) -> FsCmpl {
        self.conn.stats.commands += 1;
        match cmd.decode() {
            Ok(c) => {
                let outcome = self.execute(c);
                self.conn.completion(cmd.id, outcome)
            }
            Err(_) => self.conn.invalid(cmd.id),
        }
    }

    fn execute(&mut self, c: Command) -> Outcome {
        match c {
            Command::Initialise => self.initialise(),
            Command::Deinitialise => self.deinitialise(),
            _ if !self.conn.mounted => Err(Status::Error),
            Command::Stat { .. }
            | Command::Rename { .. }
            | Command::FileRemove { .. }
            | Command::DirCreate { .. }
            | Command::DirRemove { .. } => self.path_command(c),
            Command::DirOpen { .. }
            | Command::DirClose { .. }
            | Command::DirRead { .. }
            | Command::DirSeek { .. }
            | Command::DirTell { .. }
            | Command::DirRewind { .. } => self.dir_command(c),
            _ => self.file_command(c),
        }
    }

    /// The commands on a path alone: no fd involved.
    fn path_command(&mut self, c: Command) -> Outcome {
        let Self {
            conn:
                Connection {
                    share,
                    paths: [p0, p1],
                    ..
                },
            backend,
            ..
        } = self;
        match c {
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
            Command::Rename { old_path, new_path } => {
                let old = share.copy_path(old_path, p0)?;
                let new = share.copy_path(new_path, p1)?;
                none(backend.rename(old, new))
            }
            Command::FileRemove { path } => none(backend.remove(share.copy_path(path, p0)?)),
            Command::DirCreate { path } => none(backend.dir_create(share.copy_path(path, p0)?)),
            Command::DirRemove { path } => none(backend.dir_remove(share.copy_path(path, p0)?)),
            _ => Err(Status::InvalidCommand),
        }
    }

    /// The commands on a file fd (and the open that makes one).
    fn file_command(&mut self, c: Command) -> Outcome {
        let Self {
            conn:
                Connection {
                    share,
                    fds,
                    paths: [p0, _],
                    ..
                },
            backend,
            bounce,
        } = self;
        match c {
            Command::FileOpen { path, flags } => {
                let path = share.copy_path(path, p0)?;
                fds.open(FdKind::File, flags, || backend.open(path, flags))
                    .map(CompletionData::Fd)
            }
            Command::FileClose { fd } => none(backend.close(fds.close(fd, FdKind::File)?)),
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
            Command::FileTruncate { fd, length } => fds.with_op(fd, FdKind::File, |h, flags| {
                if !flags.writable() {
                    return Err(Status::InvalidWrite);
                }
                none(backend.truncate(h, length))
            })?,
            Command::FileSync { fd } => {
                none(fds.with_op(fd, FdKind::File, |h, _| backend.sync(h))?)
            }
            _ => Err(Status::InvalidCommand),
        }
    }

    /// The commands on a directory fd (and the open that makes one).
    fn dir_command(&mut self, c: Command) -> Outcome {
        let Self {
            conn:
                Connection {
                    share,
                    fds,
                    paths: [p0, _],
                    ..
                },
            backend,
            bounce,
        } = self;
        match c {
            Command::DirOpen { path } => {
                let path = share.copy_path(path, p0)?;
                let flags = OpenFlags::new(crate::AccessMode::ReadOnly);
                fds.open(FdKind::Dir, flags, || backend.dir_open(path))
                    .map(CompletionData::Fd)
            }
            Command::DirClose { fd } => none(backend.dir_close(fds.close(fd, FdKind::Dir)?)),
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
            _ => Err(Status::InvalidCommand),
        }
    }

    fn initialise(&mut self) -> Outcome {
        if self.conn.mounted {
            return Err(Status::Error);
        }
        self.backend.mount()?;
        self.conn.mounted = true;
        Ok(CompletionData::None)
    }

    fn deinitialise(&mut self) -> Outcome {
        let fds = &self.conn.fds;
        if !self.conn.mounted {
            return Err(Status::Error);
        }
        if fds.iter().any(|(fd, ..)| fds.busy(fd) > 0) {
            return Err(Status::OutstandingOperations);
        }
        for (fd, kind) in self.conn.open_fds().into_iter().flatten() {
            if let Ok(h) = self.conn.fds.close(fd, kind) {
                // The volume goes away next: a failed close changes nothing for the client.
                let _ = match kind {
                    FdKind::File => self.backend.close(h),
                    FdKind::Dir => self.backend.dir_close(h),
                };
            }
        }
        self.conn.mounted = false;
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
        if self.conn.others(channels) {
            self.backend.device_notified();
        }
        if channels.contains(self.conn.client) && self.process() > 0 {
            self.conn.client.notify()?;
        }
        Ok(())
    }
}
