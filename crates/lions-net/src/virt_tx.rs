// SPDX-License-Identifier: BSD-2-Clause
//! The Tx virtualiser (`net_virt_tx`): the clients' frames to the driver, validated, translated
//! and ordered by a shaping policy.
//!
//! ## Protocol
//!
//! - **`tx_provide`** (any notification, after `tx_return`): every client's next frame is checked
//!   once, here: `0 < len <= 2048`; `oid` names one of the client's data regions; the offset is
//!   2048-aligned and below that region's `num_buffers * 2048`; the buffer is not already at the
//!   driver. A bad descriptor goes straight back, unchanged, on the client's free queue and is
//!   counted ([`TxStats::bad`]); it never reaches the driver. A good one is cleaned from the cache
//!   (the [`CacheOps`] hook) and translated to `region.io_addr + offset`. The [`TxPolicy`] then
//!   picks, frame by frame, which client's checked head frame goes next while the driver's active
//!   queue has room. The descriptor sent is the copy that was checked, so a client rewriting its
//!   queue slot meanwhile changes nothing; a frame left waiting is read and checked again in the
//!   next pass. The driver is notified (deferred: it runs at a higher priority) if it asked.
//! - **`tx_return`**: drain the driver's free queue. The virt keeps one *in-flight bit* per client
//!   buffer, set when it hands the buffer to the driver. Each device address is mapped back to
//!   the client, region (`oid`) and offset it came from; if it is 2048-aligned and its bit is set,
//!   the bit is cleared and the buffer returned on that client's free queue. Anything else (an
//!   address of nobody, a buffer not at the driver, a second return) is refused and counted
//!   ([`TxStats::lost`]) and never touches a client's queue. Request a signal and re-check.
//! - **Signals.** A client whose queue was drained requests a signal and re-checks; a client
//!   with frames still waiting (held back by the policy or a full driver queue) requests one
//!   without a re-check, so its next frame or the driver's next returned buffer runs the virt
//!   again. Each client is notified once per event, if it got buffers back and asked.
//! - **Start-up** (sDDF's convention): each client primes its own free queue with its buffers;
//!   the virt adopts that queue's tail when it sees the client's first frame.
//! - **Restart** ([`VirtTx::resume`], for a component restarted with its regions intact, paper
//!   §5.2). Everything but the in-flight bits (which buffers are at the driver) is either in the
//!   queues' shared indices or recomputed on every pass. The bits are *rebuilt from the
//!   driver's queues*, not kept in a region (sdfgen gives the Tx virt none): the buffers sent
//!   and not yet taken back are the last `active.tail - free.head` descriptors on the driver's
//!   active queue (its own slots, which only this component writes). That is exact for a driver
//!   that returns buffers in the order it got them (ours do); for one that does not, a buffer
//!   returned out of order may be marked at the driver although it is back (refused when the
//!   driver returns it again) or the reverse.
//!   A client frame found at the head of its queue that is already among those in flight was
//!   sent before the restart but not yet taken off the client's queue (a crash between the two):
//!   it is taken off now and not sent twice. The policy's state starts afresh (a swap to
//!   another policy is a restart with another binary). A frame the old incarnation had staged
//!   but not published is sent again by the new one; buffers it had taken back from the driver
//!   but not yet handed to their client are lost to that client (a few instructions' window).
//! - **Misbehaviour.** A client whose indices are impossible is marked faulty ([`TxStats::faulty`])
//!   and skipped; a full client free queue (a client that sent duplicates) drops and counts the
//!   buffer. The driver is trusted to keep its queue indices (an impossible one is an [`Error`]),
//!   not to return only what it was sent.

use crate::cache::{CacheOps, PlatformCache};
use crate::policy::TxPolicy;
use crate::queue::{Clients, NET_BUFFER_SIZE, NetBuffDesc, NetSink, NetSource, RawQueue, clients};
use crate::region::{DataRegion, Span};
use crate::{Error, NetVirtTxClient, NetVirtTxConfig, SetupError};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, Mapped};
use lions_queue::{PushError, clients::bits};

/// Most client buffers a Tx virtualiser serves, over all its clients' regions (one in-flight bit
/// each, 4 KiB): 64 clients of 512 buffers (sdfgen's default).
pub const MAX_TX_BUFFERS: u32 = 1 << 15;
const WORDS: usize = MAX_TX_BUFFERS as usize / 64;

/// What the Tx virtualiser refused or lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TxStats {
    /// Client descriptors that failed validation (returned to the client).
    pub bad: u64,
    /// Buffers the driver returned that are refused (of no client, not at the driver, or
    /// misaligned), or that a full client free queue could not take.
    pub lost: u64,
    /// Clients found misbehaving (bit `c` = client `c`); they are ignored.
    pub faulty: u64,
}

/// Word and mask of in-flight bit `b` (the mask keeps the word index in the array).
#[inline(always)]
fn slot(b: u32) -> (usize, u64) {
    ((b >> 6) as usize & (WORDS - 1), 1 << (b & 63))
}

/// Whether in-flight bit `b` is set in `bits`.
#[inline(always)]
fn at(bits: &[u64; WORDS], b: u32) -> bool {
    let (w, m) = slot(b);
    bits[w] & m != 0
}

/// A checked frame: its device address, in-flight bit, and the span to clean.
type Head<'a> = (u64, u32, Span<'a>);

/// The device address, in-flight bit and span of a client's descriptor `buf`, checked against
/// its regions (see the module docs; the offset checks are [`DataRegion::buffer`]'s); `first`
/// is the client's first in-flight bit.
#[inline(always)]
fn buffer_of<'a>(k: &'a NetVirtTxClient, first: u32, buf: &NetBuffDesc) -> Option<Head<'a>> {
    let regions = k.regions();
    let oid = usize::from(buf.oid());
    let r = regions.get(oid).filter(|_| buf.len > 0)?;
    let (base, _) = r.data.region.as_raw_parts()?;
    // SAFETY: `VirtTx::new` checked that this region maps `num_buffers * 2048` readable bytes for
    // 'a (the caller's promise).
    let data = unsafe { DataRegion::new(base, r.num_buffers.into(), false) };
    let (i, span) = data.buffer(buf.io_or_offset, buf.len).ok()?;
    let below: u32 = regions[..oid].iter().map(|r| r.num_buffers).sum();
    // `new` checked that the bits of all buffers fit below `MAX_TX_BUFFERS`.
    #[allow(clippy::cast_possible_truncation)]
    let bit = first + below + i as u32;
    Some((r.data.io_addr.wrapping_add(buf.io_or_offset), bit, span))
}

/// Where a buffer's in-flight bit is: client, `oid` and the region's first bit.
type Place = (usize, u8, u32);

/// Every client's regions in order (client, then `oid`): device address and length in bytes,
/// and [`Place`].
fn regions(cfg: &NetVirtTxConfig) -> impl Iterator<Item = ((u64, u64), Place)> + '_ {
    let all = cfg.clients().iter().enumerate();
    let all = all.flat_map(|(c, k)| (0u8..).zip(k.regions()).map(move |(oid, r)| (c, oid, r)));
    all.scan(0u32, |first, (c, oid, r)| {
        let place = (c, oid, *first);
        *first = first.saturating_add(r.num_buffers);
        let bytes = u64::from(r.num_buffers) * NET_BUFFER_SIZE;
        Some(((r.data.io_addr, bytes), place))
    })
}

/// The client, region index, offset in the region and in-flight bit of device address `io` if
/// it is in the region at `base` of `bytes`, placed at `place`.
#[inline(always)]
fn hit(
    io: u64,
    (base, bytes): (u64, u64),
    (c, oid, first): Place,
) -> Option<(usize, u8, u64, u32)> {
    let off = io.wrapping_sub(base);
    // `off / 2048 < num_buffers`, a u32.
    #[allow(clippy::cast_possible_truncation)]
    (off < bytes).then(|| (c, oid, off, first + (off / NET_BUFFER_SIZE) as u32))
}

/// [`hit`] of device address `io` in the first of `cfg`'s regions holding it (`None`: in no
/// client's region). The reference scan over the config, for configs with more regions than
/// [`Lookup`] holds.
fn at_address(cfg: &NetVirtTxConfig, io: u64) -> Option<(usize, u8, u64, u32)> {
    regions(cfg).find_map(|(span, place)| hit(io, span, place))
}

/// Regions [`Lookup`] holds inline; a config with more non-empty regions uses [`at_address`].
const LOOKUP_REGIONS: usize = 16;

/// The non-empty regions of every client in [`at_address`]'s order, flat. A returned buffer's
/// address is found by one compare per region instead of a walk over the config's per-client
/// region arrays; the first match is the same one, so the result is [`at_address`]'s exactly.
struct Lookup {
    /// Entries in use, or `None` when the config has more than [`LOOKUP_REGIONS`].
    len: Option<usize>,
    /// Device address and length in bytes of each region.
    span: [(u64, u64); LOOKUP_REGIONS],
    /// Where each region's bits are.
    place: [Place; LOOKUP_REGIONS],
}

impl Lookup {
    /// The table of `cfg`'s regions (whose buffer bits fit in a u32, checked by the caller).
    fn new(cfg: &NetVirtTxConfig) -> Self {
        let mut t = Self {
            len: Some(0),
            span: [(0, 0); LOOKUP_REGIONS],
            place: [(0, 0, 0); LOOKUP_REGIONS],
        };
        for (span, place) in regions(cfg).filter(|&((_, bytes), _)| bytes != 0) {
            t.len = t.len.filter(|&n| n < LOOKUP_REGIONS).map(|n| {
                (t.span[n], t.place[n]) = (span, place);
                n + 1
            });
        }
        t
    }

    /// [`at_address`] of `io` under `cfg` (the config this table was made from).
    #[inline(always)]
    fn find(&self, cfg: &NetVirtTxConfig, io: u64) -> Option<(usize, u8, u64, u32)> {
        let Some(n) = self.len else {
            return at_address(cfg, io);
        };
        let mut all = self.span[..n].iter().zip(&self.place[..n]);
        all.find_map(|(&span, &place)| hit(io, span, place))
    }
}

/// Send a bad descriptor back to its client unchanged, counted; false if the client is faulty.
#[cold]
#[inline(never)]
fn bounce(q: &mut NetSink<'_>, stats: &mut TxStats, buf: NetBuffDesc) -> bool {
    stats.bad += 1;
    let _ = q.take_active();
    let pushed = q.push_free(buf);
    stats.lost += u64::from(pushed.is_err());
    !matches!(pushed, Err(PushError::Peer(..)))
}

/// The Tx virtualiser; see the module docs.
pub struct VirtTx<'a, P, C = PlatformCache> {
    config: &'a NetVirtTxConfig,
    driver: NetSource<'a>,
    driver_ch: Channel,
    clients: Clients<NetSink<'a>>,
    policy: P,
    cache: C,
    stats: TxStats,
    /// Clients with a checked frame waiting; each one's device address, in-flight bit and length.
    ready: u64,
    heads: [(u64, u32); MAX_CLIENTS],
    lens: [u16; MAX_CLIENTS],
    /// Each client's first in-flight bit, and the bits (set: the driver has that buffer).
    first: [u32; MAX_CLIENTS],
    at_driver: [u64; WORDS],
    /// The regions by device address, for `tx_return`.
    lookup: Lookup,
}

impl<'a, P: TxPolicy, C: CacheOps> VirtTx<'a, P, C> {
    /// The virtualiser over the queues and regions in `config`, ordering frames by `policy`. A
    /// client whose queues already hold inconsistent indices starts out faulty. Refused if the
    /// clients' regions hold more than [`MAX_TX_BUFFERS`] buffers.
    ///
    /// The token says the config's regions are mapped in this component for `'a` (queues
    /// read-write, data regions at least readable), and that this is the one component built from
    /// them.
    pub fn new(cfg: Mapped<'a, NetVirtTxConfig>, policy: P, cache: C) -> Result<Self, SetupError> {
        let cfg = cfg.config();
        let (mut first, mut n) = ([0; MAX_CLIENTS], 0u32);
        for (f, client) in first.iter_mut().zip(cfg.clients()) {
            *f = n;
            for r in client.regions() {
                // SAFETY: the token: the region is mapped here, readable, for `'a`; this checks
                // it covers its `num_buffers`.
                unsafe { r.buffers() }?;
                n = n.saturating_add(r.num_buffers);
            }
            if n > MAX_TX_BUFFERS {
                return Err(SetupError::TooManyBuffers(n.into()));
            }
        }
        let conns = cfg.clients().iter().map(|c| &c.conn);
        Ok(Self {
            config: cfg,
            // SAFETY: the token: the queues are mapped here read-write for `'a`, shared only with
            // their peers, and this component makes the only handles on them (here and below).
            driver: unsafe { NetSource::from_connection(&cfg.driver) }?,
            driver_ch: cfg.driver.channel()?,
            // SAFETY: as above.
            clients: unsafe { clients(conns, NetSink::from_connection) }?,
            policy,
            cache,
            stats: TxStats::default(),
            ready: 0,
            heads: [(0, 0); MAX_CLIENTS],
            lens: [0; MAX_CLIENTS],
            first,
            at_driver: [0; WORDS],
            lookup: Lookup::new(cfg),
        })
    }

    /// Rebuild what a previous incarnation knew, then serve (a restarted component's `init`; see
    /// the module docs): mark each buffer at the driver from the driver's queues,
    /// take off client queues the frames already sent, and run one pass (buffers the driver
    /// returned meanwhile go back, waiting frames go out). Returns how many frames were found
    /// already sent.
    ///
    /// It reads the driver's queue regions, which the token [`new`](Self::new) took vouches for.
    pub fn resume(&mut self) -> Result<u32, Error> {
        self.at_driver = [0; WORDS];
        // SAFETY: the token `new` took: the driver's queues are mapped here for `'a`.
        let sent = unsafe { RawQueue::sent(&self.config.driver) }?;
        for (.., bit) in sent.filter_map(|buf| at_address(self.config, buf.io_or_offset)) {
            let (w, m) = slot(bit);
            self.at_driver[w] |= m;
        }
        let mut resent = 0;
        for c in bits(self.clients.live()) {
            let (Some(k), Some((q, _))) = (self.config.clients().get(c), self.clients.get(c))
            else {
                continue;
            };
            while let Ok(Some(buf)) = q.peek_active()
                && buffer_of(k, self.first[c], &buf).is_some_and(|h| at(&self.at_driver, h.1))
            {
                let _ = q.take_active();
                resent += 1;
            }
        }
        self.notified(ChannelSet::EMPTY)?;
        Ok(resent)
    }

    /// Counters of refused and lost buffers, and the faulted clients.
    pub fn stats(&self) -> TxStats {
        TxStats {
            faulty: self.clients.faulty(),
            ..self.stats
        }
    }

    /// The shaping policy (e.g. for [`TxPolicy::wake_at`]).
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Look at client `c`'s next valid frame (after taking the one just sent, if `take`; bad
    /// ones before it go back to the client), clean it and record it in `heads`, `lens` and
    /// `ready`. A client whose indices are impossible is faulted.
    #[inline(always)]
    fn head(&mut self, c: usize, take: bool) {
        self.ready &= !(1 << c);
        let Some((q, _)) = self.clients.get(c) else {
            return;
        };
        let _ = take.then(|| q.take_active());
        loop {
            let buf = match q.peek_active() {
                Ok(Some(buf)) if q.adopt_free_once().is_ok() => buf,
                Ok(None) => return,
                _ => break,
            };
            let head = buffer_of(&self.config.clients[c], self.first[c], &buf);
            // Refused when its buffer is already at the driver.
            if let Some((io, bit, span)) = head.filter(|h| !at(&self.at_driver, h.1)) {
                self.cache.clean(span);
                (self.heads[c], self.lens[c]) = ((io, bit), buf.len);
                return self.ready |= 1 << c;
            }
            if !bounce(q, &mut self.stats, buf) {
                break;
            }
        }
        self.clients.fault(c);
    }

    /// One pass: policy-ordered frames to the driver, then phases 2 and 3 toward the clients.
    /// Returns whether a drained client's queue refilled meanwhile (run again).
    fn tx_provide(&mut self) -> Result<bool, Error> {
        self.policy.begin();
        for c in bits(self.clients.live()) {
            self.head(c, false);
        }
        while let Some(c) = self.policy.pick(self.ready, &self.lens) {
            let Some(&(io, bit)) = self.heads.get(c).filter(|_| self.ready >> c & 1 != 0) else {
                break;
            };
            // Staged: the driver cannot see it before the publish below.
            match self.driver.active.push(NetBuffDesc::new(io, self.lens[c])) {
                Err(PushError::Full(_)) => break,
                r => r?,
            }
            let (w, m) = slot(bit);
            self.at_driver[w] |= m;
            self.policy.sent(c, self.lens[c]);
            self.head(c, true);
        }
        if self.driver.publish_active() {
            self.driver_ch.deferred_notify()?;
        }
        let (mut again, ready) = (false, self.ready);
        self.clients.each(|c, (q, ch)| {
            if q.publish_free() {
                ch.notify()?;
            }
            let rested = q.rest_active(ready & (1 << c) != 0);
            again |= rested == Ok(true);
            Ok::<_, Error>(rested.is_ok())
        })?;
        Ok(again)
    }

    /// Return `buf` from the driver to the client it came from if it is one of its buffers at
    /// the driver (clearing its in-flight bit); false if refused or the client's queue is full.
    #[inline(always)]
    fn tx_return(&mut self, buf: NetBuffDesc) -> bool {
        let Some((c, oid, off, bit)) = self.lookup.find(self.config, buf.io_or_offset) else {
            return false;
        };
        if !at(&self.at_driver, bit) || !off.is_multiple_of(NET_BUFFER_SIZE) {
            return false;
        }
        let (w, m) = slot(bit);
        self.at_driver[w] &= !m;
        let back = NetBuffDesc::with_oid(off, buf.len, oid);
        let (Some((q, _)), Ok(back)) = (self.clients.get(c), back) else {
            return false;
        };
        match q.push_free(back) {
            Err(PushError::Peer(..)) => self.clients.fault(c),
            pushed => return pushed.is_ok(),
        }
        false
    }
}

impl<P: TxPolicy, C: CacheOps> Handler for VirtTx<'_, P, C> {
    type Error = Error;

    /// Buffers the driver sent go back to the clients they came from, then the clients' frames
    /// go out.
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        while let Some(buf) = self.driver.next_free()? {
            self.stats.lost += u64::from(!self.tx_return(buf));
        }
        while self.tx_provide()? {}
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::queue::NetQueue;
    use crate::testkit::{Mem, NonCoherent, Pair, event, mapped};
    use crate::{Coherent, InOrder, RoundRobin};
    use core::cell::RefCell;
    use lions_os::{ConfigClass, DeviceRegionResource, sddf_magic};
    use zerocopy::FromZeros;

    /// Device addresses of client 0's regions 0 and 1, and client 1's region 0.
    const IO: [u64; 3] = [0x1000_0000, 0x2000_0000, 0x3000_0000];
    const ALL: ChannelSet = ChannelSet::EMPTY;

    struct Setup {
        driver: Pair,
        clients: [Pair; 2],
        data: [Mem; 3],
        device: Mem,
        cfg: Box<NetVirtTxConfig>,
    }

    fn setup() -> Setup {
        let (driver, clients) = (Pair::new(8), [Pair::new(4), Pair::new(4)]);
        let data = [Mem::new(4 * 2048), Mem::new(2 * 2048), Mem::new(4 * 2048)];
        let mut cfg = Box::new(NetVirtTxConfig::new_zeroed());
        cfg.magic = sddf_magic(ConfigClass::Net);
        cfg.driver = driver.conn(0);
        cfg.num_clients = 2;
        for ((c, q), id) in clients.iter().enumerate().zip(1..) {
            cfg.clients[c].conn = q.conn(id);
        }
        for (i, (c, oid, n)) in [(0, 0u8, 4u32), (0, 1, 2), (1, 0, 4)]
            .into_iter()
            .enumerate()
        {
            let r = &mut cfg.clients[c].regions[usize::from(oid)];
            r.data = DeviceRegionResource {
                region: data[i].res(),
                io_addr: IO[i],
            };
            r.num_buffers = n;
            cfg.clients[c].num_regions = oid + 1;
        }
        Setup {
            driver,
            clients,
            data,
            device: Mem::new(2 * 2048),
            cfg,
        }
    }

    /// The flat region table answers exactly as the reference scan, with few regions (held
    /// inline, zero-buffer and overlapping ones included) and with more than it holds.
    #[test]
    fn the_region_table_finds_what_the_scan_finds() {
        for regions in [3u8, 9] {
            let mut cfg = Box::new(NetVirtTxConfig::new_zeroed());
            cfg.num_clients = 3;
            for (c, k) in cfg.clients.iter_mut().take(3).enumerate() {
                k.num_regions = regions;
                for (oid, r) in (0u32..).zip(k.regions.iter_mut().take(usize::from(regions))) {
                    // Client 2's region 1 overlaps client 0's region 1; every third is empty.
                    let base = if c == 2 && oid == 1 { 0 } else { c as u64 };
                    r.data.io_addr = 0x1000_0000 * (base + 1) + 0x10_0000 * u64::from(oid);
                    r.num_buffers = if oid % 3 == 2 { 0 } else { 4 + oid };
                }
            }
            let t = Lookup::new(&cfg);
            assert_eq!(
                t.len.is_some(),
                regions == 3,
                "held inline only when it fits"
            );
            let mut found = 0;
            for c in 0..4u64 {
                for oid in 0..10u64 {
                    for off in [0, 1, 2048, 4 * 2048 - 1, 4 * 2048, 9 * 2048, 40_000] {
                        let io = 0x1000_0000 * (c + 1) + 0x10_0000 * oid + off;
                        let want = at_address(&cfg, io);
                        found += usize::from(want.is_some());
                        assert_eq!(t.find(&cfg, io), want, "address {io:#x}");
                    }
                }
            }
            assert!(found > 20, "the addresses hit regions ({found})");
            assert_eq!(t.find(&cfg, 0x10_0000 - 1), None);
        }
    }

    #[test]
    fn translates_cleans_before_enqueueing_and_maps_returns_back() {
        let s = setup();
        let log = RefCell::new(Vec::new());
        let cache = NonCoherent {
            cpu: &s.data[1],
            device: &s.device,
            watch: &s.driver,
            log: &log,
        };
        let mut v = VirtTx::new(mapped(&s.cfg), InOrder, cache).unwrap();
        let mut drv = s.driver.sink();
        let mut c0 = s.clients[0].source();
        c0.prime_free(0).unwrap();
        c0.free.pop().unwrap();
        c0.free.release();
        // Client 0 writes a frame into its second region (oid 1), buffer 1.
        s.data[1].write(2048, b"hello, device");
        c0.active
            .push(NetBuffDesc::with_oid(2048, 13, 1).unwrap())
            .unwrap();
        c0.active.publish();
        assert_eq!(event(&mut v, ALL), [0], "the driver's zeroed flag asks");
        let d = drv.active.pop().unwrap().unwrap();
        assert_eq!((d.io_or_offset, d.len), (IO[1] + 2048, 13));
        assert_eq!(
            s.device.read(2048, 13),
            b"hello, device",
            "cleaned to memory"
        );
        assert_eq!(
            log.borrow()[..],
            [("clean", 2048, 13, 0)],
            "before the driver could see it"
        );
        assert_eq!(s.driver.active_tail(), 1);
        // Client 1 sends its buffer 3 (it holds all four: it never primed its free queue).
        let mut c1 = s.clients[1].source();
        c1.active.push(NetBuffDesc::new(3 * 2048, 13)).unwrap();
        c1.active.publish();
        event(&mut v, ALL);
        let d3 = drv.active.pop().unwrap().unwrap();
        assert_eq!(d3.io_or_offset, IO[2] + 3 * 2048);
        // The driver returns both, plus an address of nobody.
        drv.active.release();
        for io in [d.io_or_offset, d3.io_or_offset, IO[1] + 2 * 2048] {
            drv.free.push(NetBuffDesc::new(io, 13)).unwrap();
        }
        drv.free.publish();
        event(&mut v, ALL);
        let back = core::iter::from_fn(|| c0.free.pop().unwrap())
            .last()
            .unwrap();
        assert_eq!(
            (back.io_or_offset, back.oid()),
            (2048, 1),
            "offset and region restored"
        );
        let d1 = c1.free.pop().unwrap().unwrap();
        assert_eq!((d1.io_or_offset, d1.oid()), (3 * 2048, 0));
        assert_eq!(
            v.stats(),
            TxStats {
                bad: 0,
                lost: 1,
                faulty: 0
            }
        );
    }

    /// Issue 12 defect 2: a buffer the driver returns that nobody sent is refused; it must not
    /// reach (and before adoption, corrupt) the client's free queue.
    #[test]
    fn a_buffer_nobody_sent_is_not_returned() {
        let s = setup();
        let mut v = VirtTx::new(mapped(&s.cfg), InOrder, Coherent).unwrap();
        let mut c0 = s.clients[0].source();
        assert_eq!(c0.prime_free(0).unwrap(), 4);
        let free_tail = || u16::from_le_bytes(s.clients[0].free.read(0, 2).try_into().unwrap());
        assert_eq!(free_tail(), 4);
        // The driver returns client 0's buffer 1, which was never sent.
        let mut drv = s.driver.sink();
        drv.free.push(NetBuffDesc::new(IO[0] + 2048, 60)).unwrap();
        drv.free.publish();
        event(&mut v, ALL);
        assert_eq!(free_tail(), 4, "the client's primed free queue is intact");
        assert_eq!(v.stats().lost, 1);
        // The client still transmits, and gets its buffer back once, when it was really sent.
        let d = c0.free.pop().unwrap().unwrap();
        c0.free.release();
        c0.active
            .push(NetBuffDesc::new(d.io_or_offset, 60))
            .unwrap();
        c0.active.publish();
        event(&mut v, ALL);
        let sent = drv.active.pop().unwrap().unwrap();
        assert_eq!(sent.io_or_offset, IO[0] + d.io_or_offset);
        drv.active.release();
        for _ in 0..2 {
            drv.free.push(sent).unwrap();
        }
        drv.free.publish();
        event(&mut v, ALL);
        assert_eq!(free_tail(), 5, "returned once, not twice");
        assert_eq!(v.stats().lost, 2);
        assert_eq!(v.stats().faulty, 0);
    }

    /// Issue 12 defect 2's remainder: the virt knows *which* buffers are at the driver. A buffer
    /// sent twice is refused the second time (back to the client, counted bad); the driver gets
    /// back in flight only what it holds, each once, whatever it returns meanwhile.
    #[test]
    fn each_buffer_is_at_the_driver_at_most_once() {
        let s = setup();
        let mut v = VirtTx::new(mapped(&s.cfg), InOrder, Coherent).unwrap();
        let (mut c0, mut drv) = (s.clients[0].source(), s.driver.sink());
        for off in [2048, 2048] {
            c0.active.push(NetBuffDesc::new(off, 60)).unwrap();
        }
        c0.active.publish();
        event(&mut v, ALL);
        assert_eq!(
            drv.active.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO[0] + 2048)
        );
        assert_eq!(
            drv.active.pop().unwrap(),
            None,
            "the duplicate never reaches the driver"
        );
        assert_eq!(v.stats().bad, 1);
        assert_eq!(
            c0.free.pop().unwrap(),
            Some(NetBuffDesc::new(2048, 60)),
            "bounced"
        );
        // The driver returns buffer 0 (never sent), buffer 1 misaligned, then buffer 1 twice.
        drv.active.release();
        for io in [IO[0], IO[0] + 2048 + 1, IO[0] + 2048, IO[0] + 2048] {
            drv.free.push(NetBuffDesc::new(io, 60)).unwrap();
        }
        drv.free.publish();
        event(&mut v, ALL);
        assert_eq!(c0.free.pop().unwrap().map(|d| d.io_or_offset), Some(2048));
        assert_eq!(c0.free.pop().unwrap(), None, "once");
        assert_eq!(v.stats().lost, 3);
        // Back home, it may go out again.
        c0.free.release();
        c0.active.push(NetBuffDesc::new(2048, 60)).unwrap();
        c0.active.publish();
        event(&mut v, ALL);
        assert_eq!(
            drv.active.pop().unwrap().map(|d| d.io_or_offset),
            Some(IO[0] + 2048)
        );
        assert_eq!(v.stats().bad, 1);
    }

    #[test]
    fn more_buffers_than_bits_are_refused() {
        let mut s = setup();
        s.cfg.clients[1].regions[0].num_buffers = MAX_TX_BUFFERS - 6 + 1;
        s.data[2] = Mem::new((MAX_TX_BUFFERS as usize - 5) * 2048);
        s.cfg.clients[1].regions[0].data.region = s.data[2].res();
        let r = VirtTx::new(mapped(&s.cfg), InOrder, Coherent);
        assert_eq!(
            r.err(),
            Some(SetupError::TooManyBuffers(u64::from(MAX_TX_BUFFERS) + 1))
        );
        s.cfg.clients[1].regions[0].num_buffers -= 1;
        let r = VirtTx::new(mapped(&s.cfg), InOrder, Coherent);
        assert!(r.is_ok(), "exactly full");
    }

    /// Both clients queue three frames before the virt runs: one pass orders them.
    fn one_pass<P: TxPolicy>(policy: P) -> Vec<u64> {
        let s = setup();
        let mut v = VirtTx::new(mapped(&s.cfg), policy, Coherent).unwrap();
        for (c, q) in (0u16..).zip(&s.clients) {
            let mut src = q.source();
            for i in 0..3 {
                src.active.push(NetBuffDesc::new(i * 2048, 60 + c)).unwrap();
            }
            src.active.publish();
        }
        event(&mut v, ALL);
        let mut drv = s.driver.sink();
        core::iter::from_fn(|| drv.active.pop().unwrap())
            .map(|d| d.io_or_offset >> 28)
            .collect()
    }

    #[test]
    fn the_policy_orders_a_pass() {
        assert_eq!(one_pass(InOrder), [1, 1, 1, 3, 3, 3]);
        assert_eq!(one_pass(RoundRobin::default()), [1, 3, 1, 3, 1, 3]);
        assert_eq!(
            one_pass(crate::StrictPriority::new(&[0, 1])),
            [3, 3, 3, 1, 1, 1]
        );
    }

    #[test]
    fn a_waiting_frame_is_checked_again_when_it_goes() {
        let s = setup();
        let mut v = VirtTx::new(mapped(&s.cfg), InOrder, Coherent).unwrap();
        let (mut c0, mut c1) = (s.clients[0].source(), s.clients[1].source());
        // Eight frames fill the driver queue.
        for (q, c) in [(&mut c0, 0u16), (&mut c1, 1)] {
            for i in 0..4 {
                q.active.push(NetBuffDesc::new(i * 2048, 60 + c)).unwrap();
            }
            q.active.publish();
        }
        event(&mut v, ALL);
        assert_eq!(s.driver.active_tail(), 8);
        // A ninth, valid, waits for room; meanwhile the client rewrites its queue slot.
        c0.active
            .push(NetBuffDesc::with_oid(0, 60, 1).unwrap())
            .unwrap();
        c0.active.publish();
        event(&mut v, ALL);
        let bad = NetBuffDesc::new(1 << 40, 2000);
        let slot = NetQueue::ENTRIES_OFFSET; // index 4 of a 4-slot ring
        s.clients[0]
            .active
            .write(slot, zerocopy::IntoBytes::as_bytes(&bad));
        let mut drv = s.driver.sink();
        while drv.active.pop().unwrap().is_some() {}
        drv.active.release();
        event(&mut v, ALL);
        assert_eq!(
            drv.active.pop().unwrap(),
            None,
            "the rewritten descriptor never reaches the driver"
        );
        assert_eq!(v.stats().bad, 1);
        assert_eq!(
            c0.free.pop().unwrap(),
            Some(bad),
            "returned to its client as it was"
        );
    }
}
