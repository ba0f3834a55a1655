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
//!   kernel drops a frame it cannot queue) and completes it; completions are reported by an
//!   interrupt raised from an eventfd at `tx_kick`, so the generic driver's IRQ path returns the
//!   buffers.
//! - **Interrupt.** One fd is the IRQ ([`HostTap::attach_irq`]): an epoll set holding the TAP
//!   (readable, while buffers are posted) and the completion eventfd. `ack_irq` clears the
//!   eventfd.

use super::sys;
use lions_net::{EthDevice, NetBuffDesc};
use lions_os::host::control::held;
use lions_os::{Channel, DeviceRegionResource, OsError};
use std::collections::VecDeque;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;

/// Receive buffers the device holds at most.
pub const RX_RING: usize = 256;
/// Transmitted frames awaiting their completion report at most.
pub const TX_RING: usize = 256;
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
    name: String,
    dma: Dma,
    rx_posted: VecDeque<NetBuffDesc>,
    rx_watched: bool,
    tx_done: VecDeque<NetBuffDesc>,
    stats: TapStats,
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
        let tap = sys::open(TUN, libc::O_RDWR | libc::O_NONBLOCK)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            // IFF_TAP | IFF_NO_PI = 0x1002 fits a c_short.
            flags: libc::c_short::try_from(libc::IFF_TAP | libc::IFF_NO_PI).unwrap_or(0),
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `IfReq` lays out (40 bytes).
        sys::check(unsafe { libc::ioctl(tap.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
        let epoll = sys::epoll()?;
        let kick = sys::eventfd()?;
        let dev = Self {
            tap,
            epoll,
            kick,
            name: name.into(),
            dma,
            rx_posted: VecDeque::with_capacity(RX_RING),
            rx_watched: false,
            tx_done: VecDeque::with_capacity(TX_RING),
            stats: TapStats::default(),
        };
        let epoll = dev.epoll.as_fd();
        sys::epoll_ctl_fd(epoll, dev.kick.as_fd(), true, false, libc::EPOLL_CTL_ADD)?;
        sys::epoll_ctl_fd(epoll, dev.tap.as_fd(), false, false, libc::EPOLL_CTL_ADD)?;
        Ok(dev)
    }

    /// Watch the TAP for received frames only while a buffer is posted.
    fn watch_rx(&mut self, on: bool) {
        if on != self.rx_watched {
            let (epoll, tap) = (self.epoll.as_fd(), self.tap.as_fd());
            if sys::epoll_ctl_fd(epoll, tap, on, false, libc::EPOLL_CTL_MOD).is_ok() {
                self.rx_watched = on;
            }
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

impl HostTap {
    /// The next received frame (see [`EthDevice::rx_poll`]).
    fn rx_take(&mut self) -> Option<NetBuffDesc> {
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
                return None;
            };
            if n == 0 || usize::from(n) >= BUF {
                // Empty, or possibly truncated: not a frame we can pass on.
                self.stats.errors += 1;
                continue;
            }
            self.rx_posted.pop_front();
            if self.rx_posted.is_empty() {
                self.watch_rx(false);
            }
            self.stats.rx_frames += 1;
            buf.len = n;
            return Some(buf);
        }
    }
}

impl EthDevice for HostTap {
    fn rx_room(&mut self) -> bool {
        self.rx_posted.len() < RX_RING
    }

    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.rx_posted.push_back(buf);
        lions_os::host::report_held(held::RX, self.rx_posted.len() as u64);
        self.watch_rx(true);
    }

    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        let got = self.rx_take();
        lions_os::host::report_held(held::RX, self.rx_posted.len() as u64);
        got
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
        lions_os::host::report_held(held::TX, self.tx_done.len() as u64);
    }

    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        let done = self.tx_done.pop_front();
        lions_os::host::report_held(held::TX, self.tx_done.len() as u64);
        done
    }

    fn tx_kick(&mut self) {
        sys::signal(self.kick.as_fd());
    }

    fn ack_irq(&mut self) {
        sys::consume(self.kick.as_fd());
    }
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
