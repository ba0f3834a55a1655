// SPDX-License-Identifier: BSD-2-Clause
//! A flattened device tree (FDT, devicetree specification v0.4 §5) writer, and the guest's tree
//! built from the VMM's configuration.
//!
//! **Format.** A 40-byte big-endian header (`magic` 0xd00dfeed, `totalsize`, `off_dt_struct`,
//! `off_dt_strings`, `off_mem_rsvmap`, `version` 17, `last_comp_version` 16, `boot_cpuid_phys`,
//! `size_dt_strings`, `size_dt_struct`); the memory-reservation block (empty: one `(0, 0)`
//! pair); the structure block of tokens `BEGIN_NODE` (1, then the NUL-terminated name padded to
//! 4 bytes), `PROP` (3, `len`, `nameoff`, value padded to 4), `END_NODE` (2) and `END` (9); then
//! the strings block of NUL-terminated property names, each stored once.
//!
//! [`FdtWriter`] writes into a caller's buffer with no allocation; every error is sticky and
//! reported by [`FdtWriter::finish`] (buffer too small, string table full, unbalanced nodes, a
//! name with a NUL). [`guest_tree`] writes a complete tree for an AArch64 Linux guest from a
//! [`GuestDt`]: CPUs with PSCI enable-method, the PSCI node, memory, the GICv2, the architected
//! timer (its virtual PPI is [`crate::gic::VTIMER_PPI`]), one `virtio,mmio` node per device,
//! and `/chosen` with `bootargs` and `linux,initrd-start`/`-end`.

use crate::gic::VTIMER_PPI;

/// The FDT magic.
pub const MAGIC: u32 = 0xd00d_feed;
const HEADER: usize = 40;
const RSVMAP: usize = 16;
/// Room for property names.
pub const STRINGS_MAX: usize = 512;

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const END: u32 = 9;

/// Why a tree could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// The output buffer is too small.
    NoSpace,
    /// More distinct property names than [`STRINGS_MAX`] bytes hold.
    StringsFull,
    /// `end_node` without `begin_node`, or `finish` with nodes open, or a property outside a
    /// node.
    Unbalanced,
    /// A node or property name contains a NUL.
    BadName,
}

/// Writes an FDT into a byte buffer.
#[derive(Debug)]
pub struct FdtWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    strings: [u8; STRINGS_MAX],
    slen: usize,
    depth: usize,
    err: Option<FdtError>,
}

impl<'a> FdtWriter<'a> {
    /// A writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        let mut w = Self {
            buf,
            pos: HEADER + RSVMAP,
            strings: [0; STRINGS_MAX],
            slen: 0,
            depth: 0,
            err: None,
        };
        if w.buf.len() < w.pos {
            w.err = Some(FdtError::NoSpace);
        } else {
            w.buf[..w.pos].fill(0);
        }
        w
    }

    fn fail(&mut self, e: FdtError) {
        self.err.get_or_insert(e);
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.err.is_some() {
            return;
        }
        let pad = (4 - bytes.len() % 4) % 4;
        let end = self.pos + bytes.len() + pad;
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst[..bytes.len()].copy_from_slice(bytes);
                dst[bytes.len()..].fill(0);
                self.pos = end;
            }
            None => self.fail(FdtError::NoSpace),
        }
    }

    fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    /// Opens node `name` (the root is `""`).
    pub fn begin_node(&mut self, name: &str) {
        if name.as_bytes().contains(&0) {
            return self.fail(FdtError::BadName);
        }
        self.put_u32(BEGIN_NODE);
        // The name with its NUL, padded: written as two pieces would pad twice.
        if self.err.is_none() {
            let n = name.len() + 1;
            let pad = (4 - n % 4) % 4;
            match self.buf.get_mut(self.pos..self.pos + n + pad) {
                Some(dst) => {
                    dst[..name.len()].copy_from_slice(name.as_bytes());
                    dst[name.len()..].fill(0);
                    self.pos += n + pad;
                }
                None => self.fail(FdtError::NoSpace),
            }
        }
        self.depth += 1;
    }

    /// Closes the open node.
    pub fn end_node(&mut self) {
        if self.depth == 0 {
            return self.fail(FdtError::Unbalanced);
        }
        self.depth -= 1;
        self.put_u32(END_NODE);
    }

    fn string_offset(&mut self, name: &str) -> Option<u32> {
        let nb = name.as_bytes();
        // An existing copy (each string is NUL-terminated in the table).
        let mut at = 0;
        while at < self.slen {
            let end = self.strings[at..self.slen]
                .iter()
                .position(|&b| b == 0)
                .map_or(self.slen, |p| at + p);
            if &self.strings[at..end] == nb {
                return u32::try_from(at).ok();
            }
            at = end + 1;
        }
        let end = self.slen + nb.len() + 1;
        let dst = self.strings.get_mut(self.slen..end)?;
        dst[..nb.len()].copy_from_slice(nb);
        dst[nb.len()] = 0;
        let off = self.slen;
        self.slen = end;
        u32::try_from(off).ok()
    }

    /// Adds property `name` with raw `value`.
    pub fn property(&mut self, name: &str, value: &[u8]) {
        if self.depth == 0 {
            return self.fail(FdtError::Unbalanced);
        }
        if name.as_bytes().contains(&0) || name.is_empty() {
            return self.fail(FdtError::BadName);
        }
        let Some(off) = self.string_offset(name) else {
            return self.fail(FdtError::StringsFull);
        };
        let Ok(len) = u32::try_from(value.len()) else {
            return self.fail(FdtError::NoSpace);
        };
        self.put_u32(PROP);
        self.put_u32(len);
        self.put_u32(off);
        self.put(value);
    }

    /// An empty (boolean) property.
    pub fn property_empty(&mut self, name: &str) {
        self.property(name, &[]);
    }

    /// A `u32` property.
    pub fn property_u32(&mut self, name: &str, v: u32) {
        self.property(name, &v.to_be_bytes());
    }

    /// A `u64` property (two cells).
    pub fn property_u64(&mut self, name: &str, v: u64) {
        self.property(name, &v.to_be_bytes());
    }

    /// A property of several cells.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) {
        // At most 16 cells (the largest this crate writes), big endian.
        let mut b = [0u8; 64];
        let n = cells.len().min(16);
        for (i, c) in cells[..n].iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&c.to_be_bytes());
        }
        self.property(name, &b[..4 * n]);
    }

    /// A string property (NUL-terminated in the blob). Several strings: separate them by
    /// `"\0"` in `s`.
    pub fn property_str(&mut self, name: &str, s: &str) {
        if self.depth == 0 {
            return self.fail(FdtError::Unbalanced);
        }
        let Some(off) = self.string_offset(name) else {
            return self.fail(FdtError::StringsFull);
        };
        let Ok(len) = u32::try_from(s.len() + 1) else {
            return self.fail(FdtError::NoSpace);
        };
        self.put_u32(PROP);
        self.put_u32(len);
        self.put_u32(off);
        if self.err.is_none() {
            let n = s.len() + 1;
            let pad = (4 - n % 4) % 4;
            match self.buf.get_mut(self.pos..self.pos + n + pad) {
                Some(dst) => {
                    dst[..s.len()].copy_from_slice(s.as_bytes());
                    dst[s.len()..].fill(0);
                    self.pos += n + pad;
                }
                None => self.fail(FdtError::NoSpace),
            }
        }
    }

    /// Ends the tree and writes the header; returns the blob's size.
    pub fn finish(mut self) -> Result<usize, FdtError> {
        if self.depth != 0 {
            self.fail(FdtError::Unbalanced);
        }
        self.put_u32(END);
        if let Some(e) = self.err {
            return Err(e);
        }
        let struct_size = self.pos - HEADER - RSVMAP;
        let strings_at = self.pos;
        let total = strings_at + self.slen;
        let dst = self
            .buf
            .get_mut(strings_at..total)
            .ok_or(FdtError::NoSpace)?;
        dst.copy_from_slice(&self.strings[..self.slen]);
        let cell = |v: usize| u32::try_from(v).map_err(|_| FdtError::NoSpace);
        let header = [
            MAGIC,
            cell(total)?,
            cell(HEADER + RSVMAP)?,
            cell(strings_at)?,
            cell(HEADER)?,
            17,
            16,
            0,
            cell(self.slen)?,
            cell(struct_size)?,
        ];
        for (i, h) in header.iter().enumerate() {
            self.buf[4 * i..4 * i + 4].copy_from_slice(&h.to_be_bytes());
        }
        Ok(total)
    }
}

/// One virtio-mmio device in the guest's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioNode {
    /// Guest-physical base of its window.
    pub base: u64,
    /// Size of the window.
    pub size: u64,
    /// Its SPI INTID (32 or above).
    pub irq: u32,
}

/// What the guest's tree describes.
#[derive(Debug, Clone, Copy)]
pub struct GuestDt<'c> {
    /// Number of vCPUs (MPIDR affinity 0 = index).
    pub ncpus: u32,
    /// RAM regions `(base, size)`.
    pub memory: &'c [(u64, u64)],
    /// GICv2 distributor base (4 KiB window).
    pub gicd: u64,
    /// GICv2 CPU interface base (8 KiB window, the hardware virtual CPU interface).
    pub gicc: u64,
    /// virtio-mmio devices.
    pub virtio: &'c [VirtioNode],
    /// Kernel command line.
    pub bootargs: &'c str,
    /// The initrd `(start, end)` (end exclusive), if any.
    pub initrd: Option<(u64, u64)>,
    /// PSCI conduit: `"smc"` or `"hvc"`.
    pub psci_method: &'c str,
}

fn hi(v: u64) -> u32 {
    u32::try_from(v >> 32).unwrap_or(0)
}
fn lo(v: u64) -> u32 {
    u32::try_from(v & 0xffff_ffff).unwrap_or(0)
}

/// Writes `name@unit` (unit in hex) into `out`; returns it as a `str`.
fn unit_name<'b>(out: &'b mut [u8; 40], name: &str, unit: u64) -> &'b str {
    let mut n = 0;
    for &b in name.as_bytes().iter().take(20) {
        out[n] = b;
        n += 1;
    }
    out[n] = b'@';
    n += 1;
    let digits = if unit == 0 {
        1
    } else {
        (64 - unit.leading_zeros()).div_ceil(4)
    };
    for d in (0..digits).rev() {
        let nib = u8::try_from((unit >> (4 * d)) & 0xf).unwrap_or(0);
        out[n] = if nib < 10 {
            b'0' + nib
        } else {
            b'a' + nib - 10
        };
        n += 1;
    }
    core::str::from_utf8(&out[..n]).unwrap_or("node")
}

/// GIC phandle in the guest's tree.
pub const GIC_PHANDLE: u32 = 1;

/// Writes the guest's device tree into `buf`; returns its size.
pub fn guest_tree(cfg: &GuestDt<'_>, buf: &mut [u8]) -> Result<usize, FdtError> {
    let mut w = FdtWriter::new(buf);
    let mut name = [0u8; 40];
    w.begin_node("");
    w.property_str("compatible", "linux,dummy-virt");
    w.property_u32("#address-cells", 2);
    w.property_u32("#size-cells", 2);
    w.property_u32("interrupt-parent", GIC_PHANDLE);
    cpu_nodes(&mut w, cfg, &mut name);
    for &(base, size) in cfg.memory {
        w.begin_node(unit_name(&mut name, "memory", base));
        w.property_str("device_type", "memory");
        w.property_cells("reg", &[hi(base), lo(base), hi(size), lo(size)]);
        w.end_node();
    }
    interrupt_nodes(&mut w, cfg, &mut name);
    for v in cfg.virtio {
        w.begin_node(unit_name(&mut name, "virtio_mmio", v.base));
        w.property_str("compatible", "virtio,mmio");
        w.property_cells("reg", &[hi(v.base), lo(v.base), hi(v.size), lo(v.size)]);
        // SPI, edge rising.
        w.property_cells("interrupts", &[0, v.irq.saturating_sub(32), 1]);
        w.property_empty("dma-coherent");
        w.end_node();
    }

    w.begin_node("chosen");
    w.property_str("bootargs", cfg.bootargs);
    if let Some((start, end)) = cfg.initrd {
        w.property_u64("linux,initrd-start", start);
        w.property_u64("linux,initrd-end", end);
    }
    w.end_node();
    w.end_node();
    w.finish()
}

/// The `cpus` node (one `cpu@N` per vCPU, started by PSCI) and the `psci` node.
fn cpu_nodes(w: &mut FdtWriter<'_>, cfg: &GuestDt<'_>, name: &mut [u8; 40]) {
    w.begin_node("cpus");
    w.property_u32("#address-cells", 1);
    w.property_u32("#size-cells", 0);
    for c in 0..cfg.ncpus {
        w.begin_node(unit_name(name, "cpu", u64::from(c)));
        w.property_str("device_type", "cpu");
        w.property_str("compatible", "arm,armv8");
        w.property_u32("reg", c);
        w.property_str("enable-method", "psci");
        w.end_node();
    }
    w.end_node();

    w.begin_node("psci");
    w.property_str("compatible", "arm,psci-1.0\0arm,psci-0.2");
    w.property_str("method", cfg.psci_method);
    w.end_node();
}

/// The GIC (`intc`: distributor and CPU interface) and the `timer` node with its four PPIs.
fn interrupt_nodes(w: &mut FdtWriter<'_>, cfg: &GuestDt<'_>, name: &mut [u8; 40]) {
    w.begin_node(unit_name(name, "intc", cfg.gicd));
    w.property_str("compatible", "arm,cortex-a15-gic");
    w.property_empty("interrupt-controller");
    w.property_u32("#interrupt-cells", 3);
    w.property_u32("#address-cells", 0);
    w.property_cells(
        "reg",
        &[
            hi(cfg.gicd),
            lo(cfg.gicd),
            0,
            0x1000,
            hi(cfg.gicc),
            lo(cfg.gicc),
            0,
            0x2000,
        ],
    );
    w.property_u32("phandle", GIC_PHANDLE);
    w.end_node();

    // PPIs: secure physical 29, non-secure physical 30, virtual 27, hypervisor 26; level-low,
    // every CPU.
    let mask = ((1u32 << cfg.ncpus.min(8)) - 1) << 8;
    let ppi = |intid: u32| [1, intid - 16, mask | 8];
    let vt = u32::from(VTIMER_PPI);
    let mut cells = [0u32; 12];
    for (i, p) in [29, 30, vt, 26].into_iter().enumerate() {
        cells[3 * i..3 * i + 3].copy_from_slice(&ppi(p));
    }
    w.begin_node("timer");
    w.property_str("compatible", "arm,armv8-timer");
    w.property_cells("interrupts", &cells);
    w.property_empty("always-on");
    w.end_node();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// A test reader: the flattened tokens as `(path, property, value)` triples.
    fn props(blob: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let be = |at: usize| u32::from_be_bytes(blob[at..at + 4].try_into().unwrap());
        assert_eq!(be(0), MAGIC);
        assert_eq!(be(4) as usize, blob.len());
        let (st, sp) = (be(8) as usize, be(12) as usize);
        assert_eq!((be(20), be(24)), (17, 16));
        assert_eq!(be(32) as usize, blob.len() - sp);
        let mut out = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut at = st;
        loop {
            let tok = be(at);
            at += 4;
            match tok {
                BEGIN_NODE => {
                    let end = at + blob[at..].iter().position(|&b| b == 0).unwrap();
                    path.push(String::from_utf8(blob[at..end].to_vec()).unwrap());
                    at = (end + 4) & !3;
                }
                END_NODE => {
                    path.pop().unwrap();
                }
                PROP => {
                    let (len, off) = (be(at) as usize, be(at + 4) as usize);
                    let nstart = sp + off;
                    let nend = nstart + blob[nstart..].iter().position(|&b| b == 0).unwrap();
                    let name = String::from_utf8(blob[nstart..nend].to_vec()).unwrap();
                    out.push((path.join("/"), name, blob[at + 8..at + 8 + len].to_vec()));
                    at = (at + 8 + len + 3) & !3;
                }
                END => break,
                t => panic!("token {t}"),
            }
        }
        assert!(path.is_empty());
        assert_eq!(at, st + be(36) as usize);
        out
    }

    fn get<'p>(p: &'p [(String, String, Vec<u8>)], path: &str, name: &str) -> &'p [u8] {
        &p.iter()
            .find(|(a, b, _)| a == path && b == name)
            .unwrap_or_else(|| panic!("{path} {name}"))
            .2
    }

    fn config() -> GuestDt<'static> {
        GuestDt {
            ncpus: 2,
            memory: &[(0x4000_0000, 0x1000_0000)],
            gicd: 0x0800_0000,
            gicc: 0x0801_0000,
            virtio: &[
                VirtioNode {
                    base: 0x0a00_0000,
                    size: 0x200,
                    irq: 48,
                },
                VirtioNode {
                    base: 0x0a00_0200,
                    size: 0x200,
                    irq: 49,
                },
            ],
            bootargs: "console=hvc0 root=/dev/vda",
            initrd: Some((0x4800_0000, 0x4810_0000)),
            psci_method: "smc",
        }
    }

    #[test]
    fn guest_tree_has_the_configured_nodes() {
        let mut buf = [0u8; 4096];
        let n = guest_tree(&config(), &mut buf).unwrap();
        let p = props(&buf[..n]);
        assert_eq!(
            get(&p, "/memory@40000000", "reg"),
            [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]
        );
        assert_eq!(get(&p, "/memory@40000000", "device_type"), b"memory\0");
        assert_eq!(
            get(&p, "/virtio_mmio@a000200", "compatible"),
            b"virtio,mmio\0"
        );
        assert_eq!(
            get(&p, "/virtio_mmio@a000200", "interrupts"),
            [0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 1]
        );
        assert_eq!(
            get(&p, "/chosen", "bootargs"),
            b"console=hvc0 root=/dev/vda\0"
        );
        assert_eq!(
            get(&p, "/chosen", "linux,initrd-start"),
            0x4800_0000u64.to_be_bytes()
        );
        assert_eq!(
            get(&p, "/chosen", "linux,initrd-end"),
            0x4810_0000u64.to_be_bytes()
        );
        assert_eq!(get(&p, "/cpus/cpu@1", "reg"), 1u32.to_be_bytes());
        assert_eq!(
            get(&p, "/psci", "compatible"),
            b"arm,psci-1.0\0arm,psci-0.2\0"
        );
        assert_eq!(
            get(&p, "/intc@8000000", "phandle"),
            GIC_PHANDLE.to_be_bytes()
        );
        // The virtual timer is the third interrupt: PPI 11 (INTID 27), both CPUs.
        assert_eq!(
            &get(&p, "/timer", "interrupts")[24..36],
            [0, 0, 0, 1, 0, 0, 0, 11, 0, 0, 3, 8]
        );
        // Each property name is stored once.
        let strings =
            &buf[usize::try_from(u32::from_be_bytes(buf[12..16].try_into().unwrap())).unwrap()..n];
        assert_eq!(
            strings.windows(10).filter(|w| *w == b"compatible").count(),
            1
        );
        // It passes the loader's DTB check.
        assert_eq!(crate::linux::check_dtb(&buf[..n]), Ok(n as u64));
        // Without an initrd there are no initrd properties.
        let mut cfg = config();
        cfg.initrd = None;
        let n = guest_tree(&cfg, &mut buf).unwrap();
        assert!(
            !props(&buf[..n])
                .iter()
                .any(|(_, name, _)| name.starts_with("linux,initrd"))
        );
    }

    #[test]
    fn writer_errors() {
        let mut small = [0u8; 100];
        assert_eq!(guest_tree(&config(), &mut small), Err(FdtError::NoSpace));
        let mut tiny = [0u8; 10];
        assert_eq!(FdtWriter::new(&mut tiny).finish(), Err(FdtError::NoSpace));
        let mut buf = [0u8; 256];
        let mut w = FdtWriter::new(&mut buf);
        w.end_node();
        assert_eq!(w.finish(), Err(FdtError::Unbalanced));
        let mut w = FdtWriter::new(&mut buf);
        w.begin_node("");
        assert_eq!(w.finish(), Err(FdtError::Unbalanced));
        let mut w = FdtWriter::new(&mut buf);
        w.property_u32("x", 1);
        assert_eq!(w.finish(), Err(FdtError::Unbalanced));
        let mut w = FdtWriter::new(&mut buf);
        w.begin_node("a\0b");
        assert_eq!(w.finish(), Err(FdtError::BadName));
        let mut big = [0u8; 8192];
        let mut w = FdtWriter::new(&mut big);
        w.begin_node("");
        let mut names = [0u8; 40];
        for i in 0..100 {
            w.property_empty(unit_name(&mut names, "a-long-property-name", i));
        }
        w.end_node();
        assert_eq!(w.finish(), Err(FdtError::StringsFull));
    }

    #[test]
    fn empty_root() {
        let mut buf = [0u8; 128];
        let mut w = FdtWriter::new(&mut buf);
        w.begin_node("");
        w.end_node();
        let n = w.finish().unwrap();
        // Header, reservation map, BEGIN_NODE + empty name, END_NODE, END.
        assert_eq!(n, 40 + 16 + 8 + 4 + 4);
        assert!(props(&buf[..n]).is_empty());
    }

    /// The blob read back by the reference compiler (`dtc`, Debian's `device-tree-compiler`, one of
    /// the README's machine packages).
    #[test]
    fn dtc_reads_the_guest_tree() {
        let mut buf = [0u8; 4096];
        let n = guest_tree(&config(), &mut buf).unwrap();
        let dir = std::env::temp_dir().join(std::format!("lions-vmm-fdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("guest.dtb");
        std::fs::write(&path, &buf[..n]).unwrap();
        let out = std::process::Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("dtc (Debian: device-tree-compiler, in the README's package list): {e}")
            });
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(!warnings.contains("Warning"), "{warnings}");
        let dts = String::from_utf8(out.stdout).unwrap();
        assert!(dts.contains("virtio_mmio@a000000"));
        assert!(dts.contains("linux,initrd-start = <0x00 0x48000000>;"));
    }
}
