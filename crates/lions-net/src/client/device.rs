// SPDX-License-Identifier: BSD-2-Clause
//! [`NetDevice`]: a smoltcp [`Device`] over a client's Rx and Tx queue pairs, with zero-copy
//! receive (the token's bytes are the Rx buffer itself) and frames written straight into Tx
//! buffers. See the [module docs](super) for the protocol.

use crate::queue::{NET_BUFFER_SIZE, NetBuffDesc, NetSink, NetSource};
use crate::{Error, MacAddr, NetClientConfig, SetupError};
use core::marker::PhantomData;
use core::ptr::NonNull;
use lions_os::{Channel, Mapped, RegionResource};
use lions_queue::PushError;
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame the stack builds (MTU 1500 plus the 14-byte header).
pub const MAX_FRAME: usize = 1514;
const BUF: usize = 2048;
const _: () = assert!(BUF as u64 == NET_BUFFER_SIZE && MAX_FRAME <= BUF);

/// Counters of a [`NetDevice`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames received (tokens handed to smoltcp).
    pub rx_frames: u64,
    /// Frames sent (put on the Tx active queue).
    pub tx_frames: u64,
    /// Descriptors from the copier naming no buffer of the Rx region, or with a bad length
    /// (skipped; the buffer is lost to this client).
    pub rx_bad: u64,
    /// Frames smoltcp asked to send that did not fit a buffer (dropped).
    pub tx_dropped: u64,
    /// Times the stack wanted a Tx buffer and found none.
    pub tx_starved: u64,
}

/// A data region of whole buffers that only this client and one peer map.
struct Buffers<'a> {
    base: NonNull<u8>,
    count: u64,
    _mem: PhantomData<&'a mut [u8]>,
}

impl<'a> Buffers<'a> {
    /// The first `count` buffers of a region named in the config.
    ///
    /// # Safety
    /// The region is mapped read-write here for `'a`, and the peer writes a buffer only while the
    /// queue protocol gives it that buffer.
    unsafe fn new(r: &RegionResource, count: u64) -> Result<Self, SetupError> {
        let (base, len) = r.as_raw_parts().ok_or(SetupError::Unmapped)?;
        let needed = count.saturating_mul(NET_BUFFER_SIZE);
        if (len as u64) < needed {
            return Err(SetupError::RegionTooSmall {
                needed,
                have: len as u64,
            });
        }
        Ok(Self {
            base,
            count,
            _mem: PhantomData,
        })
    }

    /// The first `len` bytes of the buffer a descriptor names, if its offset is a buffer of this
    /// region and `len` fits a buffer.
    fn span(&self, desc: &NetBuffDesc, len: usize) -> Option<NonNull<u8>> {
        let index = desc.buffer_index(self.count).ok()?;
        if len > BUF {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        // SAFETY: `index < count`, and `count * 2048` bytes from `base` are mapped (checked in
        // `new`), so the result stays inside the mapping.
        Some(unsafe { self.base.add(index * BUF) })
    }
}

/// The receive half: the sink end of the pair from the copier.
struct RxSide<'a> {
    q: NetSink<'a>,
    ch: Channel,
    data: Buffers<'a>,
    /// The free queue's tail was re-read after the copier primed it.
    adopted: bool,
    stats: DeviceStats,
    fault: Option<Error>,
}

/// The transmit half: the source end of the pair to the Tx virtualiser.
struct TxSide<'a> {
    q: NetSource<'a>,
    ch: Channel,
    data: Buffers<'a>,
    /// A free buffer taken off the queue for the next token (kept when a token goes unused).
    reserved: Option<NetBuffDesc>,
    /// A token was wanted and no buffer was free since the last [`NetDevice::park`].
    starved: bool,
    stats: DeviceStats,
    fault: Option<Error>,
}

impl RxSide<'_> {
    /// The next valid received frame; bad descriptors are counted and skipped.
    fn next(&mut self) -> Option<(NetBuffDesc, NonNull<u8>)> {
        loop {
            let desc = match self.q.active.pop() {
                Ok(Some(d)) => d,
                Ok(None) => return None,
                Err(e) => {
                    self.fault = Some(e.into());
                    return None;
                }
            };
            match self.data.span(&desc, usize::from(desc.len)) {
                Some(ptr) if desc.len > 0 => return Some((desc, ptr)),
                _ => self.stats.rx_bad += 1,
            }
        }
    }

    /// Give a buffer back to the copier (published at the next flush).
    fn give_back(&mut self, offset: u64) {
        if !self.adopted {
            // The copier primed the free queue before it delivered this frame (see `Copier::new`);
            // re-read the tail it left before pushing behind it.
            if let Err(e) = self.q.adopt_free() {
                self.fault = Some(e.into());
                return;
            }
            self.adopted = true;
        }
        match self.q.free.push(NetBuffDesc::new(offset, 0)) {
            Ok(()) => {}
            Err(PushError::Full(_)) => self.fault = Some(Error::Full),
            Err(PushError::Peer(e, _)) => self.fault = Some(e.into()),
        }
    }
}

impl TxSide<'_> {
    /// Make sure a free buffer is reserved; false (and `starved`) when none is free.
    fn reserve(&mut self) -> bool {
        if self.reserved.is_none() {
            match self.q.free.pop() {
                Ok(Some(d)) => self.reserved = Some(d),
                Ok(None) => {}
                Err(e) => self.fault = Some(e.into()),
            }
        }
        if self.reserved.is_none() {
            self.starved = true;
            self.stats.tx_starved += 1;
        }
        self.reserved.is_some()
    }
}

/// A smoltcp device over a client's queues; see the [module docs](super).
pub struct NetDevice<'a> {
    rx: RxSide<'a>,
    tx: TxSide<'a>,
    mac: MacAddr,
    /// Frames still handed out before [`NetDevice::refill_budget`].
    budget: usize,
    budget_max: usize,
}

/// Frames handed to smoltcp per round by default (see [`NetDevice::set_rx_budget`]).
pub const RX_BUDGET: usize = 32;

impl<'a> NetDevice<'a> {
    /// The device over the queues and data regions in `config` (sdfgen's `.net_client_config`).
    /// Puts every Tx buffer on the Tx free queue (refused if that queue is not empty, e.g. after a
    /// restart of this PD).
    ///
    /// The token says the four queue regions and both data regions are mapped read-write here
    /// for `'a`, and that this is the one device built from them.
    pub fn new(config: Mapped<'a, NetClientConfig>) -> Result<Self, SetupError> {
        let config = config.config();
        let rx_n = u64::from(config.rx.num_buffers);
        let tx_n = u64::from(config.tx.num_buffers);
        // SAFETY: the token: mapped here read-write for `'a`, each queue shared only with the
        // copier (Rx) or the Tx virtualiser (Tx), and this device makes the only handles on them
        // (here and below).
        let rx_q = unsafe { NetSink::from_connection(&config.rx) }?;
        // SAFETY: as above.
        let rx_data = unsafe { Buffers::new(&config.rx_data, rx_n) }?;
        // SAFETY: as above.
        let mut tx_q = unsafe { NetSource::from_connection(&config.tx) }?;
        // SAFETY: as above.
        let tx_data = unsafe { Buffers::new(&config.tx_data, tx_n) }?;
        tx_q.prime_free(0)?;
        Ok(Self {
            rx: RxSide {
                q: rx_q,
                ch: config.rx.channel()?,
                data: rx_data,
                adopted: false,
                stats: DeviceStats::default(),
                fault: None,
            },
            tx: TxSide {
                q: tx_q,
                ch: config.tx.channel()?,
                data: tx_data,
                reserved: None,
                starved: false,
                stats: DeviceStats::default(),
                fault: None,
            },
            mac: config.mac_addr,
            budget: RX_BUDGET,
            budget_max: RX_BUDGET,
        })
    }

    /// Hand smoltcp at most `frames` received frames per round (at least 1; default
    /// [`RX_BUDGET`]). smoltcp takes in every frame it is given before the application runs, so a
    /// round must not bring more datagrams than a socket buffers: between rounds the application
    /// empties the sockets, and frames wait in the Rx queue (where the copier, not the stack,
    /// decides about drops).
    pub fn set_rx_budget(&mut self, frames: usize) {
        self.budget_max = frames.max(1);
        self.budget = self.budget.min(self.budget_max);
    }

    /// Start a round: the full Rx budget again.
    pub fn refill_budget(&mut self) {
        self.budget = self.budget_max;
    }

    /// Whether this round's Rx budget is used up (frames may be waiting).
    pub fn budget_spent(&self) -> bool {
        self.budget == 0
    }

    /// This client's MAC address (from the config).
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The channel to the copier (it notifies when frames arrive).
    pub fn rx_channel(&self) -> Channel {
        self.rx.ch
    }

    /// The channel to the Tx virtualiser (it notifies when Tx buffers come back, if asked).
    pub fn tx_channel(&self) -> Channel {
        self.tx.ch
    }

    /// Counters.
    pub fn stats(&self) -> DeviceStats {
        let (r, t) = (self.rx.stats, self.tx.stats);
        DeviceStats {
            rx_frames: r.rx_frames,
            rx_bad: r.rx_bad,
            tx_frames: t.tx_frames,
            tx_dropped: t.tx_dropped,
            tx_starved: t.tx_starved,
        }
    }

    /// The first error a trusted peer caused since the last call (an impossible queue index).
    pub fn take_fault(&mut self) -> Option<Error> {
        self.rx.fault.take().or_else(|| self.tx.fault.take())
    }

    /// Publish returned Rx buffers and queued Tx frames, and notify the copier or the Tx
    /// virtualiser if it got something and asked. `deferred`: use the PD's deferred-notify slot
    /// (for a handler that returns soon; a second deferral performs the first at once), otherwise
    /// notify at once (for a caller that then keeps running, such as the blocking layer).
    pub fn flush(&mut self, deferred: bool) -> Result<(), Error> {
        self.rx.q.active.release();
        let n = self.rx.q.free.publish();
        if self.rx.q.should_notify_free(n > 0) {
            notify(self.rx.ch, deferred)?;
        }
        let n = self.tx.q.active.publish();
        if self.tx.q.should_notify_active(n > 0) {
            notify(self.tx.ch, deferred)?;
        }
        self.tx.q.free.release();
        Ok(())
    }

    /// Phase 2 before sleeping: ask for a signal where the device waits, and re-check. While it
    /// has no Tx buffer it waits on the Tx free queue only (receiving is paused too); otherwise on
    /// the Rx active queue. `Ok(true)`: work arrived meanwhile, run the stack again.
    pub fn park(&mut self) -> Result<bool, Error> {
        if self.tx.starved {
            if self.tx.reserved.is_some() || self.tx.q.park_free()? {
                self.tx.starved = false;
                return Ok(true);
            }
            return Ok(false);
        }
        Ok(self.rx.q.park_active()?)
    }

    /// Whether the device is waiting for a Tx buffer.
    pub fn tx_starved(&self) -> bool {
        self.tx.starved
    }
}

fn notify(ch: Channel, deferred: bool) -> Result<(), lions_os::OsError> {
    if deferred {
        ch.deferred_notify()
    } else {
        ch.notify()
    }
}

/// A received frame, read in place; its buffer goes back to the copier when the token drops.
pub struct RxToken<'d, 'a> {
    side: &'d mut RxSide<'a>,
    desc: NetBuffDesc,
    ptr: NonNull<u8>,
}

impl phy::RxToken for RxToken<'_, '_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        // SAFETY: `ptr .. ptr + len` lies in the Rx data region (checked in `RxSide::next`,
        // `len <= 2048`), mapped for 'a. The buffer came off the active queue and is not yet
        // returned, so by the queue protocol this client owns it and the copier does not write it
        // while the slice lives (the token is consumed before `Drop` returns the buffer).
        let frame =
            unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), usize::from(self.desc.len)) };
        f(frame)
    }
}

impl Drop for RxToken<'_, '_> {
    fn drop(&mut self) {
        self.side.give_back(self.desc.io_or_offset);
    }
}

/// A free Tx buffer; smoltcp writes the frame into it and it is queued for the Tx virtualiser.
pub struct TxToken<'d, 'a> {
    side: &'d mut TxSide<'a>,
}

impl phy::TxToken for TxToken<'_, '_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let side = self.side;
        let buf = side.reserved.take();
        let ptr = buf.and_then(|b| side.data.span(&b, len));
        let (Some(buf), Some(ptr)) = (buf, ptr) else {
            // Larger than a buffer (smoltcp keeps frames within the MTU we report) or a buffer
            // naming no slot of our region (the Tx virt returned a foreign offset): build the
            // frame in a scratch area and drop it.
            side.reserved = side
                .reserved
                .or(buf.filter(|b| side.data.span(b, 0).is_some()));
            side.stats.tx_dropped += 1;
            let mut scratch = [0u8; BUF];
            let n = len.min(BUF);
            return f(&mut scratch[..n]);
        };
        // SAFETY: `ptr .. ptr + len` lies in the Tx data region (checked by `span`, `len <=
        // 2048`), mapped read-write for 'a. The buffer came off the free queue and is not yet
        // queued, so this client owns it: the Tx virtualiser does not read it meanwhile.
        let frame = unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
        let r = f(frame);
        // `len <= 2048` was checked by `span`.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        match side
            .q
            .active
            .push(NetBuffDesc::new(buf.io_or_offset, len16))
        {
            Ok(()) => side.stats.tx_frames += 1,
            Err(PushError::Full(_)) => {
                // More buffers in flight than the queue holds: the virt returned a duplicate.
                side.stats.tx_dropped += 1;
                side.fault = Some(Error::Full);
            }
            Err(PushError::Peer(e, _)) => side.fault = Some(e.into()),
        }
        r
    }
}

impl<'a> Device for NetDevice<'a> {
    type RxToken<'d>
        = RxToken<'d, 'a>
    where
        Self: 'd;
    type TxToken<'d>
        = TxToken<'d, 'a>
    where
        Self: 'd;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_, 'a>, TxToken<'_, 'a>)> {
        if self.budget == 0 {
            return None;
        }
        match self.rx.q.active.peek() {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => {
                self.rx.fault = Some(e.into());
                return None;
            }
        }
        // A reply may need a Tx buffer: without one, leave the frame queued until one is back.
        if !self.tx.reserve() {
            return None;
        }
        let (desc, ptr) = self.rx.next()?;
        self.rx.stats.rx_frames += 1;
        self.budget -= 1;
        Some((
            RxToken {
                side: &mut self.rx,
                desc,
                ptr,
            },
            TxToken { side: &mut self.tx },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_, 'a>> {
        if !self.tx.reserve() {
            return None;
        }
        Some(TxToken { side: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}
