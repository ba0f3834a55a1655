// SPDX-License-Identifier: BSD-2-Clause
//! The client library: many requests in flight completed out of order (the test plays the
//! server), the request-slot limit (LionsOS's helpers looped to 511 × 4 over 511-entry tables),
//! an event-driven client PD and the FAT server PD on the `sim` backend, and the blocking `File`
//! (embedded-io `Read`/`Write`/`Seek`) against the FAT server PD on the `sim` backend.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{CLIENT_CH, Conn, SERVER_CH, fat_backend};
use embedded_io::{Read as _, Seek as _, SeekFrom, Write as _};
use lions_fs::client::{FsClient, FsError, Reply, Request, RequestId};
use lions_fs::queue::{Command, CompletionData, FsCmpl};
use lions_fs::{AccessMode, FsStat, OpenFlags, OpenOptions, Status};
use lions_os::runtime::{Backend, with_backend};
use lions_os::sim::{PdId, Sim};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, Op, OsError, OsErrorKind};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

const RW_CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};

/// Kernel operations for a client running outside any PD: notifications are recorded, and each
/// pause of a blocking wait lets the simulated system run (through a kicker PD that forwards the
/// client's notification to the server).
struct Outside<'s, 'a> {
    sim: Option<&'s RefCell<Sim<'a>>>,
    kicker: Option<PdId>,
    kicked: Cell<bool>,
    notifies: Cell<u32>,
}

impl<'s, 'a> Outside<'s, 'a> {
    fn alone() -> Self {
        Self {
            sim: None,
            kicker: None,
            kicked: Cell::new(false),
            notifies: Cell::new(0),
        }
    }
}

impl Backend for Outside<'_, '_> {
    fn pd_name(&self) -> &str {
        "test_client"
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        assert_eq!(ch, Channel::new(SERVER_CH));
        self.notifies.set(self.notifies.get() + 1);
        self.kicked.set(true);
        Ok(())
    }
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        Err(OsError::new(
            "test_client",
            Op::IrqAck,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn ppcall(&self, ch: Channel, _: MessageInfo) -> Result<MessageInfo, OsError> {
        Err(OsError::new(
            "test_client",
            Op::PpCall,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn mr(&self, _: usize) -> u64 {
        0
    }
    fn set_mr(&self, _: usize, _: u64) {}
    fn relax(&self) {
        let (Some(sim), Some(kicker)) = (self.sim, self.kicker) else {
            panic!("a blocking call without a server would spin forever");
        };
        if self.kicked.take() {
            let mut sim = sim.borrow_mut();
            sim.inject_irq(kicker, KICK_IRQ).unwrap();
            sim.run_until_idle(1000).unwrap();
        }
    }
}

const KICK_IRQ: u8 = 1;
const KICK_SERVER: u8 = 0;

/// Forwards the test's "client notified" IRQ to the server.
struct Kicker {
    from_server: Rc<Cell<u32>>,
}

impl Handler for Kicker {
    type Error = OsError;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), OsError> {
        if channels.contains(Channel::new(KICK_IRQ)) {
            Channel::new(KICK_SERVER).notify()?;
            Channel::new(KICK_IRQ).irq_ack()?;
        }
        if channels.contains(Channel::new(KICK_SERVER)) {
            self.from_server.set(self.from_server.get() + 1);
        }
        Ok(())
    }
}

fn client(conn: &Conn, buffer: u64) -> FsClient<'_> {
    FsClient::with_parts(
        conn.client_queues(),
        conn.share(),
        Channel::new(SERVER_CH),
        buffer,
    )
}

#[test]
fn many_requests_complete_out_of_order() {
    let conn = Conn::new(1 << 20);
    let mut c = client(&conn, 32 * 1024);
    assert_eq!(c.capacity(), 32, "1 MiB of 32 KiB slots");
    let mut server = conn.server_queues();
    let backend = Outside::alone();
    with_backend(&backend, || {
        // 30 reads of different lengths, a stat, a size: staged, then one publish and notify.
        let mut reads = Vec::new();
        for i in 0..30u64 {
            let len = 100 + i * 1000;
            let id = c
                .stage(Request::Read {
                    fd: i,
                    offset: i * 7,
                    len,
                })
                .unwrap();
            reads.push((id, i, len));
        }
        let stat = c.stage(Request::Stat { path: "/s" }).unwrap();
        let size = c.stage(Request::Size { fd: 99 }).unwrap();
        assert_eq!(
            c.stage(Request::Size { fd: 1 }),
            Err(FsError::Busy),
            "all 32 in use"
        );
        c.flush().unwrap();
        assert_eq!(backend.notifies.get(), 1, "one notification for the batch");
        assert_eq!(c.in_flight(), 32);

        // The "server" answers in reverse order, writing each read's bytes into its buffer.
        let mut cmds = Vec::new();
        while let Some(cmd) = server.commands.pop().unwrap() {
            cmds.push(cmd);
        }
        server.commands.release();
        assert_eq!(cmds.len(), 32);
        let share = conn.share();
        for cmd in cmds.iter().rev() {
            let done = match cmd.decode().unwrap() {
                Command::FileRead { fd, offset, buf } => {
                    assert_eq!(offset, fd * 7);
                    let n = buf.size - 1;
                    share.write(buf, 0, &vec![fd as u8; n as usize]).unwrap();
                    FsCmpl::new(cmd.id, Status::Success, CompletionData::LenRead(n))
                }
                Command::Stat { buf, .. } => {
                    let st = FsStat {
                        size: 4242,
                        mode: 0o100_644,
                        ..FsStat::default()
                    };
                    share
                        .write(buf, 0, zerocopy::IntoBytes::as_bytes(&st))
                        .unwrap();
                    FsCmpl::new(cmd.id, Status::Success, CompletionData::None)
                }
                Command::FileSize { fd: 99 } => {
                    FsCmpl::new(cmd.id, Status::InvalidFd, CompletionData::None)
                }
                c => panic!("{c:?}"),
            };
            server.completions.push(done).unwrap();
        }
        // A completion nobody asked for is dropped and counted.
        server
            .completions
            .push(FsCmpl::new(12345, Status::Success, CompletionData::None))
            .unwrap();
        server.completions.publish();
        assert_eq!(c.process().unwrap(), 32);
        assert_eq!(c.bogus(), 1);

        // Completion order is the server's: the last staged finished first.
        assert_eq!(c.next_done(), Some(size));
        let mut out = vec![0u8; 64 * 1024];
        assert_eq!(
            c.poll(size, &mut out),
            Some(Err(FsError::Status(Status::InvalidFd)))
        );
        assert_eq!(
            c.poll(size, &mut out),
            Some(Err(FsError::UnknownRequest)),
            "taken"
        );
        match c.poll(stat, &mut out) {
            Some(Ok(Reply::Stat(st))) => assert_eq!(st.size, 4242),
            r => panic!("{r:?}"),
        }
        // Take the reads in yet another order; each gets exactly its own bytes.
        for &(id, fd, len) in reads
            .iter()
            .step_by(2)
            .chain(reads.iter().skip(1).step_by(2))
        {
            match c.poll(id, &mut out) {
                Some(Ok(Reply::Read(n))) => {
                    assert_eq!(n as u64, len - 1);
                    assert!(out[..n].iter().all(|&b| b == fd as u8), "read {fd}");
                }
                r => panic!("{r:?}"),
            }
        }
        assert_eq!(c.in_flight(), 0);
        assert_eq!(c.next_done(), None);
        assert_eq!(
            c.poll(RequestId(7 << 9), &mut out),
            Some(Err(FsError::UnknownRequest))
        );
    });
}

/// LionsOS's client helpers declared 511-entry tables but looped to 511 × 4. Here a share region
/// with room for 2048 slots still gives at most 511 requests in flight, the 512th is refused, and
/// every request id names a slot below 511.
#[test]
fn lionsos_bug_no_more_than_511_requests() {
    let conn = Conn::new(2048 * 8192);
    let mut c = client(&conn, 8192);
    assert_eq!(c.capacity(), 511);
    let backend = Outside::alone();
    with_backend(&backend, || {
        let ids: Vec<RequestId> = (0..511)
            .map(|fd| c.stage(Request::Size { fd }).unwrap())
            .collect();
        assert!(ids.iter().all(|id| id.0 % 512 < 511));
        assert_eq!(c.stage(Request::Size { fd: 0 }), Err(FsError::Busy));
        c.flush().unwrap();
        assert_eq!(c.in_flight(), 511);
    });
}

#[test]
fn requests_too_large_for_a_slot_are_refused() {
    let conn = Conn::new(1 << 20);
    let mut c = client(&conn, 0);
    assert_eq!(c.buffer_bytes(), lions_fs::client::MIN_BUFFER_BYTES);
    let long = "x".repeat(4096);
    assert_eq!(
        c.stage(Request::Remove { path: &long }),
        Err(FsError::Invalid)
    );
    assert_eq!(c.stage(Request::Remove { path: "" }), Err(FsError::Invalid));
    assert_eq!(
        c.stage(Request::Read {
            fd: 0,
            offset: 0,
            len: 0
        }),
        Err(FsError::Invalid)
    );
    assert_eq!(c.in_flight(), 0, "refused requests hold no slot");
}

/// The system of the blocking tests: the FAT server PD and the kicker PD.
fn system<'a>(conn: &'a Conn, from_server: Rc<Cell<u32>>) -> (Sim<'a>, PdId, PdId) {
    let (fat, _disk) = fat_backend(16);
    let mut sim = Sim::new();
    let server = sim.add_pd("fs_server", 120, false, conn.server(fat));
    let kicker = sim.add_pd("kicker", 100, false, Kicker { from_server });
    sim.channel(server, CLIENT_CH, kicker, KICK_SERVER).unwrap();
    sim.irq(kicker, KICK_IRQ).unwrap();
    (sim, server, kicker)
}

#[test]
fn blocking_file_over_the_sim_server() {
    let conn = Conn::new(1 << 20);
    let from_server = Rc::new(Cell::new(0));
    let (sim, server, kicker) = system(&conn, from_server.clone());
    let sim = RefCell::new(sim);
    let backend = Outside {
        sim: Some(&sim),
        kicker: Some(kicker),
        kicked: Cell::new(false),
        notifies: Cell::new(0),
    };
    let mut c = client(&conn, 32 * 1024);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    with_backend(&backend, || {
        assert_eq!(c.call(Request::Initialise, &mut []), Ok(Reply::Done));
        assert_eq!(
            c.call(Request::DirCreate { path: "/docs" }, &mut []),
            Ok(Reply::Done)
        );
        let mut f = c.open("/docs/data.bin", RW_CREATE).unwrap();
        f.write_all(&data).unwrap();
        assert_eq!(f.position(), 100_000);
        f.flush().unwrap();
        assert_eq!(f.seek(SeekFrom::End(-10)).unwrap(), 99_990);
        let mut tail = [0u8; 10];
        f.read_exact(&mut tail).unwrap();
        assert_eq!(tail, data[99_990..]);
        assert_eq!(f.read(&mut tail).unwrap(), 0, "end of file");
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut back = vec![0u8; 100_000];
        f.read_exact(&mut back).unwrap();
        assert!(back == data);
        assert_eq!(f.seek(SeekFrom::Current(-100_001)), Err(FsError::Invalid));
        f.seek(SeekFrom::Start(50_000)).unwrap();
        f.write_all(b"XYZ").unwrap();
        f.truncate(50_003).unwrap();
        assert_eq!(f.size().unwrap(), 50_003);
        f.close().unwrap();

        // The file through a fresh open, and errors as embedded-io kinds.
        let mut f = c
            .open("/DOCS/DATA.BIN", OpenFlags::new(AccessMode::ReadOnly))
            .unwrap();
        f.seek(SeekFrom::Start(49_999)).unwrap();
        let mut four = [0u8; 4];
        f.read_exact(&mut four).unwrap();
        assert_eq!(&four, &[data[49_999], b'X', b'Y', b'Z']);
        let e = f.write(b"no").unwrap_err();
        assert_eq!(e, FsError::Status(Status::InvalidWrite));
        assert_eq!(
            embedded_io::Error::kind(&e),
            embedded_io::ErrorKind::PermissionDenied
        );
        drop(f); // closes without waiting
        let e = c
            .open("/docs/missing", OpenFlags::new(AccessMode::ReadOnly))
            .err()
            .unwrap();
        assert_eq!(
            embedded_io::Error::kind(&e),
            embedded_io::ErrorKind::NotFound
        );
        assert_eq!(
            c.in_flight(),
            0,
            "the dropped file's close completed and was discarded"
        );

        // A directory listing through blocking calls.
        let Reply::Fd(d) = c.call(Request::DirOpen { path: "/docs" }, &mut []).unwrap() else {
            panic!()
        };
        let mut name = [0u8; 64];
        assert_eq!(
            c.call(Request::DirRead { fd: d }, &mut name),
            Ok(Reply::Name(8))
        );
        assert_eq!(&name[..8], b"data.bin");
        assert_eq!(
            c.call(Request::DirRead { fd: d }, &mut name),
            Err(FsError::Status(Status::EndOfDirectory))
        );
        assert_eq!(
            c.call(Request::DirClose { fd: d }, &mut []),
            Ok(Reply::Done)
        );
        assert_eq!(c.call(Request::Deinitialise, &mut []), Ok(Reply::Done));
    });
    let notifies = backend.notifies.get();
    let sim = sim.into_inner();
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(notifies > 10);
    assert_eq!(
        u64::from(from_server.get()),
        sim.stats(server).notifies_sent,
        "every server notification reached the client's end"
    );
}

/// An event-driven client PD on the sim: it pipelines requests (stage many, flush once) and
/// reacts to the server's notifications; completions are matched by id.
struct Pipeliner<'a> {
    c: FsClient<'a>,
    phase: u32,
    fd: u64,
    pending: Vec<(RequestId, u64)>,
    log: Rc<RefCell<Vec<String>>>,
}

impl Pipeliner<'_> {
    fn step(&mut self) -> Result<(), FsError> {
        self.c.process()?;
        let mut out = vec![0u8; 4096];
        while let Some(id) = self.c.next_done() {
            let r = self.c.poll(id, &mut out).unwrap();
            let tag = self.pending.iter().find(|p| p.0 == id).map(|p| p.1);
            match (self.phase, r) {
                (0, Ok(Reply::Fd(fd))) => self.fd = fd,
                (0, Ok(Reply::Done)) => {}
                (1, Ok(Reply::Written(4096))) => {}
                (2, Ok(Reply::Read(4096))) => {
                    let k = tag.unwrap();
                    assert!(out.iter().all(|&b| b == k as u8), "block {k}");
                    self.log.borrow_mut().push(format!("block {k}"));
                }
                (p, r) => panic!("phase {p}: {r:?}"),
            }
        }
        if self.c.in_flight() > 0 {
            return Ok(());
        }
        self.pending.clear();
        self.phase += 1;
        match self.phase {
            1 => {
                for k in 0..16u64 {
                    let data = vec![k as u8; 4096];
                    let id = self.c.stage(Request::Write {
                        fd: self.fd,
                        offset: k * 4096,
                        data: &data,
                    })?;
                    self.pending.push((id, k));
                }
            }
            2 => {
                for k in (0..16u64).rev() {
                    let id = self.c.stage(Request::Read {
                        fd: self.fd,
                        offset: k * 4096,
                        len: 4096,
                    })?;
                    self.pending.push((id, k));
                }
            }
            _ => {
                self.log.borrow_mut().push("done".into());
                return Ok(());
            }
        }
        self.c.flush()
    }
}

const START_IRQ: u8 = 5;

impl Handler for Pipeliner<'_> {
    type Error = FsError;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), FsError> {
        if channels.contains(Channel::new(START_IRQ)) {
            // The first batch: mount, mkdir, open(create); one publish, one notification.
            self.c.stage(Request::Initialise)?;
            self.c.stage(Request::DirCreate { path: "/p" })?;
            self.c.stage(Request::Open {
                path: "/p/blocks",
                flags: RW_CREATE,
            })?;
            self.c.flush()?;
            Channel::new(START_IRQ).irq_ack()?;
        }
        if channels.contains(Channel::new(SERVER_CH)) {
            self.step()?;
        }
        Ok(())
    }
}

#[test]
fn event_driven_client_pd_pipelines_requests() {
    let conn = Conn::new(1 << 20);
    let (fat, _disk) = fat_backend(16);
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut sim = Sim::new();
    let server = sim.add_pd("fs_server", 120, false, conn.server(fat));
    let client = sim.add_pd(
        "client",
        100,
        false,
        Pipeliner {
            c: client(&conn, 32 * 1024),
            phase: 0,
            fd: 0,
            pending: Vec::new(),
            log: log.clone(),
        },
    );
    sim.channel(server, CLIENT_CH, client, SERVER_CH).unwrap();
    sim.irq(client, START_IRQ).unwrap();
    sim.start();
    sim.inject_irq(client, START_IRQ).unwrap();
    sim.run_until_idle(100).unwrap();
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    let want: Vec<String> = (0..16)
        .rev()
        .map(|k| format!("block {k}"))
        .chain(["done".to_string()])
        .collect();
    assert_eq!(*log.borrow(), want);
    // Three batches, each one notification each way.
    assert_eq!(sim.stats(client).notifies_sent, 3);
    assert_eq!(sim.stats(server).notifies_sent, 3);
    assert_eq!(sim.stats(server).wakeups, 3);
}

/// Queues whose indices start just below 2^64 (a restarted pair, or a peer that began there):
/// the server's completion queue stops at the index wrap until the client has taken every
/// completion before it (511 slots do not divide 2^64). A client with requests still in flight
/// must then tell the server it took them, or its remaining requests wait forever.
#[test]
fn pipelined_requests_across_the_u64_index_wrap() {
    use lions_queue::QueueHeader as _;
    let conn = Conn::new(1 << 20);
    let start = u64::MAX - 5;
    for region in [&conn.cmd, &conn.cmpl] {
        // SAFETY: the region is page-aligned and larger than the header; nobody else uses it
        // yet. Both queues share the header layout (head and tail u64).
        let h = unsafe {
            &*region
                .as_ptr()
                .as_ptr()
                .cast::<lions_fs::queue::CommandQueue>()
        };
        h.head().store(start, std::sync::atomic::Ordering::Relaxed);
        h.tail().store(start, std::sync::atomic::Ordering::Relaxed);
    }
    let (fat, _disk) = fat_backend(16);
    let mut server = conn.server(fat);
    let mut c = client(&conn, 32 * 1024);
    let backend = Outside::alone();
    with_backend(&backend, || {
        // 40 requests; staging says Busy while the command queue waits at the wrap, and then
        // the client pumps. The kernel: the server runs when the client notified it, the client
        // when the server published; give up when nothing moves.
        let (mut staged, mut seen, mut done) = (0, 0, 0);
        let mut out = vec![0u8; 256];
        c.stage(Request::Initialise).unwrap();
        for _ in 0..1000 {
            // Send, let the server run, send again (the command queue moved past the wrap),
            // let it run again; only then take completions, so the server meets a completion
            // queue held at the wrap with commands still waiting.
            let mut published = 0;
            let mut notified = false;
            for _ in 0..2 {
                while staged < 20 {
                    match c.stage(Request::Stat { path: "/" }) {
                        Ok(_) => staged += 1,
                        Err(FsError::Busy) => break,
                        Err(e) => panic!("{e:?}"),
                    }
                }
                c.flush().unwrap();
                if backend.notifies.get() > seen {
                    seen = backend.notifies.get();
                    notified = true;
                    published += server.process();
                }
            }
            c.process().unwrap();
            while let Some(id) = c.next_done() {
                match c.poll(id, &mut out) {
                    Some(Ok(Reply::Stat(_))) => done += 1,
                    Some(Ok(Reply::Done)) => {} // Initialise
                    r => panic!("{r:?}"),
                }
            }
            if !notified && published == 0 {
                break;
            }
        }
        assert_eq!(
            (staged, done),
            (20, 20),
            "every request completed across the wrap"
        );
    });
}
