// SPDX-License-Identifier: BSD-2-Clause
//! The host board's NIC: a Linux TAP device (`lions,host-net`) as an [`EthDevice`].
//!
//! ## The device
//!
//! - **Opening** ([`HostTap::open`]): `/dev/net/tun`, `TUNSETIFF` with `IFF_TAP | IFF_NO_PI`
//!   (whole Ethernet frames, no packet-information header), non-blocking. Creating a TAP, or
//!   attaching to one that another user owns, needs root or `CAP_NET_ADMIN`; the interface must be
//!   brought up (and addressed) from the host side, e.g. `ip link set lions0 up`.
//! - **DMA.** A real NIC reaches buffers by device address; this one is a process, so the buffers
//!   it may reach must be mapped into the driver PD. On the host board the metaprogram maps every
//!   net data region (the Rx DMA region, each client's Tx region) into the driver at vaddr =
//!   its `phys_addr` (`tools/lions_meta.py`, `asm.net`), and sdfgen allocates those addresses in
//!   the board's memory window [`HOST_DMA_BASE`, `HOST_DMA_END`): [`Dma::host_identity`]. A
//!   driver given explicit windows (device regions with a mapping and a device address, as in a
//!   `.device_resources`) uses [`Dma::new`]. A descriptor's address is translated through the
//!   windows and refused when it lies outside (the frame is dropped and counted). Frames move
//!   with `read`/`write` system calls, so an address inside a window that is not mapped fails
//!   with `EFAULT` (counted) rather than faulting the driver.
//! - **Receive ring.** Up to [`RX_RING`] posted buffers, filled in posting order: each readable
//!   frame is `read` straight into the next posted buffer (a frame longer than 2048 bytes is
//!   truncated by the kernel and dropped). While no buffer is posted the TAP is not watched, as a
//!   NIC raises no receive interrupt without buffers: frames wait in the kernel's queue (its
//!   `txqueuelen`, 1000 by default), and what overflows it is dropped by Linux.
//! - **Transmit.** `tx_post` writes the frame to the TAP at once (a TAP write does not block; the
//!   kernel drops a frame it cannot queue) and completes it. Completions are reported as a NIC
//!   with transmit-interrupt coalescing does: once [`TX_REPORT`] have gathered (by an interrupt
//!   raised from an eventfd at `tx_kick`, or by the next interrupt anyway: the hold-off's end
//!   during one, below), or [`TX_IDLE_NS`] after the last transmission (a timerfd), so the
//!   generic driver's IRQ path returns the buffers in batches and a quiet link returns them all.
//! - **Interrupt moderation** (as a NIC's adaptive interrupt throttling). An interrupt service
//!   that read more than one frame means frames queue up faster than they are served: it starts
//!   a hold-off during which the TAP is not watched; the hold-off's end (a timerfd) raises the
//!   interrupt, whose service reads every frame that arrived meanwhile: at most one receive
//!   interrupt per [`HOLDOFF_NS`] under load (a NIC's "bulk" throttling rate). A service that
//!   read one frame holds off too if one that read more ended less than [`BULK_SPELL_NS`] ago
//!   (the first frame of the next burst); otherwise frames are served at once. So a request
//!   answered before the next one is sent (one frame in flight) never waits, while a flow of a
//!   few frames in flight may wait up to one hold-off per round trip. Under load the driver, and every PD behind it, then wakes once per batch
//!   instead of once per frame. Nothing spins: the driver sleeps until the timer or a frame.
//! - **Interrupt.** One fd is the IRQ ([`HostTap::attach_irq`]): an epoll set holding the TAP
//!   (readable, while buffers are posted and no hold-off runs), the completion eventfd, the
//!   hold-off timerfd and the transmit idle timerfd. `ack_irq` clears the eventfd and the expired
//!   timers.

use lions_net::{EthDevice, NetBuffDesc};
use lions_os::{Channel, DeviceRegionResource, OsError};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Receive buffers the device holds at most.
pub const RX_RING: usize = 256;
/// Transmitted frames awaiting their completion report at most.
pub const TX_RING: usize = 256;
/// Completed transmissions reported together (see the [module docs](self)).
pub const TX_REPORT: usize = 32;
/// Time after the last transmission at which every completion is reported.
pub const TX_IDLE_NS: u32 = 1_000_000;
/// Hold-off after an interrupt service that read more than one frame (the most a frame waits for
/// its interrupt).
pub const HOLDOFF_NS: u32 = 200_000;
/// How long after a service that read more than one frame a service that read one still starts
/// a hold-off.
pub const BULK_SPELL_NS: u32 = 2_000_000;
/// Bytes of one net buffer.
const BUF: usize = 2048;
/// Lowest device address of the host board's DMA window (`tools/lions_meta.py`: sdfgen allocates
/// physical regions downward from `paddr_top`, 4 GiB on the host board).
pub const HOST_DMA_BASE: u64 = 0x8000_0000;
/// End of the host board's DMA window.
pub const HOST_DMA_END: u64 = 0x1_0000_0000;

/// Counters of a [`HostTap`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TapStats {
    /// Frames read from the TAP into buffers.
    pub rx_frames: u64,
    /// Frames written to the TAP.
    pub tx_frames: u64,
    /// Descriptors naming no DMA window (dropped).
    pub bad_addr: u64,
    /// Frames the kernel refused or that did not fit a buffer (dropped).
    pub errors: u64,
}

/// A device-visible window: `len` bytes at device address `io`, mapped here at `base`.
#[derive(Debug, Clone, Copy)]
struct Window {
    io: u64,
    len: u64,
    base: NonNull<u8>,
}

/// The DMA windows of the device (see the module docs).
#[derive(Debug, Default)]
pub struct Dma {
    windows: Vec<Window>,
}

impl Dma {
    /// The windows of `regions` (a driver's `.device_resources` regions). Regions not mapped here
    /// (vaddr 0) are skipped.
    ///
    /// # Safety
    /// Each mapped region is mapped read-write at its `vaddr` for as long as the result lives,
    /// and its buffers are written by others only when the net queues give them the buffer.
    pub unsafe fn new(regions: &[DeviceRegionResource]) -> Self {
        let windows = regions
            .iter()
            .filter_map(|r| {
                let (base, _) = r.region.as_raw_parts()?;
                Some(Window {
                    io: r.io_addr,
                    len: r.region.size,
                    base,
                })
            })
            .collect();
        Self { windows }
    }

    /// The host board's identity window: device address = this process's address, for
    /// addresses in [`HOST_DMA_BASE`, `HOST_DMA_END`) (see the [module docs](self)). `None` where
    /// that range is not addressable.
    pub fn host_identity() -> Option<Self> {
        let base = usize::try_from(HOST_DMA_BASE).ok()?;
        usize::try_from(HOST_DMA_END - 1).ok()?;
        let base = NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(base))?;
        Some(Self {
            windows: vec![Window {
                io: HOST_DMA_BASE,
                len: HOST_DMA_END - HOST_DMA_BASE,
                base,
            }],
        })
    }

    /// The mapping of `len` bytes at device address `io`, if they lie inside one window.
    pub fn translate(&self, io: u64, len: usize) -> Option<NonNull<u8>> {
        let len = u64::try_from(len).ok()?;
        self.windows.iter().find_map(|w| {
            let off = io.checked_sub(w.io)?;
            if off.checked_add(len)? > w.len {
                return None;
            }
            let off = usize::try_from(off).ok()?;
            // SAFETY: `off + len <= w.len`, inside the window's mapping.
            Some(unsafe { w.base.add(off) })
        })
    }
}

/// A TAP device with its DMA windows (see the [module docs](self)).
#[derive(Debug)]
pub struct HostTap {
    tap: OwnedFd,
    epoll: OwnedFd,
    kick: OwnedFd,
    holdoff: OwnedFd,
    tx_idle: OwnedFd,
    /// Report every completion (the idle timer expired) until none is left.
    tx_release: bool,
    /// A hold-off runs (the TAP is not watched until it ends).
    holding: bool,
    /// End of the last interrupt service that read more than one frame.
    last_bulk: Option<std::time::Instant>,
    /// Frames read since the last interrupt service outside a hold-off ended.
    rx_this_irq: u64,
    name: String,
    dma: Dma,
    rx_posted: VecDeque<NetBuffDesc>,
    rx_watched: bool,
    tx_done: VecDeque<NetBuffDesc>,
    stats: TapStats,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the call that returned `fd` created it for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags (the union's first member).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl HostTap {
    /// Open (or create) the TAP interface `name` with the DMA windows `dma`.
    pub fn open(name: &str, dma: Dma) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?}"),
            ));
        }
        const TUN: &CStr = c"/dev/net/tun";
        // SAFETY: the path is NUL-terminated and static.
        let tap = owned(unsafe {
            libc::open(
                TUN.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        })?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            // IFF_TAP | IFF_NO_PI = 0x1002 fits a c_short.
            flags: libc::c_short::try_from(libc::IFF_TAP | libc::IFF_NO_PI).unwrap_or(0),
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `IfReq` lays out (40 bytes).
        check(unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
        // SAFETY: creates a new descriptor.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: creates a new descriptor.
        let kick = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: creates a new descriptor.
        let holdoff = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        })?;
        // SAFETY: creates a new descriptor.
        let tx_idle = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        })?;
        let dev = Self {
            tap,
            epoll,
            kick,
            holdoff,
            tx_idle,
            tx_release: false,
            holding: false,
            rx_this_irq: 0,
            last_bulk: None,
            name: name.into(),
            dma,
            rx_posted: VecDeque::with_capacity(RX_RING),
            rx_watched: false,
            tx_done: VecDeque::with_capacity(TX_RING),
            stats: TapStats::default(),
        };
        dev.epoll_ctl(libc::EPOLL_CTL_ADD, dev.kick.as_fd(), libc::EPOLLIN as u32)?;
        dev.epoll_ctl(libc::EPOLL_CTL_ADD, dev.holdoff.as_fd(), libc::EPOLLIN as u32)?;
        dev.epoll_ctl(libc::EPOLL_CTL_ADD, dev.tx_idle.as_fd(), libc::EPOLLIN as u32)?;
        dev.epoll_ctl(libc::EPOLL_CTL_ADD, dev.tap.as_fd(), 0)?;
        Ok(dev)
    }

    fn epoll_ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: u64::try_from(fd.as_raw_fd()).unwrap_or(0),
        };
        // SAFETY: `ev` is a live epoll_event; both fds are open.
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })?;
        Ok(())
    }

    /// Watch the TAP for received frames only while a buffer is posted and no hold-off runs.
    fn watch_rx(&mut self) {
        let on = !self.rx_posted.is_empty() && !self.holding;
        if on != self.rx_watched {
            let events = if on { libc::EPOLLIN as u32 } else { 0 };
            if self
                .epoll_ctl(libc::EPOLL_CTL_MOD, self.tap.as_fd(), events)
                .is_ok()
            {
                self.rx_watched = on;
            }
        }
    }

    /// An interrupt service read `n` frames: start the next hold-off, or end the moderation
    /// (see the [module docs](self)).
    fn moderate(&mut self, n: u64) {
        let now = std::time::Instant::now();
        if n > 1 {
            self.last_bulk = Some(now);
        }
        let spell = std::time::Duration::from_nanos(u64::from(BULK_SPELL_NS));
        if n > 1 || (n == 1 && self.last_bulk.is_some_and(|t| now - t < spell)) {
            self.hold_off();
        }
    }

    /// Start a hold-off of [`HOLDOFF_NS`]; without a timer, none.
    fn hold_off(&mut self) {
        if arm(self.holdoff.as_fd(), HOLDOFF_NS) {
            self.holding = true;
            self.watch_rx();
            // Completions kicked meanwhile are reported at the hold-off's end, with the frames.
            take(self.kick.as_fd());
        }
    }

    /// Deliver this device's interrupts on `irq` (its `.device_resources` IRQ channel). Call once,
    /// in `init`.
    pub fn attach_irq(&self, irq: Channel) -> Result<(), OsError> {
        lions_os::host::register_irq_fd(irq, self.epoll.as_fd())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters.
    pub fn stats(&self) -> TapStats {
        self.stats
    }
}

impl EthDevice for HostTap {
    fn rx_room(&mut self) -> bool {
        self.rx_posted.len() < RX_RING
    }

    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.rx_posted.push_back(buf);
        self.watch_rx();
    }

    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        loop {
            let mut buf = *self.rx_posted.front()?;
            let Some(ptr) = self.dma.translate(buf.io_or_offset, BUF) else {
                // Not a buffer we can reach: drop the descriptor.
                self.rx_posted.pop_front();
                self.stats.bad_addr += 1;
                continue;
            };
            // SAFETY: `ptr .. ptr + 2048` lies in a DMA window (translated above), mapped
            // read-write; the buffer is posted to us, so nobody else writes it. The kernel writes
            // at most 2048 bytes.
            let n = unsafe { libc::read(self.tap.as_raw_fd(), ptr.as_ptr().cast(), BUF) };
            let Ok(n) = u16::try_from(n) else {
                // EAGAIN (nothing to read) or an error: no frame now.
                if n >= 0 {
                    self.stats.errors += 1;
                }
                if !self.holding {
                    // Frames read during a hold-off count towards the batch it collects.
                    self.moderate(self.rx_this_irq);
                    self.rx_this_irq = 0;
                }
                return None;
            };
            if n == 0 || usize::from(n) >= BUF {
                // Empty, or possibly truncated: not a frame we can pass on.
                self.stats.errors += 1;
                continue;
            }
            self.rx_posted.pop_front();
            if self.rx_posted.is_empty() {
                self.watch_rx();
            }
            self.rx_this_irq += 1;
            self.stats.rx_frames += 1;
            buf.len = n;
            return Some(buf);
        }
    }

    fn tx_room(&mut self) -> bool {
        self.tx_done.len() < TX_RING
    }

    fn tx_post(&mut self, buf: NetBuffDesc) {
        let len = usize::from(buf.len);
        match self.dma.translate(buf.io_or_offset, len) {
            Some(ptr) => {
                // SAFETY: `ptr .. ptr + len` lies in a DMA window (translated above), mapped; the
                // frame is posted to us, so nobody writes it meanwhile.
                let n = unsafe { libc::write(self.tap.as_raw_fd(), ptr.as_ptr().cast(), len) };
                if usize::try_from(n) == Ok(len) {
                    self.stats.tx_frames += 1;
                } else {
                    self.stats.errors += 1;
                }
            }
            None => self.stats.bad_addr += 1,
        }
        self.tx_done.push_back(buf);
    }

    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        if self.tx_done.len() >= TX_REPORT {
            // Report them all, not just down to the threshold.
            self.tx_release = true;
        }
        if !self.tx_release {
            return None;
        }
        let d = self.tx_done.pop_front();
        if d.is_none() {
            self.tx_release = false;
        }
        d
    }

    fn tx_kick(&mut self) {
        // The rest is reported once the link has been quiet for a while.
        arm(self.tx_idle.as_fd(), TX_IDLE_NS);
        if self.holding || self.tx_done.len() < TX_REPORT {
            // Not enough to report yet, or the hold-off's end raises the interrupt that does.
            return;
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd. A full counter (EAGAIN)
        // still leaves the eventfd readable, which is all the interrupt needs.
        let _ = unsafe { libc::write(self.kick.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    fn ack_irq(&mut self) {
        take(self.kick.as_fd());
        if take(self.tx_idle.as_fd()) {
            self.tx_release = true;
        }
        if self.holding && take(self.holdoff.as_fd()) {
            self.holding = false;
            self.watch_rx();
        }
    }
}

/// Read and clear the non-blocking eventfd or timerfd `fd`: whether it had fired.
fn take(fd: BorrowedFd<'_>) -> bool {
    let mut count = [0u8; 8];
    // SAFETY: reads 8 bytes into a live buffer; the fd does not block (EAGAIN when not fired).
    unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), 8) == 8 }
}

/// Arm the one-shot timerfd `fd` to expire in `ns` (below a second); false if it cannot be.
fn arm(fd: BorrowedFd<'_>, ns: u32) -> bool {
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::c_long::from(ns),
        },
    };
    // SAFETY: `spec` is a live itimerspec; the old value is not asked for.
    unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) == 0 }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lions_os::RegionResource;

    #[test]
    fn dma_translation_stays_inside_windows() {
        let mut a = vec![0u8; 4 * BUF];
        let mut b = vec![0u8; 2 * BUF];
        let region = |m: &mut Vec<u8>, io: u64| DeviceRegionResource {
            region: RegionResource {
                vaddr: m.as_mut_ptr().expose_provenance() as u64,
                size: m.len() as u64,
            },
            io_addr: io,
        };
        let unmapped = DeviceRegionResource {
            region: RegionResource {
                vaddr: 0,
                size: 4096,
            },
            io_addr: 0x9000_0000,
        };
        let regions = [
            region(&mut a, 0x1000_0000),
            unmapped,
            region(&mut b, 0x2000_0000),
        ];
        // SAFETY: `a` and `b` outlive `dma` and are written only by this test.
        let dma = unsafe { Dma::new(&regions) };
        let base_a = a.as_ptr().addr();
        let base_b = b.as_ptr().addr();
        let at = |io, len| dma.translate(io, len).map(|p| p.as_ptr().addr());
        assert_eq!(at(0x1000_0000, BUF), Some(base_a));
        assert_eq!(
            at(0x1000_0000 + 3 * BUF as u64, BUF),
            Some(base_a + 3 * BUF)
        );
        assert_eq!(
            at(0x1000_0000 + 3 * BUF as u64 + 1, BUF),
            None,
            "crosses the end"
        );
        assert_eq!(at(0x2000_0000 + BUF as u64, 100), Some(base_b + BUF));
        assert_eq!(at(0x0fff_ffff, 1), None, "below every window");
        assert_eq!(at(0x9000_0000, 1), None, "an unmapped region is no window");
        assert_eq!(at(u64::MAX, 2), None, "no overflow");
    }

    #[test]
    fn bad_names_are_refused_before_any_system_call() {
        for name in ["", "a-name-longer-than-15", "nul\0in"] {
            let e = HostTap::open(name, Dma::default()).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
