// SPDX-License-Identifier: BSD-2-Clause
//! The host board's block device (`lions,host-blk`): a raw image file as a [`BlkDevice`].
//!
//! - **Geometry**: capacity = file size / 4096 (a trailing partial block is not used), sector size
//!   512, optimal size one block, serial number = the file's name (truncated to 63 bytes).
//!   Opened read-only on request ([`HostBlk::open`]); the storage info then says so and the
//!   generic loop refuses writes.
//! - **I/O**: synchronous `pread`/`pwrite` at block × 4096, straight between the file and the
//!   buffer at the request's I/O address: the kernel does the copy, so no Rust reference to the
//!   shared buffer is ever made, and a page that is not mapped (or not writable for a READ) is
//!   `EFAULT`, answered `ErrIo`, never a crash. FLUSH is `fdatasync`.
//! - **DMA**: a host process has no device addresses, so on the host board DMA is identity: a data
//!   region the virt hands out I/O addresses for is mapped into the driver at vaddr = its
//!   `phys_addr`. The device accepts only addresses inside the windows it was given
//!   ([`HostBlk::add_dma_window`]); anything else is answered `ErrIo` without touching memory.
//!   [`shared_regions`] lists this process's shared region mappings (lions-host's region memfds)
//!   to find them.
//! - **IRQ**: completions are ready at once, so the loop takes them in the same event. An eventfd
//!   ([`HostBlk::attach_irq`]) is readable exactly while completions wait (written when one is
//!   queued, drained when the last is taken), so a completion the loop did not take raises the IRQ
//!   and none is raised for nothing.

use lions_blk::{
    BLK_TRANSFER_SIZE, BlkDevice, BlkStorageInfo, DeviceCompletion, DeviceOp, DeviceRequest,
    ResponseStatus,
};
use lions_os::{Channel, OsError};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

const BLK: u64 = BLK_TRANSFER_SIZE as u64;

/// A file-backed block device; see the [module docs](self).
#[derive(Debug)]
pub struct HostBlk {
    file: File,
    info: BlkStorageInfo,
    event: OwnedFd,
    done: VecDeque<DeviceCompletion>,
    /// Where I/O may go: (I/O address = address here, length).
    windows: Vec<(u64, u64)>,
}

impl HostBlk {
    /// The image at `path`, read-write unless `read_only`.
    pub fn open(path: &Path, read_only: bool) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or(b"");
        Self::from_file(file, read_only, name)
    }

    /// The image in `file` (opened for writing too unless `read_only`), with `serial` as its
    /// serial number.
    pub fn from_file(file: File, read_only: bool, serial: &[u8]) -> io::Result<Self> {
        let mut serial_number = [0u8; 64];
        let n = serial.len().min(63);
        serial_number[..n].copy_from_slice(&serial[..n]);
        let info = BlkStorageInfo {
            serial_number,
            read_only: u8::from(read_only),
            ready: 0,
            sector_size: 512,
            block_size: 1,
            queue_depth: 0,
            cylinders: 0,
            heads: 0,
            blocks: 0,
            _pad: 0,
            capacity: file.metadata()?.len() / BLK,
        };
        // SAFETY: plain system call; a new descriptor we own on success.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created for us and nothing else owns it.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self {
            file,
            info,
            event,
            done: VecDeque::new(),
            windows: Vec::new(),
        })
    }

    /// Let the device do I/O at `io_addr..io_addr + len`, which is also the address range in this
    /// process.
    ///
    /// # Safety
    /// The range is memory this process maps for device I/O (a shared region, on the host board
    /// mapped at vaddr = its I/O address) and no Rust reference in this process covers it while
    /// the device lives: the device writes it behind the compiler's back.
    pub unsafe fn add_dma_window(&mut self, io_addr: u64, len: u64) {
        self.windows.push((io_addr, len));
    }

    /// Deliver this device's completion interrupt on `irq` (an `<irq>` channel of this PD, from
    /// `.device_resources`). Call it once, in `init`.
    pub fn attach_irq(&self, irq: Channel) -> Result<(), OsError> {
        lions_os::host::register_irq_fd(irq, self.event.as_fd())
    }

    /// The interrupt eventfd: readable while completions wait.
    pub fn irq_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }

    fn inside(&self, io: u64, len: u64) -> bool {
        let end = io.checked_add(len);
        self.windows
            .iter()
            .any(|&(a, l)| io >= a && end.is_some_and(|e| e <= a + l))
    }

    /// Do `r`; returns the status and the blocks done.
    fn run(&mut self, r: &DeviceRequest) -> (ResponseStatus, u16) {
        if r.op == DeviceOp::Flush {
            // SAFETY: plain system call on our file.
            let ok = unsafe { libc::fdatasync(self.file.as_raw_fd()) } == 0;
            return (
                if ok {
                    ResponseStatus::Ok
                } else {
                    ResponseStatus::ErrIo
                },
                0,
            );
        }
        let len = r.len();
        let start = r
            .block
            .checked_mul(BLK)
            .filter(|s| s.checked_add(len).is_some());
        let Some(start) = start.filter(|_| self.inside(r.io_addr, len)) else {
            return (ResponseStatus::ErrIo, 0);
        };
        let mut done = 0u64;
        while done < len {
            // Inside a window, so inside this address space.
            let (Ok(addr), Ok(n)) = (
                usize::try_from(r.io_addr + done),
                usize::try_from(len - done),
            ) else {
                break;
            };
            let buf = std::ptr::with_exposed_provenance_mut::<u8>(addr);
            let at = libc::off_t::try_from(start + done).unwrap_or(libc::off_t::MAX);
            let fd = self.file.as_raw_fd();
            // SAFETY: `buf..buf + n` lies in a DMA window (checked above), memory no Rust
            // reference covers (the window's contract); the kernel copies between it and the file
            // and fails with EFAULT on any page that is not mapped as needed.
            let got = unsafe {
                match r.op {
                    DeviceOp::Read => libc::pread(fd, buf.cast(), n, at),
                    _ => libc::pwrite(fd, buf.cast(), n, at),
                }
            };
            match u64::try_from(got) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(_) if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let blocks = u16::try_from(done / BLK).unwrap_or(u16::MAX);
        let status = if done == len {
            ResponseStatus::Ok
        } else {
            ResponseStatus::ErrIo
        };
        (
            status,
            if done == len {
                r.count
            } else {
                blocks.min(r.count)
            },
        )
    }
}

impl BlkDevice for HostBlk {
    fn info(&mut self) -> Option<BlkStorageInfo> {
        Some(self.info)
    }

    fn submit(&mut self, req: DeviceRequest) -> Result<(), DeviceRequest> {
        let (status, blocks) = self.run(&req);
        self.done.push_back(DeviceCompletion {
            id: req.id,
            status,
            blocks,
        });
        // Make the eventfd readable: a completion waits. A failed write leaves the counter
        // non-zero (EAGAIN only at its maximum), which is what we want.
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.event.as_raw_fd(), (&1u64 as *const u64).cast(), 8) };
        Ok(())
    }

    fn complete(&mut self) -> Option<DeviceCompletion> {
        let c = self.done.pop_front();
        if self.done.is_empty() {
            self.ack_irq();
        }
        c
    }

    fn ack_irq(&mut self) {
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64 from our non-blocking eventfd; EAGAIN
        // (nothing pending) is fine.
        unsafe { libc::read(self.event.as_raw_fd(), (&raw mut count).cast(), 8) };
    }
}

/// This process's shared, writable region mappings made by lions-host (region memfds): (start,
/// length, region name), from `/proc/self/maps`.
pub fn shared_regions() -> io::Result<Vec<(u64, u64, String)>> {
    Ok(parse_maps(&std::fs::read_to_string("/proc/self/maps")?))
}

/// The `rw-s` mappings of `lions-region:` memfds in a `/proc/<pid>/maps` text.
fn parse_maps(text: &str) -> Vec<(u64, u64, String)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let path = f.nth(3)?;
            let name = path.strip_prefix("/memfd:lions-region:")?;
            let (lo, hi) = range.split_once('-')?;
            let lo = u64::from_str_radix(lo, 16).ok()?;
            let hi = u64::from_str_radix(hi, 16).ok()?;
            (perms == "rw-s" && hi > lo).then(|| (lo, hi - lo, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A temporary image file of `blocks` blocks (plus `extra` bytes), each block filled with
    /// its number.
    fn image(blocks: u8, extra: usize) -> (std::path::PathBuf, File) {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "lions-host-blk-{}-{}.img",
            std::process::id(),
            rand_suffix()
        ));
        let mut f = File::create(&path).unwrap();
        for b in 0..blocks {
            f.write_all(&[b; BLK_TRANSFER_SIZE]).unwrap();
        }
        f.write_all(&vec![0xee; extra]).unwrap();
        (path, f)
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn readable(fd: BorrowedFd<'_>) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    /// A buffer standing in for a shared data region, declared as the device's window.
    fn with_window(dev: &mut HostBlk, buf: &mut [u64]) -> u64 {
        let io = buf.as_mut_ptr().expose_provenance() as u64;
        // SAFETY: the buffer outlives the device in each test and is only read through
        // `read_back` after the device is done with it.
        unsafe { dev.add_dma_window(io, (buf.len() * 8) as u64) };
        io
    }

    fn req(op: DeviceOp, io_addr: u64, block: u64, count: u16, id: u32) -> DeviceRequest {
        DeviceRequest {
            op,
            io_addr,
            block,
            count,
            id,
        }
    }

    fn bytes(buf: &[u64]) -> Vec<u8> {
        buf.iter().flat_map(|w| w.to_ne_bytes()).collect()
    }

    #[test]
    fn geometry_and_serial() {
        let (path, _f) = image(5, 100);
        let mut d = HostBlk::open(&path, true).unwrap();
        let info = d.info().unwrap();
        assert_eq!(info.capacity, 5, "the partial block is not used");
        assert_eq!((info.sector_size, info.block_size), (512, 1));
        assert!(info.read_only());
        assert!(
            path.to_string_lossy()
                .ends_with(std::str::from_utf8(info.serial_number()).unwrap())
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_write_flush_and_the_irq_fd() {
        let (path, _f) = image(8, 0);
        let mut d = HostBlk::open(&path, false).unwrap();
        let mut buf = vec![0u64; 3 * BLK_TRANSFER_SIZE / 8];
        let io = with_window(&mut d, &mut buf);
        d.submit(req(DeviceOp::Read, io, 2, 2, 7)).unwrap();
        assert!(readable(d.irq_fd()), "a completion waits");
        d.submit(req(DeviceOp::Write, io + BLK, 6, 1, 8)).unwrap();
        let c = d.complete().unwrap();
        assert_eq!((c.id, c.status, c.blocks), (7, ResponseStatus::Ok, 2));
        assert!(readable(d.irq_fd()), "one more waits");
        assert_eq!(d.complete().unwrap().id, 8);
        assert!(!readable(d.irq_fd()), "drained with the last completion");
        assert_eq!(d.complete(), None);
        d.submit(req(DeviceOp::Flush, 0, 0, 0, 9)).unwrap();
        assert_eq!(d.complete().unwrap().status, ResponseStatus::Ok);
        let got = bytes(&buf);
        assert!(got[..BLK_TRANSFER_SIZE].iter().all(|&b| b == 2));
        assert!(
            got[BLK_TRANSFER_SIZE..2 * BLK_TRANSFER_SIZE]
                .iter()
                .all(|&b| b == 3)
        );
        let file = std::fs::read(&path).unwrap();
        assert!(
            file[6 * BLK_TRANSFER_SIZE..7 * BLK_TRANSFER_SIZE]
                .iter()
                .all(|&b| b == 3)
        );
        d.submit(req(DeviceOp::Read, io, 0, 1, 10)).unwrap();
        d.ack_irq();
        assert!(!readable(d.irq_fd()), "ack_irq drains the eventfd");
        assert_eq!(
            d.complete().unwrap().id,
            10,
            "the completion is still there"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn outside_the_windows_nothing_is_touched() {
        let (path, _f) = image(4, 0);
        let mut d = HostBlk::open(&path, false).unwrap();
        let mut buf = vec![0u64; BLK_TRANSFER_SIZE / 8];
        let io = with_window(&mut d, &mut buf);
        for r in [
            req(DeviceOp::Read, io + 8, 0, 1, 1),
            req(DeviceOp::Read, io, 0, 2, 2),
            req(DeviceOp::Write, io - BLK, 0, 1, 3),
            req(DeviceOp::Read, u64::MAX - 100, 0, 1, 4),
        ] {
            d.submit(r).unwrap();
            let c = d.complete().unwrap();
            assert_eq!((c.id, c.status, c.blocks), (r.id, ResponseStatus::ErrIo, 0));
        }
        assert!(buf.iter().all(|&w| w == 0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unmapped_window_is_efault_not_a_crash() {
        let (path, _f) = image(2, 0);
        let mut d = HostBlk::open(&path, false).unwrap();
        // SAFETY: a fresh anonymous mapping with no access rights, unmapped below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BLK_TRANSFER_SIZE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        let io = page.expose_provenance() as u64;
        // SAFETY: nothing in Rust refers to the page.
        unsafe { d.add_dma_window(io, BLK) };
        d.submit(req(DeviceOp::Read, io, 0, 1, 1)).unwrap();
        d.submit(req(DeviceOp::Write, io, 1, 1, 2)).unwrap();
        for id in [1, 2] {
            let c = d.complete().unwrap();
            assert_eq!((c.id, c.status), (id, ResponseStatus::ErrIo));
        }
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(page, BLK_TRANSFER_SIZE) };
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn short_file_and_read_only_write_are_io_errors() {
        let (path, f) = image(4, 0);
        let mut d = HostBlk::open(&path, true).unwrap();
        let mut buf = vec![0u64; 2 * BLK_TRANSFER_SIZE / 8];
        let io = with_window(&mut d, &mut buf);
        d.submit(req(DeviceOp::Write, io, 0, 1, 1)).unwrap();
        assert_eq!(
            d.complete().unwrap().status,
            ResponseStatus::ErrIo,
            "opened read-only"
        );
        f.set_len(3 * BLK + 10).unwrap();
        d.submit(req(DeviceOp::Read, io, 2, 2, 2)).unwrap();
        let c = d.complete().unwrap();
        assert_eq!(
            (c.status, c.blocks),
            (ResponseStatus::ErrIo, 1),
            "one whole block read"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn maps_parsing() {
        let text = "\
20000000-20001000 rw-s 00000000 00:01 1234                       /memfd:lions-region:blk_driver_request (deleted)
20001000-20003000 r--s 00000000 00:01 1235                       /memfd:lions-region:blk_driver_storage_info (deleted)
5fde6000-5fdf0000 rw-s 00000000 00:01 1236                       /memfd:lions-region:blk_driver_data (deleted)
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
7f0000001000-7f0000002000 rw-s 00000000 00:01 99                 /memfd:lions-host-control (deleted)
";
        assert_eq!(
            parse_maps(text),
            [
                (0x2000_0000, 0x1000, "blk_driver_request".to_owned()),
                (0x5fde_6000, 0xa000, "blk_driver_data".to_owned()),
            ]
        );
        assert!(
            shared_regions().unwrap().is_empty(),
            "a test process maps no regions"
        );
    }
}
