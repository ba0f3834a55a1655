// SPDX-License-Identifier: BSD-2-Clause
//! The Rx virtualiser (`net_virt_rx`): frames from the driver to the clients (their copiers) by
//! destination MAC.
//!
//! ## Protocol
//!
//! - **Init** ([`VirtRx::init`]): every Rx DMA buffer goes on the driver's free queue (device
//!   addresses `io_addr + i * 2048`), every reference count is cleared, the driver is notified if
//!   it asked.
//! - **`rx_return`** (any notification): drain the driver's active queue. Each frame's device
//!   address becomes an offset in the Rx DMA region; the buffer is cleaned and invalidated (the
//!   [`CacheOps`] hook) and its destination MAC read:
//!   - a MAC in a client's list: the frame goes to that client;
//!   - `ff:ff:ff:ff:ff:ff`: it goes to **every** live client (or those chosen with
//!     [`VirtRx::set_broadcast_clients`]) and is counted once per client;
//!   - anything else (or a frame shorter than a MAC): straight back to the driver's free queue.
//!
//!   Then request a signal on the driver's active queue, re-check, and notify each client that got
//!   frames and asked.
//! - **`rx_provide`** (same notification): drain each client's free queue; a returned buffer goes
//!   back to the driver when its last holder returned it. Request a signal on each client's free
//!   queue and re-check. Notify the driver (deferred: it runs at a higher priority) if it asked.
//! - **Reference counts** live in the `buffer_metadata` region, one byte per driver buffer, which
//!   only this component maps: 0 = the driver owns it, `0x80 | c` = client `c` alone holds it
//!   (unicast, so only `c` may return it), `n` in 1..=64 = `n` clients hold it (broadcast).
//! - **Misbehaviour.** A client (copier) that returns a buffer it does not hold (a bad offset, a
//!   unicast buffer of another client, a duplicate once the count is 0) has the descriptor dropped
//!   and counted ([`RxStats::bad_returns`]); one that corrupts its queue indices is marked faulty
//!   and skipped. A device address outside the DMA region, or a frame in a buffer that clients
//!   still hold, cannot be returned to anyone and is dropped and counted
//!   ([`RxStats::bad_from_driver`]). Nothing panics; an impossible index from the (trusted)
//!   driver is an [`Error`].

use crate::cache::{CacheOps, PlatformCache};
use crate::queue::{NetBuffDesc, NetSink, NetSource, client_ends};
use crate::region::{DataRegion, MAX_LEN};
use crate::{Error, MacAddr, NetVirtRxConfig, SetupError};
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS};

/// Reference byte of a buffer held by one client alone: `UNICAST | client`.
const UNICAST: u8 = 0x80;
/// [`MAX_CLIENTS`] as a client index type.
const CLIENTS: u8 = 64;
const _: () = assert!(CLIENTS as usize == MAX_CLIENTS);

/// What the Rx virtualiser dropped or passed back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxStats {
    /// Frames with no matching client, returned to the driver at once.
    pub unmatched: u64,
    /// Frames delivered to every client.
    pub broadcast: u64,
    /// Descriptors from the driver naming no free DMA buffer (dropped).
    pub bad_from_driver: u64,
    /// Descriptors from clients naming no buffer they hold (dropped).
    pub bad_returns: u64,
}

/// The Rx virtualiser; see the module docs.
pub struct VirtRx<'a, C = PlatformCache> {
    config: &'a NetVirtRxConfig,
    driver: NetSink<'a>,
    driver_ch: Channel,
    data: DataRegion<'a>,
    refs: &'a [AtomicU8],
    clients: [Option<(NetSource<'a>, Channel)>; MAX_CLIENTS],
    cache: C,
    stats: RxStats,
    faulty: u64,
    /// Clients that receive broadcasts.
    broadcast: u64,
}

impl<'a, C: CacheOps> VirtRx<'a, C> {
    /// The virtualiser over the queues and regions in `config`, with `cache` maintenance. A client
    /// whose queues already hold inconsistent indices starts out faulty.
    ///
    /// # Safety
    /// The config's regions are mapped in this component for `'a` (read-write), each queue shared
    /// only with its peer, `buffer_metadata` with nobody; no other handle of the same roles exists.
    pub unsafe fn new(config: &'a NetVirtRxConfig, cache: C) -> Result<Self, SetupError> {
        let conns = config.clients().iter().map(|c| &c.conn);
        // SAFETY: forwarded from the caller.
        let (clients, faulty) = unsafe { client_ends(conns, NetSource::from_connection) }?;
        let n = usize::from(config.driver.num_buffers);
        let (meta, len) = config
            .buffer_metadata
            .as_raw_parts()
            .ok_or(SetupError::Unmapped)?;
        if len < n {
            return Err(SetupError::RegionTooSmall {
                needed: n as u64,
                have: len as u64,
            });
        }
        Ok(Self {
            config,
            // SAFETY: forwarded from the caller.
            driver: unsafe { NetSink::from_connection(&config.driver) }?,
            driver_ch: config.driver.channel()?,
            // SAFETY: forwarded from the caller.
            data: unsafe { DataRegion::from_resource(&config.data.region, n as u64, true) }?,
            // SAFETY: `n <= len` bytes are mapped read-write for 'a and used by nobody else; an
            // `AtomicU8` has the size and alignment of a byte and is valid for every bit pattern.
            refs: unsafe { core::slice::from_raw_parts(meta.as_ptr().cast(), n) },
            clients,
            cache,
            stats: RxStats::default(),
            faulty,
            broadcast: u64::MAX,
        })
    }

    /// Counters of dropped and redirected frames.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// Clients found misbehaving (bit `c` = client `c`); they get no more frames.
    pub fn faulty(&self) -> u64 {
        self.faulty
    }

    /// Deliver broadcasts only to the clients in `mask` (bit `c` = client `c`); all by default
    /// (sDDF 0.7). The paper's first scheme sends them to an ARP responder alone.
    pub fn set_broadcast_clients(&mut self, mask: u64) {
        self.broadcast = mask;
    }

    /// Hand every DMA buffer to the driver. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        self.refs.iter().for_each(|r| r.store(0, Relaxed));
        let n = self.driver.fill_free(self.config.data.io_addr)?;
        if self.driver.should_notify_free(n > 0) {
            self.driver_ch.deferred_notify()?;
        }
        Ok(())
    }

    /// Stop serving client `c`.
    fn fault(&mut self, c: u8) {
        self.faulty |= 1 << c;
        self.clients[usize::from(c)] = None;
    }

    /// Phases 1 and 2 on the driver's active queue.
    fn rx_return(&mut self) -> Result<(), Error> {
        loop {
            while let Some(buf) = self.driver.active.pop()? {
                self.demux(buf)?;
            }
            self.driver.active.release();
            if !self.driver.park_active()? {
                return Ok(());
            }
        }
    }

    /// One frame from the driver to its clients, or back to the driver.
    fn demux(&mut self, buf: NetBuffDesc) -> Result<(), Error> {
        let offset = buf.io_or_offset.wrapping_sub(self.config.data.io_addr);
        let len = buf.len.min(MAX_LEN);
        let (Ok(span), Ok(i)) = (self.data.span(offset, len), self.data.index(offset)) else {
            self.stats.bad_from_driver += 1;
            return Ok(());
        };
        let rc = &self.refs[i];
        if rc.load(Relaxed) != 0 {
            self.stats.bad_from_driver += 1;
            return Ok(());
        }
        self.cache.clean_invalidate(span);
        let mut dest = MacAddr::default();
        let targets = match span.read(&mut dest.0) {
            6 if dest.is_broadcast() => self.broadcast,
            6 => self
                .config
                .clients()
                .iter()
                .position(|c| c.macs().contains(&dest))
                .map_or(0, |c| 1 << c),
            _ => 0,
        };
        let (mut held, mut last) = (0u8, 0);
        for c in (0..CLIENTS).filter(|&c| targets & (1 << c) != 0) {
            let Some((q, _)) = &mut self.clients[usize::from(c)] else {
                continue;
            };
            match q.active.push(NetBuffDesc::new(offset, len)) {
                Ok(()) => (held, last) = (held + 1, c),
                Err(lions_queue::PushError::Peer(..)) => self.fault(c),
                Err(lions_queue::PushError::Full(_)) => {}
            }
        }
        self.stats.broadcast += u64::from(targets.count_ones() > 1);
        match held {
            0 => {
                self.stats.unmatched += 1;
                self.driver
                    .free
                    .push(NetBuffDesc::new(buf.io_or_offset, 0))?;
            }
            1 => rc.store(UNICAST | last, Relaxed),
            n => rc.store(n, Relaxed),
        }
        Ok(())
    }

    /// Phases 1 and 2 on every client's free queue.
    fn rx_provide(&mut self) -> Result<(), Error> {
        for c in 0..CLIENTS {
            while let Some((q, _)) = &mut self.clients[usize::from(c)] {
                match q.free.pop() {
                    Ok(Some(buf)) => self.release(c, buf)?,
                    Ok(None) => {
                        q.free.release();
                        match q.park_free() {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(_) => self.fault(c),
                        }
                    }
                    Err(_) => self.fault(c),
                }
            }
        }
        Ok(())
    }

    /// Client `c` returned `buf`: drop its reference; the last one gives the buffer to the driver.
    fn release(&mut self, c: u8, buf: NetBuffDesc) -> Result<(), Error> {
        let Ok(i) = self.data.index(buf.io_or_offset) else {
            self.stats.bad_returns += 1;
            return Ok(());
        };
        let rc = &self.refs[i];
        let next = match rc.load(Relaxed) {
            v if v == UNICAST | c => 0,
            v @ 1..=64 => v - 1,
            _ => {
                self.stats.bad_returns += 1;
                return Ok(());
            }
        };
        rc.store(next, Relaxed);
        if next == 0 {
            let io = self.config.data.io_addr.wrapping_add(buf.io_or_offset);
            self.driver.free.push(NetBuffDesc::new(io, 0))?;
        }
        Ok(())
    }
}

impl<C: CacheOps> Handler for VirtRx<'_, C> {
    type Error = Error;

    /// Whoever notified, both directions are served (a notification without work costs a look
    /// at empty queues).
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        self.rx_return()?;
        for (q, ch) in self.clients.iter_mut().flatten() {
            let n = q.active.publish();
            if q.should_notify_active(n > 0) {
                ch.notify()?;
            }
        }
        self.rx_provide()?;
        let n = self.driver.free.publish();
        if self.driver.should_notify_free(n > 0) {
            self.driver_ch.deferred_notify()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{Mem, NonCoherent, Pair, event};
    use crate::{Coherent, NetSink};
    use core::cell::RefCell;
    use lions_os::{ConfigClass, DeviceRegionResource, sddf_magic};
    use zerocopy::FromZeros;

    const IO: u64 = 0x8000_0000;
    const MAC: [MacAddr; 2] = [MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])];
    const ALL: ChannelSet = ChannelSet::EMPTY;

    struct Setup {
        driver: Pair,
        clients: [Pair; 2],
        data: Mem,
        device: Mem,
        _meta: Mem,
        cfg: Box<NetVirtRxConfig>,
    }

    fn setup() -> Setup {
        let (driver, clients) = (Pair::new(4), [Pair::new(4), Pair::new(4)]);
        let (data, device, meta) = (Mem::new(4 * 2048), Mem::new(4 * 2048), Mem::new(4));
        let mut cfg = Box::new(NetVirtRxConfig::new_zeroed());
        cfg.magic = sddf_magic(ConfigClass::Net);
        cfg.driver = driver.conn(0);
        cfg.data = DeviceRegionResource {
            region: data.res(),
            io_addr: IO,
        };
        cfg.buffer_metadata = meta.res();
        cfg.num_clients = 2;
        for ((c, q), id) in clients.iter().enumerate().zip(1..) {
            cfg.clients[c].conn = q.conn(id);
            cfg.clients[c].mac_addrs[0] = MAC[c];
            cfg.clients[c].num_macs = 1;
        }
        Setup {
            driver,
            clients,
            data,
            device,
            _meta: meta,
            cfg,
        }
    }

    fn pop_all(q: &mut NetSink<'_>) -> Vec<(u64, u16)> {
        let mut v = Vec::new();
        while let Some(d) = q.active.pop().unwrap() {
            v.push((d.io_or_offset, d.len));
        }
        q.active.release();
        v
    }

    fn give_back(q: &mut NetSink<'_>, offsets: &[u64]) {
        for &o in offsets {
            q.free.push(NetBuffDesc::new(o, 0)).unwrap();
        }
        q.free.publish();
    }

    fn frame(dst: MacAddr) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&[0xaa; 54]);
        f
    }

    #[test]
    fn demultiplexes_after_invalidating_and_counts_references() {
        let s = setup();
        let log = RefCell::new(Vec::new());
        let cache = NonCoherent {
            cpu: &s.data,
            device: &s.device,
            watch: &s.clients[0],
            log: &log,
        };
        // SAFETY: the memory outlives the virt; the test plays every peer with one handle each.
        let mut v = unsafe { VirtRx::new(&s.cfg, cache) }.unwrap();
        let mut drv = s.driver.source();
        let mut cl = [s.clients[0].sink(), s.clients[1].sink()];
        let rec = crate::testkit::Rec::default();
        lions_os::runtime::with_backend(&rec, || v.init()).unwrap();
        assert_eq!(
            rec.notified.take(),
            [0],
            "the driver's zeroed flag asks for buffers"
        );
        let mut bufs = Vec::new();
        while let Some(d) = drv.free.pop().unwrap() {
            bufs.push(d.io_or_offset);
        }
        drv.free.release();
        assert_eq!(bufs, [IO, IO + 2048, IO + 4096, IO + 6144]);
        // The CPU's stale view of buffer 0 says client 0; the device wrote a frame for client 1.
        s.data.write(0, &frame(MAC[0]));
        s.device.write(0, &frame(MAC[1]));
        s.device.write(2048, &frame(MacAddr::BROADCAST)[..50]);
        s.device.write(4096, &frame(MacAddr([2, 9, 9, 9, 9, 9])));
        for (io, len) in [(IO, 60), (IO + 2048, 50), (IO + 4096, 60)] {
            drv.active.push(NetBuffDesc::new(io, len)).unwrap();
        }
        drv.active.publish();
        assert_eq!(
            event(&mut v, ALL),
            [1, 2],
            "both copiers asked (zeroed flags)"
        );
        let logged: Vec<_> = log.borrow().iter().map(|e| (e.0, e.1, e.2)).collect();
        assert_eq!(
            logged,
            [
                ("clean_invalidate", 0, 60),
                ("clean_invalidate", 2048, 50),
                ("clean_invalidate", 4096, 60)
            ]
        );
        assert_eq!(
            pop_all(&mut cl[0]),
            [(2048, 50)],
            "client 0: only the broadcast"
        );
        assert_eq!(
            pop_all(&mut cl[1]),
            [(0, 60), (2048, 50)],
            "client 1: its frame, read fresh"
        );
        assert_eq!(
            drv.free.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO + 4096),
            "unmatched"
        );
        assert_eq!(
            v.stats(),
            RxStats {
                unmatched: 1,
                broadcast: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            v.refs.iter().map(|r| r.load(Relaxed)).collect::<Vec<_>>(),
            [0x81, 2, 0, 0]
        );
        // The broadcast buffer goes home after its second holder returns it, not before.
        give_back(&mut cl[0], &[2048]);
        event(&mut v, ALL);
        assert_eq!(drv.free.pop().unwrap(), None);
        give_back(&mut cl[1], &[2048, 0]);
        event(&mut v, ALL);
        let home: Vec<u64> = core::iter::from_fn(|| drv.free.pop().unwrap())
            .map(|d| d.io_or_offset)
            .collect();
        assert_eq!(home, [IO + 2048, IO]);
        assert_eq!(v.stats().bad_returns, 0);
    }

    #[test]
    fn bad_descriptors_from_either_side_are_dropped_and_counted() {
        let s = setup();
        // SAFETY: as above.
        let mut v = unsafe { VirtRx::new(&s.cfg, Coherent) }.unwrap();
        let mut drv = s.driver.source();
        let mut cl = [s.clients[0].sink(), s.clients[1].sink()];
        lions_os::runtime::with_backend(&crate::testkit::Rec::default(), || v.init()).unwrap();
        while drv.free.pop().unwrap().is_some() {}
        drv.free.release();
        s.data.write(0, &frame(MAC[1]));
        drv.active.push(NetBuffDesc::new(IO, 60)).unwrap();
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(pop_all(&mut cl[1]), [(0, 60)]);
        // The driver: past the region, misaligned, below it, and a buffer client 1 holds.
        for io in [IO + 4 * 2048, IO + 5, IO - 2048, IO] {
            drv.active.push(NetBuffDesc::new(io, 60)).unwrap();
        }
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(v.stats().bad_from_driver, 4);
        assert!(pop_all(&mut cl[0]).is_empty() && pop_all(&mut cl[1]).is_empty());
        // Clients: another client's unicast buffer, a misaligned and an out-of-range offset, a
        // buffer nobody holds, and a double return.
        give_back(&mut cl[0], &[0]);
        give_back(&mut cl[1], &[7, 4 * 2048, 2048, 0]);
        event(&mut v, ALL);
        give_back(&mut cl[1], &[0]);
        event(&mut v, ALL);
        assert_eq!(v.stats().bad_returns, 5);
        assert_eq!(
            drv.free.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO),
            "returned once"
        );
        assert_eq!(drv.free.pop().unwrap(), None);
        assert_eq!(v.faulty(), 0);
    }

    #[test]
    fn broadcast_mask_and_a_faulty_client() {
        let s = setup();
        // SAFETY: as above.
        let mut v = unsafe { VirtRx::new(&s.cfg, Coherent) }.unwrap();
        let mut drv = s.driver.source();
        let mut cl = [s.clients[0].sink(), s.clients[1].sink()];
        lions_os::runtime::with_backend(&crate::testkit::Rec::default(), || v.init()).unwrap();
        while drv.free.pop().unwrap().is_some() {}
        drv.free.release();
        v.set_broadcast_clients(0b01);
        s.data.write(0, &frame(MacAddr::BROADCAST));
        drv.active.push(NetBuffDesc::new(IO, 60)).unwrap();
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(pop_all(&mut cl[0]), [(0, 60)]);
        assert!(pop_all(&mut cl[1]).is_empty(), "not in the broadcast set");
        assert_eq!(
            v.refs[0].load(Relaxed),
            0x80,
            "one holder: owned by client 0 alone"
        );
        // Client 1 claims 100 returned buffers in a 4-slot queue: it is dropped from service.
        s.clients[1].free.write(0, &100u16.to_le_bytes());
        event(&mut v, ALL);
        assert_eq!(v.faulty(), 0b10);
        s.data.write(2048, &frame(MAC[1]));
        drv.active.push(NetBuffDesc::new(IO + 2048, 60)).unwrap();
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(
            drv.free.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO + 2048),
            "no taker"
        );
        assert_eq!(v.stats().unmatched, 1);
    }
}
