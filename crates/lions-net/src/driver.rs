// SPDX-License-Identifier: BSD-2-Clause
//! The Ethernet device class: the hardware trait a NIC driver implements ([`EthDevice`]) and the
//! generic driver loop ([`EthDriver`]) that owns the queues to the virtualisers and the signalling.
//!
//! ## The trait, for driver authors
//!
//! ```text
//! fn rx_room(&mut self) -> bool;                    // the receive ring takes another buffer
//! fn rx_post(&mut self, buf: NetBuffDesc);          // an empty buffer (device address) to fill
//! fn rx_poll(&mut self) -> Option<NetBuffDesc>;     // next received frame, len set, in order
//! fn tx_room(&mut self) -> bool;                    // the transmit ring takes another frame
//! fn tx_post(&mut self, buf: NetBuffDesc);          // a frame (device address, len) to send
//! fn tx_poll(&mut self) -> Option<NetBuffDesc>;     // next sent frame's descriptor, in order
//! fn rx_kick(&mut self) {}  fn tx_kick(&mut self) {} // doorbell after a batch of posts
//! fn ack_irq(&mut self) {}                          // read and clear the interrupt cause
//! ```
//!
//! A descriptor posted to the device is handed back unchanged by `rx_poll` (with the received
//! length) or `tx_poll`; the device keeps it in its shadow ring. That is all the hardware part
//! does: it never maps data buffers, knows no queues, channels or notification rules. The device
//! runs promiscuous: the Rx virtualiser demultiplexes by MAC.
//!
//! ## The loop
//!
//! - **`rx_provide`** (notified by the Rx virt, or after an IRQ): post free buffers while the ring
//!   has room and kick. If the ring is full, withdraw any signal request (the IRQ resumes us);
//!   otherwise request a signal on the free queue and re-check.
//! - **`rx_return`** (IRQ): received frames to the Rx virt's active queue; notify it if it asked.
//! - **`tx_provide`** (notified by the Tx virt, or after an IRQ): the mirror image of `rx_provide`
//!   on the Tx active queue.
//! - **`tx_return`** (IRQ): sent frames back on the Tx free queue; notify the Tx virt if it asked.
//! - **IRQ**: [`EthDevice::ack_irq`], then Tx (return, provide) before Rx (return, provide), as
//!   sDDF does, then a deferred IRQ acknowledgement. Notifications to the virts are immediate.
//!
//! - **Restart** ([`EthDriver::resume`] in place of `init`): the buffers the old incarnation held
//!   privately are taken back from what the queue indices say it held: Rx buffers posted to the
//!   device again, Tx frames given back unsent.
//!
//! The virtualisers are trusted: an impossible index from one is an [`Error`] (the PD faults).

use crate::queue::{NetBuffDesc, NetSink, NetSource, RawQueue};
use crate::{Error, NetDriverConfig, SetupError};
use lions_os::{Channel, ChannelSet, Handler, Mapped};

/// The hardware half of an Ethernet driver. Every method returns without waiting.
pub trait EthDevice {
    /// Whether the receive ring can take another empty buffer now.
    fn rx_room(&mut self) -> bool;
    /// Give the device an empty buffer of 2048 bytes at device address `buf.io_or_offset`.
    /// Called only after `rx_room` said yes.
    fn rx_post(&mut self, buf: NetBuffDesc);
    /// The next received frame, in posting order: the posted descriptor with `len` set to the
    /// frame's length. `None` when the device has not completed one.
    fn rx_poll(&mut self) -> Option<NetBuffDesc>;
    /// Whether the transmit ring can take another frame now.
    fn tx_room(&mut self) -> bool;
    /// Send the frame of `buf.len` bytes at device address `buf.io_or_offset`. Called only after
    /// `tx_room` said yes.
    fn tx_post(&mut self, buf: NetBuffDesc);
    /// The next transmitted frame's descriptor, in posting order; `None` when none completed.
    fn tx_poll(&mut self) -> Option<NetBuffDesc>;
    /// Tell the device that receive buffers were posted (once per batch).
    fn rx_kick(&mut self) {}
    /// Tell the device that frames were posted for transmission (once per batch).
    fn tx_kick(&mut self) {}
    /// Read and clear the device's interrupt cause, after an IRQ and before it is serviced.
    fn ack_irq(&mut self) {}
}

/// The generic Ethernet driver: an [`EthDevice`] plus its queues to the virtualisers.
pub struct EthDriver<'a, D> {
    dev: D,
    irq: Channel,
    rx: NetSource<'a>,
    rx_ch: Channel,
    tx: NetSink<'a>,
    tx_ch: Channel,
    /// The config the token vouched for (read again by [`resume`](Self::resume)).
    config: &'a NetDriverConfig,
}

impl<'a, D: EthDevice> EthDriver<'a, D> {
    /// The driver for `dev` over the queues in `config`, with the device's IRQ on `irq`.
    ///
    /// The token says the config's queue regions are mapped here read-write for `'a`, and that
    /// this is the one driver built from them.
    pub fn new(
        dev: D,
        config: Mapped<'a, NetDriverConfig>,
        irq: Channel,
    ) -> Result<Self, SetupError> {
        let config = config.config();
        Ok(Self {
            dev,
            irq,
            // SAFETY: the token: mapped here read-write for `'a`, shared only with the
            // virtualisers, and this driver makes the only handles on them (here and below).
            rx: unsafe { NetSource::from_connection(&config.virt_rx) }?,
            rx_ch: config.virt_rx.channel()?,
            // SAFETY: as above.
            tx: unsafe { NetSink::from_connection(&config.virt_tx) }?,
            tx_ch: config.virt_tx.channel()?,
            config,
        })
    }

    /// The device (for inspection and board-specific calls).
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Post the buffers of both directions the device can take: call once from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        self.rx_provide()?;
        self.tx_provide()
    }

    /// Start again after a restart, in place of [`init`](Self::init) (paper §5.2: the queues in
    /// shared memory are the driver's state). What the old incarnation held privately died with
    /// it, but the queue indices still count it as the driver's, so it is taken back:
    ///
    /// - **Rx**: the buffers it took from the free queue and did not give back on the active
    ///   queue (`free.head - active.tail`, the last it took: a device completes receive buffers
    ///   in posting order) are posted to the device again, before any new one. A device with less
    ///   room than that leaves the rest lost (the returned count says how many were posted).
    /// - **Tx**: the frames it took from the active queue and did not give back on the free
    ///   queue (`active.head - free.tail`) are given back on the free queue unsent (whether the
    ///   old incarnation sent them is unknown: a frame is better lost than sent twice), and the
    ///   Tx virt is notified.
    ///
    /// Then as `init`. Returns the (Rx buffers posted again, Tx frames given back).
    pub fn resume(&mut self) -> Result<(usize, usize), Error> {
        let config = self.config;
        // SAFETY: the token `new` took: the regions are mapped for 'a (read only here).
        let (rx_active, rx_free) = unsafe { RawQueue::of(&config.virt_rx) }?;
        let head = rx_free.head();
        let held = head.wrapping_sub(rx_active.tail());
        let mut posted = 0;
        if held <= config.virt_rx.num_buffers {
            for k in 0..held {
                if !self.dev.rx_room() {
                    break;
                }
                self.dev
                    .rx_post(rx_free.entry(head.wrapping_sub(held).wrapping_add(k)));
                posted += 1;
            }
            if posted > 0 {
                self.dev.rx_kick();
            }
        }
        let mut returned = 0;
        // SAFETY: as above.
        for buf in unsafe { RawQueue::taken(&config.virt_tx) }? {
            self.tx.free.push(buf)?;
            returned += 1;
        }
        if self.tx.free.publish() > 0 {
            self.tx_ch.notify()?;
        }
        self.init()?;
        Ok((posted, returned))
    }

    /// Free buffers to the device's receive ring, in the three phases.
    fn rx_provide(&mut self) -> Result<(), Error> {
        loop {
            while self.dev.rx_room() {
                let Some(buf) = self.rx.free.pop()? else {
                    break;
                };
                self.dev.rx_post(buf);
            }
            if self.rx.free.release() > 0 {
                self.dev.rx_kick();
            }
            if !self.dev.rx_room() {
                self.rx.cancel_free_signal();
                return Ok(());
            }
            if !self.rx.park_free()? {
                return Ok(());
            }
        }
    }

    /// Received frames to the Rx virt; notify it if it asked.
    fn rx_return(&mut self) -> Result<(), Error> {
        while self.rx.active.free()? > 0 {
            let Some(buf) = self.dev.rx_poll() else { break };
            self.rx.active.push(buf)?;
        }
        let n = self.rx.active.publish();
        if self.rx.should_notify_active(n > 0) {
            self.rx_ch.notify()?;
        }
        Ok(())
    }

    /// Frames from the Tx virt to the device's transmit ring, in the three phases.
    fn tx_provide(&mut self) -> Result<(), Error> {
        loop {
            while self.dev.tx_room() {
                let Some(buf) = self.tx.active.pop()? else {
                    break;
                };
                self.dev.tx_post(buf);
            }
            if self.tx.active.release() > 0 {
                self.dev.tx_kick();
            }
            if !self.dev.tx_room() {
                self.tx.cancel_active_signal();
                return Ok(());
            }
            if !self.tx.park_active()? {
                return Ok(());
            }
        }
    }

    /// Sent frames back to the Tx virt; notify it if it asked.
    fn tx_return(&mut self) -> Result<(), Error> {
        while self.tx.free.free()? > 0 {
            let Some(buf) = self.dev.tx_poll() else { break };
            self.tx.free.push(buf)?;
        }
        let n = self.tx.free.publish();
        if self.tx.should_notify_free(n > 0) {
            self.tx_ch.notify()?;
        }
        Ok(())
    }
}

impl<D: EthDevice> Handler for EthDriver<'_, D> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        let irq = channels.contains(self.irq);
        if irq {
            self.dev.ack_irq();
            self.tx_return()?;
        }
        if irq || channels.contains(self.tx_ch) {
            self.tx_provide()?;
        }
        if irq {
            self.rx_return()?;
        }
        if irq || channels.contains(self.rx_ch) {
            self.rx_provide()?;
        }
        if irq {
            self.irq.deferred_irq_ack()?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testkit::{Pair, event, mapped};
    use std::collections::VecDeque;
    use zerocopy::FromZeros;

    /// A device with tiny rings that logs every call.
    #[derive(Default)]
    struct Dev {
        log: Vec<&'static str>,
        rx_ring: VecDeque<NetBuffDesc>,
        rx_done: VecDeque<NetBuffDesc>,
        tx_ring: VecDeque<NetBuffDesc>,
        tx_done: VecDeque<NetBuffDesc>,
    }

    impl EthDevice for Dev {
        fn rx_room(&mut self) -> bool {
            self.rx_ring.len() < 2
        }
        fn rx_post(&mut self, buf: NetBuffDesc) {
            self.log.push("rx_post");
            self.rx_ring.push_back(buf);
        }
        fn rx_poll(&mut self) -> Option<NetBuffDesc> {
            self.log.push("rx_poll");
            self.rx_done.pop_front()
        }
        fn tx_room(&mut self) -> bool {
            self.tx_ring.is_empty()
        }
        fn tx_post(&mut self, buf: NetBuffDesc) {
            self.log.push("tx_post");
            self.tx_ring.push_back(buf);
        }
        fn tx_poll(&mut self) -> Option<NetBuffDesc> {
            self.log.push("tx_poll");
            self.tx_done.pop_front()
        }
        fn rx_kick(&mut self) {
            self.log.push("rx_kick");
        }
        fn tx_kick(&mut self) {
            self.log.push("tx_kick");
        }
        fn ack_irq(&mut self) {
            self.log.push("ack_irq");
        }
    }

    const IRQ: ChannelSet = ChannelSet::EMPTY.with(Channel::new(5));

    #[test]
    fn rings_fill_signals_follow_the_rule_and_tx_goes_before_rx() {
        let (rx, tx) = (Pair::new(4), Pair::new(4));
        let mut cfg = NetDriverConfig::new_zeroed();
        cfg.magic = *b"sDDF\x05";
        cfg.virt_rx = rx.conn(1);
        cfg.virt_tx = tx.conn(2);
        let mut d = EthDriver::new(Dev::default(), mapped(&cfg), Channel::new(5)).unwrap();
        let (mut vrx, mut vtx) = (rx.sink(), tx.source());
        vrx.fill_free(0x1000).unwrap();
        for i in 0..2 {
            vtx.active.push(NetBuffDesc::new(0x9000 + i, 60)).unwrap();
        }
        vtx.active.publish();
        let rec = crate::testkit::Rec::default();
        lions_os::runtime::with_backend(&rec, || d.init()).unwrap();
        assert_eq!(
            d.device().log,
            ["rx_post", "rx_post", "rx_kick", "tx_post", "tx_kick"]
        );
        assert_eq!(
            rx.free.read(4, 4),
            [1, 0, 0, 0],
            "Rx ring full: no signal wanted on free"
        );
        assert_eq!(
            tx.active.read(4, 4),
            [1, 0, 0, 0],
            "Tx ring full: none wanted on active"
        );
        // The device received one frame and sent one.
        let dev = d.device();
        dev.log.clear();
        let mut got = dev.rx_ring.pop_front().unwrap();
        got.len = 64;
        dev.rx_done.push_back(got);
        let sent = dev.tx_ring.pop_front().unwrap();
        dev.tx_done.push_back(sent);
        let notified = event(&mut d, IRQ);
        let log = &d.device().log;
        assert_eq!(log[0], "ack_irq");
        let last_tx = log.iter().rposition(|e| e.starts_with("tx")).unwrap();
        let first_rx = log.iter().position(|e| e.starts_with("rx")).unwrap();
        assert!(last_tx < first_rx, "Tx before Rx: {log:?}");
        assert_eq!(notified, [2, 1], "each virt's zeroed flag asked once");
        assert_eq!(
            vtx.free.pop().unwrap().map(|b| b.io_or_offset),
            Some(0x9000)
        );
        let b = vrx.active.pop().unwrap().unwrap();
        assert_eq!((b.io_or_offset, b.len), (0x1000, 64));
        // Nobody asked again: the next completion notifies no one.
        let dev = d.device();
        let sent = dev.tx_ring.pop_front().unwrap();
        dev.tx_done.push_back(sent);
        assert_eq!(event(&mut d, IRQ), [], "no request, no notification");
        // A notification from the Rx virt alone only provides Rx buffers.
        d.device().log.clear();
        assert_eq!(event(&mut d, ChannelSet::EMPTY.with(Channel::new(1))), []);
        assert!(d.device().log.iter().all(|e| e.starts_with("rx")));
    }

    #[test]
    fn a_restarted_driver_takes_back_what_the_old_one_held() {
        let (rx, tx) = (Pair::new(4), Pair::new(4));
        let mut cfg = NetDriverConfig::new_zeroed();
        cfg.magic = *b"sDDF\x05";
        cfg.virt_rx = rx.conn(1);
        cfg.virt_tx = tx.conn(2);
        let (mut vrx, mut vtx) = (rx.sink(), tx.source());
        vrx.fill_free(0x1000).unwrap();
        for i in 0..2 {
            vtx.active
                .push(NetBuffDesc::new(0x9000 + i * 0x800, 60))
                .unwrap();
        }
        vtx.active.publish();
        let rec = crate::testkit::Rec::default();
        {
            // The memory outlives the driver; one handle per queue end at a time.
            let mut old = EthDriver::new(Dev::default(), mapped(&cfg), Channel::new(5)).unwrap();
            lions_os::runtime::with_backend(&rec, || old.init()).unwrap();
            // It received one frame and gave it to the virt, then died holding the rest: one
            // Rx buffer posted, one Tx frame taken.
            let dev = old.device();
            let mut got = dev.rx_ring.pop_front().unwrap();
            got.len = 64;
            dev.rx_done.push_back(got);
            assert_eq!(event(&mut old, IRQ), [1]);
            assert_eq!(old.device().rx_ring.len(), 2, "posted again up to its ring");
            assert_eq!(old.device().tx_ring.len(), 1);
        }
        let b = vrx.active.pop().unwrap().unwrap();
        assert_eq!(b.io_or_offset, 0x1000);
        rec.notified.take();
        // As above; the old driver is gone.
        let mut new = EthDriver::new(Dev::default(), mapped(&cfg), Channel::new(5)).unwrap();
        let back = lions_os::runtime::with_backend(&rec, || new.resume()).unwrap();
        assert_eq!(
            back,
            (2, 1),
            "two Rx buffers posted again, one Tx frame given back"
        );
        let posted: Vec<u64> = new
            .device()
            .rx_ring
            .iter()
            .map(|d| d.io_or_offset)
            .collect();
        assert_eq!(
            posted,
            [0x1800, 0x2000],
            "the old incarnation's, oldest first"
        );
        assert_eq!(
            vtx.free.pop().unwrap().map(|d| d.io_or_offset),
            Some(0x9000),
            "the frame it held, back unsent"
        );
        assert_eq!(rec.notified.take(), [2], "the Tx virt told");
        // Then as init: the second frame goes to the device; no Rx room for more.
        let sent: Vec<u64> = new
            .device()
            .tx_ring
            .iter()
            .map(|d| d.io_or_offset)
            .collect();
        assert_eq!(sent, [0x9800]);
    }
}
