// SPDX-License-Identifier: BSD-2-Clause
//! The FS client library: an asynchronous API (issue many requests, take their completions in
//! any order) and a blocking one layered on it, with [`File`] implementing embedded-io
//! `Read`/`Write`/`Seek`.
//!
//! ## Requests and share buffers
//!
//! - The client keeps a table of request slots. Slot `i` owns the share-region bytes
//!   `[i × B, (i + 1) × B)` (B = [`buffer_bytes`](FsClient::buffer_bytes), 32 KiB by default,
//!   as LionsOS's helpers), so a request's paths and data live exactly as long as the request.
//!   There are `min(511, share size / B)` slots: never more requests in flight than the
//!   completion queue holds, so the server never has to hold back a completion for lack of room.
//! - A request id is `slot + generation × 512`; a completion whose id names no request in flight
//!   (a misbehaving server) is counted ([`bogus`](FsClient::bogus)) and dropped.
//! - Reads and directory reads move at most B bytes per request (a blocking [`File`] read or
//!   write may therefore be short, as embedded-io allows).
//!
//! ## Asynchronous API
//!
//! [`submit`](FsClient::submit) a [`Request`] (or [`stage`](FsClient::stage) several and
//! [`flush`](FsClient::flush) once: one publish, one notification), and on the server's
//! notification call [`process`](FsClient::process); then [`poll`](FsClient::poll) a request, or
//! take completed ones in completion order with [`next_done`](FsClient::next_done).
//!
//! ## Blocking API
//!
//! [`call`](FsClient::call) submits and spins ([`lions_os::relax`]) until the completion arrives.
//! As with the serial client, a Microkit PD cannot wait for a notification inside its handler, so
//! blocking finishes only while the server runs concurrently (seL4: a higher priority or another
//! core; the host board: every PD is a process). [`File`] is built on `call`.

use crate::queue::{
    Command, CommandType, CompletionData, FS_MAX_PATH_LENGTH, FS_QUEUE_CAPACITY, FsBuffer,
    FsClientQueues, FsCmpl, FsStat, OpenFlags, QueueError, Status,
};
use crate::share::ShareRegion;
use lions_os::{Channel, Mapped, OsError};
use lions_queue::PeerError;
use zerocopy::FromBytes;

/// Share bytes per request slot by default (LionsOS's `FS_BUFFER_SIZE`).
pub const DEFAULT_BUFFER_BYTES: u64 = 0x8000;

/// The smallest slot size: two paths of [`FS_MAX_PATH_LENGTH`] bytes (a rename).
pub const MIN_BUFFER_BYTES: u64 = 2 * FS_MAX_PATH_LENGTH + 2;

/// Slot bits of a request id.
const SLOT_BITS: u32 = 9;

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// The server answered with this status.
    Status(Status),
    /// The server answered with a status this crate does not know.
    UnknownStatus(u64),
    /// Every request slot is in use (take some completions first).
    Busy,
    /// A path or buffer too large for a request slot, or a seek before the start.
    Invalid,
    /// No such request in flight.
    UnknownRequest,
    /// The server wrote impossible queue indices.
    Peer(PeerError),
    /// Notifying the server was refused.
    Os(OsError),
}

impl From<OsError> for FsError {
    fn from(e: OsError) -> Self {
        Self::Os(e)
    }
}

impl From<PeerError> for FsError {
    fn from(e: PeerError) -> Self {
        Self::Peer(e)
    }
}

impl core::fmt::Display for FsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "FS server: {s:?}"),
            Self::UnknownStatus(s) => write!(f, "FS server: unknown status {s}"),
            Self::Busy => write!(f, "FS client: every request slot is in use"),
            Self::Invalid => write!(f, "FS client: argument too large or out of range"),
            Self::UnknownRequest => write!(f, "FS client: no such request"),
            Self::Peer(e) => write!(f, "FS queue: {e}"),
            Self::Os(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for FsError {}

impl embedded_io::Error for FsError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            Self::Status(Status::NoFile) => K::NotFound,
            Self::Status(Status::AlreadyExists) => K::AlreadyExists,
            Self::Status(Status::ServerWasDenied) => K::PermissionDenied,
            Self::Status(Status::InvalidRead | Status::InvalidWrite | Status::InvalidFd) => {
                K::PermissionDenied
            }
            Self::Status(Status::InvalidBuffer | Status::InvalidPath | Status::InvalidName)
            | Self::Invalid => K::InvalidInput,
            Self::Busy | Self::Status(Status::AllocationError | Status::TooManyOpenFiles) => {
                K::OutOfMemory
            }
            _ => K::Other,
        }
    }
}

/// A request, in the client's terms (paths and data are copied into the request's share slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'p> {
    /// Mount.
    Initialise,
    /// Unmount.
    Deinitialise,
    /// Open a file.
    Open {
        /// Path.
        path: &'p str,
        /// Access and options.
        flags: OpenFlags,
    },
    /// Close a file.
    Close {
        /// File descriptor.
        fd: u64,
    },
    /// Metadata of a path.
    Stat {
        /// Path.
        path: &'p str,
    },
    /// Read up to `len` bytes at `offset` (at most a slot's bytes).
    Read {
        /// File descriptor.
        fd: u64,
        /// Position.
        offset: u64,
        /// Bytes wanted.
        len: u64,
    },
    /// Write `data` at `offset` (at most a slot's bytes).
    Write {
        /// File descriptor.
        fd: u64,
        /// Position.
        offset: u64,
        /// Bytes.
        data: &'p [u8],
    },
    /// File size.
    Size {
        /// File descriptor.
        fd: u64,
    },
    /// Rename.
    Rename {
        /// Current path.
        old: &'p str,
        /// New path.
        new: &'p str,
    },
    /// Remove a file.
    Remove {
        /// Path.
        path: &'p str,
    },
    /// Set a file's length.
    Truncate {
        /// File descriptor.
        fd: u64,
        /// New length.
        length: u64,
    },
    /// Create a directory.
    DirCreate {
        /// Path.
        path: &'p str,
    },
    /// Remove a directory.
    DirRemove {
        /// Path.
        path: &'p str,
    },
    /// Open a directory.
    DirOpen {
        /// Path.
        path: &'p str,
    },
    /// Close a directory.
    DirClose {
        /// Directory descriptor.
        fd: u64,
    },
    /// Flush a file.
    Sync {
        /// File descriptor.
        fd: u64,
    },
    /// The next entry name.
    DirRead {
        /// Directory descriptor.
        fd: u64,
    },
    /// Seek a directory.
    DirSeek {
        /// Directory descriptor.
        fd: u64,
        /// Position from [`Reply::Location`].
        loc: i64,
    },
    /// Directory position.
    DirTell {
        /// Directory descriptor.
        fd: u64,
    },
    /// Rewind a directory.
    DirRewind {
        /// Directory descriptor.
        fd: u64,
    },
}

/// A successful completion, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Done, nothing returned.
    Done,
    /// A new descriptor (open, directory open).
    Fd(u64),
    /// Bytes read, copied to the caller's buffer.
    Read(usize),
    /// Bytes written.
    Written(u64),
    /// File size.
    Size(u64),
    /// Metadata.
    Stat(FsStat),
    /// Bytes of an entry name, copied to the caller's buffer.
    Name(usize),
    /// Directory position.
    Location(u64),
}

/// A request in flight: give it to [`FsClient::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

#[derive(Debug, Clone, Copy)]
enum SlotState {
    Free,
    Pending {
        t: CommandType,
        len: u64,
        discard: bool,
    },
    Done {
        t: CommandType,
        len: u64,
        cmpl: FsCmpl,
    },
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u64,
    state: SlotState,
    /// Completion order (for `next_done`).
    done_seq: u64,
}

/// An FS client; see the module docs.
pub struct FsClient<'a> {
    queues: FsClientQueues<'a>,
    share: ShareRegion<'a>,
    server: Channel,
    buffer: u64,
    slots: [Slot; FS_QUEUE_CAPACITY],
    limit: usize,
    in_flight: usize,
    bogus: u64,
    seq: u64,
}

impl<'a> FsClient<'a> {
    /// The client of the connection in `config`, with [`DEFAULT_BUFFER_BYTES`] per request.
    ///
    /// The token says the config's regions are mapped read-write here for `'a`, and that this
    /// is the one client built from them.
    pub fn new(config: Mapped<'a, crate::FsClientConfig>) -> Result<Self, QueueError> {
        let config = config.config();
        let channel = config
            .server
            .channel()
            .ok_or(QueueError::Channel(config.server.id))?;
        // SAFETY: the token: mapped read-write here for `'a`, shared only with the server, and
        // this client makes the only client side over them (here and below).
        let queues = unsafe { FsClientQueues::from_connection(&config.server) }?;
        // SAFETY: as above.
        let share = unsafe { ShareRegion::from_resource(&config.server.share) }
            .ok_or(QueueError::Unmapped)?;
        Ok(Self::with_parts(
            queues,
            share,
            channel,
            DEFAULT_BUFFER_BYTES,
        ))
    }

    /// A client over parts made by the caller, with `buffer_bytes` of share region per request
    /// (raised to [`MIN_BUFFER_BYTES`]).
    pub fn with_parts(
        queues: FsClientQueues<'a>,
        share: ShareRegion<'a>,
        server: Channel,
        buffer_bytes: u64,
    ) -> Self {
        let buffer = buffer_bytes.max(MIN_BUFFER_BYTES);
        let fit = usize::try_from(share.len() / buffer).unwrap_or(usize::MAX);
        Self {
            queues,
            share,
            server,
            buffer,
            slots: [Slot {
                generation: 0,
                state: SlotState::Free,
                done_seq: 0,
            }; FS_QUEUE_CAPACITY],
            limit: fit.min(FS_QUEUE_CAPACITY),
            in_flight: 0,
            bogus: 0,
            seq: 0,
        }
    }

    /// Share bytes per request: the most one read or write moves.
    pub fn buffer_bytes(&self) -> u64 {
        self.buffer
    }

    /// Requests that may be in flight at once.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Requests in flight (submitted and not yet polled).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Completions that named no request in flight.
    pub fn bogus(&self) -> u64 {
        self.bogus
    }

    /// The channel to the server (it notifies here when completions arrive).
    pub fn server_channel(&self) -> Channel {
        self.server
    }

    fn area(&self, slot: usize, at: u64, len: u64) -> FsBuffer {
        FsBuffer {
            offset: slot as u64 * self.buffer + at,
            size: len,
        }
    }

    fn put(&self, slot: usize, at: u64, bytes: &[u8]) -> Result<FsBuffer, FsError> {
        let b = self.area(slot, at, bytes.len() as u64);
        if bytes.is_empty() || at + b.size > self.buffer {
            return Err(FsError::Invalid);
        }
        self.share
            .write(b, 0, bytes)
            .map_err(|_| FsError::Invalid)?;
        Ok(b)
    }

    fn path(&self, slot: usize, at: u64, path: &str) -> Result<FsBuffer, FsError> {
        if path.len() as u64 > FS_MAX_PATH_LENGTH {
            return Err(FsError::Invalid);
        }
        self.put(slot, at, path.as_bytes())
    }

    /// Encode `req` into slot `slot`'s share area; returns the command and the length asked for.
    fn encode(&self, slot: usize, req: Request<'_>) -> Result<(Command, u64), FsError> {
        let half = FS_MAX_PATH_LENGTH + 1;
        let cap = |len: u64| len.min(self.buffer);
        Ok(match req {
            Request::Initialise => (Command::Initialise, 0),
            Request::Deinitialise => (Command::Deinitialise, 0),
            Request::Open { path, flags } => (
                Command::FileOpen {
                    path: self.path(slot, 0, path)?,
                    flags,
                },
                0,
            ),
            Request::Close { fd } => (Command::FileClose { fd }, 0),
            Request::Stat { path } => (
                Command::Stat {
                    path: self.path(slot, 0, path)?,
                    buf: self.area(slot, half, size_of::<FsStat>() as u64),
                },
                0,
            ),
            Request::Read { fd, offset, len } => {
                if len == 0 {
                    return Err(FsError::Invalid);
                }
                let buf = self.area(slot, 0, cap(len));
                (Command::FileRead { fd, offset, buf }, buf.size)
            }
            Request::Write { fd, offset, data } => {
                let n = usize::try_from(cap(data.len() as u64)).unwrap_or(data.len());
                let buf = self.put(slot, 0, &data[..n.min(data.len())])?;
                (Command::FileWrite { fd, offset, buf }, buf.size)
            }
            Request::Size { fd } => (Command::FileSize { fd }, 0),
            Request::Rename { old, new } => (
                Command::Rename {
                    old_path: self.path(slot, 0, old)?,
                    new_path: self.path(slot, half, new)?,
                },
                0,
            ),
            Request::Remove { path } => (
                Command::FileRemove {
                    path: self.path(slot, 0, path)?,
                },
                0,
            ),
            Request::Truncate { fd, length } => (Command::FileTruncate { fd, length }, 0),
            Request::DirCreate { path } => (
                Command::DirCreate {
                    path: self.path(slot, 0, path)?,
                },
                0,
            ),
            Request::DirRemove { path } => (
                Command::DirRemove {
                    path: self.path(slot, 0, path)?,
                },
                0,
            ),
            Request::DirOpen { path } => (
                Command::DirOpen {
                    path: self.path(slot, 0, path)?,
                },
                0,
            ),
            Request::DirClose { fd } => (Command::DirClose { fd }, 0),
            Request::Sync { fd } => (Command::FileSync { fd }, 0),
            Request::DirRead { fd } => {
                let buf = self.area(slot, 0, cap(crate::server::NAME_BUFFER_BYTES as u64));
                (Command::DirRead { fd, buf }, buf.size)
            }
            Request::DirSeek { fd, loc } => (Command::DirSeek { fd, loc }, 0),
            Request::DirTell { fd } => (Command::DirTell { fd }, 0),
            Request::DirRewind { fd } => (Command::DirRewind { fd }, 0),
        })
    }

    /// Stage `req` without publishing it (see [`flush`](Self::flush)).
    pub fn stage(&mut self, req: Request<'_>) -> Result<RequestId, FsError> {
        let slot = (0..self.limit)
            .find(|&i| matches!(self.slots[i].state, SlotState::Free))
            .ok_or(FsError::Busy)?;
        let (cmd, len) = self.encode(slot, req)?;
        let id = slot as u64 + (self.slots[slot].generation << SLOT_BITS);
        match self.queues.commands.push(cmd.encode(id)) {
            Ok(()) => {}
            Err(lions_queue::PushError::Full(_)) => return Err(FsError::Busy),
            Err(lions_queue::PushError::Peer(e, _)) => return Err(FsError::Peer(e)),
        }
        self.slots[slot].state = SlotState::Pending {
            t: cmd.command_type(),
            len,
            discard: false,
        };
        self.in_flight += 1;
        Ok(RequestId(id))
    }

    /// Publish staged requests and notify the server if there were any.
    pub fn flush(&mut self) -> Result<(), FsError> {
        if self.queues.commands.publish() > 0 {
            self.server.notify()?;
        }
        Ok(())
    }

    /// Stage, publish and notify.
    pub fn submit(&mut self, req: Request<'_>) -> Result<RequestId, FsError> {
        let id = self.stage(req)?;
        self.flush()?;
        Ok(id)
    }

    fn slot_of(&self, id: RequestId) -> Option<usize> {
        let slot = usize::try_from(id.0 & ((1 << SLOT_BITS) - 1)).ok()?;
        (slot < self.limit && self.slots[slot].generation == id.0 >> SLOT_BITS).then_some(slot)
    }

    fn free(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.state = SlotState::Free;
        s.generation = (s.generation + 1) % (u64::MAX >> SLOT_BITS);
        self.in_flight -= 1;
    }

    /// Take every completion the server published; returns how many named a request in flight.
    pub fn process(&mut self) -> Result<usize, FsError> {
        let mut n = 0;
        while let Some(c) = self.queues.completions.pop()? {
            let id = RequestId(c.id);
            match self.slot_of(id).map(|s| (s, self.slots[s].state)) {
                Some((s, SlotState::Pending { discard: true, .. })) => {
                    self.free(s);
                    n += 1;
                }
                Some((s, SlotState::Pending { t, len, .. })) => {
                    self.seq += 1;
                    self.slots[s].state = SlotState::Done { t, len, cmpl: c };
                    self.slots[s].done_seq = self.seq;
                    n += 1;
                }
                _ => self.bogus += 1,
            }
        }
        if self.queues.completions.release() > 0 && self.queues.server_may_wait_at_wrap() {
            // The server stops producing at the index wrap until we took what came before it;
            // it is not told otherwise (FS servers are woken only by notifications), so requests
            // still waiting for an answer would wait forever.
            let waiting = self.slots[..self.limit]
                .iter()
                .any(|s| matches!(s.state, SlotState::Pending { .. }));
            if waiting {
                self.server.notify()?;
            }
        }
        Ok(n)
    }

    /// The completed request that completed first, if any.
    pub fn next_done(&self) -> Option<RequestId> {
        (0..self.limit)
            .filter(|&i| matches!(self.slots[i].state, SlotState::Done { .. }))
            .min_by_key(|&i| self.slots[i].done_seq)
            .map(|i| RequestId(i as u64 + (self.slots[i].generation << SLOT_BITS)))
    }

    /// The result of `id` once complete (`None` while pending): data a read, directory read or
    /// stat returned is copied into `out` (as much as fits). The request is then finished.
    pub fn poll(&mut self, id: RequestId, out: &mut [u8]) -> Option<Result<Reply, FsError>> {
        let Some(slot) = self.slot_of(id) else {
            return Some(Err(FsError::UnknownRequest));
        };
        let (t, len, cmpl) = match self.slots[slot].state {
            SlotState::Free => return Some(Err(FsError::UnknownRequest)),
            SlotState::Pending { .. } => return None,
            SlotState::Done { t, len, cmpl } => (t, len, cmpl),
        };
        self.free(slot);
        Some(self.reply(slot, t, len, &cmpl, out))
    }

    fn reply(
        &self,
        slot: usize,
        t: CommandType,
        len: u64,
        cmpl: &FsCmpl,
        out: &mut [u8],
    ) -> Result<Reply, FsError> {
        match cmpl.status() {
            Ok(Status::Success) => {}
            Ok(s) => return Err(FsError::Status(s)),
            Err(u) => return Err(FsError::UnknownStatus(u.0)),
        }
        let mut copy = |n: u64| -> Result<usize, FsError> {
            let n = usize::try_from(n.min(len)).unwrap_or(0).min(out.len());
            if n > 0 {
                self.share
                    .read(self.area(slot, 0, len), 0, &mut out[..n])
                    .map_err(|_| FsError::Invalid)?;
            }
            Ok(n)
        };
        Ok(match cmpl.data(t) {
            CompletionData::None if t == CommandType::Stat => {
                let mut st = [0u8; size_of::<FsStat>()];
                let b = self.area(slot, FS_MAX_PATH_LENGTH + 1, st.len() as u64);
                self.share
                    .read(b, 0, &mut st)
                    .map_err(|_| FsError::Invalid)?;
                Reply::Stat(FsStat::read_from_bytes(&st).map_err(|_| FsError::Invalid)?)
            }
            CompletionData::None => Reply::Done,
            CompletionData::Fd(fd) => Reply::Fd(fd),
            CompletionData::LenRead(n) => Reply::Read(copy(n)?),
            CompletionData::LenWritten(n) => Reply::Written(n),
            CompletionData::Size(n) => Reply::Size(n),
            CompletionData::PathLen(n) => Reply::Name(copy(n)?),
            CompletionData::Location(n) => Reply::Location(n),
        })
    }

    /// Forget `id`: its completion will be dropped on arrival (or now, if it has arrived).
    pub fn discard(&mut self, id: RequestId) {
        if let Some(slot) = self.slot_of(id) {
            match &mut self.slots[slot].state {
                SlotState::Pending { discard, .. } => *discard = true,
                SlotState::Done { .. } => self.free(slot),
                SlotState::Free => {}
            }
        }
    }

    /// Blocking call: submit `req` and spin until it completes (see the module docs).
    pub fn call(&mut self, req: Request<'_>, out: &mut [u8]) -> Result<Reply, FsError> {
        let id = self.submit(req)?;
        loop {
            self.process()?;
            if let Some(r) = self.poll(id, out) {
                return r;
            }
            lions_os::relax();
        }
    }

    /// Blocking open of a file as a [`File`].
    pub fn open(&mut self, path: &str, flags: OpenFlags) -> Result<File<'_, 'a>, FsError> {
        match self.call(Request::Open { path, flags }, &mut [])? {
            Reply::Fd(fd) => Ok(File {
                client: self,
                fd,
                pos: 0,
                open: true,
            }),
            _ => Err(FsError::Status(Status::Error)),
        }
    }
}

/// An open file with a position, over blocking calls: embedded-io `Read`, `Write` (flush =
/// `FILE_SYNC`) and `Seek`. Close it with [`close`](Self::close) to see the result; dropping it
/// sends the close without waiting.
pub struct File<'c, 'a> {
    client: &'c mut FsClient<'a>,
    fd: u64,
    pos: u64,
    open: bool,
}

impl File<'_, '_> {
    /// The server's descriptor.
    pub fn fd(&self) -> u64 {
        self.fd
    }

    /// The current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The file's size.
    pub fn size(&mut self) -> Result<u64, FsError> {
        match self.client.call(Request::Size { fd: self.fd }, &mut [])? {
            Reply::Size(n) => Ok(n),
            _ => Err(FsError::Status(Status::Error)),
        }
    }

    /// Set the file's length.
    pub fn truncate(&mut self, length: u64) -> Result<(), FsError> {
        self.client
            .call(
                Request::Truncate {
                    fd: self.fd,
                    length,
                },
                &mut [],
            )
            .map(drop)
    }

    /// Close and wait for the result.
    pub fn close(mut self) -> Result<(), FsError> {
        self.open = false;
        self.client
            .call(Request::Close { fd: self.fd }, &mut [])
            .map(drop)
    }
}

impl Drop for File<'_, '_> {
    fn drop(&mut self) {
        if self.open
            && let Ok(id) = self.client.submit(Request::Close { fd: self.fd })
        {
            self.client.discard(id);
        }
    }
}

impl embedded_io::ErrorType for File<'_, '_> {
    type Error = FsError;
}

impl embedded_io::Read for File<'_, '_> {
    /// One `FILE_READ` of up to a slot's bytes at the position; 0 at the end of the file.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, FsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let req = Request::Read {
            fd: self.fd,
            offset: self.pos,
            len: buf.len() as u64,
        };
        match self.client.call(req, buf)? {
            Reply::Read(n) => {
                self.pos += n as u64;
                Ok(n)
            }
            _ => Err(FsError::Status(Status::Error)),
        }
    }
}

impl embedded_io::Write for File<'_, '_> {
    /// One `FILE_WRITE` of up to a slot's bytes at the position.
    fn write(&mut self, buf: &[u8]) -> Result<usize, FsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let req = Request::Write {
            fd: self.fd,
            offset: self.pos,
            data: buf,
        };
        match self.client.call(req, &mut [])? {
            Reply::Written(n) => {
                let n = usize::try_from(n).unwrap_or(0).min(buf.len());
                self.pos += n as u64;
                Ok(n)
            }
            _ => Err(FsError::Status(Status::Error)),
        }
    }

    /// `FILE_SYNC`: data and metadata reach the device.
    fn flush(&mut self) -> Result<(), FsError> {
        self.client
            .call(Request::Sync { fd: self.fd }, &mut [])
            .map(drop)
    }
}

impl embedded_io::Seek for File<'_, '_> {
    fn seek(&mut self, pos: embedded_io::SeekFrom) -> Result<u64, FsError> {
        let new = match pos {
            embedded_io::SeekFrom::Start(p) => Some(p),
            embedded_io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            embedded_io::SeekFrom::End(d) => self.size()?.checked_add_signed(d),
        };
        self.pos = new.ok_or(FsError::Invalid)?;
        Ok(self.pos)
    }
}
