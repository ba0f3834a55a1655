// SPDX-License-Identifier: BSD-2-Clause
//! The Rx virtualiser (`net_virt_rx`): frames from the driver to the clients (their copiers) by
//! destination MAC.
//!
//! ## Protocol
//!
//! - **Init** ([`VirtRx::init`]): every Rx DMA buffer goes on the driver's free queue (device
//!   addresses `io_addr + i * 2048`), every holder set is cleared, the driver is notified if
//!   it asked.
//! - **`rx_return`** (any notification): drain the driver's active queue. Each frame's device
//!   address becomes an offset in the Rx DMA region; the buffer is cleaned and invalidated (the
//!   [`CacheOps`] hook) and its destination MAC read:
//!   - a MAC in a client's list: the frame goes to that client;
//!   - `ff:ff:ff:ff:ff:ff`: it goes to **every** live client (or those chosen with
//!     [`VirtRx::set_broadcast_clients`]), each of them a holder;
//!   - anything else (or a frame shorter than a MAC): straight back to the driver's free queue.
//!
//!   Then request a signal on the driver's active queue, re-check, and notify each client that got
//!   frames and asked.
//! - **`rx_provide`** (same notification): drain each client's free queue; a returned buffer goes
//!   back to the driver when its last holder returned it. Request a signal on each client's free
//!   queue and re-check. Notify the driver (deferred: it runs at a higher priority) if it asked.
//! - **Holder sets** live in the `buffer_metadata` region, which only this component maps: per
//!   driver buffer the set of clients holding it (bit `c` = client `c`; 0 = the driver owns it),
//!   one byte per buffer for up to 8 clients, a `u64` per buffer for more. A return is accepted
//!   only from a holder, once: it removes that client from the set, and the buffer goes back to
//!   the driver when the set becomes empty. (sDDF keeps a bare count, which lets any client
//!   free a broadcast buffer another client still holds.)
//! - **Restart** ([`VirtRx::resume`] instead of `init`, for a component restarted with its
//!   regions intact, paper §5.2). The holder sets *live in a region that survives the restart*
//!   (`buffer_metadata`), and every other piece of state is in the queues' shared indices, so
//!   the new incarnation takes over as it finds them. Holder sets are then checked against the
//!   queues, conservatively: a client is a holder of a buffer only while that buffer is among the
//!   last `active.tail - free.head` descriptors published on its active queue (sent and not yet
//!   taken back; exact, as copiers return buffers in order). A holder bit without such a
//!   descriptor was set for a frame the old incarnation had staged but not published when it
//!   died: it is cleared, and a buffer left with no holder goes back to the driver, so no DMA
//!   buffer is stranded by the crash. Frames the driver had published are demultiplexed by the new
//!   incarnation if the old one had not released them. Not recoverable: a buffer the old one had
//!   taken back (from the driver or its last holder) and staged toward the driver but not
//!   published (a few instructions' window).
//! - **Misbehaviour.** A client (copier) that returns a buffer it does not hold (a bad offset, a
//!   buffer sent to other clients only, a second return of the same buffer) has the descriptor
//!   dropped and counted ([`RxStats::bad_returns`]); one that corrupts its queue indices is marked faulty
//!   and skipped. A device address outside the DMA region, or a frame in a buffer that clients
//!   still hold, cannot be returned to anyone and is dropped and counted
//!   ([`RxStats::bad_from_driver`]). Nothing panics; an impossible index from the (trusted)
//!   driver is an [`Error`].

use crate::cache::{CacheOps, PlatformCache};
use crate::queue::{Clients, NetBuffDesc, NetSink, NetSource, Out, RawQueue, clients, push_to};
use crate::region::{DataRegion, Holders, MAX_LEN};
use crate::{Error, MacAddr, NetVirtRxClient, NetVirtRxConfig, SetupError};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, Mapped};
use lions_queue::PushError;

/// What the Rx virtualiser dropped or passed back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxStats {
    /// Frames no client took (no matching MAC, or the client's queue was full or it is faulty),
    /// returned to the driver at once.
    pub unmatched: u64,
    /// Broadcast frames.
    pub broadcast: u64,
    /// Descriptors from the driver naming no free DMA buffer (dropped).
    pub bad_from_driver: u64,
    /// Descriptors from clients naming no buffer they hold (dropped).
    pub bad_returns: u64,
}

/// A MAC address as a number (one compare instead of six).
#[inline]
fn key(mac: [u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = mac;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// The Rx virtualiser; see the module docs.
pub struct VirtRx<'a, C = PlatformCache> {
    driver: NetSink<'a>,
    driver_ch: Channel,
    s: State<'a, C>,
}

/// Everything but the driver's queues (borrowed apart from them while a queue is drained).
struct State<'a, C> {
    io_addr: u64,
    data: DataRegion<'a>,
    holders: Holders<'a>,
    macs: &'a [NetVirtRxClient],
    /// Each client's MAC as a number when every client has exactly one (`None`: scan `macs`).
    keys: Option<[u64; MAX_CLIENTS]>,
    clients: Clients<NetSource<'a>>,
    cache: C,
    stats: RxStats,
    broadcast: u64,
    /// Clients that got frames in this event (their active queue to publish).
    touched: u64,
}

impl<'a, C: CacheOps> VirtRx<'a, C> {
    /// The virtualiser over the queues and regions in `config`, with `cache` maintenance. A client
    /// whose queues already hold inconsistent indices starts out faulty. `buffer_metadata` needs a
    /// byte per driver buffer for up to 8 clients, 8 bytes per buffer (8-aligned) for more.
    ///
    /// The token says the config's regions are mapped in this component for `'a` (read-write),
    /// and that this is the one component built from them.
    pub fn new(config: Mapped<'a, NetVirtRxConfig>, cache: C) -> Result<Self, SetupError> {
        let config = config.config();
        let n = config.driver.num_buffers;
        let macs = config.clients();
        let meta = &config.buffer_metadata;
        // SAFETY: the token: every queue and region below is mapped here read-write for `'a`, each
        // queue shared only with its peer, `buffer_metadata` with nobody, and this component makes
        // the only handles on them (here and below).
        let driver = unsafe { NetSink::from_connection(&config.driver) }?;
        let driver_ch = config.driver.channel()?;
        let s = State {
            io_addr: config.data.io_addr,
            // SAFETY: as above.
            data: unsafe { DataRegion::from_resource(&config.data.region, n.into(), true) }?,
            // SAFETY: as above.
            holders: unsafe { Holders::from_resource(meta, n.into(), macs.len()) }?,
            macs,
            keys: macs.iter().all(|c| c.num_macs == 1).then(|| {
                core::array::from_fn(|c| macs.get(c).map_or(u64::MAX, |m| key(m.mac_addrs[0].0)))
            }),
            // SAFETY: as above.
            clients: unsafe { clients(macs.iter().map(|c| &c.conn), NetSource::from_connection) }?,
            cache,
            stats: RxStats::default(),
            broadcast: u64::MAX,
            touched: 0,
        };
        Ok(Self {
            driver,
            driver_ch,
            s,
        })
    }

    /// Counters of dropped and redirected frames.
    pub fn stats(&self) -> RxStats {
        self.s.stats
    }

    /// Clients found misbehaving (bit `c` = client `c`); they get no more frames.
    pub fn faulty(&self) -> u64 {
        self.s.clients.faulty()
    }

    /// The clients holding driver buffer `i` (bit `c` = client `c`); 0 when the driver owns it.
    pub fn holders(&self, i: usize) -> u64 {
        self.s.holders.get(i)
    }

    /// Deliver broadcasts only to the clients in `mask` (bit `c` = client `c`); all by default
    /// (sDDF 0.7). The paper's first scheme sends them to an ARP responder alone.
    pub fn set_broadcast_clients(&mut self, mask: u64) {
        self.s.broadcast = mask;
    }

    /// Take over from a previous incarnation (a restarted component's `init`, in place of
    /// [`init`](Self::init); see the module docs): check every holder set against the clients'
    /// queues, give back to the driver the buffers no client holds any more, then serve one pass.
    /// Returns how many buffers went back to the driver that way.
    ///
    /// It reads the clients' queue regions, which the token [`new`](Self::new) took vouches for.
    pub fn resume(&mut self) -> Result<u32, Error> {
        let mut freed = 0;
        let buffers = usize::try_from(self.s.data.buffers()).unwrap_or(usize::MAX);
        for (c, client) in self.s.macs.iter().enumerate() {
            // SAFETY: the token `new` took: the clients' queues are mapped here for `'a`.
            let sent = unsafe { RawQueue::sent(&client.conn) }?;
            let me = 1u64 << c;
            for (i, offset) in (0..buffers).zip((0u64..).step_by(2048)) {
                let held = self.s.holders.get(i);
                if held & me == 0 || sent.clone().any(|b| b.io_or_offset == offset) {
                    continue;
                }
                self.s.holders.set(i, held & !me);
                if held == me {
                    let dma = NetBuffDesc::new(self.s.io_addr.wrapping_add(offset), 0);
                    match self.driver.free.push(dma) {
                        Err(PushError::Full(_)) => self.s.stats.bad_from_driver += 1,
                        r => r?,
                    }
                    freed += 1;
                }
            }
        }
        self.notified(ChannelSet::EMPTY)?;
        Ok(freed)
    }

    /// Hand every DMA buffer to the driver. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        self.s.holders.clear();
        let n = self.driver.fill_free(self.s.io_addr)?;
        if self.driver.should_notify_free(n > 0) {
            self.driver_ch.deferred_notify()?;
        }
        Ok(())
    }

    /// Phases 1 and 2 on every client's free queue: a buffer returned by one of its holders loses
    /// that holder, and goes back to the driver with the last one. An idle client (nothing
    /// returned, its request for a signal standing) costs a look at its raw indices and flag.
    #[inline(always)]
    fn rx_provide(&mut self) -> Result<(), Error> {
        let (s, to_driver) = (&mut self.s, &mut self.driver.free);
        let mut todo = s.clients.live();
        while todo != 0 {
            let c = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            let Some((q, _)) = s.clients.get(c) else {
                continue;
            };
            if q.free_idle() {
                continue;
            }
            let me = 1u64 << c;
            let (holders, data, stats, io) = (s.holders, &s.data, &mut s.stats, s.io_addr);
            let r = q.drain_free(|_, buf| {
                let i = data
                    .index(buf.io_or_offset)
                    .ok()
                    .map(|i| (i, holders.get(i)));
                let Some((i, held)) = i.filter(|&(_, held)| held & me != 0) else {
                    stats.bad_returns += 1;
                    return Ok(());
                };
                holders.set(i, held ^ me);
                if held == me {
                    let dma = NetBuffDesc::new(io.wrapping_add(buf.io_or_offset), 0);
                    to_driver.push(dma).map_err(|e| Stop::Driver(e.into()))?;
                }
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(Stop::Client) => s.clients.fault(c),
                Err(Stop::Driver(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Why a pass over a client's free queue stopped: the client corrupted its queue's indices (it
/// is faulted), or the driver's queue refused a buffer.
enum Stop {
    Client,
    Driver(Error),
}

impl From<lions_queue::PeerError> for Stop {
    fn from(_: lions_queue::PeerError) -> Self {
        Self::Client
    }
}

impl<C: CacheOps> State<'_, C> {
    /// The clients a frame for `dest` goes to.
    #[inline(always)]
    fn targets(&mut self, dest: MacAddr) -> u64 {
        if dest.is_broadcast() {
            self.stats.broadcast += 1;
            return self.broadcast;
        }
        let (n, want) = (self.macs.len(), key(dest.0));
        let owner = match &self.keys {
            Some(keys) => keys[..n].iter().position(|&k| k == want),
            None => self.macs.iter().position(|c| c.macs().contains(&dest)),
        };
        owner.map_or(0, |c| 1 << c)
    }

    /// One frame from the driver to its clients, or back to the driver (`to_driver`: its free
    /// queue).
    #[inline(always)]
    fn demux(&mut self, to_driver: &mut Out<'_>, buf: NetBuffDesc) -> Result<(), Error> {
        let offset = buf.io_or_offset.wrapping_sub(self.io_addr);
        let len = buf.len.min(MAX_LEN);
        let free = |&(i, _): &(usize, _)| self.holders.get(i) == 0;
        let Some((i, span)) = self.data.buffer(offset, len).ok().filter(free) else {
            self.stats.bad_from_driver += 1;
            return Ok(());
        };
        self.cache.clean_invalidate(span);
        let targets = span.head().map_or(0, |d| self.targets(MacAddr(d)));
        let (out, mut held) = (NetBuffDesc::new(offset, len), 0);
        let mut todo = targets & self.clients.live();
        while todo != 0 {
            let c = todo.trailing_zeros() as usize;
            todo &= todo - 1;
            if push_to(&mut self.clients, c, out) {
                held |= 1 << c;
            }
        }
        self.touched |= held;
        if held == 0 {
            self.stats.unmatched += 1;
            to_driver.push(NetBuffDesc::new(buf.io_or_offset, 0))?;
        } else {
            self.holders.set(i, held);
        }
        Ok(())
    }
}

impl<C: CacheOps> Handler for VirtRx<'_, C> {
    type Error = Error;

    /// Whoever notified, both directions are served (a notification without work costs a look
    /// at empty queues).
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        let s = &mut self.s;
        self.driver.drain_active(|free, buf| s.demux(free, buf))?;
        let touched = core::mem::take(&mut self.s.touched);
        self.s.clients.each_in(touched, |_, (q, ch)| {
            if q.publish_active() {
                ch.notify()?;
            }
            Ok::<_, Error>(true)
        })?;
        self.rx_provide()?;
        if self.driver.publish_free() {
            self.driver_ch.deferred_notify()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{Mem, NonCoherent, Pair, event, mapped};
    use crate::{Coherent, NetSink};
    use core::cell::RefCell;
    use lions_os::{ConfigClass, DeviceRegionResource, sddf_magic};
    use zerocopy::FromZeros;

    const IO: u64 = 0x8000_0000;
    const MAC: [MacAddr; 3] = [
        MacAddr([2, 0, 0, 0, 0, 1]),
        MacAddr([2, 0, 0, 0, 0, 2]),
        MacAddr([2, 0, 0, 0, 0, 3]),
    ];
    const ALL: ChannelSet = ChannelSet::EMPTY;

    struct Setup {
        driver: Pair,
        clients: Vec<Pair>,
        data: Mem,
        device: Mem,
        _meta: Mem,
        cfg: Box<NetVirtRxConfig>,
    }

    fn setup() -> Setup {
        setup_n(2)
    }

    fn setup_n(n: usize) -> Setup {
        let (driver, clients) = (
            Pair::new(4),
            (0..n).map(|_| Pair::new(4)).collect::<Vec<_>>(),
        );
        let meta = Mem::new(if n <= 8 { 4 } else { 4 * 8 });
        let (data, device) = (Mem::new(4 * 2048), Mem::new(4 * 2048));
        let mut cfg = Box::new(NetVirtRxConfig::new_zeroed());
        cfg.magic = sddf_magic(ConfigClass::Net);
        cfg.driver = driver.conn(0);
        cfg.data = DeviceRegionResource {
            region: data.res(),
            io_addr: IO,
        };
        cfg.buffer_metadata = meta.res();
        cfg.num_clients = u8::try_from(n).unwrap();
        for ((c, q), id) in clients.iter().enumerate().zip(1..) {
            cfg.clients[c].conn = q.conn(id);
            cfg.clients[c].mac_addrs[0] = MacAddr([2, 0, 0, 0, 0, id]);
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
        let mut v = VirtRx::new(mapped(&s.cfg), cache).unwrap();
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
            (0..4).map(|i| v.holders(i)).collect::<Vec<_>>(),
            [0b10, 0b11, 0, 0],
            "buffer 0 held by client 1 alone, buffer 1 by both"
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

    /// Issue 12 defect 1: a client that never received a broadcast buffer (or returns one twice,
    /// or returns buffer 0 from zeroed slots) cannot free it while another client holds it.
    #[test]
    fn only_a_holder_returns_a_broadcast_buffer_and_only_once() {
        let s = setup_n(3);
        let mut v = VirtRx::new(mapped(&s.cfg), Coherent).unwrap();
        let mut drv = s.driver.source();
        let mut cl: Vec<_> = s.clients.iter().map(Pair::sink).collect();
        lions_os::runtime::with_backend(&crate::testkit::Rec::default(), || v.init()).unwrap();
        while drv.free.pop().unwrap().is_some() {}
        drv.free.release();
        // Buffer 2 is broadcast to clients 1 and 2 only.
        v.set_broadcast_clients(0b110);
        s.data.write(2 * 2048, &frame(MacAddr::BROADCAST));
        drv.active
            .push(NetBuffDesc::new(IO + 2 * 2048, 60))
            .unwrap();
        drv.active.publish();
        event(&mut v, ALL);
        assert!(pop_all(&mut cl[0]).is_empty());
        assert_eq!(pop_all(&mut cl[1]), [(4096, 60)]);
        assert_eq!(pop_all(&mut cl[2]), [(4096, 60)]);
        // Client 2 returns it, then returns it again; client 0, which never got it, returns it
        // too, and bumps its tail over a zeroed slot (naming buffer 0, which nobody holds).
        give_back(&mut cl[2], &[4096]);
        event(&mut v, ALL);
        give_back(&mut cl[2], &[4096]);
        give_back(&mut cl[0], &[4096]);
        s.clients[0].free.write(0, &2u16.to_le_bytes());
        event(&mut v, ALL);
        assert_eq!(
            drv.free.pop().unwrap(),
            None,
            "client 1 still holds the buffer: it must not go back to the driver"
        );
        assert_eq!(v.stats().bad_returns, 3);
        // Client 1, the last holder, returns it: now it goes home, once.
        give_back(&mut cl[1], &[4096]);
        event(&mut v, ALL);
        assert_eq!(
            drv.free.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO + 4096)
        );
        assert_eq!(drv.free.pop().unwrap(), None);
        assert_eq!(v.faulty(), 0);
    }

    /// A client with two MACs: every client's addresses are searched, lowest client first.
    #[test]
    fn a_client_with_several_macs() {
        let mut s = setup();
        let other = MacAddr([2, 7, 7, 7, 7, 7]);
        (s.cfg.clients[1].mac_addrs[1], s.cfg.clients[1].num_macs) = (other, 2);
        let mut v = VirtRx::new(mapped(&s.cfg), Coherent).unwrap();
        let mut drv = s.driver.source();
        let mut cl = [s.clients[0].sink(), s.clients[1].sink()];
        lions_os::runtime::with_backend(&crate::testkit::Rec::default(), || v.init()).unwrap();
        while drv.free.pop().unwrap().is_some() {}
        drv.free.release();
        for (i, dst) in [other, MAC[1], MAC[0]].into_iter().enumerate() {
            s.data.write(i * 2048, &frame(dst));
            drv.active
                .push(NetBuffDesc::new(IO + i as u64 * 2048, 60))
                .unwrap();
        }
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(pop_all(&mut cl[1]), [(0, 60), (2048, 60)]);
        assert_eq!(pop_all(&mut cl[0]), [(4096, 60)]);
    }

    /// Nine clients: a `u64` holder set per buffer (8 bytes of `buffer_metadata` each).
    #[test]
    fn holder_sets_beyond_eight_clients() {
        let mut s = setup_n(9);
        let mut v = VirtRx::new(mapped(&s.cfg), Coherent).unwrap();
        let mut drv = s.driver.source();
        let mut cl: Vec<_> = s.clients.iter().map(Pair::sink).collect();
        lions_os::runtime::with_backend(&crate::testkit::Rec::default(), || v.init()).unwrap();
        while drv.free.pop().unwrap().is_some() {}
        drv.free.release();
        v.set_broadcast_clients(1 << 8 | 1);
        s.data.write(0, &frame(MacAddr::BROADCAST));
        drv.active.push(NetBuffDesc::new(IO, 60)).unwrap();
        drv.active.publish();
        event(&mut v, ALL);
        assert_eq!(v.holders(0), 1 << 8 | 1);
        assert_eq!(pop_all(&mut cl[8]), [(0, 60)]);
        give_back(&mut cl[8], &[0]);
        give_back(&mut cl[7], &[0]);
        event(&mut v, ALL);
        assert_eq!((v.holders(0), v.stats().bad_returns), (1, 1));
        assert_eq!(drv.free.pop().unwrap(), None);
        give_back(&mut cl[0], &[0]);
        event(&mut v, ALL);
        assert_eq!(drv.free.pop().unwrap().map(|d| d.io_or_offset), Some(IO));
        // A byte per buffer cannot hold nine clients' sets: refused at start-up.
        s.cfg.buffer_metadata.size = 4;
        let r = VirtRx::new(mapped(&s.cfg), Coherent);
        assert!(matches!(
            r.err(),
            Some(SetupError::RegionTooSmall {
                needed: 32,
                have: 4
            })
        ));
    }

    #[test]
    fn bad_descriptors_from_either_side_are_dropped_and_counted() {
        let s = setup();
        let mut v = VirtRx::new(mapped(&s.cfg), Coherent).unwrap();
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
        let mut v = VirtRx::new(mapped(&s.cfg), Coherent).unwrap();
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
        assert_eq!(v.holders(0), 0b01, "one holder: owned by client 0 alone");
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
