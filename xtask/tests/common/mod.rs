// SPDX-License-Identifier: BSD-2-Clause
//! A terminal for end-to-end tests: run `cargo xtask run <example>` on the host board with a pty
//! as its terminal, type into it and read the screen, as a person at a terminal would.
//!
//! - [`System::start`] opens a pty pair (`posix_openpt`), starts `xtask run <example>` with the
//!   slave as stdin and stdout **and controlling terminal** (a new session, `TIOCSCTTY`), so the
//!   serial driver finds a real terminal and sets its modes itself; stderr (xtask's and the
//!   launcher's reports) goes to a pipe. After `xtask: starting` the process is the `lions-host`
//!   launcher itself (`exec`).
//! - A reader thread copies everything written to the terminal into a [`Screen`]; tests wait for
//!   what they expect with [`System::wait_for`], every wait bounded.
//! - [`Screen::by_colour`] splits the output by ANSI foreground colour (`ESC[3Nm` ... `ESC[0m`), so
//!   a test can say which client printed what when the Tx virtualiser colours each client.
//! - [`System::ctrl_c`] types Ctrl-C at the terminal: the pty's line discipline sends SIGINT to
//!   the foreground process group (the launcher and its PDs, which ignore it), exactly as at a
//!   real terminal; it returns the launcher's exit status once it has ended (bounded wait).
//! - [`System::stop`] (also on drop) sends SIGINT to the launcher directly (for terminals a serial
//!   driver made raw, where Ctrl-C is just a byte) and kills it if it has not ended within 10 s.
#![allow(dead_code, clippy::unwrap_used)]

pub mod harness;
pub mod qemu;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Time for `xtask` to build everything before the launcher starts (a cold build on a small,
/// shared machine).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Longest wait for anything the running system should show.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the launcher to end after Ctrl-C (it gives PDs one second after SIGTERM).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The pty pair: the master (ours) and the slave's path.
pub fn open_pty() -> (OwnedFd, String) {
    // SAFETY: plain libc calls on a descriptor we own; `ptsname_r` writes a NUL-terminated path
    // into the buffer we pass with its length.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(fd);
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(
            libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()),
            0,
            "ptsname_r"
        );
        let name = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        // A screen of a usual size, for anything that asks.
        let ws = libc::winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        libc::ioctl(fd, libc::TIOCSWINSZ, &ws);
        (master, name)
    }
}

/// Everything the system wrote to the terminal, and its reports on stderr.
#[derive(Default)]
pub struct Screen {
    /// Raw bytes from the pty master.
    pub bytes: Vec<u8>,
    /// Lines from the launcher's (and xtask's) stderr.
    pub errors: Vec<String>,
    /// The pty was closed (every process holding the slave ended).
    pub closed: bool,
}

impl Screen {
    /// The screen as text, escapes and `\r` removed.
    pub fn text(&self) -> String {
        Self::runs(&self.bytes)
            .into_iter()
            .map(|(_, t)| t)
            .collect::<String>()
    }

    /// Text per foreground colour (`Some(31)` = red, ...; `None` = uncoloured), in order.
    pub fn by_colour(&self) -> BTreeMap<Option<u8>, String> {
        let mut map: BTreeMap<Option<u8>, String> = BTreeMap::new();
        for (c, t) in Self::runs(&self.bytes) {
            map.entry(c).or_default().push_str(&t);
        }
        map
    }

    /// The colour whose text contains `needle`, if exactly one colour (not `None`) does.
    pub fn colour_of(&self, needle: &str) -> Option<u8> {
        let hits: Vec<u8> = self
            .by_colour()
            .into_iter()
            .filter_map(|(c, t)| c.filter(|_| t.contains(needle)))
            .collect();
        match hits.as_slice() {
            [c] => Some(*c),
            _ => None,
        }
    }

    /// The text written in colour `c`.
    pub fn in_colour(&self, c: u8) -> String {
        self.by_colour().remove(&Some(c)).unwrap_or_default()
    }

    /// Split into (foreground colour, text) runs. SGR `3N` sets colour N+30, `0`/`39`/empty
    /// resets; other escapes and `\r` are dropped.
    fn runs(bytes: &[u8]) -> Vec<(Option<u8>, String)> {
        let mut out: Vec<(Option<u8>, String)> = Vec::new();
        let mut colour = None;
        let mut i = 0;
        let mut text = Vec::new();
        let flush = |out: &mut Vec<(Option<u8>, String)>, colour, text: &mut Vec<u8>| {
            if !text.is_empty() {
                out.push((colour, String::from_utf8_lossy(text).into_owned()));
                text.clear();
            }
        };
        while i < bytes.len() {
            let b = bytes[i];
            if b == 0x1b && bytes.get(i + 1) == Some(&b'[') {
                let start = i + 2;
                let mut j = start;
                while j < bytes.len() && !(0x40..=0x7e).contains(&bytes[j]) {
                    j += 1;
                }
                if j >= bytes.len() {
                    break; // Incomplete escape at the end: wait for more.
                }
                if bytes[j] == b'm' {
                    let params = String::from_utf8_lossy(&bytes[start..j]).into_owned();
                    for p in params.split(';') {
                        match p.parse::<u8>() {
                            Ok(n @ 30..=37) | Ok(n @ 90..=97) => {
                                flush(&mut out, colour, &mut text);
                                colour = Some(n);
                            }
                            Err(_) | Ok(0) | Ok(39) => {
                                flush(&mut out, colour, &mut text);
                                colour = None;
                            }
                            Ok(_) => {}
                        }
                    }
                }
                i = j + 1;
                continue;
            }
            if b != b'\r' {
                text.push(b);
            }
            i += 1;
        }
        flush(&mut out, colour, &mut text);
        out
    }

    /// The screen and the reports, for assertion messages.
    pub fn transcript(&self) -> String {
        let mut s = String::from("--- terminal (escapes shown as \\e) ---\n");
        s.push_str(
            &String::from_utf8_lossy(&self.bytes)
                .replace('\x1b', "\\e")
                .replace('\r', ""),
        );
        s.push_str("\n--- stderr ---\n");
        for l in &self.errors {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// A running example system on a pty.
pub struct System {
    child: Child,
    master: File,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    stopped: bool,
}

impl System {
    /// `xtask run <example>` on a fresh pty; returns once the launcher has started (`xtask:
    /// starting ...` on stderr), or panics with the transcript when the build fails or takes more
    /// than [`BUILD_TIMEOUT`].
    pub fn start(example: &str) -> Self {
        Self::start_with(example, &[], &[])
    }

    /// [`start`](Self::start) with extra arguments for `xtask run <example>` (e.g. `--release`,
    /// or `--` and launcher options) and extra environment variables for xtask, the launcher and
    /// every PD (the host board passes the launcher's environment on).
    pub fn start_with(example: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let (master, slave_name) = open_pty();
        // O_NOCTTY: the slave must become the system's controlling terminal (below), never ours.
        let slave = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&slave_name)
                .unwrap()
        };
        let (stdin, stdout) = (slave(), slave());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["run", example])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec: a new session, then the pty
        // (now stdin) becomes its controlling terminal, as in a login shell's terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        // Our copies of the slave go with `cmd`: the pty closes when the system's processes end.
        drop(cmd);
        let master = File::from(master);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));

        let (s, mut m) = (screen.clone(), master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = m.read(&mut buf).unwrap_or(0);
                let (lock, cv) = &*s;
                let mut sc = lock.lock().unwrap();
                if n == 0 {
                    // EIO: every holder of the slave closed it.
                    sc.closed = true;
                    cv.notify_all();
                    break;
                }
                sc.bytes.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        let (s, err) = (screen.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let (lock, cv) = &*s;
                lock.lock().unwrap().errors.push(line);
                cv.notify_all();
            }
        });

        let mut sys = Self {
            child,
            master,
            screen,
            stopped: false,
        };
        let started = sys.wait_for(BUILD_TIMEOUT, |s| {
            s.errors.iter().any(|l| l.starts_with("xtask: starting "))
        });
        if !started {
            let t = sys.stop();
            panic!("`xtask run {example}` did not start the launcher:\n{t}");
        }
        sys
    }

    /// Wait until `done(screen)` holds, at most `timeout` (and at most until the launcher ends);
    /// returns whether it held.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&Screen) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let (lock, cv) = &*self.screen;
        let mut sc = lock.lock().unwrap();
        loop {
            if done(&sc) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            // Wake at least every 100 ms to notice the launcher ending.
            let step = (end - now).min(Duration::from_millis(100));
            sc = cv.wait_timeout(sc, step).unwrap().0;
            if sc.closed || self.child.try_wait().ok().flatten().is_some() {
                return done(&sc);
            }
        }
    }

    /// [`wait_for`](Self::wait_for) with [`RUN_TIMEOUT`]; panics with `what` and the transcript
    /// when it does not hold.
    pub fn expect(&mut self, what: &str, done: impl Fn(&Screen) -> bool) {
        if !self.wait_for(RUN_TIMEOUT, done) {
            let t = self.stop();
            panic!("timed out ({RUN_TIMEOUT:?}) waiting for {what}:\n{t}");
        }
    }

    /// Type `bytes` at the terminal, one key at a time (as a person would, a few ms apart).
    pub fn type_keys(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.master.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// Run `f` on the screen as it is now.
    pub fn with_screen<T>(&self, f: impl FnOnce(&Screen) -> T) -> T {
        f(&self.screen.0.lock().unwrap())
    }

    /// Whether the launcher is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Type Ctrl-C (`^C`, the terminal's VINTR) and wait at most [`STOP_TIMEOUT`] for the
    /// launcher to end; its exit status, or `None` if it is still running. Only a terminal with
    /// ISIG on (no host serial driver made it raw) turns the key into SIGINT.
    pub fn ctrl_c(&mut self) -> Option<ExitStatus> {
        self.master.write_all(b"\x03").unwrap();
        let end = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT for the launcher, SIGKILL after [`STOP_TIMEOUT`]; returns the transcript (with what
    /// was printed until the pty closed). Idempotent; also the way to collect the transcript after
    /// [`ctrl_c`](Self::ctrl_c).
    pub fn stop(&mut self) -> String {
        if !self.stopped {
            self.stopped = true;
            if self.child.try_wait().unwrap().is_none() {
                let pid = libc::pid_t::try_from(self.child.id()).unwrap();
                // SAFETY: signalling our own child process.
                unsafe { libc::kill(pid, libc::SIGINT) };
                let t = Instant::now();
                while self.child.try_wait().unwrap().is_none() {
                    if t.elapsed() > STOP_TIMEOUT {
                        let _ = self.child.kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = self.child.wait();
            }
            // What was printed while stopping, until the pty closes (at most 500 ms).
            let end = Instant::now() + Duration::from_millis(500);
            let (lock, cv) = &*self.screen;
            let mut sc = lock.lock().unwrap();
            while !sc.closed && Instant::now() < end {
                sc = cv.wait_timeout(sc, Duration::from_millis(50)).unwrap().0;
            }
        }
        self.with_screen(Screen::transcript)
    }

    /// The launcher's exit status (after [`stop`](Self::stop)).
    pub fn status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// The process id of `xtask run`, which becomes the launcher (xtask replaces itself with it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The raw descriptor of the pty master (for termios checks).
    pub fn master_fd(&self) -> i32 {
        self.master.as_raw_fd()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        self.stop();
    }
}
