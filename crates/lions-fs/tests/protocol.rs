// SPDX-License-Identifier: BSD-2-Clause
//! The FS protocol end to end on the wire: every command through the queues and the share region
//! to the FAT server and back, with its exact statuses; the fd table's rules as a client sees
//! them; share-region bounds; path limits; the LionsOS FAT server's bugs, each with a test that
//! fails if the bug is there; and a client sending garbage (proptest).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{Conn, Wire, fat_backend};
use lions_fs::fat::FatFs;
use lions_fs::queue::{Command, CompletionData, FsCmd, FsCmpl};
use lions_fs::{
    AccessMode, CommandType, FsBuffer, FsServer, FsStat, OpenFlags, OpenOptions, Status,
};
use proptest::prelude::*;
use zerocopy::FromBytes;

const SHARE: usize = 1 << 20;
const RW_CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};
const RO: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);
const WO: OpenFlags = OpenFlags::new(AccessMode::WriteOnly);

/// One command, served; its completion.
fn call(server: &mut FsServer<'_, FatFs>, wire: &mut Wire<'_>, c: Command) -> FsCmpl {
    let id = wire.send(c);
    assert_eq!(server.process(), 1);
    let done = wire.completions();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, id, "the id is echoed");
    done[0]
}

fn status(c: &FsCmpl) -> Status {
    c.status().unwrap()
}

fn ok(c: FsCmpl, t: CommandType) -> CompletionData {
    assert_eq!(status(&c), Status::Success, "{t:?}");
    c.data(t)
}

/// Path at a fixed place in the share region (0 and 8 KiB for two paths).
fn path(wire: &Wire<'_>, p: &str) -> FsBuffer {
    wire.put(0, p.as_bytes())
}

fn path2(wire: &Wire<'_>, p: &str) -> FsBuffer {
    wire.put(8192, p.as_bytes())
}

const DATA: u64 = 64 * 1024;

struct Fixture {
    conn: Conn,
}

impl Fixture {
    fn new() -> Self {
        Self {
            conn: Conn::new(SHARE),
        }
    }
}

fn mounted(conn: &Conn) -> (FsServer<'_, FatFs>, Wire<'_>) {
    let (fat, _disk) = fat_backend(8);
    let mut server = conn.server(fat);
    let mut wire = Wire::new(conn);
    assert_eq!(
        status(&call(&mut server, &mut wire, Command::Initialise)),
        Status::Success
    );
    (server, wire)
}

fn open(s: &mut FsServer<'_, FatFs>, w: &mut Wire<'_>, p: &str, flags: OpenFlags) -> u64 {
    let path = path(w, p);
    match ok(
        call(s, w, Command::FileOpen { path, flags }),
        CommandType::FileOpen,
    ) {
        CompletionData::Fd(fd) => fd,
        d => panic!("{d:?}"),
    }
}

#[test]
fn every_command_round_trips_with_its_statuses() {
    let f = Fixture::new();
    let (fat, _disk) = fat_backend(8);
    let mut s = f.conn.server(fat);
    let mut w = Wire::new(&f.conn);
    let c = |s: &mut FsServer<'_, FatFs>, w: &mut Wire<'_>, cmd| status(&call(s, w, cmd));

    // Before INITIALISE nothing works; DEINITIALISE of an unmounted volume fails.
    let p = path(&w, "/a");
    assert_eq!(
        c(&mut s, &mut w, Command::DirCreate { path: p }),
        Status::Error
    );
    assert_eq!(c(&mut s, &mut w, Command::Deinitialise), Status::Error);
    assert_eq!(c(&mut s, &mut w, Command::Initialise), Status::Success);
    assert_eq!(
        c(&mut s, &mut w, Command::Initialise),
        Status::Error,
        "already mounted"
    );

    // DIR_CREATE / DIR_REMOVE.
    let p = path(&w, "/docs");
    assert_eq!(
        c(&mut s, &mut w, Command::DirCreate { path: p }),
        Status::Success
    );
    assert_eq!(
        c(&mut s, &mut w, Command::DirCreate { path: p }),
        Status::AlreadyExists
    );
    let p = path(&w, "/nope/sub");
    assert_eq!(
        c(&mut s, &mut w, Command::DirCreate { path: p }),
        Status::NoFile
    );

    // FILE_OPEN: missing without CREATE, then created.
    let p = path(&w, "/docs/readme.txt");
    assert_eq!(
        c(&mut s, &mut w, Command::FileOpen { path: p, flags: RO }),
        Status::NoFile
    );
    let fd = open(&mut s, &mut w, "/docs/readme.txt", RW_CREATE);

    // FILE_WRITE, FILE_SIZE, FILE_READ.
    let data = w.put(DATA, b"hello, lions");
    let r = call(
        &mut s,
        &mut w,
        Command::FileWrite {
            fd,
            offset: 0,
            buf: data,
        },
    );
    assert_eq!(
        ok(r, CommandType::FileWrite),
        CompletionData::LenWritten(12)
    );
    let r = call(&mut s, &mut w, Command::FileSize { fd });
    assert_eq!(ok(r, CommandType::FileSize), CompletionData::Size(12));
    let rb = FsBuffer {
        offset: 2 * DATA,
        size: 100,
    };
    let r = call(
        &mut s,
        &mut w,
        Command::FileRead {
            fd,
            offset: 7,
            buf: rb,
        },
    );
    assert_eq!(ok(r, CommandType::FileRead), CompletionData::LenRead(5));
    assert_eq!(w.get(rb, 5), b"lions");
    let r = call(
        &mut s,
        &mut w,
        Command::FileRead {
            fd,
            offset: 12,
            buf: rb,
        },
    );
    assert_eq!(
        ok(r, CommandType::FileRead),
        CompletionData::LenRead(0),
        "EOF"
    );

    // STAT into a buffer, and the too-small buffer.
    let p = path(&w, "/DOCS/README.TXT");
    let sb = FsBuffer {
        offset: 3 * DATA,
        size: size_of::<FsStat>() as u64,
    };
    assert_eq!(
        c(&mut s, &mut w, Command::Stat { path: p, buf: sb }),
        Status::Success
    );
    let st = FsStat::read_from_bytes(&w.get(sb, sb.size)).unwrap();
    assert_eq!(
        (st.size, st.mode & 0o170_000),
        (12, 0o100_000),
        "open file's size"
    );
    let small = FsBuffer { size: 135, ..sb };
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::Stat {
                path: p,
                buf: small
            }
        ),
        Status::InvalidBuffer
    );
    let p = path(&w, "/missing");
    assert_eq!(
        c(&mut s, &mut w, Command::Stat { path: p, buf: sb }),
        Status::NoFile
    );

    // FILE_TRUNCATE, FILE_SYNC.
    assert_eq!(
        c(&mut s, &mut w, Command::FileTruncate { fd, length: 5 }),
        Status::Success
    );
    let r = call(&mut s, &mut w, Command::FileSize { fd });
    assert_eq!(ok(r, CommandType::FileSize), CompletionData::Size(5));
    assert_eq!(c(&mut s, &mut w, Command::FileSync { fd }), Status::Success);

    // RENAME and FILE_REMOVE refuse an open file; after the close they work.
    let (old, new) = (path(&w, "/docs/readme.txt"), path2(&w, "/docs/notes.txt"));
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::Rename {
                old_path: old,
                new_path: new
            }
        ),
        Status::OutstandingOperations
    );
    assert_eq!(
        c(&mut s, &mut w, Command::FileClose { fd }),
        Status::Success
    );
    assert_eq!(
        c(&mut s, &mut w, Command::FileClose { fd }),
        Status::InvalidFd,
        "closed"
    );
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::Rename {
                old_path: old,
                new_path: new
            }
        ),
        Status::Success
    );
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::Rename {
                old_path: old,
                new_path: new
            }
        ),
        Status::NoFile
    );
    let fd2 = open(&mut s, &mut w, "/other", RW_CREATE);
    assert_eq!(
        c(&mut s, &mut w, Command::FileClose { fd: fd2 }),
        Status::Success
    );
    let (old, new) = (path(&w, "/other"), path2(&w, "/docs/notes.txt"));
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::Rename {
                old_path: old,
                new_path: new
            }
        ),
        Status::AlreadyExists
    );

    // DIR_OPEN, DIR_READ to the end, DIR_TELL, DIR_SEEK, DIR_REWIND, DIR_CLOSE.
    let p = path(&w, "/docs");
    let dfd = match ok(
        call(&mut s, &mut w, Command::DirOpen { path: p }),
        CommandType::DirOpen,
    ) {
        CompletionData::Fd(fd) => fd,
        d => panic!("{d:?}"),
    };
    let nb = FsBuffer {
        offset: 4 * DATA,
        size: 255,
    };
    let r = call(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb });
    assert_eq!(ok(r, CommandType::DirRead), CompletionData::PathLen(9));
    assert_eq!(w.get(nb, 9), b"notes.txt");
    let r = call(&mut s, &mut w, Command::DirTell { fd: dfd });
    assert_eq!(ok(r, CommandType::DirTell), CompletionData::Location(1));
    assert_eq!(
        c(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb }),
        Status::EndOfDirectory
    );
    assert_eq!(
        c(&mut s, &mut w, Command::DirSeek { fd: dfd, loc: 0 }),
        Status::Success
    );
    let r = call(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb });
    assert_eq!(ok(r, CommandType::DirRead), CompletionData::PathLen(9));
    assert_eq!(
        c(&mut s, &mut w, Command::DirRewind { fd: dfd }),
        Status::Success
    );
    let r = call(&mut s, &mut w, Command::DirTell { fd: dfd });
    assert_eq!(ok(r, CommandType::DirTell), CompletionData::Location(0));
    // A directory fd is not a file fd and vice versa.
    assert_eq!(
        c(&mut s, &mut w, Command::FileSize { fd: dfd }),
        Status::InvalidFd
    );
    assert_eq!(
        c(&mut s, &mut w, Command::FileClose { fd: dfd }),
        Status::InvalidFd
    );

    // DIR_REMOVE: open → refused; not empty; a file; then removed.
    let p = path(&w, "/docs");
    assert_eq!(
        c(&mut s, &mut w, Command::DirRemove { path: p }),
        Status::OutstandingOperations
    );
    assert_eq!(
        c(&mut s, &mut w, Command::DirClose { fd: dfd }),
        Status::Success
    );
    assert_eq!(
        c(&mut s, &mut w, Command::DirRemove { path: p }),
        Status::NotEmpty
    );
    let n = path(&w, "/docs/notes.txt");
    assert_eq!(
        c(&mut s, &mut w, Command::DirRemove { path: n }),
        Status::NotDirectory
    );
    assert_eq!(
        c(&mut s, &mut w, Command::FileRemove { path: n }),
        Status::Success
    );
    assert_eq!(
        c(&mut s, &mut w, Command::FileRemove { path: n }),
        Status::NoFile
    );
    assert_eq!(
        c(&mut s, &mut w, Command::DirRemove { path: p }),
        Status::Success
    );
    let p = path(&w, "/docs/x");
    assert_eq!(
        c(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: p,
                flags: RW_CREATE
            }
        ),
        Status::NoFile
    );

    // DEINITIALISE closes what is open; afterwards the volume is gone.
    let _fd = open(&mut s, &mut w, "/left-open", RW_CREATE);
    assert_eq!(c(&mut s, &mut w, Command::Deinitialise), Status::Success);
    assert_eq!(s.fds().open_count(), 0);
    let p = path(&w, "/other");
    assert_eq!(
        c(&mut s, &mut w, Command::FileOpen { path: p, flags: RO }),
        Status::Error
    );
    assert_eq!(
        c(&mut s, &mut w, Command::Initialise),
        Status::Success,
        "remount"
    );
    let p = path(&w, "/left-open");
    assert_eq!(
        c(&mut s, &mut w, Command::Stat { path: p, buf: sb }),
        Status::Success
    );
    assert_eq!(s.stats().invalid, 0);
}

#[test]
fn access_modes_are_enforced() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    let fd = open(&mut s, &mut w, "/f", RW_CREATE);
    let data = w.put(DATA, b"abc");
    call(
        &mut s,
        &mut w,
        Command::FileWrite {
            fd,
            offset: 0,
            buf: data,
        },
    );
    let ro = open(&mut s, &mut w, "/f", RO);
    let wo = open(&mut s, &mut w, "/f", WO);
    assert_ne!((ro, wo), (fd, fd), "each open gets its own fd");
    let rb = FsBuffer {
        offset: 2 * DATA,
        size: 3,
    };
    let r = |s: &mut _, w: &mut _, fd| {
        status(&call(
            s,
            w,
            Command::FileRead {
                fd,
                offset: 0,
                buf: rb,
            },
        ))
    };
    let wr = |s: &mut _, w: &mut _, fd| {
        status(&call(
            s,
            w,
            Command::FileWrite {
                fd,
                offset: 3,
                buf: data,
            },
        ))
    };
    assert_eq!(r(&mut s, &mut w, ro), Status::Success);
    assert_eq!(r(&mut s, &mut w, wo), Status::InvalidRead);
    assert_eq!(wr(&mut s, &mut w, ro), Status::InvalidWrite);
    assert_eq!(wr(&mut s, &mut w, wo), Status::Success);
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileTruncate { fd: ro, length: 0 }
        )),
        Status::InvalidWrite
    );
    // The writes through `wo` are seen through `ro` (one shared object per file).
    let r = call(&mut s, &mut w, Command::FileSize { fd: ro });
    assert_eq!(ok(r, CommandType::FileSize), CompletionData::Size(6));
    // Flags with access mode 3 are an invalid command.
    let p = path(&w, "/f");
    let mut raw = Command::FileOpen { path: p, flags: RO }.encode(77);
    raw.params[16] = 3;
    w.send_raw(raw);
    s.process();
    let done = w.completions();
    assert_eq!((done[0].id, status(&done[0])), (77, Status::InvalidCommand));
}

#[test]
fn stale_and_forged_fds_are_rejected() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    let fd = open(&mut s, &mut w, "/a", RW_CREATE);
    assert_eq!(
        status(&call(&mut s, &mut w, Command::FileClose { fd })),
        Status::Success
    );
    let again = open(&mut s, &mut w, "/a", RW_CREATE);
    assert_eq!(again % 256, fd % 256, "the slot is reused");
    assert_ne!(again, fd, "with a new generation");
    for bad in [fd, again + 256, again + 256 * 1000, again + 1, u64::MAX] {
        assert_eq!(
            status(&call(&mut s, &mut w, Command::FileSize { fd: bad })),
            Status::InvalidFd,
            "fd {bad}"
        );
    }
    assert_eq!(
        status(&call(&mut s, &mut w, Command::FileSize { fd: again })),
        Status::Success
    );
}

#[test]
fn the_fd_table_fills_at_256() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    open(&mut s, &mut w, "/f", RW_CREATE);
    for _ in 1..256 {
        open(&mut s, &mut w, "/f", RO);
    }
    let p = path(&w, "/f");
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileOpen { path: p, flags: RO }
        )),
        Status::TooManyOpenFiles
    );
    let d = path(&w, "/");
    assert_eq!(
        status(&call(&mut s, &mut w, Command::DirOpen { path: d })),
        Status::TooManyOpenFiles
    );
    assert_eq!(s.backend().open_objects(), 1, "256 fds, one object");
}

#[test]
fn share_buffers_are_bounds_checked() {
    // A share region of 64 KiB: the server uses the size it was given (LionsOS hard-coded
    // 64 MiB), so a buffer past 64 KiB is refused even though it would fit 64 MiB.
    let conn = Conn::new(64 * 1024);
    let (mut s, mut w) = mounted(&conn);
    let fd = open(&mut s, &mut w, "/f", RW_CREATE);
    let cases = [
        FsBuffer {
            offset: 64 * 1024,
            size: 1,
        },
        FsBuffer {
            offset: 60 * 1024,
            size: 4097,
        },
        FsBuffer {
            offset: 1,
            size: u64::MAX,
        },
        FsBuffer {
            offset: u64::MAX,
            size: 2,
        },
        FsBuffer { offset: 0, size: 0 },
        FsBuffer {
            offset: 1 << 20,
            size: 512,
        },
    ];
    for buf in cases {
        for cmd in [
            Command::FileRead { fd, offset: 0, buf },
            Command::FileWrite { fd, offset: 0, buf },
        ] {
            assert_eq!(
                status(&call(&mut s, &mut w, cmd)),
                Status::InvalidBuffer,
                "{buf:?}"
            );
        }
        let p = path(&w, "/f");
        assert_eq!(
            status(&call(&mut s, &mut w, Command::Stat { path: p, buf })),
            Status::InvalidBuffer
        );
        assert_eq!(
            status(&call(
                &mut s,
                &mut w,
                Command::FileOpen {
                    path: buf,
                    flags: RO
                }
            )),
            Status::InvalidBuffer
        );
    }
    let last = FsBuffer {
        offset: 60 * 1024,
        size: 4096,
    };
    let r = call(
        &mut s,
        &mut w,
        Command::FileWrite {
            fd,
            offset: 0,
            buf: last,
        },
    );
    assert_eq!(
        ok(r, CommandType::FileWrite),
        CompletionData::LenWritten(4096)
    );
    assert_eq!(s.stats().invalid, 0);
}

/// LionsOS bug: FAT copied a path of up to 4095 bytes into a 256-byte stack buffer on open. Here
/// the longest legal path (4095 bytes, components of at most 255) is handled whole: it is looked
/// up and reported missing, or created when every directory on it exists.
#[test]
fn lionsos_bug_long_paths_on_open() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    let comp = "d".repeat(200);
    let mut p = String::new();
    while p.len() + 201 <= 4095 {
        p.push('/');
        p.push_str(&comp);
    }
    let p = format!("{p}/{}", "f".repeat(4095 - p.len() - 1));
    assert_eq!(p.len(), 4095);
    let buf = path(&w, &p);
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: buf,
                flags: RW_CREATE
            }
        )),
        Status::NoFile,
        "the directories do not exist: a clean answer, no overflow"
    );
    // Build the directories (each a 200-byte name), then the 4095-byte path opens.
    let mut prefix = String::new();
    for _ in 0..(4095 / 201) {
        prefix.push('/');
        prefix.push_str(&comp);
        let b = path(&w, &prefix);
        assert_eq!(
            status(&call(&mut s, &mut w, Command::DirCreate { path: b })),
            Status::Success
        );
    }
    let buf = path(&w, &p);
    let fd = match ok(
        call(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: buf,
                flags: RW_CREATE,
            },
        ),
        CommandType::FileOpen,
    ) {
        CompletionData::Fd(fd) => fd,
        d => panic!("{d:?}"),
    };
    assert_eq!(
        status(&call(&mut s, &mut w, Command::FileClose { fd })),
        Status::Success
    );
    let sb = FsBuffer {
        offset: DATA,
        size: 136,
    };
    assert_eq!(
        status(&call(&mut s, &mut w, Command::Stat { path: buf, buf: sb })),
        Status::Success
    );
    // 4096 bytes is over the limit; a 256-byte component is not a name.
    let long = w.put(0, "x".repeat(4096).as_bytes());
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: long,
                flags: RO
            }
        )),
        Status::InvalidPath
    );
    let name = w.put(0, format!("/{}", "n".repeat(256)).as_bytes());
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: name,
                flags: RW_CREATE
            }
        )),
        Status::InvalidName
    );
    let nul = w.put(0, b"/a\0b");
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::FileOpen {
                path: nul,
                flags: RW_CREATE
            }
        )),
        Status::InvalidPath
    );
}

/// LionsOS bug: FAT `DIR_READ` collapsed END_OF_DIRECTORY into a plain ERROR.
#[test]
fn lionsos_bug_end_of_directory_is_reported_as_such() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    for name in ["/b", "/a"] {
        let fd = open(&mut s, &mut w, name, RW_CREATE);
        call(&mut s, &mut w, Command::FileClose { fd });
    }
    let p = path(&w, "/");
    let CompletionData::Fd(dfd) = ok(
        call(&mut s, &mut w, Command::DirOpen { path: p }),
        CommandType::DirOpen,
    ) else {
        panic!()
    };
    let nb = FsBuffer {
        offset: DATA,
        size: 255,
    };
    let mut names = Vec::new();
    loop {
        let r = call(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb });
        match status(&r) {
            Status::Success => {
                let CompletionData::PathLen(n) = r.data(CommandType::DirRead) else {
                    panic!()
                };
                names.push(String::from_utf8(w.get(nb, n)).unwrap());
            }
            Status::EndOfDirectory => break,
            s => panic!("DIR_READ answered {s:?}, not END_OF_DIRECTORY"),
        }
    }
    assert_eq!(names, ["b", "a"], "directory order");
    // Still at the end, and a name that does not fit is refused without being consumed.
    assert_eq!(
        status(&call(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb })),
        Status::EndOfDirectory
    );
    call(&mut s, &mut w, Command::DirRewind { fd: dfd });
    let tiny = FsBuffer {
        offset: DATA,
        size: 0,
    };
    assert_eq!(
        status(&call(
            &mut s,
            &mut w,
            Command::DirRead { fd: dfd, buf: tiny }
        )),
        Status::InvalidBuffer
    );
    let r = call(&mut s, &mut w, Command::DirRead { fd: dfd, buf: nb });
    assert_eq!(r.data(CommandType::DirRead), CompletionData::PathLen(1));
    assert_eq!(w.get(nb, 1), b"b", "the first entry again");
}

/// LionsOS bug: FAT silently dropped commands whose type is out of range, without replying.
#[test]
fn lionsos_bug_unknown_commands_are_answered() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    for (i, t) in [20u64, 21, 1000, u64::MAX].into_iter().enumerate() {
        w.send_raw(FsCmd {
            id: 500 + i as u64,
            cmd_type: t,
            params: [0xab; 48],
        });
    }
    let id = w.send(Command::FileSize { fd: 12345 });
    assert_eq!(s.process(), 5, "one completion per command");
    let done = w.completions();
    let got: Vec<(u64, Status)> = done.iter().map(|c| (c.id, status(c))).collect();
    assert_eq!(
        got,
        [
            (500, Status::InvalidCommand),
            (501, Status::InvalidCommand),
            (502, Status::InvalidCommand),
            (503, Status::InvalidCommand),
            (id, Status::InvalidFd),
        ]
    );
    assert_eq!(s.stats().invalid, 4);
}

/// LionsOS bug: `fd_to_of` accepted generations newer than the current one.
#[test]
fn lionsos_bug_newer_generations_are_rejected() {
    let f = Fixture::new();
    let (mut s, mut w) = mounted(&f.conn);
    let fd = open(&mut s, &mut w, "/a", RW_CREATE);
    for newer in 1..4 {
        assert_eq!(
            status(&call(
                &mut s,
                &mut w,
                Command::FileSize {
                    fd: fd + newer * 256
                }
            )),
            Status::InvalidFd
        );
    }
}

/// LionsOS bug: four cothreads interleaved inside a non-reentrant FatFs. A batch as the four
/// workers would have run it — writes to four files, cluster by cluster, interleaved, with reads
/// and directory listings between — leaves every file with exactly its own bytes and a volume
/// that the independent `fatfs` crate reads back identically.
#[test]
fn lionsos_bug_one_volume_is_never_entered_twice() {
    let f = Fixture::new();
    let (fat, disk) = fat_backend(8);
    let mut s = f.conn.server(fat);
    let mut w = Wire::new(&f.conn);
    call(&mut s, &mut w, Command::Initialise);
    let fds: Vec<u64> = (0..4)
        .map(|i| open(&mut s, &mut w, &format!("/worker{i}.bin"), RW_CREATE))
        .collect();
    let chunk = 3000u64;
    let rounds = 40u64;
    for (i, _) in fds.iter().enumerate() {
        w.put(
            DATA + i as u64 * chunk,
            &vec![b'0' + i as u8; chunk as usize],
        );
    }
    let p = path(&w, "/");
    // All of it in one batch: the server takes it in one notification.
    for r in 0..rounds {
        for (i, &fd) in fds.iter().enumerate() {
            let buf = FsBuffer {
                offset: DATA + i as u64 * chunk,
                size: chunk,
            };
            let c = Command::FileWrite {
                fd,
                offset: r * chunk,
                buf,
            };
            w.q.commands.push(c.encode(r * 10 + i as u64)).unwrap();
        }
        w.q.commands
            .push(Command::DirOpen { path: p }.encode(9_000 + r))
            .unwrap();
    }
    w.q.commands.publish();
    assert_eq!(s.process(), rounds * 5);
    let done = w.completions();
    assert_eq!(done.len() as u64, rounds * 5);
    for c in &done {
        assert_eq!(status(c), Status::Success, "request {}", c.id);
        if c.id < 9_000 {
            assert_eq!(
                c.data(CommandType::FileWrite),
                CompletionData::LenWritten(chunk)
            );
        }
    }
    call(&mut s, &mut w, Command::Deinitialise);
    // The independent reader sees each file whole.
    let mut img = std::io::Cursor::new(disk.image());
    let fs = fatfs::FileSystem::new(&mut img, fatfs::FsOptions::new()).unwrap();
    for i in 0..4u8 {
        let mut file = fs.root_dir().open_file(&format!("worker{i}.bin")).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut got).unwrap();
        assert_eq!(got.len() as u64, chunk * rounds);
        assert!(
            got.iter().all(|&b| b == b'0' + i),
            "file {i} holds only its own bytes"
        );
    }
}

fn arbitrary_command() -> impl Strategy<Value = FsCmd> {
    (
        any::<u64>(),
        0u64..24,
        proptest::array::uniform6(prop_oneof![
            any::<u64>(),
            0u64..4,
            0u64..(1 << 21),
            Just(u64::MAX),
        ]),
    )
        .prop_map(|(id, t, words)| {
            let mut params = [0u8; 48];
            for (i, w) in words.iter().enumerate() {
                params[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
            FsCmd {
                id,
                cmd_type: t,
                params,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A client writing garbage commands gets one completion per command, with its id, and the
    /// server never panics; a command it could not decode is INVALID_COMMAND.
    #[test]
    fn garbage_commands_get_error_completions(
        cmds in proptest::collection::vec(arbitrary_command(), 1..120),
        share_bytes in proptest::collection::vec(any::<u8>(), 64),
    ) {
        let conn = Conn::new(1 << 20);
        let (mut s, mut w) = mounted(&conn);
        // A few real fds and paths so that some commands hit live state.
        open(&mut s, &mut w, "/f", RW_CREATE);
        w.put(0, b"/f");
        w.put(2, &share_bytes);
        for c in &cmds {
            w.send_raw(*c);
        }
        prop_assert_eq!(s.process(), cmds.len() as u64);
        let done = w.completions();
        prop_assert_eq!(done.len(), cmds.len());
        for (c, d) in cmds.iter().zip(&done) {
            prop_assert_eq!(c.id, d.id);
            prop_assert!(d.status().is_ok());
            if c.decode().is_err() {
                prop_assert_eq!(d.status(), Ok(Status::InvalidCommand));
            }
        }
        prop_assert!(!s.faulty());
    }

    /// Corrupt queue indices make the client faulty; the server answers nothing more and never
    /// panics.
    #[test]
    fn corrupt_indices_mark_the_client_faulty(head in any::<u64>(), tail in any::<u64>(), which in 0..3u8) {
        let conn = Conn::new(1 << 16);
        let (mut s, mut w) = mounted(&conn);
        w.send(Command::FileSize { fd: 1 });
        // SAFETY: head and tail words of live queue regions, written as a misbehaving client would.
        let word = |r: &lions_os::sim::Region, i: usize| unsafe {
            r.as_ptr().cast::<std::sync::atomic::AtomicU64>().add(i).as_ref()
        };
        match which {
            0 => word(&conn.cmd, 1).store(tail, std::sync::atomic::Ordering::Release),
            1 => word(&conn.cmpl, 0).store(head, std::sync::atomic::Ordering::Release),
            _ => {
                word(&conn.cmd, 1).store(tail, std::sync::atomic::Ordering::Release);
                word(&conn.cmpl, 0).store(head, std::sync::atomic::Ordering::Release);
            }
        }
        let before = s.stats().commands;
        s.process();
        let head_ok = which == 0 || head == 1;
        let tail_ok = which == 1 || (1..=512).contains(&tail);
        prop_assert_eq!(s.faulty(), !(head_ok && tail_ok));
        if !s.faulty() {
            let queued = if which == 1 { 1 } else { tail - 1 };
            prop_assert_eq!(s.stats().commands - before, queued);
        }
        if s.faulty() {
            prop_assert_eq!(s.process(), 0, "a faulty client is not served");
        }
    }
}
