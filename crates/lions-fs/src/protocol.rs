// SPDX-License-Identifier: BSD-2-Clause
//! FS wire format: the 64-byte command and completion messages with their typed params and
//! results, open flags, status codes, `fs_stat_t`, and the share-buffer bounds check. The queues
//! that carry the messages are in [`crate::queue`].

use bitflags::bitflags;
use core::ops::Range;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Longest path, in bytes, without terminator.
pub const FS_MAX_PATH_LENGTH: u64 = 4095;

/// Longest file name, in bytes, without terminator.
pub const FS_MAX_NAME_LENGTH: u64 = 255;

/// Bytes of a command's params union and a completion's data union.
pub const FS_PAYLOAD_BYTES: usize = 48;

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
                let FileOpenParams { path, flags } = get(p);
                let flags = OpenFlags::try_from(flags)?;
                Command::FileOpen { path, flags }
            }
            CommandType::FileClose => Command::FileClose { fd: fd() },
            CommandType::Stat => {
                let StatParams { path, buf } = get(p);
                Command::Stat { path, buf }
            }
            CommandType::FileRead => {
                let FileIoParams { fd, offset, buf } = get(p);
                Command::FileRead { fd, offset, buf }
            }
            CommandType::FileWrite => {
                let FileIoParams { fd, offset, buf } = get(p);
                Command::FileWrite { fd, offset, buf }
            }
            CommandType::FileSize => Command::FileSize { fd: fd() },
            CommandType::Rename => {
                let RenameParams { old_path, new_path } = get(p);
                Command::Rename { old_path, new_path }
            }
            CommandType::FileRemove => Command::FileRemove { path: path() },
            CommandType::FileTruncate => {
                let TruncateParams { fd, length } = get(p);
                Command::FileTruncate { fd, length }
            }
            CommandType::DirCreate => Command::DirCreate { path: path() },
            CommandType::DirRemove => Command::DirRemove { path: path() },
            CommandType::DirOpen => Command::DirOpen { path: path() },
            CommandType::DirClose => Command::DirClose { fd: fd() },
            CommandType::FileSync => Command::FileSync { fd: fd() },
            CommandType::DirRead => {
                let DirReadParams { fd, buf } = get(p);
                Command::DirRead { fd, buf }
            }
            CommandType::DirSeek => {
                let DirSeekParams { fd, loc } = get(p);
                Command::DirSeek { fd, loc }
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

#[cfg(test)]
mod tests;
