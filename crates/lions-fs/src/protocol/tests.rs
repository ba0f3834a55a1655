// SPDX-License-Identifier: BSD-2-Clause
//! Layouts, conversions and round trips of the FS wire format.

#![allow(clippy::unwrap_used)]

use super::*;
use core::mem::offset_of;
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
