// SPDX-License-Identifier: BSD-2-Clause
//! The copier (`net_copy`): one per client, between the Rx virtualiser (or vswitch) and the
//! client. It keeps the shared Rx DMA region away from the client (privacy) and guarantees that a
//! slow client never holds DMA buffers (availability).
//!
//! ## Protocol
//!
//! - **Start** ([`Copier::new`]): every buffer of the client's Rx data region goes on the client's
//!   free queue (offsets `i * 2048`), as sDDF's copier does at init ([`NetSource::prime_free`]; the
//!   client adopts them with [`NetSink::adopt_free_once`](crate::NetSink::adopt_free_once)).
//! - **On any notification**: drain the virt's active queue. For each frame, take a free buffer of
//!   the client, copy `len` bytes from `rx_data[oid] + offset` into it and enqueue it on the
//!   client's active queue. **If the client has no free buffer, the frame is dropped** and counted
//!   ([`CopyStats::dropped`]). Either way the DMA buffer goes straight back on the virt's free
//!   queue with its descriptor unchanged (`len` and `oid` preserved; the vswitch relies on it).
//!   Then request a signal on the virt's active queue and re-check.
//! - **Notifications**: the client (immediate) if it got frames and asked; the virt (deferred)
//!   if it asked. The copier never waits for the client's free queue.
//! - **Restart** ([`Copier::resume`] in place of [`Copier::new`], for a copier restarted with
//!   its regions intact, paper §5.2). A copier keeps no state beyond the queues' shared indices,
//!   so the new incarnation takes them over as they are (it does not prime the client's free
//!   queue again). DMA buffers the old one had taken off the virt's active queue but not yet
//!   put back on its free queue (a crash inside a pass) are rebuilt from the queues: they are
//!   the `active.head - free.tail` descriptors just before the active queue's head (the copier
//!   returns buffers in the order it takes them), and go back to the virt uncopied (those frames
//!   are lost). Not recoverable: client buffers taken off the client's free queue and not yet
//!   published on its active queue (a few instructions' window; they are lost to the client).
//! - **Misbehaviour.** A client buffer with a bad offset is dropped with the frame (it is lost to
//!   that client, [`CopyStats::bad_client`]); impossible indices on the client's queues stop all
//!   delivery to it ([`CopyStats::client_faulty`]) while DMA buffers keep flowing back. A frame
//!   from the virt naming no mapped source buffer is returned uncopied
//!   ([`CopyStats::bad_from_virt`]); an impossible index from the (trusted) virt is an
//!   [`Error`].

use crate::queue::{NetBuffDesc, NetSink, NetSource, RawQueue};
use crate::region::DataRegion;
use crate::{Error, NetCopyConfig, SetupError};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, Mapped};
use lions_queue::PushError;

/// What the copier dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Frames delivered to the client.
    pub copied: u64,
    /// Frames dropped because the client had no free buffer (or is faulty).
    pub dropped: u64,
    /// Client buffers refused (bad offset, full active queue); the frame was dropped.
    pub bad_client: u64,
    /// Frames from the virt naming no mapped source buffer, returned uncopied.
    pub bad_from_virt: u64,
    /// The client corrupted its queues and gets nothing more.
    pub client_faulty: bool,
}

/// The copier; see the module docs.
pub struct Copier<'a> {
    rx: NetSink<'a>,
    rx_ch: Channel,
    /// Source regions by oid (read-only here).
    sources: [DataRegion<'a>; MAX_CLIENTS],
    client: NetSource<'a>,
    client_ch: Channel,
    client_data: DataRegion<'a>,
    stats: CopyStats,
}

impl<'a> Copier<'a> {
    /// The copier over the queues and regions in `config`; hands the client all its buffers.
    ///
    /// The token says the config's regions are mapped in this component for `'a` (queues and
    /// `client_data` read-write, `rx_data` at least readable) and that this is the one component
    /// built from them. The priming fills the client's free queue, which the client fills after
    /// its first frame; a client that pushes before then races only its own buffers (every
    /// descriptor it hands back is checked).
    pub fn new(config: Mapped<'a, NetCopyConfig>) -> Result<Self, SetupError> {
        let config = config.config();
        // SAFETY: the token, as documented on `open`.
        let mut copier = unsafe { Self::open(config) }?;
        copier.client.prime_free(0)?;
        Ok(copier)
    }

    /// The copier of a previous incarnation taken over (see the module docs): no priming; the DMA
    /// buffers it held are staged back to the virt (published by the first pass, which the caller
    /// runs at once: `notified(ChannelSet::EMPTY)`). Their number is in
    /// [`CopyStats::dropped`].
    ///
    /// Built from the config's token, as [`new`](Self::new).
    pub fn resume(config: Mapped<'a, NetCopyConfig>) -> Result<Self, SetupError> {
        let config = config.config();
        // SAFETY: the token, as documented on `open` (here and below).
        let mut copier = unsafe { Self::open(config) }?;
        // SAFETY: as above.
        for buf in unsafe { RawQueue::taken(&config.rx) }? {
            copier.stats.dropped += u64::from(copier.rx.free.push(buf).is_ok());
        }
        Ok(copier)
    }

    /// The handles over `config`'s queues and regions, as [`new`](Self::new) and
    /// [`resume`](Self::resume) share them.
    ///
    /// # Safety
    /// `config` is a checked token's (its regions mapped here for `'a`, queues and `client_data`
    /// read-write, `rx_data` readable) and no other handle on them exists in this PD.
    unsafe fn open(config: &'a NetCopyConfig) -> Result<Self, SetupError> {
        let n = u64::from(config.client.num_buffers);
        Ok(Self {
            // SAFETY: forwarded from the caller (here and below).
            rx: unsafe { NetSink::from_connection(&config.rx) }?,
            rx_ch: config.rx.channel()?,
            // SAFETY: as above.
            sources: unsafe { DataRegion::by_oid(&config.rx_data, false) }?,
            // SAFETY: as above.
            client: unsafe { NetSource::from_connection(&config.client) }?,
            client_ch: config.client.channel()?,
            // SAFETY: as above.
            client_data: unsafe { DataRegion::from_resource(&config.client_data, n, true) }?,
            stats: CopyStats::default(),
        })
    }

    /// Counters of copied and dropped frames, and whether the client was faulted.
    pub fn stats(&self) -> CopyStats {
        self.stats
    }
}

impl Handler for Copier<'_> {
    type Error = Error;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        // Each frame: copy it into the client's next free buffer, or drop it; either way the DMA
        // buffer goes straight back to the virt.
        let (s, q) = (&mut self.stats, &mut self.client);
        self.rx.drain_active(|free, buf| {
            let src = self.sources.get(usize::from(buf.oid()));
            match src.and_then(|r| r.span(buf.io_or_offset, buf.len).ok()) {
                None => s.bad_from_virt += 1,
                Some(_) if s.client_faulty => s.dropped += 1,
                Some(src) => match q.take_free() {
                    Ok(Some(dst)) => {
                        let out = NetBuffDesc::new(dst.io_or_offset, src.len());
                        let span = self.client_data.span(out.io_or_offset, out.len);
                        match span.map(|dst| (dst.copy_from(&src), q.active.push(out))) {
                            Ok((_, Ok(()))) => s.copied += 1,
                            Ok((_, Err(PushError::Peer(..)))) => s.client_faulty = true,
                            _ => s.bad_client += 1,
                        }
                    }
                    r => (s.dropped, s.client_faulty) = (s.dropped + 1, r.is_err()),
                },
            }
            free.push(buf).map_err(Error::from)
        })?;
        if !s.client_faulty {
            q.free.release();
            if q.publish_active() {
                self.client_ch.notify()?;
            }
        }
        if self.rx.publish_free() {
            self.rx_ch.deferred_notify()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{Mem, Pair, event, mapped};
    use lions_os::{ConfigClass, sddf_magic};
    use zerocopy::FromZeros;

    const ALL: ChannelSet = ChannelSet::EMPTY;

    struct Setup {
        rx: Pair,
        client: Pair,
        rx_data: Mem,
        client_data: Mem,
        cfg: NetCopyConfig,
    }

    fn setup() -> Setup {
        let (rx, client) = (Pair::new(8), Pair::new(2));
        let (rx_data, client_data) = (Mem::new(4 * 2048), Mem::new(2 * 2048));
        let mut cfg = NetCopyConfig::new_zeroed();
        cfg.magic = sddf_magic(ConfigClass::Net);
        cfg.rx = rx.conn(0);
        cfg.rx_data[0] = rx_data.res();
        cfg.client = client.conn(1);
        cfg.client_data = client_data.res();
        Setup {
            rx,
            client,
            rx_data,
            client_data,
            cfg,
        }
    }

    #[test]
    fn copies_returns_the_dma_buffer_unchanged_and_drops_when_the_client_is_full() {
        let s = setup();
        let mut k = Copier::new(mapped(&s.cfg)).unwrap();
        assert_eq!(
            s.client.free.read(0, 2),
            [2, 0],
            "the client's free queue was primed"
        );
        let (mut virt, mut client) = (s.rx.source(), s.client.sink());
        for i in 0..3u8 {
            s.rx_data.write(usize::from(i) * 2048, &[i + 1; 100]);
            virt.active
                .push(NetBuffDesc::new(u64::from(i) * 2048, 100 + u16::from(i)))
                .unwrap();
        }
        virt.active.publish();
        assert_eq!(
            event(&mut k, ALL),
            [1, 0],
            "client, then the virt (deferred)"
        );
        let got: Vec<_> = core::iter::from_fn(|| client.active.pop().unwrap()).collect();
        assert_eq!(got, [NetBuffDesc::new(0, 100), NetBuffDesc::new(2048, 101)]);
        let want = |b: u8| [b; 100].iter().chain(&[0]).copied().collect::<Vec<_>>();
        assert_eq!(
            s.client_data.read(0, 101),
            want(1),
            "100 bytes copied, not 101"
        );
        assert_eq!(s.client_data.read(2048, 101), want(2), "101 bytes copied");
        let back: Vec<_> = core::iter::from_fn(|| virt.free.pop().unwrap()).collect();
        let sent: Vec<_> = (0..3)
            .map(|i: u16| NetBuffDesc::new(u64::from(i) * 2048, 100 + i))
            .collect();
        assert_eq!(back, sent, "every DMA buffer back at once, length kept");
        assert_eq!(
            k.stats(),
            CopyStats {
                copied: 2,
                dropped: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn bad_sources_and_bad_client_buffers() {
        let s = setup();
        let mut k = Copier::new(mapped(&s.cfg)).unwrap();
        let (mut virt, mut client) = (s.rx.source(), s.client.sink());
        client.adopt_free().unwrap();
        // Frames naming no source buffer: an unmapped oid, past the region, too long.
        let bad = [
            NetBuffDesc::with_oid(0, 60, 5).unwrap(),
            NetBuffDesc::new(4 * 2048, 60),
            NetBuffDesc::new(0, 2049),
        ];
        for d in bad {
            virt.active.push(d).unwrap();
            virt.active.publish();
            event(&mut k, ALL);
            assert_eq!(virt.free.pop().unwrap(), Some(d), "returned uncopied");
            virt.free.release();
        }
        assert_eq!(k.stats().bad_from_virt, 3);
        assert_eq!(client.active.pop().unwrap(), None);
        // Use up the client's two buffers, then give one back corrupted.
        for _ in 0..2 {
            virt.active.push(NetBuffDesc::new(0, 60)).unwrap();
        }
        virt.active.publish();
        event(&mut k, ALL);
        assert_eq!(
            core::iter::from_fn(|| client.active.pop().unwrap()).count(),
            2
        );
        client.active.release();
        client.free.push(NetBuffDesc::new(1000, 0)).unwrap();
        client.free.publish();
        virt.active.push(NetBuffDesc::new(0, 60)).unwrap();
        virt.active.publish();
        event(&mut k, ALL);
        assert_eq!(k.stats().bad_client, 1);
        assert_eq!(
            client.active.pop().unwrap(),
            None,
            "the frame was dropped with it"
        );
        // A client that corrupts its queue loses service; DMA buffers keep coming back.
        s.client.free.write(0, &500u16.to_le_bytes());
        for _ in 0..3 {
            virt.active.push(NetBuffDesc::new(2048, 60)).unwrap();
        }
        virt.active.publish();
        event(&mut k, ALL);
        assert!(k.stats().client_faulty);
        assert_eq!(
            core::iter::from_fn(|| virt.free.pop().unwrap()).count(),
            6,
            "3 + 3"
        );
    }
}
