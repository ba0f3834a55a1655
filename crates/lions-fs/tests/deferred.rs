// SPDX-License-Identifier: BSD-2-Clause
//! `DeferredServer`: commands completed after `start` returned, in the order the backend
//! finishes them; fds busy while their operations are in progress; completion-queue room
//! reserved for every request in progress; duplicate ids refused. The backend is the FAT
//! backend run at `start` time, with its completions held back until the test releases them
//! (newest first, so they complete out of order).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{CLIENT_CH, Conn, Wire, fat_backend};
use lions_fs::deferred::{DeferredBackend, DeferredServer, Done, Finished, Op};
use lions_fs::queue::{Command, CompletionData, FsCmpl};
use lions_fs::{AccessMode, FatFs, FsBackend, FsStat, OpenFlags, OpenOptions, ShareRegion, Status};
use lions_os::Channel;
use zerocopy::IntoBytes;

struct Later {
    fat: FatFs,
    held: Vec<Finished<<FatFs as FsBackend>::Handle>>,
    release: bool,
}

impl Later {
    fn run(
        &mut self,
        op: Op<'_, <FatFs as FsBackend>::Handle>,
        share: &ShareRegion<'_>,
    ) -> Result<Done<<FatFs as FsBackend>::Handle>, Status> {
        let f = &mut self.fat;
        let data = |d| Ok(Done::Data(d));
        match op {
            Op::Mount => f.mount().and_then(|()| data(CompletionData::None)),
            Op::Unmount => f.unmount().and_then(|()| data(CompletionData::None)),
            Op::Open { path, flags } => f.open(path, flags).map(Done::Opened),
            Op::Close(h) => f.close(h).and_then(|()| data(CompletionData::None)),
            Op::Stat { path, buf } => {
                let st: FsStat = f.stat(path)?;
                share.write(buf, 0, st.as_bytes()).unwrap();
                data(CompletionData::None)
            }
            Op::Read { file, offset, buf } => {
                let mut b = vec![0; buf.size as usize];
                let n = f.read(file, offset, &mut b)?;
                share.write(buf, 0, &b[..n]).unwrap();
                data(CompletionData::LenRead(n as u64))
            }
            Op::Write { file, offset, buf } => {
                let mut b = vec![0; buf.size as usize];
                share.read(buf, 0, &mut b).unwrap();
                let n = f.write(file, offset, &b)?;
                data(CompletionData::LenWritten(n as u64))
            }
            Op::Size(h) => f.size(h).map(|s| Done::Data(CompletionData::Size(s))),
            Op::Rename { old, new } => f.rename(old, new).and_then(|()| data(CompletionData::None)),
            Op::Remove(p) => f.remove(p).and_then(|()| data(CompletionData::None)),
            Op::Truncate(h, l) => f.truncate(h, l).and_then(|()| data(CompletionData::None)),
            Op::DirCreate(p) => f.dir_create(p).and_then(|()| data(CompletionData::None)),
            Op::DirRemove(p) => f.dir_remove(p).and_then(|()| data(CompletionData::None)),
            Op::DirOpen(p) => f.dir_open(p).map(Done::Opened),
            Op::DirClose(h) => f.dir_close(h).and_then(|()| data(CompletionData::None)),
            Op::Sync(h) => f.sync(h).and_then(|()| data(CompletionData::None)),
            Op::DirRead { dir, buf } => {
                let mut b = vec![0; buf.size as usize];
                let n = f.dir_read(dir, &mut b)?;
                share.write(buf, 0, &b[..n]).unwrap();
                data(CompletionData::PathLen(n as u64))
            }
            Op::DirSeek(h, l) => f.dir_seek(h, l).and_then(|()| data(CompletionData::None)),
            Op::DirTell(h) => f
                .dir_tell(h)
                .map(|l| Done::Data(CompletionData::Location(l))),
            Op::DirRewind(h) => f.dir_rewind(h).and_then(|()| data(CompletionData::None)),
        }
    }
}

impl DeferredBackend for Later {
    type Handle = <FatFs as FsBackend>::Handle;
    fn start(
        &mut self,
        id: u64,
        op: Op<'_, Self::Handle>,
        share: &ShareRegion<'_>,
    ) -> Result<(), Status> {
        let r = self.run(op, share);
        self.held.push((id, r));
        Ok(())
    }
    fn poll(&mut self, _: &ShareRegion<'_>) -> Option<Finished<Self::Handle>> {
        if self.release { self.held.pop() } else { None }
    }
}

fn server(conn: &Conn) -> DeferredServer<'_, Later> {
    let (fat, _disk) = fat_backend(8);
    DeferredServer::new(
        conn.server_queues(),
        conn.share(),
        Channel::new(CLIENT_CH),
        Later {
            fat,
            held: Vec::new(),
            release: false,
        },
    )
}

fn release(s: &mut DeferredServer<'_, Later>) -> u64 {
    s.backend_mut().release = true;
    let n = s.process();
    s.backend_mut().release = false;
    n
}

const RW_CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};

fn mount(s: &mut DeferredServer<'_, Later>, w: &mut Wire<'_>) {
    let id = w.send(Command::Initialise);
    assert_eq!(s.process(), 0, "held: no completion yet");
    assert!(!s.mounted());
    let p = w.put(0, b"/x");
    let early = w.send(Command::DirCreate { path: p });
    assert_eq!(s.process(), 1, "refused at once: not mounted yet");
    let c = w.completions();
    assert_eq!((c[0].id, c[0].status()), (early, Ok(Status::Error)));
    assert_eq!(release(s), 1);
    let c = w.completions();
    assert_eq!((c[0].id, c[0].status()), (id, Ok(Status::Success)));
    assert!(s.mounted());
}

fn open(s: &mut DeferredServer<'_, Later>, w: &mut Wire<'_>, p: &str) -> u64 {
    let path = w.put(0, p.as_bytes());
    let id = w.send(Command::FileOpen {
        path,
        flags: RW_CREATE,
    });
    s.process();
    release(s);
    let c = w.completions();
    assert_eq!((c[0].id, c[0].status()), (id, Ok(Status::Success)));
    match c[0].data(lions_fs::CommandType::FileOpen) {
        CompletionData::Fd(fd) => fd,
        d => panic!("{d:?}"),
    }
}

#[test]
fn completions_after_start_out_of_order() {
    let conn = Conn::new(1 << 20);
    let mut s = server(&conn);
    let mut w = Wire::new(&conn);
    mount(&mut s, &mut w);
    let fd = open(&mut s, &mut w, "/f");
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    let buf = w.put(65536, &data);
    let wid = w.send(Command::FileWrite { fd, offset: 0, buf });
    assert_eq!(s.process(), 0);
    assert_eq!(release(&mut s), 1);
    let c: Vec<FsCmpl> = w.completions();
    assert_eq!(
        (c[0].id, c[0].data(lions_fs::CommandType::FileWrite)),
        (wid, CompletionData::LenWritten(20_000))
    );
    // Four reads in flight; completed newest first.
    let ids: Vec<u64> = (0..4u64)
        .map(|i| {
            let buf = lions_fs::FsBuffer {
                offset: 200_000 + i * 8192,
                size: 5000,
            };
            w.send(Command::FileRead {
                fd,
                offset: i * 5000,
                buf,
            })
        })
        .collect();
    assert_eq!(s.process(), 0);
    assert_eq!(s.in_progress(), 4);
    assert_eq!(release(&mut s), 4);
    let c = w.completions();
    assert_eq!(
        c.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    for i in 0..4u64 {
        let got = w.get(
            lions_fs::FsBuffer {
                offset: 200_000 + i * 8192,
                size: 5000,
            },
            5000,
        );
        assert_eq!(got, data[(i * 5000) as usize..][..5000]);
    }
}

#[test]
fn busy_fd_and_duplicate_ids() {
    let conn = Conn::new(1 << 20);
    let mut s = server(&conn);
    let mut w = Wire::new(&conn);
    mount(&mut s, &mut w);
    let fd = open(&mut s, &mut w, "/g");
    let size = w.send(Command::FileSize { fd });
    assert_eq!(s.process(), 0);
    let close = w.send(Command::FileClose { fd });
    assert_eq!(s.process(), 1);
    let c = w.completions();
    assert_eq!(
        (c[0].id, c[0].status()),
        (close, Ok(Status::OutstandingOperations))
    );
    // The same id again while it is in progress.
    w.send_raw(Command::FileSize { fd }.encode(size));
    assert_eq!(s.process(), 1);
    assert_eq!(w.completions()[0].status(), Ok(Status::InvalidCommand));
    let de = w.send(Command::Deinitialise);
    assert_eq!(s.process(), 1);
    assert_eq!((w.completions()[0].id, s.mounted()), (de, true));
    assert_eq!(release(&mut s), 1);
    let c = w.completions();
    assert_eq!(
        (c[0].id, c[0].data(lions_fs::CommandType::FileSize)),
        (size, CompletionData::Size(0))
    );
    let close = w.send(Command::FileClose { fd });
    s.process();
    release(&mut s);
    assert_eq!(w.completions()[0].id, close);
    w.send(Command::Deinitialise);
    s.process();
    release(&mut s);
    assert_eq!(w.completions()[0].status(), Ok(Status::Success));
    assert!(!s.mounted());
}

#[test]
fn room_is_reserved_for_every_request_in_progress() {
    let conn = Conn::new(1 << 20);
    let mut s = server(&conn);
    let mut w = Wire::new(&conn);
    mount(&mut s, &mut w);
    let fd = open(&mut s, &mut w, "/h");
    let mut sent = Vec::new();
    for _ in 0..300 {
        sent.push(w.send(Command::FileSize { fd }));
    }
    assert_eq!(s.process(), 0);
    for _ in 0..211 {
        sent.push(w.send(Command::FileSize { fd }));
    }
    assert_eq!(s.process(), 0);
    assert_eq!(s.in_progress(), 511);
    for _ in 0..10 {
        sent.push(w.send(Command::FileSize { fd }));
    }
    assert_eq!(s.process(), 0, "no room: the 10 wait in the command queue");
    assert_eq!(s.in_progress(), 511);
    assert_eq!(release(&mut s), 511, "every completion fits");
    let mut got: Vec<u64> = w.completions().iter().map(|c| c.id).collect();
    assert_eq!(s.process(), 0);
    assert_eq!(
        s.in_progress(),
        10,
        "taken once the client freed the completion queue"
    );
    assert_eq!(release(&mut s), 10);
    got.extend(w.completions().iter().map(|c| c.id));
    got.sort_unstable();
    sent.sort_unstable();
    assert_eq!(got, sent);
    assert!(!s.faulty());
}
