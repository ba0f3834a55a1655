// SPDX-License-Identifier: BSD-2-Clause
//! `examples/linux_vm` booted on seL4 under QEMU (`virt`, `virtualization=on`): the Linux guest
//! (Debian's arm64 cloud kernel and a busybox initramfs, `cargo xtask guest-images`) runs under
//! the `vmm` PD and reaches a shell on its virtio console, which is a client of our serial
//! virtualisers; a command typed on the serial console runs in the guest and its output comes
//! back. The native `echo` client (echo_server's) shares the serial console and the NIC: the
//! guest pings it, gets its TCP echo (`nc`) and its UDP echo (busybox-static's `nc` has no UDP
//! mode: `nslookup` sends its queries to the echo port and reads the echoed queries as replies). Its virtio disk is partition 2 of the fileio example's disk image (QEMU's virtio-blk
//! behind our blk driver and virtualiser): the guest mounts it and reads known files. The guest's
//! boot time to the shell is printed (`linux_vm: shell after N s`). Needs sfdisk, mkfs.fat and
//! mtools for the disk image.
//!
//! Not run (reported as such, never as passed) without `$MICROKIT_SDK`, `qemu-system-aarch64`,
//! or Debian's arm64 packages (`dpkg --add-architecture arm64 && apt-get update`).
#![allow(clippy::unwrap_used)]

mod common;

use common::qemu::Qemu;
use std::io::Write;
use std::time::{Duration, Instant};

/// Longest wait for the guest's shell (QEMU emulates the hypervisor too: a boot takes 20-60 s).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for a command's output.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the guest cannot boot here: no SDK or QEMU, no disk tools, no Debian arm64 packages.
fn not_runnable() -> Option<String> {
    if let Some(why) = common::qemu::not_runnable() {
        return Some(why);
    }
    if let Some(why) = common::harness::missing_tools(&[
        ("sfdisk", "fdisk"),
        ("mkfs.fat", "dosfstools"),
        ("mcopy", "mtools"),
    ]) {
        return Some(why);
    }
    let arches = std::process::Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !arches.lines().any(|l| l.trim() == "arm64") {
        return Some(
            "the guest comes from Debian's arm64 packages: \
             dpkg --add-architecture arm64 && apt-get update"
                .into(),
        );
    }
    None
}

/// Type `line` and Enter at the guest's console.
fn type_line(qemu: &mut Qemu, line: &str) {
    let keys: Vec<u8> = line.bytes().chain([b'\r']).collect();
    qemu.type_keys_every(&keys, Duration::from_millis(30));
}

fn boot_linux_vm() {
    if let Some(why) = not_runnable() {
        panic!("cannot boot linux_vm here: {why}");
    }
    // fileio's disk: the guest's /dev/vda is its partition 2 (README.TXT, numbers/1-20000.txt).
    let dir = std::env::temp_dir().join(format!("lions-linux-vm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("disk.img");
    let script = xtask::workspace_root().join("examples/fileio/make-disk.sh");
    let made = std::process::Command::new("env")
        .arg(format!(
            "PATH={}:/usr/sbin:/sbin",
            std::env::var("PATH").unwrap_or_default()
        ))
        .arg("bash")
        .arg(&script)
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "make-disk.sh: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let drive = format!("file={},if=none,format=raw,id=hd0", img.display());
    // The wire between the guest and the native echo client: a UDP socket QEMU sends each frame
    // to and receives it back from (its own address), so every frame comes back to the net
    // driver and the Rx virtualiser delivers it by MAC.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let netdev = format!("socket,id=n0,udp=127.0.0.1:{port},localaddr=127.0.0.1:{port}");
    let mut qemu = Qemu::boot(
        "linux_vm",
        &[
            "-global",
            "virtio-mmio.force-legacy=false",
            "-drive",
            &drive,
            "-device",
            "virtio-blk-device,drive=hd0",
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-device,netdev=n0,mac=52:54:01:00:00:7f",
        ],
        BOOT_TIMEOUT,
    );
    let start = Instant::now();
    let text = qemu.expect_within("the guest's shell", BOOT_TIMEOUT, |t| {
        t.contains("Enter 'help' for a list of built-in commands.")
            || t.contains("Kernel panic")
            || t.contains("MON|ERROR")
    });
    assert!(!text.contains("Kernel panic"), "{text}");
    assert!(!text.contains("MON|ERROR"), "{text}");
    assert!(text.contains("vmm: guest kernel at 0x40000000"), "{text}");
    // The native reader of the same disk (partition 1) in the same run.
    if let Some(l) = text.lines().find(|l| l.contains("blk_reader: read ")) {
        let _ = writeln!(std::io::stderr(), "linux_vm: native {}", l.trim());
    }
    assert!(text.contains("blk_reader: read 8 MiB in "), "{text}");
    assert!(text.contains("printk: console [hvc0] enabled"), "{text}");
    let _ = writeln!(
        std::io::stderr(),
        "linux_vm: shell after {:.1} s (QEMU started to the busybox banner)",
        start.elapsed().as_secs_f64()
    );
    // Input through the Rx virtualiser into the guest, output back: the shell computes.
    type_line(&mut qemu, "echo guest-$((6*7))-$(uname -m)");
    qemu.expect_within("the guest's answer", COMMAND_TIMEOUT, |t| {
        t.contains("guest-42-aarch64")
    });
    // The virtio disk: partition 2 behind the blk virtualiser, mounted and read in the guest.
    type_line(
        &mut qemu,
        "mount -t vfat -o ro /dev/vda /mnt && cat /mnt/README.TXT && tail -n 1 /mnt/numbers/1-20000.txt",
    );
    let text = qemu.expect_within("the disk's files", COMMAND_TIMEOUT, |t| {
        t.contains("Partition 2 of the fileio disk. No PD is a client of it")
            && t.lines().any(|l| l.trim() == "20000")
    });
    assert!(!text.contains("MON|ERROR"), "{text}");
    // Read throughput of the guest's disk (the guest's own clock; printed, not asserted).
    type_line(&mut qemu, "time dd if=/dev/vda of=/dev/null bs=64k");
    let text = qemu.expect_within("dd's time", COMMAND_TIMEOUT, |t| {
        t.lines().any(|l| l.trim_start().starts_with("real"))
    });
    if let Some(l) = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("real"))
    {
        let _ = writeln!(
            std::io::stderr(),
            "linux_vm: guest virtio-blk read of partition 2 (8 MiB, 64 KiB reads): {}",
            l.trim()
        );
    }
    // The NIC: the native echo client answers the guest's ping and echoes its datagram.
    type_line(
        &mut qemu,
        "ip link set eth0 up && ip addr add 10.0.2.20/24 dev eth0 && ping -c 2 10.0.2.10",
    );
    qemu.expect_within("the guest's ping answered", COMMAND_TIMEOUT, |t| {
        t.contains("2 packets transmitted, 2 packets received")
            || t.contains("2 packets transmitted, 1 packets received")
    });
    // Debian's busybox-static nc has no UDP mode: the guest checks the echo client's TCP echo.
    type_line(
        &mut qemu,
        "echo lions-tcp-$((40+2)) | nc -w 3 10.0.2.10 1236",
    );
    qemu.expect_within("the TCP echo", COMMAND_TIMEOUT, |t| {
        t.lines().any(|l| l.trim() == "lions-tcp-42")
    });
    // UDP: busybox's nslookup sends its DNS queries (A and AAAA) to the echo port; each echoed
    // query comes back and is read as a reply without answers ("Non-authoritative answer:"),
    // where no reply would time out.
    type_line(
        &mut qemu,
        "nslookup lions-udp 10.0.2.10:1235; echo nslookup-done",
    );
    let text = qemu.expect_within("nslookup's outcome", COMMAND_TIMEOUT, |t| {
        t.lines().any(|l| l.trim() == "nslookup-done")
    });
    let tail = &text[text.rfind("nslookup lions-udp").unwrap_or(0)..];
    let _ = writeln!(
        std::io::stderr(),
        "linux_vm: UDP echo via nslookup:\n{tail}"
    );
    assert!(
        tail.matches("Non-authoritative answer:").count() == 2 && !tail.contains("timed out"),
        "no UDP echo:\n{tail}"
    );
    assert!(!text.contains("MON|ERROR"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() -> std::process::ExitCode {
    common::harness::run(vec![common::harness::Trial {
        name: "linux_vm_guest_reaches_a_shell_on_sel4_in_qemu",
        run: boot_linux_vm,
        not_run: not_runnable(),
    }])
}
