// SPDX-License-Identifier: BSD-2-Clause
//! `cargo xtask guest-images`: the Linux guest of `examples/linux_vm`, made from Debian packages
//! only and cached under `target/guest-images/` (never committed, nothing fetched from anywhere
//! but the machine's Debian archive).
//!
//! 1. `apt-get download` the arm64 cloud kernel (the package `linux-image-cloud-arm64` depends
//!    on) and `busybox-static:arm64` (needs `dpkg --add-architecture arm64 && apt-get update`).
//! 2. `dpkg-deb -x` both; the kernel package's `boot/vmlinuz-*` is the arm64 `Image` (gunzipped
//!    if the package ships it compressed).
//! 3. An initramfs (`newc` cpio, written here): busybox, the virtio modules the cloud kernel
//!    builds as modules (`virtio`, `virtio_ring`, `virtio_mmio`, `virtio_console`,
//!    `virtio_blk`, `failover`, `net_failover`, `virtio_net`, the FAT code pages, `fat`, `vfat`), `/dev/console`,
//!    and [`INIT`], which loads them and starts a shell on `hvc0`.
//!
//! Output: `Image`, `initrd` and `packages.txt` (the package versions used).

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's `/init`: mount the pseudo file systems, load the virtio modules, then a shell on
/// the virtio console (which exists only once `virtio_console` is loaded).
pub const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_mmio virtio_console virtio_blk failover net_failover virtio_net nls_cp437 nls_ascii nls_utf8 fat vfat; do
    [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
n=0
while [ ! -e /dev/hvc0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done
[ -e /dev/hvc0 ] || { echo "lions-vm: no /dev/hvc0"; exec sh; }
exec 0</dev/hvc0 1>/dev/hvc0 2>&1
echo "lions-vm: up $(cut -d' ' -f1 /proc/uptime)s"
export PS1='guest# '
exec setsid cttyhack sh
"#;

/// The modules the initramfs carries, in load order.
pub const MODULES: [&str; 13] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "fat",
    "vfat",
];

/// Where the images go: `$LIONS_GUEST_IMAGES` or `<root>/target/guest-images` (the VMM's build
/// script looks in the same place).
pub fn dir(root: &Path) -> PathBuf {
    std::env::var_os("LIONS_GUEST_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/guest-images"))
}

fn run(cmd: &mut Command, what: &str) -> Result<String, Error> {
    let out = cmd.output().map_err(|source| Error::Start {
        program: what.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Failed {
            program: what.to_owned(),
            status: out.status,
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let (doing, path) = (doing.to_owned(), path.to_owned());
    move |source| Error::Io {
        doing,
        path,
        source,
    }
}

/// Makes (or finds cached) `Image` and `initrd`; returns the folder.
pub fn make(root: &Path) -> Result<PathBuf, Error> {
    let out = dir(root);
    let (image, initrd) = (out.join("Image"), out.join("initrd"));
    // The cache is good while the recipe (init script and module list) is the one that made it.
    let recipe = format!("{INIT}\n{}\n", MODULES.join(" "));
    let recipe_file = out.join("recipe.txt");
    if image.is_file()
        && initrd.is_file()
        && std::fs::read_to_string(&recipe_file).is_ok_and(|r| r == recipe)
    {
        return Ok(out);
    }
    let arches = run(
        Command::new("dpkg").arg("--print-foreign-architectures"),
        "dpkg --print-foreign-architectures",
    )?;
    if !arches.lines().any(|l| l.trim() == "arm64") {
        return Err(Error::Missing(
            "the guest images come from Debian's arm64 packages: run \
             `dpkg --add-architecture arm64 && apt-get update` first"
                .to_owned(),
        ));
    }
    let deps = run(
        Command::new("apt-cache").args(["depends", "linux-image-cloud-arm64:arm64"]),
        "apt-cache depends linux-image-cloud-arm64:arm64",
    )?;
    let kernel_pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.trim_end_matches(":arm64"))
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| Error::Missing("no kernel package behind linux-image-cloud-arm64".into()))?
        .to_owned();
    let debs = out.join("debs");
    std::fs::create_dir_all(&debs).map_err(io("creating", &debs))?;
    run(
        Command::new("apt-get").current_dir(&debs).args([
            "download",
            &format!("{kernel_pkg}:arm64"),
            "busybox-static:arm64",
        ]),
        "apt-get download",
    )?;
    let tree = out.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(&tree).map_err(io("creating", &tree))?;
    let mut versions = String::new();
    for entry in std::fs::read_dir(&debs).map_err(io("reading", &debs))? {
        let deb = entry.map_err(io("reading", &debs))?.path();
        if deb.extension().is_some_and(|e| e == "deb") {
            run(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree),
                "dpkg-deb -x",
            )?;
            if let Some(name) = deb.file_name() {
                versions.push_str(&name.to_string_lossy());
                versions.push('\n');
            }
        }
    }
    // The kernel: boot/vmlinuz-<version>.
    let boot = tree.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(io("reading", &boot))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| Error::Missing(format!("no vmlinuz-* in {kernel_pkg}")))?;
    let version = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_owned()
        })
        .unwrap_or_default();
    let mut kernel = std::fs::read(&vmlinuz).map_err(io("reading", &vmlinuz))?;
    if kernel.starts_with(&[0x1f, 0x8b]) {
        let text = Command::new("gzip")
            .args(["-dc"])
            .arg(&vmlinuz)
            .output()
            .map_err(|source| Error::Start {
                program: "gzip -dc".into(),
                source,
            })?;
        kernel = text.stdout;
    }
    if kernel.get(56..60) != Some(b"ARM\x64".as_slice()) {
        return Err(Error::Missing(format!(
            "{} is not an arm64 Image (no ARM\\x64 magic)",
            vmlinuz.display()
        )));
    }
    // The initramfs.
    let mut cpio = Cpio::default();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "mnt",
        "tmp",
        "lib",
        "lib/modules",
        "root",
    ] {
        cpio.dir(d);
    }
    cpio.node("dev/console", 0o020_600, (5, 1));
    let busybox = tree.join("bin/busybox");
    cpio.file(
        "bin/busybox",
        0o755,
        &std::fs::read(&busybox).map_err(io("reading", &busybox))?,
    );
    cpio.file("init", 0o755, INIT.as_bytes());
    let moddir = tree.join("lib/modules").join(&version).join("kernel");
    for m in MODULES {
        if let Some(path) = find_module(&moddir, m) {
            cpio.file(
                &format!("lib/modules/{m}.ko"),
                0o644,
                &std::fs::read(&path).map_err(io("reading", &path))?,
            );
        }
    }
    let bytes = cpio.finish();
    std::fs::write(&initrd, bytes).map_err(io("writing", &initrd))?;
    std::fs::write(&image, kernel).map_err(io("writing", &image))?;
    std::fs::write(&recipe_file, recipe).map_err(io("writing", &recipe_file))?;
    let list = out.join("packages.txt");
    std::fs::write(&list, versions).map_err(io("writing", &list))?;
    let _ = std::fs::remove_dir_all(&tree);
    Ok(out)
}

fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    let want = format!("{name}.ko");
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n.to_string_lossy() == want) {
                return Some(p);
            }
        }
    }
    None
}

/// A `newc` cpio archive (the initramfs format the kernel unpacks).
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(namesize).unwrap_or(u32::MAX),
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    /// A directory (mode 0755).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, (0, 0), &[]);
    }
    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100_000 | perm, (0, 0), data);
    }
    /// A device node (`mode` includes the type bits).
    pub fn node(&mut self, name: &str, mode: u32, rdev: (u32, u32)) {
        self.entry(name, mode, rdev, &[]);
    }
    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let a = c.finish();
        assert_eq!(&a[..6], b"070701");
        // mode field (second), file size (seventh), name size (twelfth).
        assert_eq!(&a[14..22], b"000081ed");
        assert_eq!(&a[54..62], b"0000000a");
        assert_eq!(&a[94..102], b"00000005");
        assert_eq!(&a[110..115], b"init\0");
        // header 110 + name 5 = 115, padded to 116; data 10 padded to 12.
        assert_eq!(&a[116..126], b"#!/bin/sh\n");
        assert_eq!(&a[128..134], b"070701");
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(a.len() % 4, 0);
    }
}
