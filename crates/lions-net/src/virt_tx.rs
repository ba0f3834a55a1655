// SPDX-License-Identifier: BSD-2-Clause
//! The Tx virtualiser (`net_virt_tx`): the clients' frames to the driver, validated, translated
//! and ordered by a shaping policy.
//!
//! ## Protocol
//!
//! - **`tx_provide`** (any notification, after `tx_return`): every client's next frame is checked
//!   once, here (`check`): `0 < len <= 2048`; `oid` names one of the client's data regions; the
//!   offset is 2048-aligned and below that region's `num_buffers * 2048`; the buffer is not
//!   already at the driver. A bad descriptor goes straight back, unchanged, on the client's free
//!   queue and is counted ([`TxStats::bad`]); it never reaches the driver. A good one is cleaned
//!   from the cache (the [`CacheOps`] hook) and translated to `region.io_addr + offset`. The
//!   [`TxPolicy`] then picks which client's checked head frame goes next while the driver's
//!   active queue has room; a client the policy would pick again anyway
//!   ([`TxPolicy::keeps_turn`]) sends its following frames in a row. The descriptor sent is the copy that was checked, so a
//!   client rewriting its queue slot meanwhile changes nothing; a frame left waiting is read and
//!   checked again in the next pass. The driver is notified (deferred: it runs at a higher
//!   priority) if it asked.
//! - **`tx_return`**: drain the driver's free queue. The virt keeps one *in-flight bit* per client
//!   buffer, set when it hands the buffer to the driver. Each device address is mapped back to
//!   the client, region (`oid`) and offset it came from by one scan of the configured regions
//!   ([`VirtTx`]'s `owner`, the first region holding it); if it is 2048-aligned and its bit is
//!   set, the bit is cleared and the buffer returned on that client's free queue. Anything else
//!   (an address of nobody, a buffer not at the driver, a second return) is refused and counted
//!   ([`TxStats::lost`]) and never touches a client's queue. Request a signal and re-check.
//! - **Signals.** A client whose queue is found empty requests a signal and re-checks at once
//!   (a frame found then is served in the same pass); a client with frames still waiting (held
//!   back by the policy or a full driver queue) requests one without a re-check, so its next
//!   frame or the driver's next returned buffer runs the virt again. Each client is notified
//!   once per event, if it got buffers back and asked.
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
use crate::region::Span;
use crate::{Error, NetVirtTxClient, NetVirtTxConfig, NetVirtTxRegion, SetupError};
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

/// One bit per client buffer: set while the driver has that buffer.
struct InFlight([u64; WORDS]);

impl InFlight {
    /// Whether bit `b` is set.
    #[inline(always)]
    fn at(&self, b: u32) -> bool {
        self.0[(b >> 6) as usize & (WORDS - 1)] >> (b & 63) & 1 != 0
    }

    /// Make bit `b` `on`; whether it was set.
    #[inline(always)]
    fn put(&mut self, b: u32, on: bool) -> bool {
        let (w, m) = (&mut self.0[(b >> 6) as usize & (WORDS - 1)], 1 << (b & 63));
        let was = *w & m != 0;
        *w = if on { *w | m } else { *w & !m };
        was
    }
}

/// A checked frame: its device address, in-flight bit, and the span to clean.
type Head<'a> = (u64, u32, Span<'a>);

/// The device address, in-flight bit and span of client `k`'s descriptor `buf` if it passes
/// every check of the module docs but the in-flight one: `0 < len <= 2048`, `oid` below the
/// client's region count, offset 2048-aligned and below the region's `num_buffers * 2048`.
/// `first` is the client's first in-flight bit. Each check is one compare and branch.
#[inline(always)]
fn check<'a>(k: &'a NetVirtTxClient, first: u32, buf: NetBuffDesc) -> Option<Head<'a>> {
    let (off, oid) = (buf.io_or_offset, usize::from(buf.oid()));
    let regions = k.regions();
    let r = regions.get(oid)?;
    let index = off / NET_BUFFER_SIZE;
    if buf.len.wrapping_sub(1) >= 2048
        || !off.is_multiple_of(NET_BUFFER_SIZE)
        || index >= u64::from(r.num_buffers)
    {
        return None;
    }
    let below: u32 = regions[..oid].iter().map(|r| r.num_buffers).sum();
    // SAFETY: `VirtTx::new` checked that this region maps `num_buffers * 2048` readable bytes at
    // its vaddr for 'a (the config is borrowed for 'a, so it still says so); `off + len` is
    // inside that (checked above).
    let span = unsafe { Span::in_region(&r.data.region, off, buf.len) };
    // `new` checked that the bits of all buffers fit below `MAX_TX_BUFFERS`: `index` fits a u32.
    #[allow(clippy::cast_possible_truncation)]
    let bit = first + below + index as u32;
    Some((r.data.io_addr.wrapping_add(off), bit, span))
}

/// What a client's active queue holds next.
#[derive(Clone, Copy)]
enum Next {
    /// A checked frame, cleaned: device address, in-flight bit, length.
    Frame(u64, u32, u16),
    /// Nothing: a signal is requested (and the queue re-checked).
    Empty,
    /// The client's indices are impossible.
    Fault,
}

/// What every client's frames are checked against, and what was refused.
struct Core<'a, C> {
    config: &'a NetVirtTxConfig,
    owners: Owners,
    /// The in-flight bits.
    at_driver: InFlight,
    cache: C,
    stats: TxStats,
}

impl<C> Core<'_, C> {
    /// Count a buffer from the driver that was refused or lost (off the hot path).
    #[cold]
    #[inline(never)]
    fn lose(&mut self) {
        self.stats.lost += 1;
    }
}

impl<C: CacheOps> Core<'_, C> {
    /// Client `k`'s next valid frame on `q` ([`check`]ed, not at the driver, cleaned; `first` is
    /// its first in-flight bit); bad ones before it go back to the client (`back` set). An empty
    /// queue requests a signal and is re-checked.
    #[inline(always)]
    fn next_frame(
        &mut self,
        (q, k, first): (&mut NetSink<'_>, &NetVirtTxClient, u32),
        back: &mut bool,
    ) -> Next {
        loop {
            let buf = match q.peek_active() {
                Ok(Some(buf)) => buf,
                Ok(None) => match q.rest_active(false) {
                    Ok(false) => return Next::Empty,
                    Ok(true) => continue,
                    Err(_) => return Next::Fault,
                },
                Err(_) => return Next::Fault,
            };
            if q.adopt_free_once().is_err() {
                return Next::Fault;
            }
            // Refused when its buffer is already at the driver.
            if let Some((io, bit, span)) = check(k, first, buf).filter(|h| !self.at_driver.at(h.1))
            {
                self.cache.clean(span);
                return Next::Frame(io, bit, buf.len);
            }
            *back = true;
            if !bounce(q, &mut self.stats, buf) {
                return Next::Fault;
            }
        }
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
    core: Core<'a, C>,
    driver: NetSource<'a>,
    driver_ch: Channel,
    clients: Clients<NetSink<'a>>,
    policy: P,
    /// Clients with a checked frame waiting; each one's device address, in-flight bit and length.
    ready: u64,
    heads: [(u64, u32); MAX_CLIENTS],
    lens: [u16; MAX_CLIENTS],
    /// Clients with buffers staged on their free queue, to publish at the end of the pass.
    back: u64,
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
        let mut n = 0u32;
        for client in cfg.clients() {
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
            core: Core {
                config: cfg,
                owners: Owners::new(cfg),
                at_driver: InFlight([0; WORDS]),
                cache,
                stats: TxStats::default(),
            },
            // SAFETY: the token: the queues are mapped here read-write for `'a`, shared only with
            // their peers, and this component makes the only handles on them (here and below).
            driver: unsafe { NetSource::from_connection(&cfg.driver) }?,
            driver_ch: cfg.driver.channel()?,
            // SAFETY: as above.
            clients: unsafe { clients(conns, NetSink::from_connection) }?,
            policy,
            ready: 0,
            heads: [(0, 0); MAX_CLIENTS],
            lens: [0; MAX_CLIENTS],
            back: 0,
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
        self.core.at_driver = InFlight([0; WORDS]);
        // SAFETY: the token `new` took: the driver's queues are mapped here for `'a`.
        for buf in unsafe { RawQueue::sent(&self.core.config.driver) }? {
            if let Some((.., bit)) = self.core.owners.find(self.core.config, buf.io_or_offset) {
                self.core.at_driver.put(bit, true);
            }
        }
        let mut resent = 0;
        for c in bits(self.clients.live()) {
            let (Some((q, _)), k) = (self.clients.get(c), &self.core.config.clients[c]) else {
                continue;
            };
            while let Ok(Some(buf)) = q.peek_active()
                && check(k, self.core.owners.first[c], buf)
                    .is_some_and(|h| self.core.at_driver.at(h.1))
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
            ..self.core.stats
        }
    }

    /// The shaping policy (e.g. for [`TxPolicy::wake_at`]).
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Look at client `c`'s next valid frame and record it in `heads`, `lens` and `ready`
    /// ([`Core::next_frame`]; an idle queue, by [`NetSink::active_idle`], is skipped).
    #[inline(always)]
    fn head(&mut self, c: usize) {
        if let Some((q, _)) = self.clients.get(c).filter(|(q, _)| !q.active_idle()) {
            let (cfg, mut back) = (self.core.config, false);
            let client = (q, &cfg.clients[c], self.core.owners.first[c]);
            let next = self.core.next_frame(client, &mut back);
            self.back |= u64::from(back) << c;
            self.after(c, next);
        }
    }

    /// Record what [`Core::next_frame`] found for client `c`.
    #[inline(always)]
    fn after(&mut self, c: usize, next: Next) {
        match next {
            Next::Frame(io, bit, len) => {
                (self.heads[c], self.lens[c]) = ((io, bit), len);
                self.ready |= 1 << c;
            }
            Next::Empty => self.ready &= !(1 << c),
            Next::Fault => {
                self.ready &= !(1 << c);
                self.clients.fault(c);
            }
        }
    }

    /// Send client `c`'s checked head frame, and its following ones while the policy keeps the
    /// turn ([`TxPolicy::keeps_turn`]); record its next frame. False: `c` had none ready, or
    /// the driver's queue is full.
    #[inline(always)]
    fn send(&mut self, c: usize) -> Result<bool, Error> {
        let run = self.policy.keeps_turn(self.ready);
        let Some(&(mut io, mut bit)) = self.heads.get(c).filter(|_| self.ready >> c & 1 != 0)
        else {
            return Ok(false);
        };
        let Some((q, _)) = self.clients.get(c) else {
            return Ok(false);
        };
        let (cfg, mut len, mut back) = (self.core.config, self.lens[c], false);
        let (k, first) = (&cfg.clients[c], self.core.owners.first[c]);
        let next = loop {
            // Staged: the driver cannot see it before the publish in `tx_provide`.
            match self.driver.active.push(NetBuffDesc::new(io, len)) {
                Err(PushError::Full(_)) => break None,
                r => r?,
            }
            self.core.at_driver.put(bit, true);
            self.policy.sent(c, len);
            let _ = q.take_active();
            match self.core.next_frame((&mut *q, k, first), &mut back) {
                Next::Frame(i, b, l) if run => (io, bit, len) = (i, b, l),
                next => break Some(next),
            }
        };
        self.back |= u64::from(back) << c;
        self.after(c, next.unwrap_or(Next::Frame(io, bit, len)));
        Ok(next.is_some())
    }

    /// One pass: policy-ordered frames to the driver, then signals toward the clients.
    fn tx_provide(&mut self) -> Result<(), Error> {
        self.policy.begin();
        self.ready = 0;
        for c in bits(self.clients.live()) {
            self.head(c);
        }
        while let Some(c) = self.policy.pick(self.ready, &self.lens) {
            if !self.send(c)? {
                break;
            }
        }
        if self.driver.publish_active() {
            self.driver_ch.deferred_notify()?;
        }
        // Clients with frames held back ask for a signal; those given buffers back are told.
        self.clients.each_in(self.ready, |_, (q, _)| {
            Ok::<_, Error>(q.rest_active(true).is_ok())
        })?;
        let back = core::mem::take(&mut self.back);
        self.clients.each_in(back, |_, (q, ch)| {
            if q.publish_free() {
                ch.notify()?;
            }
            Ok(true)
        })
    }

    /// Return `buf` from the driver to the client it came from if it is one of its buffers at
    /// the driver (clearing its in-flight bit); false if refused or the client's queue is full.
    #[inline(always)]
    fn tx_return(&mut self, buf: NetBuffDesc) -> bool {
        let Some((c, oid, off, bit)) = self.core.owners.find(self.core.config, buf.io_or_offset)
        else {
            return false;
        };
        // The bit is cleared only for an aligned address.
        let mine = off.is_multiple_of(NET_BUFFER_SIZE) && self.core.at_driver.put(bit, false);
        let back = NetBuffDesc::with_oid(off, buf.len, oid);
        let (true, Some((q, _)), Ok(back)) = (mine, self.clients.get(c), back) else {
            return false;
        };
        self.back |= 1 << c;
        match q.push_free(back) {
            Err(PushError::Peer(..)) => self.clients.fault(c),
            pushed => return pushed.is_ok(),
        }
        false
    }
}

/// A region's length in bytes.
fn bytes(r: &NetVirtTxRegion) -> u128 {
    u128::from(r.num_buffers) * u128::from(NET_BUFFER_SIZE)
}

/// Where the bits and device addresses of each client's regions are: the one answer to "whose
/// buffer is this device address", for every config.
struct Owners {
    /// Each client's first in-flight bit (the bits of a region follow those of every region
    /// before it, client by client, `oid` by `oid`).
    first: [u32; MAX_CLIENTS],
    /// Each client's device addresses, `(lo, last)`: every address one of its regions holds is
    /// `lo + d` for some `d <= last` (wrapping; a client with no buffers gets `(0, 0)`, and its
    /// region scan finds nothing at address 0).
    hull: [(u64, u64); MAX_CLIENTS],
    /// Configured clients (at most [`MAX_CLIENTS`]).
    clients: usize,
}

impl Owners {
    /// The layout of `cfg`'s regions.
    fn new(cfg: &NetVirtTxConfig) -> Self {
        let (mut first, mut hull, mut n) = ([0; MAX_CLIENTS], [(0, 0); MAX_CLIENTS], 0u32);
        for (c, k) in cfg.clients().iter().enumerate() {
            let full = || k.regions().iter().filter(|r| r.num_buffers != 0);
            let lo = full().map(|r| r.data.io_addr).min().unwrap_or(0);
            let end = |r: &NetVirtTxRegion| u128::from(r.data.io_addr - lo) + bytes(r);
            // Past 2^64: a region wraps, and the hull is every address.
            let last = u64::try_from(full().map(end).max().unwrap_or(1) - 1);
            (hull[c], first[c]) = ((lo, last.unwrap_or(u64::MAX)), n);
            n = k
                .regions()
                .iter()
                .fold(n, |n, r| n.saturating_add(r.num_buffers));
        }
        let clients = cfg.clients().len();
        Self {
            first,
            hull,
            clients,
        }
    }

    /// The client, region (`oid`), offset in the region and in-flight bit of device address
    /// `io`: the first of `cfg`'s regions (client by client, `oid` by `oid`) that holds it, or
    /// `None`. A client whose addresses cannot hold `io` costs one compare.
    #[inline(always)]
    fn find(&self, cfg: &NetVirtTxConfig, io: u64) -> Option<(usize, u8, u64, u32)> {
        for (c, &(lo, last)) in self.hull[..self.clients].iter().enumerate() {
            if io.wrapping_sub(lo) > last {
                continue;
            }
            let mut first = self.first[c];
            for (oid, r) in (0u8..).zip(cfg.clients[c].regions()) {
                let off = io.wrapping_sub(r.data.io_addr);
                let index = off / NET_BUFFER_SIZE;
                if index < u64::from(r.num_buffers) {
                    // `index < num_buffers`, a u32.
                    #[allow(clippy::cast_possible_truncation)]
                    return Some((c, oid, off, first.wrapping_add(index as u32)));
                }
                first = first.wrapping_add(r.num_buffers);
            }
        }
        None
    }
}

impl<P: TxPolicy, C: CacheOps> Handler for VirtTx<'_, P, C> {
    type Error = Error;

    /// Buffers the driver sent go back to the clients they came from, then the clients' frames
    /// go out.
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        while let Some(buf) = self.driver.next_free()? {
            if !self.tx_return(buf) {
                self.core.lose();
            }
        }
        self.tx_provide()
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

    /// The reference answer for `Owners::find`: every region's bits laid out client by client, `oid`
    /// by `oid`, and the first region whose bytes hold the address.
    #[allow(clippy::cast_possible_truncation)]
    fn reference(cfg: &NetVirtTxConfig, io: u64) -> Option<(usize, u8, u64, u32)> {
        let mut all = Vec::new();
        let mut first = 0u32;
        for (c, k) in cfg.clients().iter().enumerate() {
            for (oid, r) in k.regions().iter().enumerate() {
                all.push((
                    c,
                    oid as u8,
                    r.data.io_addr,
                    u64::from(r.num_buffers) * 2048,
                    first,
                ));
                first += r.num_buffers;
            }
        }
        all.into_iter()
            .filter(|&(.., base, bytes, _)| io.wrapping_sub(base) < bytes)
            .map(|(c, oid, base, _, first)| {
                let off = io.wrapping_sub(base);
                (c, oid, off, first + (off / 2048) as u32)
            })
            .next()
    }

    /// The owner of a device address is the reference's, with few regions and with many,
    /// zero-buffer and overlapping ones included.
    #[test]
    fn the_owner_scan_finds_what_the_reference_finds() {
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
            let t = Owners::new(&cfg);
            let mut found = 0;
            for c in 0..4u64 {
                for oid in 0..10u64 {
                    for off in [0, 1, 2048, 4 * 2048 - 1, 4 * 2048, 9 * 2048, 40_000] {
                        let io = 0x1000_0000 * (c + 1) + 0x10_0000 * oid + off;
                        let want = reference(&cfg, io);
                        found += usize::from(want.is_some());
                        assert_eq!(t.find(&cfg, io), want, "address {io:#x}");
                    }
                }
            }
            assert!(found > 20, "the addresses hit regions ({found})");
            assert_eq!(t.find(&cfg, 0x10_0000 - 1), None);
            assert_eq!(
                t.find(&cfg, 0x1000_0000 + 0x10_0000 + 2048).map(|o| o.0),
                Some(0),
                "an overlap goes to the first region holding the address"
            );
            // A region wrapping past the top of the address space holds the addresses after 0.
            cfg.clients[1].regions[0].data.io_addr = u64::MAX - 2047;
            let t = Owners::new(&cfg);
            for io in [u64::MAX - 2047, u64::MAX, 0, 2048, 4096, 1 << 40] {
                assert_eq!(t.find(&cfg, io), reference(&cfg, io), "address {io:#x}");
            }
            assert_eq!(t.find(&cfg, 0).map(|o| (o.0, o.2)), Some((1, 2048)));
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
