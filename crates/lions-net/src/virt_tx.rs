// SPDX-License-Identifier: BSD-2-Clause
//! The Tx virtualiser (`net_virt_tx`): the clients' frames to the driver, validated, translated
//! and ordered by a shaping policy.
//!
//! ## Protocol
//!
//! - **`tx_provide`** (any notification, after `tx_return`): every client's next frame is checked:
//!   `0 < len <= 2048`; `oid` names one of the client's data regions; the offset is 2048-aligned
//!   and below that region's `num_buffers * 2048`. A bad descriptor goes straight back, unchanged,
//!   on the client's free queue and is counted ([`TxStats::bad`]); it never reaches the driver.
//!   The [`TxPolicy`] then picks, frame by frame, which client's valid head frame goes next while
//!   the driver's active queue has room; each is cleaned from the cache (the [`CacheOps`] hook),
//!   translated to `region.io_addr + offset` and enqueued. The descriptor used is the copy that
//!   was checked, so a client rewriting its queue slot meanwhile changes nothing. The driver is
//!   notified (deferred: it runs at a higher priority) if it asked.
//! - **`tx_return`**: drain the driver's free queue; each device address is mapped back to the
//!   client, region (`oid`) and offset it came from and returned on that client's free queue. The
//!   virt counts each client's buffers at the driver, and the driver can give a client back no
//!   more than it has there: an address of no client, or of a client with nothing in flight, is
//!   dropped and counted ([`TxStats::lost`]) and never touches a client's queue. Request a signal on the
//!   driver's free queue and re-check.
//! - **Signals.** A client whose queue was drained requests a signal and re-checks; a client
//!   with frames still waiting (held back by the policy or a full driver queue) requests one
//!   without a re-check, so its next frame or the driver's next returned buffer runs the virt
//!   again. Each client is notified once per event, if it got buffers back and asked.
//! - **Start-up** (sDDF's convention): each client primes its own free queue with its buffers;
//!   the virt adopts that queue's tail when it sees the client's first frame.
//! - **Restart** ([`VirtTx::resume`], for a component restarted with its regions intact, paper
//!   §5.2). Everything but the per-client count of buffers at the driver is either in the
//!   queues' shared indices or recomputed on every pass. That count is *rebuilt conservatively
//!   from the driver's queues*, not kept in a region (sdfgen gives the Tx virt none): the
//!   buffers sent and not yet taken back are the last `active.tail - free.head` descriptors on
//!   the driver's active queue (its own slots, which only this component writes), each mapped
//!   back to its client. That is exact for a driver that returns buffers in the order it got
//!   them (ours do); for one that does not, a client's count may be off by the reordered ones.
//!   A client frame found at the head of its queue that is already among those in flight was
//!   sent before the restart but not yet taken off the client's queue (a crash between the two):
//!   it is taken off now and not sent twice. The policy's state starts afresh (a swap to
//!   another policy is a restart with another binary). A frame the old incarnation had staged
//!   but not published is sent again by the new one; buffers it had taken back from the driver
//!   but not yet handed to their client are lost to that client (a few instructions' window).
//! - **Misbehaviour.** A client whose indices are impossible is marked faulty ([`TxStats::faulty`])
//!   and skipped; a full client free queue (a client that sent duplicates) drops and counts the
//!   buffer. The driver is trusted: an impossible index from it is an [`Error`].

use crate::cache::{CacheOps, PlatformCache};
use crate::policy::TxPolicy;
use crate::queue::{
    Clients, NET_BUFFER_SIZE, NetBuffDesc, NetSink, NetSource, RawQueue, clients, push_to,
};
use crate::region::{DataRegion, Span};
use crate::{Error, NetVirtTxConfig, NetVirtTxRegion, SetupError};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS};
use lions_queue::{PushError, clients::bits};

/// What the Tx virtualiser refused or lost.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TxStats {
    /// Client descriptors that failed validation (returned to the client).
    pub bad: u64,
    /// Buffers that could not be returned: a device address from the driver of no client, or of a
    /// client with nothing in flight (nobody sent it), or a full client free queue.
    pub lost: u64,
    /// Clients found misbehaving (bit `c` = client `c`); they are ignored.
    pub faulty: u64,
}

/// A client's valid head frame: the driver descriptor and the span to clean.
type Head<'a> = (NetBuffDesc, Span<'a>);

/// Check a descriptor a client sent against its data regions (`regions[oid]`): `0 < len <=
/// 2048`, `oid` names one of them, the offset is 2048-aligned and below its `num_buffers * 2048`
/// (the last three by [`DataRegion::span`]). On success, the descriptor for the driver (device
/// address) and the span to clean. Every check of a Tx descriptor is here.
#[inline]
fn check<'a>(regions: &'a [NetVirtTxRegion], buf: &NetBuffDesc) -> Option<Head<'a>> {
    let r = regions
        .get(usize::from(buf.oid()))
        .filter(|_| buf.len > 0)?;
    let (base, _) = r.data.region.as_raw_parts()?;
    // SAFETY: `VirtTx::new` checked that this region maps `num_buffers * 2048` readable bytes for
    // 'a (the caller's promise).
    let data = unsafe { DataRegion::new(base, r.num_buffers.into(), false) };
    let span = data.span(buf.io_or_offset, buf.len).ok()?;
    let io = r.data.io_addr.wrapping_add(buf.io_or_offset);
    Some((NetBuffDesc::new(io, buf.len), span))
}

/// The client and region (as `oid`) whose buffer device address `io` is, and its offset there.
#[inline]
fn locate(cfg: &NetVirtTxConfig, io: u64) -> Option<(usize, u8, u64)> {
    cfg.clients().iter().enumerate().find_map(|(c, client)| {
        (0u8..).zip(client.regions()).find_map(|(oid, r)| {
            let off = io.wrapping_sub(r.data.io_addr);
            (off < u64::from(r.num_buffers) * NET_BUFFER_SIZE).then_some((c, oid, off))
        })
    })
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
    /// Each client's valid head frame, where `ready` has its bit.
    heads: [Option<Head<'a>>; MAX_CLIENTS],
    /// Each client's head frame length where `ready` has its bit (what the policy sees).
    lens: [u16; MAX_CLIENTS],
    /// Clients with a valid frame waiting.
    ready: u64,
    /// Buffers each client has at the driver: what the driver may give back.
    in_flight: [u32; MAX_CLIENTS],
}

impl<'a, P: TxPolicy, C: CacheOps> VirtTx<'a, P, C> {
    /// The virtualiser over the queues and regions in `config`, ordering frames by `policy`. A
    /// client whose queues already hold inconsistent indices starts out faulty.
    ///
    /// # Safety
    /// The config's regions are mapped in this component for `'a` (queues read-write, data regions
    /// at least readable), each shared only with its peers; no other handle of the same roles
    /// exists.
    pub unsafe fn new(cfg: &'a NetVirtTxConfig, policy: P, cache: C) -> Result<Self, SetupError> {
        let mut regions = cfg.clients().iter().flat_map(|c| c.regions());
        // SAFETY: forwarded from the caller; checks each mapping covers its `num_buffers`.
        regions.try_for_each(|r| unsafe { r.buffers() }.map(drop))?;
        let conns = cfg.clients().iter().map(|c| &c.conn);
        Ok(Self {
            config: cfg,
            // SAFETY: forwarded from the caller.
            driver: unsafe { NetSource::from_connection(&cfg.driver) }?,
            driver_ch: cfg.driver.channel()?,
            // SAFETY: forwarded from the caller.
            clients: unsafe { clients(conns, NetSink::from_connection) }?,
            policy,
            cache,
            stats: TxStats::default(),
            heads: [None; MAX_CLIENTS],
            lens: [0; MAX_CLIENTS],
            ready: 0,
            in_flight: [0; MAX_CLIENTS],
        })
    }

    /// Rebuild what a previous incarnation knew, then serve (a restarted component's `init`; see
    /// the module docs): count each client's buffers at the driver from the driver's queues,
    /// take off client queues the frames already sent, and run one pass (buffers the driver
    /// returned meanwhile go back, waiting frames go out). Returns how many frames were found
    /// already sent.
    ///
    /// # Safety
    /// As for [`new`](Self::new) (the same config; this reads the driver's queue regions).
    pub unsafe fn resume(&mut self) -> Result<u32, Error> {
        let d = &self.config.driver;
        // SAFETY: forwarded from the caller: the driver's queues are mapped here.
        let active = unsafe { RawQueue::new(&d.active_queue, d.num_buffers) }?;
        // SAFETY: as above.
        let free = unsafe { RawQueue::new(&d.free_queue, d.num_buffers) }?;
        let out = active.tail().wrapping_sub(free.head());
        self.in_flight = [0; MAX_CLIENTS];
        for buf in active.last(out) {
            if let Some((c, _, _)) = locate(self.config, buf.io_or_offset) {
                self.in_flight[c] = self.in_flight[c].saturating_add(1);
            }
        }
        let mut resent = 0;
        for c in bits(self.clients.live()) {
            let regions = self.config.clients.get(c).map_or(&[][..], |k| k.regions());
            let Some((q, _)) = self.clients.get(c) else {
                continue;
            };
            while let Ok(Some(buf)) = q.peek_active() {
                let Some((dev, _)) = check(regions, &buf) else {
                    break;
                };
                if !active.last(out).any(|b| b.io_or_offset == dev.io_or_offset) {
                    break;
                }
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
    /// ones before it go back to the client) and record it in `heads`, `lens` and `ready`. A
    /// client whose indices are impossible is faulted.
    #[inline(always)]
    fn head(&mut self, c: usize, take: bool) {
        let bit = 1u64 << c;
        self.ready &= !bit;
        let regions = self.config.clients.get(c).map_or(&[][..], |k| k.regions());
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
            if let Some(head) = check(regions, &buf) {
                (self.heads[c], self.lens[c], self.ready) = (Some(head), buf.len, self.ready | bit);
                return;
            }
            self.stats.bad += 1;
            let _ = q.take_active();
            match q.push_free(buf) {
                Err(PushError::Peer(..)) => break self.stats.lost += 1,
                r => self.stats.lost += u64::from(r.is_err()),
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
            let Some(&Some((buf, span))) = self.heads.get(c).filter(|_| self.ready >> c & 1 != 0)
            else {
                break;
            };
            // Staged: the driver cannot see it before the publish below, after the clean.
            match self.driver.active.push(buf) {
                Err(PushError::Full(_)) => break,
                r => r?,
            }
            self.cache.clean(span);
            self.in_flight[c] = self.in_flight[c].saturating_add(1);
            self.policy.sent(c, buf.len);
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
}

impl<P: TxPolicy, C: CacheOps> Handler for VirtTx<'_, P, C> {
    type Error = Error;

    /// Buffers the driver sent go back to the client each came from (if that client has one at
    /// the driver), then the clients' frames go out.
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        while let Some(buf) = self.driver.next_free()? {
            let back = locate(self.config, buf.io_or_offset).and_then(|(c, oid, off)| {
                *self.in_flight.get_mut(c).filter(|n| **n > 0)? -= 1;
                let back = NetBuffDesc::with_oid(off, buf.len, oid).ok()?;
                push_to(&mut self.clients, c, back).then_some(())
            });
            self.stats.lost += u64::from(back.is_none());
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
    use crate::testkit::{Mem, NonCoherent, Pair, event};
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
        // SAFETY: the memory outlives the virt; the test plays every peer with one handle each.
        let mut v = unsafe { VirtTx::new(&s.cfg, InOrder, cache) }.unwrap();
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
        // SAFETY: as above.
        let mut v = unsafe { VirtTx::new(&s.cfg, InOrder, Coherent) }.unwrap();
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

    /// Both clients queue three frames before the virt runs: one pass orders them.
    fn one_pass<P: TxPolicy>(policy: P) -> Vec<u64> {
        let s = setup();
        // SAFETY: as above.
        let mut v = unsafe { VirtTx::new(&s.cfg, policy, Coherent) }.unwrap();
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
        // SAFETY: as above.
        let mut v = unsafe { VirtTx::new(&s.cfg, InOrder, Coherent) }.unwrap();
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
