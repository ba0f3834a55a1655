// SPDX-License-Identifier: BSD-2-Clause
//! FS wire format: the 32 KiB queue, command and completion messages with their typed params and
//! results, open flags, status codes, `fs_stat_t`, and the share-buffer bounds check.

use crate::config::FsConnectionResource;
use bitflags::bitflags;
use core::marker::PhantomData;
use core::ops::Range;
use core::ptr::NonNull;
use lions_os::RegionResource;
use lions_queue::atomic::AtomicU64;
use lions_queue::{Capacity, Consumer, Producer, QueueHeader, QueueMemory, RegionError};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Messages per queue (`FS_QUEUE_CAPACITY`); all are usable.
pub const FS_QUEUE_CAPACITY: usize = 511;

/// Bytes of one `fs_queue_t`: 64-byte header plus 511 messages.
pub const FS_QUEUE_BYTES: usize = 32_768;

/// Longest path, in bytes, without terminator.
pub const FS_MAX_PATH_LENGTH: u64 = 4095;

/// Longest file name, in bytes, without terminator.
pub const FS_MAX_NAME_LENGTH: u64 = 255;

/// Bytes of a command's params union and a completion's data union.
pub const FS_PAYLOAD_BYTES: usize = 48;

/// The ring shape of every FS queue.
pub fn capacity() -> Result<Capacity, RegionError> {
    Capacity::fixed::<u64>(FS_QUEUE_CAPACITY as u64, FS_QUEUE_CAPACITY as u64)
        .map_err(RegionError::Capacity)
}

mod sealed {
    pub trait Sealed {}
}

/// A 64-byte message type that may fill an FS queue ([`FsCmd`], [`FsCmpl`], [`FsMsg`]).
pub trait FsMessage: Copy + FromBytes + sealed::Sealed {}

/// A command: `fs_cmd_t` (64 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsCmd {
    /// Request id chosen by the client, echoed in the completion (offset 0).
    pub id: u64,
    /// Raw [`CommandType`] (offset 8).
    pub cmd_type: u64,
    /// Params union (offset 16).
    pub params: [u8; FS_PAYLOAD_BYTES],
}

/// A completion: `fs_cmpl_t` (64 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsCmpl {
    /// The command's id (offset 0).
    pub id: u64,
    /// Raw [`Status`] (offset 8).
    pub status: u64,
    /// Data union (offset 16); the result, if any, is its first `u64`.
    pub data: [u8; FS_PAYLOAD_BYTES],
}

/// Either message as raw bytes: `fs_msg_t` (64 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FsMsg(pub [u64; 8]);

impl sealed::Sealed for FsCmd {}
impl sealed::Sealed for FsCmpl {}
impl sealed::Sealed for FsMsg {}
impl FsMessage for FsCmd {}
impl FsMessage for FsCmpl {}
impl FsMessage for FsMsg {}

impl From<FsCmd> for FsMsg {
    fn from(c: FsCmd) -> Self {
        zerocopy::transmute!(c)
    }
}

impl From<FsCmpl> for FsMsg {
    fn from(c: FsCmpl) -> Self {
        zerocopy::transmute!(c)
    }
}

impl FsMsg {
    /// The message read as a command.
    pub fn cmd(self) -> FsCmd {
        zerocopy::transmute!(self)
    }

    /// The message read as a completion.
    pub fn cmpl(self) -> FsCmpl {
        zerocopy::transmute!(self)
    }
}

/// One FS queue (`fs_queue_t`) header; messages of type `E` follow at offset 64.
#[repr(C)]
pub struct FsQueue<E> {
    /// Consumer-owned index (offset 0).
    head: AtomicU64,
    /// Producer-owned index (offset 8).
    tail: AtomicU64,
    /// The C padding (offset 16), never accessed; atomics so a peer writing it is no data race.
    _pad: [AtomicU64; 6],
    _entry: PhantomData<fn() -> E>,
}

/// The command queue (client → server).
pub type CommandQueue = FsQueue<FsCmd>;
/// The completion queue (server → client).
pub type CompletionQueue = FsQueue<FsCmpl>;

// SAFETY: `head`/`tail` are fields of `self`; messages start at offset 64 in the C layout, a
// multiple of the 8-byte alignment of every `FsMessage`.
unsafe impl<E: FsMessage> QueueHeader for FsQueue<E> {
    type Index = u64;
    type Entry = E;
    const ENTRIES_OFFSET: usize = 64;

    fn head(&self) -> &AtomicU64 {
        &self.head
    }

    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
}

/// A raw value outside an enum's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue(pub u64);

impl core::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown FS protocol value {}", self.0)
    }
}

impl core::error::Error for UnknownValue {}

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u64)]
        pub enum $name {
            $($(#[$vm])* $v = $n,)*
        }

        impl TryFrom<u64> for $name {
            type Error = UnknownValue;

            fn try_from(v: u64) -> Result<Self, UnknownValue> {
                match v {
                    $($n => Ok(Self::$v),)*
                    _ => Err(UnknownValue(v)),
                }
            }
        }

        impl From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v as u64
            }
        }
    };
}

wire_enum! {
    /// Command numbers (the C enum order is the ABI).
    CommandType {
        /// Mount.
        Initialise = 0,
        /// Unmount.
        Deinitialise = 1,
        /// Open a file: path, flags → fd.
        FileOpen = 2,
        /// Close a file: fd.
        FileClose = 3,
        /// Stat a path into a buffer.
        Stat = 4,
        /// Positional read: fd, offset, buf → len_read.
        FileRead = 5,
        /// Positional write: fd, offset, buf → len_written.
        FileWrite = 6,
        /// File size: fd → size.
        FileSize = 7,
        /// Rename: old path, new path.
        Rename = 8,
        /// Remove a file.
        FileRemove = 9,
        /// Truncate: fd, length.
        FileTruncate = 10,
        /// Create a directory.
        DirCreate = 11,
        /// Remove a directory.
        DirRemove = 12,
        /// Open a directory: path → fd.
        DirOpen = 13,
        /// Close a directory: fd.
        DirClose = 14,
        /// Flush a file: fd.
        FileSync = 15,
        /// Read one entry name into buf → path_len.
        DirRead = 16,
        /// Seek a directory: fd, loc.
        DirSeek = 17,
        /// Directory position: fd → location.
        DirTell = 18,
        /// Rewind a directory: fd.
        DirRewind = 19,
    }
}

wire_enum! {
    /// Completion status codes.
    Status {
        /// Operation succeeded.
        Success = 0,
        /// Failed for an unspecified reason.
        Error = 1,
        /// Client-provided buffer is invalid.
        InvalidBuffer = 2,
        /// Path or path buffer is invalid.
        InvalidPath = 3,
        /// File descriptor is invalid.
        InvalidFd = 4,
        /// The server failed to allocate.
        AllocationError = 5,
        /// Close refused: operations on the fd are still outstanding.
        OutstandingOperations = 6,
        /// File name is invalid.
        InvalidName = 7,
        /// The server's open-file limit is reached.
        TooManyOpenFiles = 8,
        /// Denied by the backing device or protocol.
        ServerWasDenied = 9,
        /// Write to a file opened without write access.
        InvalidWrite = 10,
        /// Read from a file opened without read access.
        InvalidRead = 11,
        /// Directory is full.
        DirectoryIsFull = 12,
        /// Command type is invalid.
        InvalidCommand = 13,
        /// End of directory.
        EndOfDirectory = 14,
        /// No such file.
        NoFile = 15,
        /// Not a directory.
        NotDirectory = 16,
        /// Already exists.
        AlreadyExists = 17,
        /// Directory not empty.
        NotEmpty = 18,
    }
}

/// Access mode: the low two bits of the open flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum AccessMode {
    /// `FS_OPEN_FLAGS_READ_ONLY`.
    ReadOnly = 0,
    /// `FS_OPEN_FLAGS_WRITE_ONLY`.
    WriteOnly = 1,
    /// `FS_OPEN_FLAGS_READ_WRITE`.
    ReadWrite = 2,
}

bitflags! {
    /// Open options above the access mode.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct OpenOptions: u64 {
        /// Create the file if it does not exist (`FS_OPEN_FLAGS_CREATE`).
        const CREATE = 4;
    }
}

/// Decoded open flags: an access mode plus options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpenFlags {
    /// Read/write access.
    pub access: AccessMode,
    /// Options.
    pub options: OpenOptions,
}

impl OpenFlags {
    /// Bits of the access-mode field.
    pub const ACCESS_MASK: u64 = 3;

    /// Flags with no options.
    pub const fn new(access: AccessMode) -> Self {
        Self {
            access,
            options: OpenOptions::empty(),
        }
    }

    /// The wire value.
    pub fn to_raw(self) -> u64 {
        self.access as u64 | self.options.bits()
    }

    /// Whether reads are allowed.
    pub fn readable(self) -> bool {
        self.access != AccessMode::WriteOnly
    }

    /// Whether writes are allowed.
    pub fn writable(self) -> bool {
        self.access != AccessMode::ReadOnly
    }
}

impl TryFrom<u64> for OpenFlags {
    type Error = DecodeError;

    /// Rejects access mode 3 and any unknown bit.
    fn try_from(raw: u64) -> Result<Self, DecodeError> {
        let access = match raw & Self::ACCESS_MASK {
            0 => AccessMode::ReadOnly,
            1 => AccessMode::WriteOnly,
            2 => AccessMode::ReadWrite,
            _ => return Err(DecodeError::OpenFlags(raw)),
        };
        let options =
            OpenOptions::from_bits(raw & !Self::ACCESS_MASK).ok_or(DecodeError::OpenFlags(raw))?;
        Ok(Self { access, options })
    }
}

/// A buffer in the share region: `fs_buffer_t` (16 B).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FsBuffer {
    /// Offset from the start of the share region (offset 0).
    pub offset: u64,
    /// Length in bytes (offset 8).
    pub size: u64,
}

/// A buffer the server must refuse (answer [`Status::InvalidBuffer`] or [`Status::InvalidPath`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// Empty, or not inside the share region.
    OutOfBounds(FsBuffer),
    /// A path longer than [`FS_MAX_PATH_LENGTH`].
    PathTooLong(u64),
}

impl BufferError {
    /// The status a server answers with.
    pub fn status(self) -> Status {
        match self {
            Self::OutOfBounds(_) => Status::InvalidBuffer,
            Self::PathTooLong(_) => Status::InvalidPath,
        }
    }
}

impl core::fmt::Display for BufferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::OutOfBounds(b) => write!(
                f,
                "buffer {:#x}+{:#x} outside the share region",
                b.offset, b.size
            ),
            Self::PathTooLong(n) => write!(f, "path of {n} bytes exceeds {FS_MAX_PATH_LENGTH}"),
        }
    }
}

impl core::error::Error for BufferError {}

/// The server's share-buffer check: `offset < share_size && size <= share_size - offset && size
/// != 0`. Returns the byte range in the share region.
pub fn check_buffer(buf: FsBuffer, share_size: u64) -> Result<Range<u64>, BufferError> {
    if buf.offset < share_size && buf.size <= share_size - buf.offset && buf.size != 0 {
        Ok(buf.offset..buf.offset + buf.size)
    } else {
        Err(BufferError::OutOfBounds(buf))
    }
}

/// [`check_buffer`] for a path, which must also be at most [`FS_MAX_PATH_LENGTH`] bytes.
pub fn check_path(buf: FsBuffer, share_size: u64) -> Result<Range<u64>, BufferError> {
    let r = check_buffer(buf, share_size)?;
    if buf.size > FS_MAX_PATH_LENGTH {
        return Err(BufferError::PathTooLong(buf.size));
    }
    Ok(r)
}

/// Params of `FILE_OPEN` (24 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FileOpenParams {
    /// Path (offset 0).
    pub path: FsBuffer,
    /// Raw [`OpenFlags`] (offset 16).
    pub flags: u64,
}

/// Params of the commands taking only an fd: `FILE_CLOSE`, `FILE_SIZE`, `DIR_CLOSE`, `FILE_SYNC`,
/// `DIR_TELL`, `DIR_REWIND` (8 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FdParams {
    /// File or directory descriptor (offset 0).
    pub fd: u64,
}

/// Params of the commands taking only a path: `FILE_REMOVE`, `DIR_CREATE`, `DIR_REMOVE`,
/// `DIR_OPEN` (16 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PathParams {
    /// Path (offset 0).
    pub path: FsBuffer,
}

/// Params of `STAT` (32 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StatParams {
    /// Path (offset 0).
    pub path: FsBuffer,
    /// Where to write the [`FsStat`] (offset 16).
    pub buf: FsBuffer,
}

/// Params of `FILE_READ` and `FILE_WRITE` (32 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FileIoParams {
    /// File descriptor (offset 0).
    pub fd: u64,
    /// Position in the file (offset 8).
    pub offset: u64,
    /// Data buffer (offset 16).
    pub buf: FsBuffer,
}

/// Params of `RENAME` (32 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RenameParams {
    /// Current path (offset 0).
    pub old_path: FsBuffer,
    /// New path (offset 16).
    pub new_path: FsBuffer,
}

/// Params of `FILE_TRUNCATE` (16 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct TruncateParams {
    /// File descriptor (offset 0).
    pub fd: u64,
    /// New length (offset 8).
    pub length: u64,
}

/// Params of `DIR_READ` (24 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DirReadParams {
    /// Directory descriptor (offset 0).
    pub fd: u64,
    /// Buffer for the entry name (offset 8).
    pub buf: FsBuffer,
}

/// Params of `DIR_SEEK` (16 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DirSeekParams {
    /// Directory descriptor (offset 0).
    pub fd: u64,
    /// Position (offset 8).
    pub loc: i64,
}

/// Why a command could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The command type is not 0..=19 (answer [`Status::InvalidCommand`]).
    UnknownCommand(u64),
    /// The open flags have access mode 3 or unknown bits.
    OpenFlags(u64),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownCommand(t) => write!(f, "unknown FS command type {t}"),
            Self::OpenFlags(v) => write!(f, "invalid FS open flags {v:#x}"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// A decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // fields are documented on the params structs
pub enum Command {
    /// Mount the file system.
    Initialise,
    /// Unmount it.
    Deinitialise,
    /// Open (and maybe create) a file.
    FileOpen { path: FsBuffer, flags: OpenFlags },
    /// Close a file.
    FileClose { fd: u64 },
    /// Stat a path into `buf`.
    Stat { path: FsBuffer, buf: FsBuffer },
    /// Read from `offset` into `buf`.
    FileRead { fd: u64, offset: u64, buf: FsBuffer },
    /// Write `buf` at `offset`.
    FileWrite { fd: u64, offset: u64, buf: FsBuffer },
    /// Query the size.
    FileSize { fd: u64 },
    /// Rename.
    Rename {
        old_path: FsBuffer,
        new_path: FsBuffer,
    },
    /// Remove a file.
    FileRemove { path: FsBuffer },
    /// Truncate to `length`.
    FileTruncate { fd: u64, length: u64 },
    /// Create a directory.
    DirCreate { path: FsBuffer },
    /// Remove a directory.
    DirRemove { path: FsBuffer },
    /// Open a directory.
    DirOpen { path: FsBuffer },
    /// Close a directory.
    DirClose { fd: u64 },
    /// Flush a file.
    FileSync { fd: u64 },
    /// Read the next entry name into `buf`.
    DirRead { fd: u64, buf: FsBuffer },
    /// Seek to `loc`.
    DirSeek { fd: u64, loc: i64 },
    /// Current position.
    DirTell { fd: u64 },
    /// Rewind.
    DirRewind { fd: u64 },
}

/// Params bytes of `p` (every params struct is at most 48 bytes; the rest is zero).
fn put<T: IntoBytes + Immutable>(p: &T) -> [u8; FS_PAYLOAD_BYTES] {
    const { assert!(size_of::<T>() <= FS_PAYLOAD_BYTES) };
    let mut out = [0; FS_PAYLOAD_BYTES];
    out[..size_of::<T>()].copy_from_slice(p.as_bytes());
    out
}

/// Read a params struct from the front of the union (trailing bytes are ignored, as in C).
fn get<T: FromBytes>(bytes: &[u8; FS_PAYLOAD_BYTES]) -> T {
    const { assert!(size_of::<T>() <= FS_PAYLOAD_BYTES) };
    match T::read_from_prefix(bytes) {
        Ok((t, _)) => t,
        Err(_) => T::new_zeroed(), // unreachable: the size is checked at compile time
    }
}

impl Command {
    /// The command's type number.
    pub fn command_type(&self) -> CommandType {
        match self {
            Self::Initialise => CommandType::Initialise,
            Self::Deinitialise => CommandType::Deinitialise,
            Self::FileOpen { .. } => CommandType::FileOpen,
            Self::FileClose { .. } => CommandType::FileClose,
            Self::Stat { .. } => CommandType::Stat,
            Self::FileRead { .. } => CommandType::FileRead,
            Self::FileWrite { .. } => CommandType::FileWrite,
            Self::FileSize { .. } => CommandType::FileSize,
            Self::Rename { .. } => CommandType::Rename,
            Self::FileRemove { .. } => CommandType::FileRemove,
            Self::FileTruncate { .. } => CommandType::FileTruncate,
            Self::DirCreate { .. } => CommandType::DirCreate,
            Self::DirRemove { .. } => CommandType::DirRemove,
            Self::DirOpen { .. } => CommandType::DirOpen,
            Self::DirClose { .. } => CommandType::DirClose,
            Self::FileSync { .. } => CommandType::FileSync,
            Self::DirRead { .. } => CommandType::DirRead,
            Self::DirSeek { .. } => CommandType::DirSeek,
            Self::DirTell { .. } => CommandType::DirTell,
            Self::DirRewind { .. } => CommandType::DirRewind,
        }
    }

    /// The wire message for request `id`.
    pub fn encode(&self, id: u64) -> FsCmd {
        let params = match *self {
            Self::Initialise | Self::Deinitialise => [0; FS_PAYLOAD_BYTES],
            Self::FileOpen { path, flags } => put(&FileOpenParams {
                path,
                flags: flags.to_raw(),
            }),
            Self::FileClose { fd }
            | Self::FileSize { fd }
            | Self::DirClose { fd }
            | Self::FileSync { fd }
            | Self::DirTell { fd }
            | Self::DirRewind { fd } => put(&FdParams { fd }),
            Self::Stat { path, buf } => put(&StatParams { path, buf }),
            Self::FileRead { fd, offset, buf } | Self::FileWrite { fd, offset, buf } => {
                put(&FileIoParams { fd, offset, buf })
            }
            Self::Rename { old_path, new_path } => put(&RenameParams { old_path, new_path }),
            Self::FileRemove { path }
            | Self::DirCreate { path }
            | Self::DirRemove { path }
            | Self::DirOpen { path } => put(&PathParams { path }),
            Self::FileTruncate { fd, length } => put(&TruncateParams { fd, length }),
            Self::DirRead { fd, buf } => put(&DirReadParams { fd, buf }),
            Self::DirSeek { fd, loc } => put(&DirSeekParams { fd, loc }),
        };
        FsCmd {
            id,
            cmd_type: self.command_type().into(),
            params,
        }
    }
}

impl FsCmd {
    /// Decode the type and its params, checked (unknown type, bad open flags).
    pub fn decode(&self) -> Result<Command, DecodeError> {
        let t =
            CommandType::try_from(self.cmd_type).map_err(|e| DecodeError::UnknownCommand(e.0))?;
        let p = &self.params;
        let fd = || get::<FdParams>(p).fd;
        let path = || get::<PathParams>(p).path;
        Ok(match t {
            CommandType::Initialise => Command::Initialise,
            CommandType::Deinitialise => Command::Deinitialise,
            CommandType::FileOpen => {
                let o: FileOpenParams = get(p);
                Command::FileOpen {
                    path: o.path,
                    flags: OpenFlags::try_from(o.flags)?,
                }
            }
            CommandType::FileClose => Command::FileClose { fd: fd() },
            CommandType::Stat => {
                let s: StatParams = get(p);
                Command::Stat {
                    path: s.path,
                    buf: s.buf,
                }
            }
            CommandType::FileRead => {
                let r: FileIoParams = get(p);
                Command::FileRead {
                    fd: r.fd,
                    offset: r.offset,
                    buf: r.buf,
                }
            }
            CommandType::FileWrite => {
                let w: FileIoParams = get(p);
                Command::FileWrite {
                    fd: w.fd,
                    offset: w.offset,
                    buf: w.buf,
                }
            }
            CommandType::FileSize => Command::FileSize { fd: fd() },
            CommandType::Rename => {
                let r: RenameParams = get(p);
                Command::Rename {
                    old_path: r.old_path,
                    new_path: r.new_path,
                }
            }
            CommandType::FileRemove => Command::FileRemove { path: path() },
            CommandType::FileTruncate => {
                let t: TruncateParams = get(p);
                Command::FileTruncate {
                    fd: t.fd,
                    length: t.length,
                }
            }
            CommandType::DirCreate => Command::DirCreate { path: path() },
            CommandType::DirRemove => Command::DirRemove { path: path() },
            CommandType::DirOpen => Command::DirOpen { path: path() },
            CommandType::DirClose => Command::DirClose { fd: fd() },
            CommandType::FileSync => Command::FileSync { fd: fd() },
            CommandType::DirRead => {
                let d: DirReadParams = get(p);
                Command::DirRead {
                    fd: d.fd,
                    buf: d.buf,
                }
            }
            CommandType::DirSeek => {
                let d: DirSeekParams = get(p);
                Command::DirSeek {
                    fd: d.fd,
                    loc: d.loc,
                }
            }
            CommandType::DirTell => Command::DirTell { fd: fd() },
            CommandType::DirRewind => Command::DirRewind { fd: fd() },
        })
    }
}

/// The result a completion carries, by command (`fs_cmpl_data_t`: one `u64` at offset 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionData {
    /// The command returns nothing.
    None,
    /// `FILE_OPEN`, `DIR_OPEN`: the new descriptor.
    Fd(u64),
    /// `FILE_READ`: bytes read.
    LenRead(u64),
    /// `FILE_WRITE`: bytes written.
    LenWritten(u64),
    /// `FILE_SIZE`: file size.
    Size(u64),
    /// `DIR_READ`: bytes of the name written (not NUL-terminated).
    PathLen(u64),
    /// `DIR_TELL`: directory position.
    Location(u64),
}

impl CompletionData {
    /// Interpret the result word of a completion to a command of type `t`.
    pub fn for_command(t: CommandType, word: u64) -> Self {
        match t {
            CommandType::FileOpen | CommandType::DirOpen => Self::Fd(word),
            CommandType::FileRead => Self::LenRead(word),
            CommandType::FileWrite => Self::LenWritten(word),
            CommandType::FileSize => Self::Size(word),
            CommandType::DirRead => Self::PathLen(word),
            CommandType::DirTell => Self::Location(word),
            _ => Self::None,
        }
    }

    /// The result word (0 for `None`).
    pub fn word(self) -> u64 {
        match self {
            Self::None => 0,
            Self::Fd(v)
            | Self::LenRead(v)
            | Self::LenWritten(v)
            | Self::Size(v)
            | Self::PathLen(v)
            | Self::Location(v) => v,
        }
    }
}

impl FsCmpl {
    /// A completion of request `id`.
    pub fn new(id: u64, status: Status, data: CompletionData) -> Self {
        Self {
            id,
            status: status.into(),
            data: put(&data.word()),
        }
    }

    /// The status, checked.
    pub fn status(&self) -> Result<Status, UnknownValue> {
        Status::try_from(self.status)
    }

    /// The result word read as the result of a command of type `t`.
    pub fn data(&self, t: CommandType) -> CompletionData {
        CompletionData::for_command(t, get::<u64>(&self.data))
    }
}

/// File metadata written by `STAT`: `fs_stat_t` (136 B, the layout of libnfs `nfs_stat_64`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
#[allow(missing_docs)] // POSIX stat fields
pub struct FsStat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u64,
    pub nlink: u64,
    pub uid: u64,
    pub gid: u64,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atime_nsec: u64,
    pub mtime_nsec: u64,
    pub ctime_nsec: u64,
    pub used: u64,
}

/// Why queues could not be set up: the one error type of every class crate's queues.
pub use lions_queue::clients::QueueError;

fn region_ptr(r: &RegionResource) -> Result<(NonNull<u8>, usize), QueueError> {
    lions_queue::clients::region(r.vaddr, r.size)
}

/// The command and completion queue regions of a connection.
type Regions = ((NonNull<u8>, usize), (NonNull<u8>, usize));

fn regions(conn: &FsConnectionResource) -> Result<Regions, QueueError> {
    Ok((
        region_ptr(&conn.command_queue)?,
        region_ptr(&conn.completion_queue)?,
    ))
}

/// Both queues of a connection, checked, not yet claimed by a role.
///
/// # Safety
/// As for [`QueueMemory::inline`], for both regions.
unsafe fn memories<'a>(
    cmd: NonNull<u8>,
    cmd_len: usize,
    cmpl: NonNull<u8>,
    cmpl_len: usize,
) -> Result<
    (
        QueueMemory<'a, CommandQueue>,
        QueueMemory<'a, CompletionQueue>,
    ),
    QueueError,
> {
    let cap = capacity()?;
    // SAFETY: forwarded from the caller.
    let cmd = unsafe { QueueMemory::inline(cmd, cmd_len, cap)? };
    // SAFETY: forwarded from the caller.
    let cmpl = unsafe { QueueMemory::inline(cmpl, cmpl_len, cap)? };
    Ok((cmd, cmpl))
}

/// The client side: produces commands, consumes completions. Publish, then always notify.
pub struct FsClientQueues<'a> {
    /// Commands we send.
    pub commands: Producer<'a, u64, FsCmd>,
    /// Completions we receive.
    pub completions: Consumer<'a, u64, FsCmpl>,
    /// The completion queue's shared head (ours), to tell when the server may wait at the wrap.
    cmpl_head: &'a AtomicU64,
}

/// The server side: consumes commands, produces completions. Publish, then always notify.
pub struct FsServerQueues<'a> {
    /// Commands we receive.
    pub commands: Consumer<'a, u64, FsCmd>,
    /// Completions we send.
    pub completions: Producer<'a, u64, FsCmpl>,
}

impl<'a> FsClientQueues<'a> {
    /// The client side over a command and a completion queue region (32 KiB each).
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a`, shared with exactly one server, and this
    /// process makes no other client side over them.
    pub unsafe fn new(
        cmd: NonNull<u8>,
        cmd_len: usize,
        cmpl: NonNull<u8>,
        cmpl_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (cmd, cmpl) = unsafe { memories(cmd, cmd_len, cmpl, cmpl_len)? };
        let cmpl_head = cmpl.header().head();
        Ok(Self {
            commands: cmd.producer()?,
            completions: cmpl.consumer()?,
            cmpl_head,
        })
    }

    /// Whether the server may be holding completions back at the index wrap: 511 slots do not
    /// divide 2^64, so a producer never lets entries straddle the wrap and waits there until
    /// the consumer has taken everything before it. True within one ring of the wrap.
    pub fn server_may_wait_at_wrap(&self) -> bool {
        let head = self.cmpl_head.load(core::sync::atomic::Ordering::Relaxed);
        u64::MAX - head < FS_QUEUE_CAPACITY as u64 || head < FS_QUEUE_CAPACITY as u64
    }

    /// The client side of a connection from a config.
    ///
    /// # Safety
    /// The config describes this component's real mappings; no other client side exists.
    pub unsafe fn from_connection(conn: &FsConnectionResource) -> Result<Self, QueueError> {
        let ((c, cl), (p, pl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(c, cl, p, pl) }
    }
}

impl<'a> FsServerQueues<'a> {
    /// The server side over a command and a completion queue region.
    ///
    /// # Safety
    /// As for [`FsClientQueues::new`], with the roles swapped.
    pub unsafe fn new(
        cmd: NonNull<u8>,
        cmd_len: usize,
        cmpl: NonNull<u8>,
        cmpl_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (cmd, cmpl) = unsafe { memories(cmd, cmd_len, cmpl, cmpl_len)? };
        Ok(Self {
            commands: cmd.consumer()?,
            completions: cmpl.producer()?,
        })
    }

    /// The server side of a connection from a config.
    ///
    /// # Safety
    /// As for [`FsClientQueues::from_connection`].
    pub unsafe fn from_connection(conn: &FsConnectionResource) -> Result<Self, QueueError> {
        let ((c, cl), (p, pl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(c, cl, p, pl) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use core::sync::atomic::Ordering;
    use lions_queue::PushError;
    use proptest::prelude::*;

    #[test]
    fn layouts_match_c() {
        assert_eq!(size_of::<FsCmd>(), 64);
        assert_eq!(offset_of!(FsCmd, id), 0);
        assert_eq!(offset_of!(FsCmd, cmd_type), 8);
        assert_eq!(offset_of!(FsCmd, params), 16);
        assert_eq!(size_of::<FsCmpl>(), 64);
        assert_eq!(offset_of!(FsCmpl, id), 0);
        assert_eq!(offset_of!(FsCmpl, status), 8);
        assert_eq!(offset_of!(FsCmpl, data), 16);
        assert_eq!(size_of::<FsMsg>(), 64);
        assert_eq!(
            [
                align_of::<FsCmd>(),
                align_of::<FsCmpl>(),
                align_of::<FsMsg>()
            ],
            [8; 3]
        );
        // fs_queue_t: head @0, tail @8, padding[48] @16, buffer[511] @64; 32 KiB in all.
        assert_eq!(size_of::<CommandQueue>(), 64);
        assert_eq!(offset_of!(CommandQueue, head), 0);
        assert_eq!(offset_of!(CommandQueue, tail), 8);
        assert_eq!(offset_of!(CommandQueue, _pad), 16);
        assert_eq!(
            <CommandQueue as QueueHeader>::ENTRIES_OFFSET + FS_QUEUE_CAPACITY * 64,
            FS_QUEUE_BYTES
        );
        // fs_buffer_t and the params structs.
        assert_eq!(size_of::<FsBuffer>(), 16);
        assert_eq!(offset_of!(FsBuffer, size), 8);
        assert_eq!(size_of::<FileOpenParams>(), 24);
        assert_eq!(offset_of!(FileOpenParams, flags), 16);
        assert_eq!(size_of::<FdParams>(), 8);
        assert_eq!(size_of::<PathParams>(), 16);
        assert_eq!(size_of::<StatParams>(), 32);
        assert_eq!(offset_of!(StatParams, buf), 16);
        assert_eq!(size_of::<FileIoParams>(), 32);
        assert_eq!(offset_of!(FileIoParams, offset), 8);
        assert_eq!(offset_of!(FileIoParams, buf), 16);
        assert_eq!(size_of::<RenameParams>(), 32);
        assert_eq!(offset_of!(RenameParams, new_path), 16);
        assert_eq!(size_of::<TruncateParams>(), 16);
        assert_eq!(offset_of!(TruncateParams, length), 8);
        assert_eq!(size_of::<DirReadParams>(), 24);
        assert_eq!(offset_of!(DirReadParams, buf), 8);
        assert_eq!(size_of::<DirSeekParams>(), 16);
        assert_eq!(offset_of!(DirSeekParams, loc), 8);
        // fs_stat_t: 17 u64, in the libnfs order.
        assert_eq!(size_of::<FsStat>(), 136);
        assert_eq!(offset_of!(FsStat, dev), 0);
        assert_eq!(offset_of!(FsStat, ino), 8);
        assert_eq!(offset_of!(FsStat, mode), 16);
        assert_eq!(offset_of!(FsStat, nlink), 24);
        assert_eq!(offset_of!(FsStat, uid), 32);
        assert_eq!(offset_of!(FsStat, gid), 40);
        assert_eq!(offset_of!(FsStat, rdev), 48);
        assert_eq!(offset_of!(FsStat, size), 56);
        assert_eq!(offset_of!(FsStat, blksize), 64);
        assert_eq!(offset_of!(FsStat, blocks), 72);
        assert_eq!(offset_of!(FsStat, atime), 80);
        assert_eq!(offset_of!(FsStat, mtime), 88);
        assert_eq!(offset_of!(FsStat, ctime), 96);
        assert_eq!(offset_of!(FsStat, atime_nsec), 104);
        assert_eq!(offset_of!(FsStat, mtime_nsec), 112);
        assert_eq!(offset_of!(FsStat, ctime_nsec), 120);
        assert_eq!(offset_of!(FsStat, used), 128);
    }

    #[test]
    fn enums_convert_both_ways() {
        for n in 0..=19u64 {
            let t = CommandType::try_from(n).unwrap();
            assert_eq!(u64::from(t), n);
        }
        assert_eq!(CommandType::try_from(20), Err(UnknownValue(20)));
        assert_eq!(CommandType::try_from(u64::MAX), Err(UnknownValue(u64::MAX)));
        assert_eq!(CommandType::try_from(13), Ok(CommandType::DirOpen));
        for n in 0..=18u64 {
            assert_eq!(u64::from(Status::try_from(n).unwrap()), n);
        }
        assert_eq!(Status::try_from(19), Err(UnknownValue(19)));
        assert_eq!(Status::try_from(15), Ok(Status::NoFile));
        assert_eq!(Status::try_from(18), Ok(Status::NotEmpty));
        let c = FsCmpl {
            status: 99,
            ..FsCmpl::new(1, Status::Success, CompletionData::None)
        };
        assert_eq!(c.status(), Err(UnknownValue(99)));
    }

    #[test]
    fn open_flags() {
        let cases = [
            (0, AccessMode::ReadOnly, false),
            (1, AccessMode::WriteOnly, false),
            (2, AccessMode::ReadWrite, false),
            (4, AccessMode::ReadOnly, true),
            (6, AccessMode::ReadWrite, true),
        ];
        for (raw, access, create) in cases {
            let f = OpenFlags::try_from(raw).unwrap();
            assert_eq!(
                (f.access, f.options.contains(OpenOptions::CREATE)),
                (access, create)
            );
            assert_eq!(f.to_raw(), raw);
        }
        assert_eq!(
            OpenFlags::try_from(3),
            Err(DecodeError::OpenFlags(3)),
            "access mode 3 is not defined"
        );
        assert_eq!(OpenFlags::try_from(8), Err(DecodeError::OpenFlags(8)));
        assert_eq!(
            OpenFlags::try_from(1 << 63),
            Err(DecodeError::OpenFlags(1 << 63))
        );
        let ro = OpenFlags::new(AccessMode::ReadOnly);
        assert!(ro.readable() && !ro.writable());
        let wo = OpenFlags::new(AccessMode::WriteOnly);
        assert!(!wo.readable() && wo.writable());
        let rw = OpenFlags::new(AccessMode::ReadWrite);
        assert!(rw.readable() && rw.writable());
    }

    #[test]
    fn share_buffers_are_bounded() {
        let b = |offset, size| FsBuffer { offset, size };
        assert_eq!(check_buffer(b(0, 10), 10), Ok(0..10));
        assert_eq!(check_buffer(b(9, 1), 10), Ok(9..10));
        assert!(check_buffer(b(10, 1), 10).is_err(), "offset at the end");
        assert!(check_buffer(b(5, 6), 10).is_err(), "runs past the end");
        assert!(check_buffer(b(0, 0), 10).is_err(), "empty");
        assert!(check_buffer(b(1, u64::MAX), 10).is_err(), "no overflow");
        assert!(check_buffer(b(u64::MAX, 1), u64::MAX).is_err());
        assert!(check_buffer(b(0, 1), 0).is_err());
        assert_eq!(
            check_buffer(b(5, 6), 10).unwrap_err().status(),
            Status::InvalidBuffer
        );
        assert!(check_path(b(0, 4095), 1 << 20).is_ok());
        let e = check_path(b(0, 4096), 1 << 20).unwrap_err();
        assert_eq!(
            (e, e.status()),
            (BufferError::PathTooLong(4096), Status::InvalidPath)
        );
    }

    #[test]
    fn wire_bytes_of_a_read() {
        let c = Command::FileRead {
            fd: 3,
            offset: 0x1000,
            buf: FsBuffer {
                offset: 0x8000,
                size: 512,
            },
        }
        .encode(42);
        let w: &[u64] = &FsMsg::from(c).0;
        assert_eq!(w, &[42, 5, 3, 0x1000, 0x8000, 512, 0, 0]);
        assert_eq!(FsMsg::from(c).cmd(), c);
        let done = FsCmpl::new(42, Status::Success, CompletionData::LenRead(512));
        assert_eq!(&FsMsg::from(done).0, &[42, 0, 512, 0, 0, 0, 0, 0]);
        assert_eq!(
            FsMsg::from(done).cmpl().data(CommandType::FileRead),
            CompletionData::LenRead(512)
        );
        assert_eq!(done.data(CommandType::FileClose), CompletionData::None);
        assert_eq!(
            done.data(CommandType::DirTell),
            CompletionData::Location(512)
        );
        let bad = FsCmd { cmd_type: 20, ..c };
        assert_eq!(bad.decode(), Err(DecodeError::UnknownCommand(20)));
        let open = Command::FileOpen {
            path: FsBuffer { offset: 0, size: 4 },
            flags: OpenFlags::new(AccessMode::ReadWrite),
        }
        .encode(1);
        let mut bad = open;
        bad.params[16] = 3;
        assert_eq!(bad.decode(), Err(DecodeError::OpenFlags(3)));
    }

    fn buffer() -> impl Strategy<Value = FsBuffer> {
        (any::<u64>(), any::<u64>()).prop_map(|(offset, size)| FsBuffer { offset, size })
    }

    fn command() -> impl Strategy<Value = Command> {
        let flags = (0..3u64, any::<bool>())
            .prop_map(|(a, c)| OpenFlags::try_from(a | if c { 4 } else { 0 }).unwrap());
        (
            0..20u64,
            any::<u64>(),
            any::<u64>(),
            buffer(),
            buffer(),
            flags,
        )
            .prop_map(|(t, fd, x, b1, b2, flags)| {
                #[allow(clippy::cast_possible_wrap)]
                let loc = x as i64;
                match CommandType::try_from(t).unwrap() {
                    CommandType::Initialise => Command::Initialise,
                    CommandType::Deinitialise => Command::Deinitialise,
                    CommandType::FileOpen => Command::FileOpen { path: b1, flags },
                    CommandType::FileClose => Command::FileClose { fd },
                    CommandType::Stat => Command::Stat { path: b1, buf: b2 },
                    CommandType::FileRead => Command::FileRead {
                        fd,
                        offset: x,
                        buf: b1,
                    },
                    CommandType::FileWrite => Command::FileWrite {
                        fd,
                        offset: x,
                        buf: b2,
                    },
                    CommandType::FileSize => Command::FileSize { fd },
                    CommandType::Rename => Command::Rename {
                        old_path: b1,
                        new_path: b2,
                    },
                    CommandType::FileRemove => Command::FileRemove { path: b1 },
                    CommandType::FileTruncate => Command::FileTruncate { fd, length: x },
                    CommandType::DirCreate => Command::DirCreate { path: b1 },
                    CommandType::DirRemove => Command::DirRemove { path: b2 },
                    CommandType::DirOpen => Command::DirOpen { path: b1 },
                    CommandType::DirClose => Command::DirClose { fd },
                    CommandType::FileSync => Command::FileSync { fd },
                    CommandType::DirRead => Command::DirRead { fd, buf: b1 },
                    CommandType::DirSeek => Command::DirSeek { fd, loc },
                    CommandType::DirTell => Command::DirTell { fd },
                    CommandType::DirRewind => Command::DirRewind { fd },
                }
            })
    }

    proptest! {
        #[test]
        fn commands_round_trip(c in command(), id in any::<u64>()) {
            let raw = c.encode(id);
            prop_assert_eq!(raw.id, id);
            prop_assert_eq!(raw.cmd_type, u64::from(c.command_type()));
            prop_assert_eq!(raw.decode(), Ok(c));
            prop_assert_eq!(FsMsg::from(raw).cmd(), raw);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(words in proptest::array::uniform8(any::<u64>()), t in 0..24u64) {
            let mut raw = FsMsg(words).cmd();
            raw.cmd_type = t;
            if let Ok(c) = raw.decode() {
                // What decodes re-encodes to the same id, type and meaningful params.
                let again = c.encode(raw.id);
                prop_assert_eq!(again.decode(), Ok(c));
                prop_assert_eq!(again.cmd_type, raw.cmd_type);
            }
        }

        #[test]
        fn completions_round_trip(id in any::<u64>(), s in 0..19u64, t in 0..20u64, word in any::<u64>()) {
            let (s, t) = (Status::try_from(s).unwrap(), CommandType::try_from(t).unwrap());
            let data = CompletionData::for_command(t, word);
            let c = FsCmpl::new(id, s, data);
            prop_assert_eq!((c.id, c.status(), c.data(t)), (id, Ok(s), data));
        }

        #[test]
        fn bounds_check_agrees_with_wide_arithmetic(offset in any::<u64>(), size in any::<u64>(), share in any::<u64>()) {
            let ok = size != 0 && u128::from(offset) + u128::from(size) <= u128::from(share);
            prop_assert_eq!(check_buffer(FsBuffer { offset, size }, share).is_ok(), ok);
        }
    }

    /// Two 32 KiB queue regions.
    struct Regions {
        cmd: NonNull<u8>,
        cmpl: NonNull<u8>,
        _mem: Vec<u64>,
    }

    impl Regions {
        fn new(start: u64) -> Self {
            let mut mem = vec![0u64; 2 * FS_QUEUE_BYTES / 8];
            mem[0] = start; // cmd head
            mem[1] = start; // cmd tail
            mem[FS_QUEUE_BYTES / 8] = start;
            mem[FS_QUEUE_BYTES / 8 + 1] = start;
            let base = mem.as_mut_ptr().cast::<u8>();
            let cmd = NonNull::new(base).unwrap();
            // SAFETY: the second half of the allocation.
            let cmpl = unsafe { cmd.add(FS_QUEUE_BYTES) };
            Self {
                cmd,
                cmpl,
                _mem: mem,
            }
        }

        fn index(&self, cmpl: bool, tail: bool) -> &AtomicU64 {
            let base = if cmpl { self.cmpl } else { self.cmd };
            // SAFETY: head/tail words of a live region, accessed atomically.
            unsafe {
                base.add(if tail { 8 } else { 0 })
                    .cast::<AtomicU64>()
                    .as_ref()
            }
        }

        fn connect(&self) -> (FsClientQueues<'_>, FsServerQueues<'_>) {
            // SAFETY: the regions outlive the handles; one handle per role per queue.
            unsafe {
                (
                    FsClientQueues::new(self.cmd, FS_QUEUE_BYTES, self.cmpl, FS_QUEUE_BYTES)
                        .unwrap(),
                    FsServerQueues::new(self.cmd, FS_QUEUE_BYTES, self.cmpl, FS_QUEUE_BYTES)
                        .unwrap(),
                )
            }
        }
    }

    #[test]
    fn ring_of_511_across_the_u64_wrap() {
        let r = Regions::new(u64::MAX - 5);
        let (mut client, mut server) = r.connect();
        let mut next_id = 0u64;
        let mut issue = |client: &mut FsClientQueues<'_>| -> bool {
            let c = Command::FileSize { fd: next_id }.encode(next_id);
            match client.commands.push(c) {
                Ok(()) => {
                    next_id += 1;
                    true
                }
                Err(PushError::Full(_)) => false,
                Err(PushError::Peer(..)) => panic!("well-behaved server"),
            }
        };
        for expect in [6u64, 511, 511] {
            let mut n = 0;
            while issue(&mut client) {
                n += 1;
            }
            assert_eq!(n, expect, "6 before the wrap, then the full 511");
            assert_eq!(client.commands.publish(), expect);
            // The server answers out of order: all, in reverse.
            let mut got = Vec::new();
            while let Some(c) = server.commands.pop().unwrap() {
                got.push((c.id, c.decode().unwrap()));
            }
            server.commands.release();
            assert_eq!(got.len() as u64, expect);
            for &(id, c) in got.iter().rev() {
                assert_eq!(c, Command::FileSize { fd: id });
                server
                    .completions
                    .push(FsCmpl::new(
                        id,
                        Status::Success,
                        CompletionData::Size(id * 10),
                    ))
                    .unwrap();
            }
            assert_eq!(server.completions.publish(), expect);
            let mut seen = 0;
            while let Some(done) = client.completions.pop().unwrap() {
                assert_eq!(
                    done.data(CommandType::FileSize),
                    CompletionData::Size(done.id * 10)
                );
                seen += 1;
            }
            client.completions.release();
            assert_eq!(seen, expect);
        }
        assert_eq!(
            r.index(false, true).load(Ordering::Relaxed),
            6 + 511 + 511 - 6,
            "the u64 tail wrapped"
        );
    }

    #[test]
    fn corrupt_indices_are_peer_errors() {
        let r = Regions::new(0);
        {
            let (mut client, mut server) = r.connect();
            r.index(false, true).store(512, Ordering::Relaxed); // 512 commands in a 511 ring
            assert!(server.commands.pop().is_err());
            r.index(true, false).store(3, Ordering::Relaxed); // completion head past the tail
            assert!(server.completions.free().is_err());
            r.index(true, true).store(u64::MAX, Ordering::Relaxed); // completion tail backwards
            assert!(client.completions.pop().is_err());
            r.index(false, false).store(1, Ordering::Relaxed); // command head past the tail
            assert!(client.commands.free().is_err());
        }
        // SAFETY: fresh handle over the test regions; the old ones are gone.
        let e = unsafe { FsServerQueues::new(r.cmd, FS_QUEUE_BYTES, r.cmpl, FS_QUEUE_BYTES) };
        assert!(matches!(e, Err(QueueError::Handle(_))));
        // SAFETY: as above; a region smaller than 32 KiB is refused before any access.
        let e = unsafe { FsServerQueues::new(r.cmd, FS_QUEUE_BYTES - 1, r.cmpl, FS_QUEUE_BYTES) };
        assert!(matches!(
            e,
            Err(QueueError::Region(RegionError::TooSmall {
                needed: 32_768,
                ..
            }))
        ));
        let conn = <FsConnectionResource as zerocopy::FromZeros>::new_zeroed();
        // SAFETY: nothing is mapped; nothing is dereferenced.
        let r = unsafe { FsClientQueues::from_connection(&conn) };
        assert!(matches!(r, Err(QueueError::Unmapped)));
    }
}
