// SPDX-License-Identifier: BSD-2-Clause
//! The host serial device on real fds: a pty pair (the test plays the user at the master), pipes,
//! `/dev/null` and a memfd. Waits are bounded `poll`s; nothing depends on timing.

use super::*;
use crate::host::terminal::get_mode;
use std::ffi::CStr;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Generous bound for anything that should happen "at once".
const WAIT_MS: i32 = 10_000;

fn check(ret: libc::c_int) -> libc::c_int {
    assert!(ret >= 0, "{}", io::Error::last_os_error());
    ret
}

/// A pty: the non-blocking master and the slave's path.
fn pty() -> (OwnedFd, PathBuf) {
    // SAFETY: plain system calls; the master fd is owned right away.
    let master = unsafe {
        OwnedFd::from_raw_fd(check(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )))
    };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: plain system calls on our master; ptsname_r writes at most `name.len()` bytes.
    unsafe {
        check(libc::grantpt(master.as_raw_fd()));
        check(libc::unlockpt(master.as_raw_fd()));
        assert_eq!(
            libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()),
            0
        );
    }
    // SAFETY: ptsname_r wrote a NUL-terminated name.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    (master, PathBuf::from(path.to_str().unwrap()))
}

fn open_path(path: &Path) -> OwnedFd {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    sys::open(&c, libc::O_RDWR | libc::O_NOCTTY).unwrap()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC));
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

fn readable(fd: BorrowedFd<'_>, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = sys::write(fd, bytes).unwrap();
        bytes = &bytes[n..];
    }
}

/// Read exactly `n` bytes from a non-blocking fd, waiting (bounded) for each piece.
fn read_n(fd: BorrowedFd<'_>, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        assert!(readable(fd, WAIT_MS), "only {got:?} of {n} bytes arrived");
        let mut buf = vec![0u8; n - got.len()];
        let k = sys::read(fd, &mut buf).unwrap();
        got.extend_from_slice(&buf[..k]);
    }
    got
}

/// Receive `n` bytes through the device, waiting on its IRQ fd (rx interrupt on).
fn rx_n(dev: &mut HostSerial, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        assert!(readable(dev.irq_fd(), WAIT_MS), "rx IRQ after {got:?}");
        let mut buf = [0u8; 64];
        let k = dev.rx_read(&mut buf);
        got.extend_from_slice(&buf[..k]);
    }
    got
}

#[test]
fn pty_input_arrives_raw_with_ctrl_backslash_as_a_byte() {
    let (master, slave) = pty();
    let mut dev = HostSerial::open(&slave).unwrap();
    dev.set_rx_irq(true);
    assert!(!readable(dev.irq_fd(), 0), "nothing typed yet");
    write_all(master.as_fd(), b"ab\r\x1c1\r\x04");
    assert_eq!(
        rx_n(&mut dev, 7),
        b"ab\r\x1c1\r\x04",
        "no CR/NL mapping, no QUIT, no EOF"
    );
    assert!(!readable(master.as_fd(), 0), "nothing echoed");
    // Ctrl-C is still the interrupt character: consumed by the line discipline (it signals the
    // terminal's foreground group, which this pty does not have), never delivered as a byte.
    write_all(master.as_fd(), b"\x03z");
    assert_eq!(rx_n(&mut dev, 1), b"z");
    assert_eq!(dev.rx_read(&mut [0u8; 8]), 0);
}

#[test]
fn pty_output_reaches_the_master_with_output_processing_kept() {
    let (master, slave) = pty();
    let mut dev = HostSerial::open(&slave).unwrap();
    assert_eq!(dev.tx_write(b"out\n"), 4);
    assert_eq!(read_n(master.as_fd(), 5), b"out\r\n");
    assert_eq!(dev.tx_write(&[]), 0);
}

#[test]
fn raw_mode_is_applied_and_restored_on_drop() {
    let (_master, slave) = pty();
    let watcher = open_path(&slave);
    let before = get_mode(watcher.as_fd()).unwrap();
    assert_ne!(before.c_lflag & libc::ICANON, 0, "a new pty starts cooked");
    let dev = HostSerial::open(&slave).unwrap();
    assert!(dev.raw_terminal().is_some());
    let raw = get_mode(watcher.as_fd()).unwrap();
    assert_eq!(raw.c_lflag & (libc::ICANON | libc::ECHO | libc::IEXTEN), 0);
    assert_ne!(raw.c_lflag & libc::ISIG, 0, "Ctrl-C still stops the system");
    assert_eq!(raw.c_iflag & (libc::ICRNL | libc::IXON), 0);
    assert_eq!(raw.c_cc[libc::VQUIT], libc::_POSIX_VDISABLE);
    assert_eq!(raw.c_cc[libc::VSUSP], libc::_POSIX_VDISABLE);
    assert_eq!(raw.c_cc[libc::VINTR], before.c_cc[libc::VINTR]);
    assert_eq!(raw.c_oflag, before.c_oflag);
    drop(dev);
    let after = get_mode(watcher.as_fd()).unwrap();
    assert_eq!(
        (after.c_iflag, after.c_oflag, after.c_cflag, after.c_lflag),
        (
            before.c_iflag,
            before.c_oflag,
            before.c_cflag,
            before.c_lflag
        )
    );
    assert_eq!(after.c_cc, before.c_cc);
}

#[test]
fn rx_interrupt_follows_its_enable() {
    let (master, slave) = pty();
    let mut dev = HostSerial::open(&slave).unwrap();
    write_all(master.as_fd(), b"x");
    dev.set_rx_irq(true);
    assert!(readable(dev.irq_fd(), WAIT_MS));
    dev.set_rx_irq(false);
    assert!(!readable(dev.irq_fd(), 0), "masked while a byte waits");
    dev.set_rx_irq(true);
    assert!(readable(dev.irq_fd(), WAIT_MS));
    assert_eq!(rx_n(&mut dev, 1), b"x");
    assert!(!readable(dev.irq_fd(), 0), "drained: condition gone");
}

#[test]
fn tx_stops_when_the_terminal_is_full_and_interrupts_when_it_drains() {
    let (master, slave) = pty();
    let mut dev = HostSerial::open(&slave).unwrap();
    dev.set_tx_irq(true);
    assert!(readable(dev.irq_fd(), WAIT_MS), "empty output: writable");
    let chunk = [b'.'; 256];
    let mut total = 0usize;
    while dev.tx_write(&chunk) > 0 {
        total += 1;
        assert!(total < 1 << 16, "a pty never filled up");
    }
    assert!(!readable(dev.irq_fd(), 0), "full: no tx interrupt");
    let mut buf = [0u8; 4096];
    while readable(master.as_fd(), 0) {
        let _ = sys::read(master.as_fd(), &mut buf);
    }
    assert!(readable(dev.irq_fd(), WAIT_MS), "drained: tx interrupt");
    assert!(dev.tx_write(&chunk) > 0);
    dev.set_tx_irq(false);
    assert!(!readable(dev.irq_fd(), 0));
}

#[test]
fn end_of_input_closes_rx_without_an_interrupt_storm() {
    let (r, w) = pipe();
    let (_keep, tx) = pipe();
    let mut dev = HostSerial::from_fds(r, tx).unwrap();
    assert!(dev.raw_terminal().is_none());
    dev.set_rx_irq(true);
    write_all(w.as_fd(), b"hi");
    assert_eq!(rx_n(&mut dev, 2), b"hi");
    drop(w);
    assert!(readable(dev.irq_fd(), WAIT_MS), "EOF is an event");
    assert_eq!(dev.rx_read(&mut [0u8; 8]), 0);
    assert!(!dev.rx_open());
    assert!(
        !readable(dev.irq_fd(), 0),
        "closed input is no longer watched"
    );
    dev.set_rx_irq(true);
    assert!(!readable(dev.irq_fd(), 0));
}

#[test]
fn broken_output_is_dropped_and_counted() {
    let (_keep, rx) = pipe();
    let (r, w) = pipe();
    let mut dev = HostSerial::from_fds(rx, w).unwrap();
    drop(r);
    assert_eq!(dev.tx_write(b"lost"), 4, "taken, as a UART with no cable");
    assert_eq!(dev.tx_write(b"too"), 3);
    assert_eq!(dev.dropped(), 7);
    assert!(!dev.tx_open());
    dev.set_tx_irq(true);
    assert!(!readable(dev.irq_fd(), 0), "broken output is not watched");
}

#[test]
fn unpollable_files_are_always_ready() {
    let null = sys::open(c"/dev/null", libc::O_RDONLY).unwrap();
    // SAFETY: plain system call; the fd is owned right away.
    let file = unsafe {
        OwnedFd::from_raw_fd(check(libc::memfd_create(
            c"serial-out".as_ptr(),
            libc::MFD_CLOEXEC,
        )))
    };
    let out = sys::dup(file.as_raw_fd()).unwrap();
    let mut dev = HostSerial::from_fds(null, file).unwrap();
    dev.set_tx_irq(true);
    assert!(
        readable(dev.irq_fd(), 0),
        "a regular file can always be written"
    );
    assert_eq!(dev.tx_write(b"saved"), 5);
    dev.set_tx_irq(false);
    assert!(!readable(dev.irq_fd(), 0));
    let mut back = [0u8; 8];
    // SAFETY: pread writes at most `back.len()` bytes into `back`.
    let n = unsafe { libc::pread(out.as_raw_fd(), back.as_mut_ptr().cast(), back.len(), 0) };
    assert_eq!(&back[..usize::try_from(n).unwrap()], b"saved");
    dev.set_rx_irq(true);
    assert!(readable(dev.irq_fd(), 0), "/dev/null is always readable");
    assert_eq!(dev.rx_read(&mut back), 0);
    assert!(!dev.rx_open(), "at EOF");
    assert!(!readable(dev.irq_fd(), 0));
}

/// Environment variable telling [`sigterm_child`] which pty to hold raw.
const CHILD_PTY: &str = "LIONS_DRIVERS_TEST_SIGTERM_PTY";

/// Runs only as the child of [`sigterm_restores_the_terminal`]: holds the pty raw until killed.
#[test]
fn sigterm_child() {
    let Some(path) = std::env::var_os(CHILD_PTY) else {
        return;
    };
    let _dev = HostSerial::open(Path::new(&path)).unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn sigterm_restores_the_terminal() {
    let (_master, slave) = pty();
    let watcher = open_path(&slave);
    let before = get_mode(watcher.as_fd()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host::serial::tests::sigterm_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PTY, &slave)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.ends_with("ready"))),
        "child did not start"
    );
    assert_eq!(get_mode(watcher.as_fd()).unwrap().c_lflag & libc::ICANON, 0);
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: signals our own child, not yet reaped.
    check(unsafe { libc::kill(pid, libc::SIGTERM) });
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "still ended by SIGTERM"
    );
    let after = get_mode(watcher.as_fd()).unwrap();
    assert_eq!(
        (after.c_iflag, after.c_lflag, after.c_cc),
        (before.c_iflag, before.c_lflag, before.c_cc)
    );
}
