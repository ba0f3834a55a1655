// SPDX-License-Identifier: BSD-2-Clause
//! The examples booted on seL4: `cargo xtask build <ex> --board qemu_virt_aarch64` makes
//! `loader.img` with the Microkit SDK in `$MICROKIT_SDK`, QEMU boots it (as `cargo xtask run`
//! does) and the test reads the serial console until everything expected was printed, then stops
//! QEMU (it never exits by itself). Every wait is bounded.
//!
//! - `hello`: the ping/pong rounds with the PPC sums, `faulty` reading the value `pong` wrote,
//!   then its write to a read-only map faulting (the Microkit monitor reports the fault), ping/pong
//!   done.
//! - `serial`: both clients greet through the PL011 driver and the Tx virtualiser; what is typed
//!   reaches client 0 through the Rx virtualiser and comes back as its echo and report; after
//!   Ctrl-\ 1 Enter it reaches client 1.
//! - `timer`: the clock ticks (the generic timer's interrupt, through the passive driver's PPCs)
//!   and the alarm's kept deadlines fire, never a replaced one.
//! - `i2c`: the model bus in the driver PD (QEMU has no I²C controller) answers the PN532
//!   firmware query of `nfc` through the virtualiser, `clock` prints the DS3231 model's time,
//!   which follows the generic timer's counter, at least three times and advancing, and `nfc`
//!   sees the model's demonstration card come and go.
//! - `fileio`: on a fresh disk from `examples/fileio/make-disk.sh` as QEMU's virtio-blk
//!   (`blk_driver_virtio`, `blk_virt`, the FAT server `fs_fat` with its heap), the client prints
//!   every step through `fileio: done in`; after QEMU is stopped `fsck.fat -n` finds partition 1
//!   clean and `mdir` lists what the client left, and partition 2 is byte for byte unchanged.
//!   Needs sfdisk, mkfs.fat/fsck.fat (dosfstools) and mtools.
//! - `echo_server`: with QEMU's virtio-net on its user network and two host port forwards to
//!   `client0` (10.0.2.10), a datagram sent to the UDP forward and a line sent to the TCP forward
//!   (with socat) come back unchanged from the echo services running on seL4. Needs socat.
//! - `webserver`: virtio-net (QEMU's user network, a host port forwarded to 10.0.2.10:80) and
//!   virtio-blk (a fresh disk from `examples/webserver/make-disk.sh`): curl gets `/hello.txt`
//!   and `/` (the directory's `index.html`) byte for byte as the script wrote them, a 404 for a
//!   missing file, and the request log shows on the console. Needs curl, sfdisk, mkfs.fat and
//!   mtools.
//!
//! Each example is its own trial (`hello_boots_on_sel4_in_qemu`, ...; a name filter runs one), so
//! one failing boot hides no other result. Without `$MICROKIT_SDK` (CI has none), without
//! `qemu-system-aarch64` or without a host tool the example's test uses, the trial is reported as
//! **not run** with the reason (`test ... ignored, not run: ...`; counted as ignored, never as
//! passed), by the runner of [`common::harness`] (`harness = false`); `-- --include-ignored` runs
//! it anyway and it fails with the same reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::qemu::{Qemu, not_runnable};
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// Longest wait for what a booted system should print.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

fn contains_all(text: &str, lines: &[&str]) -> bool {
    lines.iter().all(|l| text.contains(l))
}

fn boot_hello() {
    require("hello");
    let qemu = Qemu::boot("hello", &[], BOOT_TIMEOUT);
    let expected = [
        "pong: wrote 0x11050042 into `shared` at 0x",
        "ping: round 1: notifying pong",
        "pong: notification 1 from ping; notifying back",
        "pong: PPC from ping: sum of [10, 11, 12, 13] = 46",
        "ping: round 1: PPC reply label 0x51, sum(10, 11, 12, 13) = 46",
        "faulty: read 0x11050042 from `shared`",
        "faulty: now writing to `shared`, which this PD may only read",
        "ping: round 5: PPC reply label 0x51, sum(50, 51, 52, 53) = 206",
        "ping: done after 5 rounds; idle",
    ];
    let text = qemu.expect("hello's exchange and the fault report", |t| {
        contains_all(t, &expected) && t.contains("faulty") && t.contains("MON|ERROR")
    });
    assert!(
        !text.contains("the write went through"),
        "the read-only map was not enforced:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

fn boot_serial() {
    require("serial");
    let mut qemu = Qemu::boot("serial", &[], BOOT_TIMEOUT);
    qemu.expect("both greetings", |t| {
        t.contains("client0: hello; type and I echo") && t.contains("client1: hello")
    });
    qemu.type_keys(b"hello, zero");
    qemu.expect("client 0's echo and report", |t| {
        t.contains("hello, zer") && t.contains("client0: 10 characters received")
    });
    // Ctrl-\ 1 Enter: input goes to client 1 now.
    qemu.type_keys(b"\x1c1\r0123456789");
    let text = qemu.expect("client 1's echo and report", |t| {
        t.contains("0123456789") && t.contains("client1: 10 characters received")
    });
    assert!(!text.contains("client0: 20 characters"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

fn boot_timer() {
    require("timer");
    let qemu = Qemu::boot("timer", &[], BOOT_TIMEOUT);
    let text = qemu.expect("three clock ticks and two alarms", |t| {
        t.contains("clock: tick 3 t=") && t.contains("alarm: #2 fired after")
    });
    assert!(text.contains("clock: started "), "{text}");
    assert!(!text.contains("UNEXPECTED"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

fn boot_i2c() {
    require("i2c");
    let qemu = Qemu::boot("i2c", &[], BOOT_TIMEOUT);
    let clock_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("clock: 2"))
            .map(str::to_owned)
            .collect()
    };
    let text = qemu.expect(
        "the PN532's firmware, three clock readings, the demo card",
        |t| {
            t.contains("nfc: PN532 firmware 1.6 at 0x24")
                && clock_lines(t).len() >= 3
                && t.contains("nfc: card 0453454c34 removed")
        },
    );
    assert!(
        text.contains("clock: DS3231 at 0x68 claimed"),
        "clock did not claim the RTC's address:\n{text}"
    );
    let present = text.find("nfc: card 0453454c34 present");
    let removed = text.find("nfc: card 0453454c34 removed");
    assert!(
        present.is_some() && present < removed,
        "the card was not seen present before it was removed:\n{text}"
    );
    let times = clock_lines(&text);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert!(
        times.first() < times.last(),
        "the RTC stands still:\n{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

/// A free TCP/UDP port on the host (bound once and released; QEMU takes it just after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn boot_echo_server() {
    require("echo_server");
    let (udp, tcp) = (free_port(), free_port());
    let netdev = format!(
        "user,id=n0,hostfwd=udp:127.0.0.1:{udp}-10.0.2.10:1235,hostfwd=tcp:127.0.0.1:{tcp}-10.0.2.10:1236"
    );
    let qemu = Qemu::boot(
        "echo_server",
        &[
            "-global",
            "virtio-mmio.force-legacy=false",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-device,netdev=n0,mac=52:54:01:00:00:00",
        ],
        BOOT_TIMEOUT,
    );
    qemu.expect("both clients serving", |t| {
        t.contains("client0: 10.0.2.10/24") && t.contains("client1: 10.0.2.11/24")
    });
    let echo = |addr: String, line: &str| {
        let mut child = std::process::Command::new("socat")
            .args(["-t", "2", "-T", "5", "-", &addr])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("socat (apt-get install socat): {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let got = echo(format!("UDP:127.0.0.1:{udp}"), "hello over udp\n");
    assert_eq!(
        got,
        "hello over udp\n",
        "UDP echo on seL4:\n{}",
        qemu.text()
    );
    let got = echo(format!("TCP:127.0.0.1:{tcp}"), "hello over tcp\n");
    assert_eq!(
        got,
        "hello over tcp\n",
        "TCP echo on seL4:\n{}",
        qemu.text()
    );
    assert!(!qemu.text().contains("panicked"), "{}", qemu.text());
}

fn boot_webserver() {
    require("webserver");
    let dir = std::env::temp_dir().join(format!("lions-qemu-web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    let script = xtask::workspace_root().join("examples/webserver/make-disk.sh");
    run_ok(sbin_command("bash").arg(&script).arg(&img));
    let port = free_port();
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-10.0.2.10:80");
    let drive = format!("file={},if=none,format=raw,id=hd0", img.display());
    // The NIC first: QEMU gives it the highest virtio-mmio slot (a003e00), the disk the next.
    let qemu = Qemu::boot(
        "webserver",
        &[
            "-global",
            "virtio-mmio.force-legacy=false",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-device,netdev=n0,mac=52:54:01:00:00:00",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=hd0",
        ],
        BOOT_TIMEOUT,
    );
    qemu.expect("the web server up", |t| {
        t.contains("webserver: serving http://10.0.2.10:80/")
    });
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "30", "-w", "\n%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .unwrap_or_else(|e| panic!("curl (apt-get install curl): {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl("/hello.txt"),
        "Hello from the webserver example.\n\n200",
        "{}",
        qemu.text()
    );
    let index = curl("/");
    assert!(
        index.contains("<h1>Served by LionsOS on the host board</h1>") && index.ends_with("\n200"),
        "{index}"
    );
    assert!(curl("/missing").ends_with("\n404"));
    qemu.expect("the request log", |t| {
        t.contains("GET /hello.txt 200 34") && t.contains("GET /missing 404 14")
    });
    assert!(!qemu.text().contains("panicked"), "{}", qemu.text());
    drop(qemu);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A command from `PATH`, `/usr/sbin` or `/sbin` (where Debian puts sfdisk and fsck.fat).
fn sbin_command(name: &str) -> std::process::Command {
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new("env");
    cmd.arg(format!("PATH={path}")).arg(name);
    cmd
}

/// Run `cmd`, panicking unless it succeeds; its stdout.
fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes `start..start + len` of `img`.
fn bytes_of(img: &std::path::Path, start: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; usize::try_from(len).unwrap()];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut buf, start)
        .unwrap();
    buf
}

fn boot_fileio() {
    require("fileio");
    const MIB: u64 = 1 << 20;
    let dir = std::env::temp_dir().join(format!("lions-qemu-fileio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    let script = xtask::workspace_root().join("examples/fileio/make-disk.sh");
    run_ok(sbin_command("bash").arg(&script).arg(&img));
    // make-disk.sh's layout: partition 1 is 64 MiB from 1 MiB, partition 2 8 MiB after it.
    let p2_before = bytes_of(&img, 65 * MIB, 8 * MIB);
    let drive = format!("file={},if=none,format=raw,id=hd0", img.display());
    let qemu = Qemu::boot(
        "fileio",
        &[
            "-global",
            "virtio-mmio.force-legacy=false",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=hd0",
        ],
        BOOT_TIMEOUT,
    );
    let text = qemu.expect("the client's done line", |t| {
        t.contains("fileio: done in ") || t.contains("FAILED") || t.contains("panicked")
    });
    drop(qemu);
    assert!(!text.contains("FAILED"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let steps = [
        "fileio: mounted the FAT volume on partition 1",
        "fileio: read /hello.txt (62 bytes)",
        "fileio: wrote /data/pattern.bin: 300000 bytes in 10 writes",
        "fileio: read /data/pattern.bin back in 10000-byte reads: every byte as written",
        "fileio: renamed /logs/today.txt to /logs/old/yesterday.txt",
        "fileio: removing /logs is refused: NotEmpty",
        "fileio: unmounted",
        "fileio: done in ",
    ];
    let mut from = 0;
    for step in steps {
        match text[from..].find(step) {
            Some(i) => from += i + step.len(),
            None => panic!("missing (or out of order): {step:?}\n{text}"),
        }
    }
    // The image from outside, QEMU stopped.
    let p1_file = dir.join("p1.img");
    std::fs::write(&p1_file, bytes_of(&img, MIB, 64 * MIB)).unwrap();
    let fsck = run_ok(sbin_command("fsck.fat").arg("-n").arg(&p1_file));
    assert!(
        !fsck.contains("Dirty"),
        "fsck.fat -n on partition 1:\n{fsck}"
    );
    let p1 = format!("{}@@{MIB}", img.display());
    let tree = run_ok(sbin_command("mdir").args(["-b", "-/", "-i", &p1, "::/"]));
    let mut names: Vec<&str> = tree.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "::/data/",
            "::/data/pattern.bin",
            "::/hello.txt",
            "::/logs/",
            "::/logs/old/",
            "::/logs/old/yesterday.txt",
        ]
    );
    assert!(
        bytes_of(&img, 65 * MIB, 8 * MIB) == p2_before,
        "partition 2 changed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Why `example`'s boot cannot run here: the SDK or QEMU missing, or a host tool its test uses.
fn example_not_runnable(example: &str) -> Option<String> {
    let why = not_runnable().or_else(|| match example {
        "fileio" => common::harness::missing_tools(&[
            ("sfdisk", "fdisk"),
            ("mkfs.fat", "dosfstools"),
            ("fsck.fat", "dosfstools"),
            ("mdir", "mtools"),
        ]),
        "echo_server" => common::harness::missing_tools(&[("socat", "socat")]),
        "webserver" => common::harness::missing_tools(&[
            ("curl", "curl"),
            ("sfdisk", "fdisk"),
            ("mkfs.fat", "dosfstools"),
            ("mcopy", "mtools"),
        ]),
        _ => None,
    })?;
    Some(format!("{example} on seL4: {why}"))
}

/// Panic with why `example` cannot boot here, if it cannot (a trial run with `--include-ignored`).
fn require(example: &str) {
    if let Some(why) = example_not_runnable(example) {
        panic!("cannot boot on seL4 here: {why}");
    }
}

/// One trial per example, each booted on its own, so one failing boot hides no other result.
fn main() -> std::process::ExitCode {
    let trials: [(&'static str, &'static str, fn()); 7] = [
        ("hello_boots_on_sel4_in_qemu", "hello", boot_hello),
        ("serial_boots_on_sel4_in_qemu", "serial", boot_serial),
        ("timer_boots_on_sel4_in_qemu", "timer", boot_timer),
        ("i2c_boots_on_sel4_in_qemu", "i2c", boot_i2c),
        ("fileio_boots_on_sel4_in_qemu", "fileio", boot_fileio),
        (
            "echo_server_boots_on_sel4_in_qemu",
            "echo_server",
            boot_echo_server,
        ),
        (
            "webserver_boots_on_sel4_in_qemu",
            "webserver",
            boot_webserver,
        ),
    ];
    common::harness::run(
        trials
            .into_iter()
            .map(|(name, example, run)| common::harness::Trial {
                name,
                run,
                not_run: example_not_runnable(example),
            })
            .collect(),
    )
}
