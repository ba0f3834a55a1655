// SPDX-License-Identifier: BSD-2-Clause
//! `fileio`: a client of the FAT file-system server (`fs_fat`). In its `init` it mounts
//! partition 1, reads the file `make-disk.sh` put there, makes directories, writes a small text
//! file and a 300 000-byte pattern file, reads them back and checks every byte, renames, lists
//! directories, removes a file and an empty directory (and is refused a non-empty one), unmounts,
//! and prints each step on the console as `fileio: ...`, then `fileio: done in S.mmms`. A check
//! that fails prints `fileio: FAILED: ...` and ends the PD (the launcher reports it).
//!
//! Every file-system call is the blocking client of lions-fs ([`FsClient::call`],
//! [`File`](lions_fs::File) with embedded-io): it spins until the completion arrives, which works
//! because the server runs in its own process on the host board. Times come from the timer driver
//! (PPC `time_now`).
//!
//! **Bench mode**: with `LIONS_FILEIO_BENCH=<MiB>` in the environment (the host board passes the
//! launcher's environment to every PD) it also writes `/bench.bin` of that many MiB in 32 KiB
//! requests and syncs and closes it, then reads it all back in 32 KiB requests and checks it, and
//! prints `fileio: bench write|read <bytes> bytes in <ns> ns (<rate>)`, times from the timer
//! driver; then it removes the file (`cargo bench -p xtask --bench fileio`).
#![cfg_attr(target_os = "none", no_std, no_main)]

use embedded_io::{Read, Write};
use fileio_example::{
    BENCH_CHUNK, BENCH_PATH, BenchLine, DATA_DIR, EMPTY_DIR, HELLO_PATH, HELLO_TEXT, LOG_DIR,
    LOG_TEXT, OLD_DIR, PATTERN_LEN, PATTERN_PATH, S_IFDIR, S_IFMT, SCRATCH_PATH, Secs, TODAY_PATH,
    YESTERDAY_PATH, fill_pattern, join, pattern_mismatch,
};
use lions_fs::{
    AccessMode, FsClient, FsClientConfig, FsError, FsStat, OpenFlags, OpenOptions, Reply, Request,
    Status,
};
use lions_os::NullHandler;
use lions_serial::SerialClientConfig;
use lions_serial::client::SerialClient;
use lions_timer::{TimerClient, TimerClientConfig};

/// The seL4 PD's heap. This client allocates nothing itself, but built in one cargo run with
/// `fs_fat` (as `cargo xtask build` does) lions-fs comes with its FAT backend, which links
/// `alloc`, and a program that links `alloc` needs a global allocator: a small one, 64 KiB of
/// `.bss`.
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: lions_os::heap::Heap<{ 64 << 10 }> = lions_os::heap::Heap::new();

lions_os::config!(static FS: FsClientConfig = ".fs_client_config");
lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");

const READ: OpenFlags = OpenFlags::new(AccessMode::ReadOnly);
const CREATE: OpenFlags = OpenFlags {
    access: AccessMode::ReadWrite,
    options: OpenOptions::CREATE,
};

/// Why the run stopped.
#[derive(Debug)]
enum Error {
    /// A file-system call failed: what it was, and how.
    Fs(&'static str, FsError),
    /// A check of what the file system returned failed.
    Check(&'static str),
    /// The timer driver refused a call.
    Timer(lions_os::OsError),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Fs(what, e) => write!(f, "{what}: {e}"),
            Self::Check(what) => write!(f, "check failed: {what}"),
            Self::Timer(e) => write!(f, "timer: {e}"),
        }
    }
}

/// `Err(Check(what))` unless `ok`.
fn check(ok: bool, what: &'static str) -> Result<(), Error> {
    if ok { Ok(()) } else { Err(Error::Check(what)) }
}

/// Attach what was being done to a file-system error.
trait Context<T> {
    fn ctx(self, what: &'static str) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, FsError> {
    fn ctx(self, what: &'static str) -> Result<T, Error> {
        self.map_err(|e| Error::Fs(what, e))
    }
}

/// Print one `fileio: ...` line.
macro_rules! say {
    ($app:expr, $($arg:tt)*) => {
        $app.say(format_args!($($arg)*))
    };
}

struct App {
    fs: FsClient<'static>,
    out: SerialClient<'static>,
    timer: TimerClient,
}

impl App {
    fn say(&mut self, args: core::fmt::Arguments<'_>) {
        if self
            .out
            .write_fmt(format_args!("fileio: {args}\n"))
            .is_err()
        {
            panic!("fileio: console output failed");
        }
    }

    fn now(&self) -> Result<u64, Error> {
        self.timer.time_now().map_err(Error::Timer)
    }

    /// A blocking call whose reply carries nothing.
    fn done(&mut self, req: Request<'_>, what: &'static str) -> Result<(), Error> {
        self.fs.call(req, &mut []).ctx(what).map(drop)
    }

    fn stat(&mut self, path: &str) -> Result<FsStat, FsError> {
        match self.fs.call(Request::Stat { path }, &mut [])? {
            Reply::Stat(st) => Ok(st),
            _ => Err(FsError::Status(Status::Error)),
        }
    }

    /// Check that `path` does not exist (`STAT` answers `NO_FILE`).
    fn gone(&mut self, path: &str, what: &'static str) -> Result<(), Error> {
        match self.stat(path) {
            Err(FsError::Status(Status::NoFile)) => Ok(()),
            Err(e) => Err(Error::Fs(what, e)),
            Ok(_) => Err(Error::Check(what)),
        }
    }

    /// The whole of a small file into `buf`; its length.
    fn read_file(&mut self, path: &str, buf: &mut [u8]) -> Result<usize, Error> {
        let mut f = self.fs.open(path, READ).ctx("open for reading")?;
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]).ctx("read")? {
                0 => break,
                k => n += k,
            }
        }
        f.close().ctx("close")?;
        Ok(n)
    }

    /// Create (or open) `path` and write `data` at its start.
    fn write_file(&mut self, path: &str, data: &[u8]) -> Result<(), Error> {
        let mut f = self.fs.open(path, CREATE).ctx("create")?;
        f.truncate(0).ctx("truncate")?;
        f.write_all(data).ctx("write")?;
        f.flush().ctx("sync")?;
        f.close().ctx("close")
    }

    /// Remove what an earlier run on the same image left (a fresh image has none of it).
    fn clean_up(&mut self) -> Result<(), Error> {
        let mut found = false;
        for file in [
            TODAY_PATH,
            YESTERDAY_PATH,
            PATTERN_PATH,
            SCRATCH_PATH,
            BENCH_PATH,
        ] {
            match self.fs.call(Request::Remove { path: file }, &mut []) {
                Ok(_) => found = true,
                Err(FsError::Status(Status::NoFile)) => {}
                Err(e) => return Err(Error::Fs("remove an old file", e)),
            }
        }
        for dir in [OLD_DIR, LOG_DIR, DATA_DIR, EMPTY_DIR] {
            match self.fs.call(Request::DirRemove { path: dir }, &mut []) {
                Ok(_) => found = true,
                Err(FsError::Status(Status::NoFile)) => {}
                Err(e) => return Err(Error::Fs("remove an old directory", e)),
            }
        }
        if found {
            say!(self, "removed what an earlier run left on this image");
        }
        Ok(())
    }

    /// Print the entries of `dir` (`name/` for a directory, `name (N bytes)` for a file); with
    /// `expect`, check that they are exactly those names (in any order; a directory's ends in
    /// `/`).
    fn list(&mut self, dir: &str, expect: Option<&[&str]>) -> Result<(), Error> {
        say!(self, "ls {dir}");
        let fd = match self.fs.call(Request::DirOpen { path: dir }, &mut []) {
            Ok(Reply::Fd(fd)) => fd,
            Ok(_) => return Err(Error::Check("DIR_OPEN returns an fd")),
            Err(e) => return Err(Error::Fs("open a directory", e)),
        };
        let mut count = 0;
        loop {
            let mut name = [0u8; lions_fs::server::NAME_BUFFER_BYTES];
            let n = match self.fs.call(Request::DirRead { fd }, &mut name) {
                Ok(Reply::Name(n)) => n,
                Ok(_) => return Err(Error::Check("DIR_READ returns a name")),
                Err(FsError::Status(Status::EndOfDirectory)) => break,
                Err(e) => return Err(Error::Fs("read a directory", e)),
            };
            let name = core::str::from_utf8(&name[..n])
                .map_err(|_| Error::Check("entry names are UTF-8"))?;
            let mut path = [0u8; 1024];
            let path = join(dir, name, &mut path).ok_or(Error::Check("path fits"))?;
            let st = self.stat(path).ctx("stat an entry")?;
            let is_dir = st.mode & S_IFMT == S_IFDIR;
            if is_dir {
                say!(self, "  {name}/");
            } else {
                say!(self, "  {name} ({} bytes)", st.size);
            }
            if let Some(expect) = expect {
                let listed = |e: &&str| match e.strip_suffix('/') {
                    Some(d) => is_dir && d == name,
                    None => !is_dir && *e == name,
                };
                check(expect.iter().any(listed), "only the expected entries")?;
            }
            count += 1;
        }
        self.done(Request::DirClose { fd }, "close a directory")?;
        if let Some(expect) = expect {
            check(count == expect.len(), "every expected entry is listed")?;
        }
        Ok(())
    }

    /// Write `len` bytes of the pattern to `path` in `chunk`-byte writes, sync and close;
    /// returns the number of writes.
    fn write_pattern(&mut self, path: &str, len: u64, chunk: usize) -> Result<u64, Error> {
        let mut buf = [0u8; BENCH_CHUNK];
        let chunk = chunk.min(buf.len());
        let mut f = self.fs.open(path, CREATE).ctx("create")?;
        f.truncate(0).ctx("truncate")?;
        let (mut at, mut writes) = (0u64, 0u64);
        while at < len {
            let n = usize::try_from(len - at).map_or(chunk, |left| left.min(chunk));
            fill_pattern(at, &mut buf[..n]);
            f.write_all(&buf[..n]).ctx("write")?;
            at += n as u64;
            writes += 1;
        }
        f.flush().ctx("sync")?;
        f.close().ctx("close")?;
        Ok(writes)
    }

    /// Read `path` back in `chunk`-byte reads and check it is `len` bytes of the pattern.
    fn check_pattern(&mut self, path: &str, len: u64, chunk: usize) -> Result<(), Error> {
        let mut buf = [0u8; BENCH_CHUNK];
        let chunk = chunk.min(buf.len());
        let mut f = self.fs.open(path, READ).ctx("open for reading")?;
        check(
            f.size().ctx("size")? == len,
            "the file has the length written",
        )?;
        let mut at = 0u64;
        loop {
            let n = f.read(&mut buf[..chunk]).ctx("read")?;
            if n == 0 {
                break;
            }
            check(
                pattern_mismatch(at, &buf[..n]).is_none(),
                "every byte read back is the byte written",
            )?;
            at += n as u64;
        }
        f.close().ctx("close")?;
        check(at == len, "reading stops at the end of the file")
    }

    fn run(&mut self) -> Result<(), Error> {
        let start = self.now()?;
        self.done(Request::Initialise, "mount")?;
        say!(self, "mounted the FAT volume on partition 1");
        self.clean_up()?;

        let mut buf = [0u8; 256];
        let n = self.read_file(HELLO_PATH, &mut buf)?;
        check(
            &buf[..n] == HELLO_TEXT,
            "hello.txt holds what make-disk.sh wrote",
        )?;
        let text = core::str::from_utf8(&buf[..n]).unwrap_or("?").trim_end();
        say!(self, "read {HELLO_PATH} ({n} bytes): {text}");

        for dir in [LOG_DIR, OLD_DIR, DATA_DIR] {
            self.done(Request::DirCreate { path: dir }, "make a directory")?;
            say!(self, "made directory {dir}");
        }
        match self.fs.call(Request::DirCreate { path: LOG_DIR }, &mut []) {
            Err(FsError::Status(Status::AlreadyExists)) => {}
            _ => return Err(Error::Check("making /logs twice is refused")),
        }
        say!(self, "making {LOG_DIR} again is refused: AlreadyExists");

        self.write_file(TODAY_PATH, LOG_TEXT)?;
        say!(self, "wrote {TODAY_PATH} ({} bytes)", LOG_TEXT.len());
        let mut back = [0u8; 512];
        let n = self.read_file(TODAY_PATH, &mut back)?;
        check(&back[..n] == LOG_TEXT, "the log reads back as written")?;
        say!(self, "read {TODAY_PATH} back: {n} bytes, as written");

        let writes = self.write_pattern(PATTERN_PATH, PATTERN_LEN, BENCH_CHUNK)?;
        say!(
            self,
            "wrote {PATTERN_PATH}: {PATTERN_LEN} bytes in {writes} writes"
        );
        self.check_pattern(PATTERN_PATH, PATTERN_LEN, 10_000)?;
        say!(
            self,
            "read {PATTERN_PATH} back in 10000-byte reads: every byte as written"
        );
        let st = self.stat(PATTERN_PATH).ctx("stat")?;
        check(st.size == PATTERN_LEN, "stat gives the size written")?;
        check(st.mode & S_IFMT != S_IFDIR, "a file is not a directory")?;
        say!(
            self,
            "stat {PATTERN_PATH}: {} bytes, mode {:o}",
            st.size,
            st.mode
        );

        let rename = Request::Rename {
            old: TODAY_PATH,
            new: YESTERDAY_PATH,
        };
        self.done(rename, "rename")?;
        self.gone(TODAY_PATH, "the old name is gone after a rename")?;
        let n = self.read_file(YESTERDAY_PATH, &mut back)?;
        check(&back[..n] == LOG_TEXT, "a renamed file keeps its contents")?;
        say!(
            self,
            "renamed {TODAY_PATH} to {YESTERDAY_PATH}: old name gone, contents kept"
        );

        self.list(LOG_DIR, Some(&["old/"]))?;
        self.list(OLD_DIR, Some(&["yesterday.txt"]))?;

        self.write_file(SCRATCH_PATH, b"soon gone\n")?;
        self.done(Request::Remove { path: SCRATCH_PATH }, "remove")?;
        self.gone(SCRATCH_PATH, "a removed file is gone")?;
        say!(self, "wrote and removed {SCRATCH_PATH}");
        self.done(Request::DirCreate { path: EMPTY_DIR }, "make a directory")?;
        self.done(Request::DirRemove { path: EMPTY_DIR }, "remove a directory")?;
        self.gone(EMPTY_DIR, "a removed directory is gone")?;
        say!(self, "made and removed directory {EMPTY_DIR}");
        match self.fs.call(Request::DirRemove { path: LOG_DIR }, &mut []) {
            Err(FsError::Status(Status::NotEmpty)) => {}
            _ => return Err(Error::Check("removing a non-empty directory is refused")),
        }
        say!(self, "removing {LOG_DIR} is refused: NotEmpty");

        self.list("/", Some(&["hello.txt", "logs/", "data/"]))?;

        if let Some(mib) = bench_request() {
            self.bench(mib)?;
        }

        self.done(Request::Deinitialise, "unmount")?;
        let end = self.now()?;
        say!(self, "unmounted");
        say!(self, "done in {}", Secs(end.saturating_sub(start)));
        Ok(())
    }

    /// The bench mode: write, then read back, `mib` MiB (see the module docs).
    fn bench(&mut self, mib: u64) -> Result<(), Error> {
        let bytes = mib << 20;
        say!(
            self,
            "bench: {mib} MiB to {BENCH_PATH} in {BENCH_CHUNK}-byte requests"
        );
        let t0 = self.now()?;
        self.write_pattern(BENCH_PATH, bytes, BENCH_CHUNK)?;
        let t1 = self.now()?;
        self.check_pattern(BENCH_PATH, bytes, BENCH_CHUNK)?;
        let t2 = self.now()?;
        self.done(Request::Remove { path: BENCH_PATH }, "remove")?;
        for (what, ns) in [
            ("write", t1.saturating_sub(t0)),
            ("read", t2.saturating_sub(t1)),
        ] {
            say!(self, "{}", BenchLine { what, bytes, ns });
        }
        Ok(())
    }
}

/// The bench size `LIONS_FILEIO_BENCH` asks for, in MiB (host board only: a seL4 PD has no
/// environment).
fn bench_request() -> Option<u64> {
    #[cfg(not(target_os = "none"))]
    return std::env::var(fileio_example::BENCH_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&m| m > 0);
    #[cfg(target_os = "none")]
    None
}

fn init() -> NullHandler {
    let name = lions_os::pd_name();
    let fs = FS.mapped().unwrap_or_else(|e| panic!("{name}: {e}"));
    let serial = SERIAL.mapped().unwrap_or_else(|e| panic!("{name}: {e}"));
    let timer = TIMER.get().unwrap_or_else(|e| panic!("{name}: {e}"));
    let out = SerialClient::new(serial).unwrap_or_else(|e| panic!("{name}: serial queues: {e}"));
    let fs = FsClient::new(fs).unwrap_or_else(|e| panic!("{name}: fs queues: {e}"));
    let timer = TimerClient::from_config(timer)
        .unwrap_or_else(|| panic!("{name}: timer_client_config names no channel"));
    let mut app = App { fs, out, timer };
    if let Err(e) = app.run() {
        say!(app, "FAILED: {e}");
        panic!("{name}: {e}");
    }
    NullHandler
}

lions_os::protection_domain!(init);
