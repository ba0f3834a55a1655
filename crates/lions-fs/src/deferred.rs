// SPDX-License-Identifier: BSD-2-Clause
//! Deferred completion: an FS server whose backend finishes commands *after* it was handed
//! them (an NFS client waiting on the network), so that asynchronous backends are first-class.
//!
//! ## Protocol (server side), as [`crate::server`] with these differences
//!
//! - **Start, then finish.** A command is validated exactly as [`FsServer`](crate::FsServer)
//!   validates it (paths, share-region buffers, fds and their access), then handed to the
//!   backend as an [`Op`] with the client's request id ([`DeferredBackend::start`]). The backend
//!   either refuses it at once (the error is the completion) or finishes it later: every
//!   [`process`](DeferredServer::process) takes what the backend finished
//!   ([`DeferredBackend::poll`]) and completes those requests, in the order they finished.
//! - **Room is reserved up front.** A command is taken only while the completion queue has room
//!   for its completion *and* for every request still in progress, so no completion is ever
//!   dropped or delayed by a full queue.
//! - **Fds stay busy while an operation is in progress**: a close of a busy fd fails with
//!   [`Status::OutstandingOperations`]; an open keeps its fd slot reserved until the backend
//!   says whether it succeeded.
//! - **Mounting is an operation too**: until `INITIALISE` has completed successfully, other
//!   commands fail with [`Status::Error`]; `DEINITIALISE` with requests in progress fails with
//!   [`Status::OutstandingOperations`].
//! - **Ids**: a command whose id is already in progress is answered at once with
//!   [`Status::InvalidCommand`] (two completions with one id would confuse the client).
//! - Reads, writes, stat buffers and directory names go straight between the backend and the
//!   share region (`share` is passed to both calls): the backend copies a write's bytes out when
//!   it starts it, and a read's bytes in when it finishes.

use crate::connection::Connection;
use crate::queue::{
    Command, CompletionData, FS_QUEUE_CAPACITY, FsBuffer, FsCmd, FsCmpl, FsServerQueues, OpenFlags,
    Status,
};
use crate::server::{FdKind, InFlight, Reservation, ServerError, ServerStats};
use crate::share::ShareRegion;
use lions_os::{Channel, ChannelSet, Handler};

/// A validated command for a [`DeferredBackend`]. Paths are checked text; buffers lie inside the
/// share region; handles are of fds open with the right kind and access.
#[derive(Debug, Clone, Copy)]
pub enum Op<'p, H> {
    /// Mount (`INITIALISE`).
    Mount,
    /// Unmount (`DEINITIALISE`); the server has closed every fd in its table (the backend drops
    /// every handle).
    Unmount,
    /// Open a file; finish with [`Done::Opened`].
    Open {
        /// Path.
        path: &'p str,
        /// Flags.
        flags: OpenFlags,
    },
    /// Close a file (its fd is already free).
    Close(H),
    /// Write an `FsStat` for `path` into `buf` (at least `size_of::<FsStat>()` bytes).
    Stat {
        /// Path.
        path: &'p str,
        /// Where the stat goes.
        buf: FsBuffer,
    },
    /// Read into `buf` at `offset`; finish with `LenRead`.
    Read {
        /// File.
        file: H,
        /// Offset.
        offset: u64,
        /// Destination in the share region.
        buf: FsBuffer,
    },
    /// Write `buf` at `offset`; finish with `LenWritten`.
    Write {
        /// File.
        file: H,
        /// Offset.
        offset: u64,
        /// Source in the share region.
        buf: FsBuffer,
    },
    /// File size; finish with `Size`.
    Size(H),
    /// Rename or move.
    Rename {
        /// From.
        old: &'p str,
        /// To.
        new: &'p str,
    },
    /// Remove a file.
    Remove(&'p str),
    /// Set a file's length.
    Truncate(H, u64),
    /// Create a directory.
    DirCreate(&'p str),
    /// Remove an empty directory.
    DirRemove(&'p str),
    /// Open a directory; finish with [`Done::Opened`].
    DirOpen(&'p str),
    /// Close a directory (its fd is already free).
    DirClose(H),
    /// Make a file's writes durable.
    Sync(H),
    /// The next name into `buf`; finish with `PathLen`, or [`Status::EndOfDirectory`].
    DirRead {
        /// Directory.
        dir: H,
        /// Destination.
        buf: FsBuffer,
    },
    /// Seek a directory.
    DirSeek(H, i64),
    /// Tell a directory's position; finish with `Location`.
    DirTell(H),
    /// Rewind a directory.
    DirRewind(H),
}

/// What a finished operation produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done<H> {
    /// `Open` or `DirOpen`: the backend's handle.
    Opened(H),
    /// Anything else: the completion's data.
    Data(CompletionData),
}

/// A finished operation: the request id and its result.
pub type Finished<H> = (u64, Result<Done<H>, Status>);

/// A file system that finishes operations later.
pub trait DeferredBackend {
    /// The backend's handle of an open file or directory.
    type Handle: Copy;
    /// Start `op` as request `id`; `Err` finishes it at once with that status.
    fn start(
        &mut self,
        id: u64,
        op: Op<'_, Self::Handle>,
        share: &ShareRegion<'_>,
    ) -> Result<(), Status>;
    /// A finished request, if any (`share` for results that go to the client's buffers).
    fn poll(&mut self, share: &ShareRegion<'_>) -> Option<Finished<Self::Handle>>;
    /// A channel other than the client's was notified (the network): make progress.
    fn notified(&mut self, channels: ChannelSet) {
        let _ = channels;
    }
}

#[derive(Debug)]
enum Hold<H> {
    None,
    Fd(InFlight<H>),
    Open(Reservation, FdKind, OpenFlags),
    Mount,
    Unmount,
}

#[derive(Debug)]
struct Pending<H> {
    id: u64,
    hold: Hold<H>,
}

/// An FS server over a [`DeferredBackend`]; see the module docs.
pub struct DeferredServer<'a, B: DeferredBackend> {
    conn: Connection<'a, B::Handle>,
    backend: B,
    pending: [Option<Pending<B::Handle>>; FS_QUEUE_CAPACITY],
    in_progress: usize,
}

impl<'a, B: DeferredBackend> DeferredServer<'a, B> {
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
            pending: [const { None }; FS_QUEUE_CAPACITY],
            in_progress: 0,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (the transport under it, tests).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Whether the file system is mounted.
    pub fn mounted(&self) -> bool {
        self.conn.mounted
    }

    /// Whether the client wrote impossible queue indices (it is ignored from then on).
    pub fn faulty(&self) -> bool {
        self.conn.faulty
    }

    /// Requests started and not yet completed.
    pub fn in_progress(&self) -> usize {
        self.in_progress
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.conn.stats
    }

    /// Take the commands there is room for, start them, complete what the backend finished;
    /// publish both queues. Returns how many completions were published (notify the client
    /// when > 0).
    pub fn process(&mut self) -> u64 {
        // Finished operations first: they free room.
        if self.conn.faulty || !self.complete_finished() {
            return 0;
        }
        // Room for this command's completion and every one still owed.
        while self
            .conn
            .room()
            .is_some_and(|free| free > self.in_progress as u64)
        {
            let Some(cmd) = self.conn.next_command() else {
                break;
            };
            if let Some(c) = self.start(&cmd)
                && !self.conn.push(c)
            {
                break;
            }
            // What the backend finished at once.
            self.complete_finished();
        }
        self.conn.publish()
    }

    /// Complete every request the backend finished; `false` when the client turned faulty.
    fn complete_finished(&mut self) -> bool {
        while let Some((id, r)) = self.backend.poll(&self.conn.share) {
            if let Some(c) = self.finish(id, r)
                && !self.conn.push(c)
            {
                return false;
            }
        }
        true
    }

    /// Start one command: `Some` completion if it finished at once.
    fn start(&mut self, cmd: &FsCmd) -> Option<FsCmpl> {
        self.conn.stats.commands += 1;
        let id = cmd.id;
        if self.pending.iter().flatten().any(|p| p.id == id) {
            return Some(self.conn.invalid(id));
        }
        let Ok(c) = cmd.decode() else {
            return Some(self.conn.invalid(id));
        };
        match self.validate_and_start(id, c) {
            Ok(hold) => {
                if let Some(slot) = self.pending.iter_mut().find(|p| p.is_none()) {
                    *slot = Some(Pending { id, hold });
                    self.in_progress += 1;
                    None
                } else {
                    // Unreachable: room for every pending completion is checked before taking
                    // a command, and the queue holds FS_QUEUE_CAPACITY.
                    Some(self.conn.completion(id, Err(Status::Error)))
                }
            }
            Err(s) => Some(self.conn.completion(id, Err(s))),
        }
    }

    /// Check command `id` against the mount state and start it: mount and unmount here, every
    /// other command (only while mounted) by path or by fd.
    fn validate_and_start(&mut self, id: u64, c: Command) -> Result<Hold<B::Handle>, Status> {
        let mounting = self
            .pending
            .iter()
            .flatten()
            .any(|p| matches!(p.hold, Hold::Mount | Hold::Unmount));
        match c {
            Command::Initialise | Command::Deinitialise => self.start_mount(id, c, mounting),
            _ if !self.conn.mounted || mounting => Err(Status::Error),
            Command::FileOpen { .. }
            | Command::DirOpen { .. }
            | Command::Stat { .. }
            | Command::Rename { .. }
            | Command::FileRemove { .. }
            | Command::DirCreate { .. }
            | Command::DirRemove { .. } => self.start_by_path(id, c),
            _ => self.start_by_fd(id, c),
        }
    }

    /// `Initialise` (mount) or `Deinitialise` (close every fd, then unmount).
    fn start_mount(
        &mut self,
        id: u64,
        c: Command,
        mounting: bool,
    ) -> Result<Hold<B::Handle>, Status> {
        let open = self.conn.open_fds();
        let Self {
            conn:
                Connection {
                    share,
                    fds,
                    mounted,
                    ..
                },
            backend,
            in_progress,
            ..
        } = self;
        match c {
            Command::Initialise => {
                if *mounted || mounting {
                    return Err(Status::Error);
                }
                backend.start(id, Op::Mount, share)?;
                Ok(Hold::Mount)
            }
            Command::Deinitialise => {
                if !*mounted || mounting {
                    return Err(Status::Error);
                }
                if *in_progress > 0 {
                    return Err(Status::OutstandingOperations);
                }
                for (fd, kind) in open.into_iter().flatten() {
                    let _ = fds.close(fd, kind);
                }
                backend.start(id, Op::Unmount, share)?;
                Ok(Hold::Unmount)
            }
            _ => Err(Status::InvalidCommand),
        }
    }

    /// A command naming paths in the share: open, stat, rename, remove, create.
    fn start_by_path(&mut self, id: u64, c: Command) -> Result<Hold<B::Handle>, Status> {
        let Self {
            conn:
                Connection {
                    share,
                    fds,
                    paths: [p0, p1],
                    ..
                },
            backend,
            ..
        } = self;
        let buffer = |buf: FsBuffer| crate::check_buffer(buf, share.len()).map_err(|e| e.status());
        match c {
            Command::FileOpen { path, flags } => {
                let path = share.copy_path(path, p0)?;
                let r = fds.reserve()?;
                match backend.start(id, Op::Open { path, flags }, share) {
                    Ok(()) => Ok(Hold::Open(r, FdKind::File, flags)),
                    Err(e) => {
                        fds.cancel(r);
                        Err(e)
                    }
                }
            }
            Command::DirOpen { path } => {
                let path = share.copy_path(path, p0)?;
                let flags = OpenFlags::new(crate::AccessMode::ReadOnly);
                let r = fds.reserve()?;
                match backend.start(id, Op::DirOpen(path), share) {
                    Ok(()) => Ok(Hold::Open(r, FdKind::Dir, flags)),
                    Err(e) => {
                        fds.cancel(r);
                        Err(e)
                    }
                }
            }
            Command::Stat { path, buf } => {
                let path = share.copy_path(path, p0)?;
                if buf.size < size_of::<crate::FsStat>() as u64 {
                    return Err(Status::InvalidBuffer);
                }
                buffer(buf)?;
                backend
                    .start(id, Op::Stat { path, buf }, share)
                    .map(|()| Hold::None)
            }
            Command::Rename { old_path, new_path } => {
                let old = share.copy_path(old_path, p0)?;
                let new = share.copy_path(new_path, p1)?;
                backend
                    .start(id, Op::Rename { old, new }, share)
                    .map(|()| Hold::None)
            }
            Command::FileRemove { path } => {
                let p = share.copy_path(path, p0)?;
                backend.start(id, Op::Remove(p), share).map(|()| Hold::None)
            }
            Command::DirCreate { path } => {
                let p = share.copy_path(path, p0)?;
                backend
                    .start(id, Op::DirCreate(p), share)
                    .map(|()| Hold::None)
            }
            Command::DirRemove { path } => {
                let p = share.copy_path(path, p0)?;
                backend
                    .start(id, Op::DirRemove(p), share)
                    .map(|()| Hold::None)
            }
            _ => Err(Status::InvalidCommand),
        }
    }

    /// A command on an open fd: close, or an op counted in while it runs.
    fn start_by_fd(&mut self, id: u64, c: Command) -> Result<Hold<B::Handle>, Status> {
        let buffer = |buf: FsBuffer, share: &ShareRegion<'_>| {
            crate::check_buffer(buf, share.len()).map_err(|e| e.status())
        };
        match c {
            Command::FileClose { fd } => {
                let h = self.conn.fds.close(fd, FdKind::File)?;
                self.backend
                    .start(id, Op::Close(h), &self.conn.share)
                    .map(|()| Hold::None)
            }
            Command::DirClose { fd } => {
                let h = self.conn.fds.close(fd, FdKind::Dir)?;
                self.backend
                    .start(id, Op::DirClose(h), &self.conn.share)
                    .map(|()| Hold::None)
            }
            Command::FileRead { fd, offset, buf } => {
                buffer(buf, &self.conn.share)?;
                self.on_fd(id, fd, FdKind::File, |file, flags| {
                    if !flags.readable() {
                        return Err(Status::InvalidRead);
                    }
                    Ok(Op::Read { file, offset, buf })
                })
            }
            Command::FileWrite { fd, offset, buf } => {
                buffer(buf, &self.conn.share)?;
                self.on_fd(id, fd, FdKind::File, |file, flags| {
                    if !flags.writable() {
                        return Err(Status::InvalidWrite);
                    }
                    Ok(Op::Write { file, offset, buf })
                })
            }
            Command::FileSize { fd } => self.on_fd(id, fd, FdKind::File, |h, _| Ok(Op::Size(h))),
            Command::FileTruncate { fd, length } => self.on_fd(id, fd, FdKind::File, |h, flags| {
                if !flags.writable() {
                    return Err(Status::InvalidWrite);
                }
                Ok(Op::Truncate(h, length))
            }),
            Command::FileSync { fd } => self.on_fd(id, fd, FdKind::File, |h, _| Ok(Op::Sync(h))),
            Command::DirRead { fd, buf } => {
                buffer(buf, &self.conn.share)?;
                self.on_fd(id, fd, FdKind::Dir, |dir, _| Ok(Op::DirRead { dir, buf }))
            }
            Command::DirSeek { fd, loc } => {
                self.on_fd(id, fd, FdKind::Dir, |h, _| Ok(Op::DirSeek(h, loc)))
            }
            Command::DirTell { fd } => self.on_fd(id, fd, FdKind::Dir, |h, _| Ok(Op::DirTell(h))),
            Command::DirRewind { fd } => {
                self.on_fd(id, fd, FdKind::Dir, |h, _| Ok(Op::DirRewind(h)))
            }
            _ => Err(Status::InvalidCommand),
        }
    }

    /// An op on an open fd: count it in, build it from the fd's handle and flags (`op` may
    /// refuse it), start it, and keep it counted until it finishes.
    fn on_fd(
        &mut self,
        id: u64,
        fd: u64,
        kind: FdKind,
        op: impl FnOnce(B::Handle, OpenFlags) -> Result<Op<'static, B::Handle>, Status>,
    ) -> Result<Hold<B::Handle>, Status> {
        let held = self.conn.fds.begin(fd, kind)?;
        let started =
            op(held.handle, held.flags).and_then(|op| self.backend.start(id, op, &self.conn.share));
        match started {
            Ok(()) => Ok(Hold::Fd(held)),
            Err(e) => {
                self.conn.fds.end(held);
                Err(e)
            }
        }
    }

    /// The backend finished `id`: release what it held; its completion (`None` for an id that
    /// is not in progress: a backend bug, ignored).
    fn finish(&mut self, id: u64, r: Result<Done<B::Handle>, Status>) -> Option<FsCmpl> {
        let slot = self
            .pending
            .iter_mut()
            .find(|p| p.as_ref().is_some_and(|p| p.id == id))?;
        let p = slot.take()?;
        self.in_progress -= 1;
        let data = match (p.hold, r) {
            (Hold::Open(res, kind, flags), Ok(Done::Opened(h))) => {
                Ok(CompletionData::Fd(self.conn.fds.fill(res, kind, flags, h)))
            }
            (Hold::Open(res, ..), Ok(Done::Data(_))) => {
                self.conn.fds.cancel(res);
                Err(Status::Error)
            }
            (Hold::Open(res, ..), Err(e)) => {
                self.conn.fds.cancel(res);
                Err(e)
            }
            (Hold::Fd(op), r) => {
                self.conn.fds.end(op);
                done_data(r)
            }
            (Hold::Mount, r) => {
                let d = done_data(r);
                self.conn.mounted = d.is_ok();
                d
            }
            (Hold::Unmount, r) => {
                // Unmounted whatever the backend says: the fds are gone.
                self.conn.mounted = false;
                done_data(r)
            }
            (Hold::None, r) => done_data(r),
        };
        Some(self.conn.completion(id, data))
    }
}

fn done_data<H>(r: Result<Done<H>, Status>) -> Result<CompletionData, Status> {
    match r {
        Ok(Done::Data(d)) => Ok(d),
        Ok(Done::Opened(_)) => Err(Status::Error),
        Err(e) => Err(e),
    }
}

impl<B: DeferredBackend> Handler for DeferredServer<'_, B> {
    type Error = ServerError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), ServerError> {
        if self.conn.others(channels) {
            self.backend.notified(channels);
        }
        // Either the client sent commands or the backend may have finished some.
        if self.process() > 0 {
            self.conn.client.notify()?;
        }
        Ok(())
    }
}
