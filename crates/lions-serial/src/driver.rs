// SPDX-License-Identifier: BSD-2-Clause
//! The serial device-class driver: the hardware trait a driver author implements, and the generic
//! driver loop that owns the queues and the signalling protocol.
//!
//! ## The trait ([`SerialDevice`]), for driver authors
//!
//! ```text
//! fn tx_write(&mut self, bytes: &[u8]) -> usize;   // take what fits now, never block; 0 = full
//! fn rx_read(&mut self, out: &mut [u8]) -> usize;  // give what arrived, never block; 0 = none
//! fn set_tx_irq(&mut self, on: bool);              // "can take more" interrupt on/off
//! fn set_rx_irq(&mut self, on: bool);              // "byte received" interrupt on/off
//! fn ack_irq(&mut self) {}                         // clear device interrupt status (optional)
//! ```
//!
//! That is the whole hardware part: no queues, no channels, no notification rules. A UART with a
//! FIFO loops in `tx_write` while its FIFO is not full; a host pty does one non-blocking `write(2)`.
//!
//! ## The loop ([`SerialDriver`])
//!
//! - **Tx (`tx_provide`)**, on a notification from the Tx virt or an IRQ: hand queued bytes to the
//!   device while it takes them; keep the tx interrupt on exactly while bytes remain; release the
//!   consumed bytes and notify the virt only if it asked (it waits for space).
//! - **Rx (`rx_return`)**, on an IRQ: move received bytes into the Rx queue while it has room. When
//!   it is full: publish, mask the rx interrupt, ask the Rx virt for a signal and re-check (space
//!   appeared: unmask and go on). Always notify the Rx virt if anything was enqueued.
//! - A notification from the Rx virt (it freed space we asked for) unmasks rx and runs Rx again.
//! - An IRQ runs [`SerialDevice::ack_irq`], Rx, Tx, then acknowledges the IRQ (deferred).

use crate::Error;
use crate::config::SerialDriverConfig;
use crate::queue::{SerialConsumer, SerialProducer, SerialQueueError};
use lions_os::{Channel, ChannelSet, Handler, Mapped};

/// The hardware half of a serial driver. Every method must return without waiting.
pub trait SerialDevice {
    /// Hand bytes to the transmitter; returns how many it took (0 when it has no room now).
    fn tx_write(&mut self, bytes: &[u8]) -> usize;
    /// Take received bytes into `out`; returns how many (0 when nothing is waiting).
    fn rx_read(&mut self, out: &mut [u8]) -> usize;
    /// Enable or disable the interrupt raised when the transmitter can take more bytes.
    fn set_tx_irq(&mut self, on: bool);
    /// Enable or disable the interrupt raised when bytes were received.
    fn set_rx_irq(&mut self, on: bool);
    /// Clear the device's interrupt status after an IRQ, before the loop services it.
    fn ack_irq(&mut self) {}
}

/// Most bytes moved per device call.
const CHUNK: usize = 128;

/// The generic serial driver: a [`SerialDevice`] plus the Tx queue from the Tx virt, the optional
/// Rx queue to the Rx virt, and their channels.
pub struct SerialDriver<'a, D> {
    dev: D,
    irq: Channel,
    tx: SerialConsumer<'a>,
    tx_ch: Channel,
    rx: Option<(SerialProducer<'a>, Channel)>,
}

impl<'a, D: SerialDevice> SerialDriver<'a, D> {
    /// The driver for `dev` over the queues in `config`, with the device's IRQ on `irq`. The Rx
    /// queue is used only when `config.rx_enabled`.
    ///
    /// The token says the config's regions are mapped here for `'a` as claimed, and that this
    /// is the one driver built from them.
    pub fn new(
        dev: D,
        config: Mapped<'a, SerialDriverConfig>,
        irq: Channel,
    ) -> Result<Self, SerialQueueError> {
        let config = config.config();
        // SAFETY: the token: mapped here for `'a` as claimed, shared only with the virts, and
        // this driver makes the only handles on them (here and below).
        let tx = unsafe { SerialConsumer::from_connection(&config.tx) }?;
        let rx = if config.rx_enabled() {
            // SAFETY: as above.
            let q = unsafe { SerialProducer::from_connection(&config.rx) }?;
            Some((q, config.rx.channel()?))
        } else {
            None
        };
        Ok(Self::with_queues(dev, irq, tx, config.tx.channel()?, rx))
    }

    /// The driver over queue handles made by the caller (tests, custom wiring). Enables the rx
    /// interrupt when there is an Rx queue and disables the tx interrupt.
    pub fn with_queues(
        mut dev: D,
        irq: Channel,
        tx: SerialConsumer<'a>,
        tx_ch: Channel,
        rx: Option<(SerialProducer<'a>, Channel)>,
    ) -> Self {
        dev.set_tx_irq(false);
        dev.set_rx_irq(rx.is_some());
        Self {
            dev,
            irq,
            tx,
            tx_ch,
            rx,
        }
    }

    /// The device (for inspection and board-specific calls).
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Tx: queued bytes to the device, in the three phases. Bytes are only peeked until the device
    /// took them, so none is lost when its FIFO is full.
    fn tx_provide(&mut self) -> Result<(), Error> {
        let mut buf = [0u8; CHUNK];
        loop {
            let n = self.tx.peek_at(0, &mut buf)?;
            if n == 0 {
                break;
            }
            let took = self.dev.tx_write(&buf[..n]).min(n);
            self.tx.skip(took)?;
            if took < n {
                break;
            }
        }
        // While bytes remain the device interrupts when it has room again; once empty, the virt
        // notifies when it adds bytes (the producer always notifies).
        self.dev.set_tx_irq(!self.tx.is_empty()?);
        let freed = self.tx.release() > 0;
        if self.tx.should_notify(freed) {
            self.tx_ch.notify()?;
        }
        Ok(())
    }

    /// Rx: received bytes to the Rx virt, in the three phases.
    fn rx_return(&mut self) -> Result<(), Error> {
        let Some((rx, ch)) = &mut self.rx else {
            return Ok(());
        };
        let mut buf = [0u8; CHUNK];
        let mut sent = 0;
        loop {
            let free = usize::try_from(rx.free()?).unwrap_or(CHUNK).min(CHUNK);
            if free == 0 {
                // Full: let the virt see what we have, then wait for its signal with rx masked.
                sent += rx.publish();
                self.dev.set_rx_irq(false);
                if !rx.park()? {
                    break;
                }
                self.dev.set_rx_irq(true);
                continue;
            }
            let n = self.dev.rx_read(&mut buf[..free]).min(free);
            if n == 0 {
                break;
            }
            rx.write(&buf[..n])?;
        }
        sent += rx.publish();
        if rx.should_notify(sent) {
            ch.notify()?;
        }
        Ok(())
    }
}

impl<D: SerialDevice> Handler for SerialDriver<'_, D> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        let irq = channels.contains(self.irq);
        if irq {
            self.dev.ack_irq();
        }
        let rx_virt = self.rx.as_ref().is_some_and(|(_, c)| channels.contains(*c));
        if rx_virt {
            self.dev.set_rx_irq(true);
        }
        if irq || rx_virt {
            self.rx_return()?;
        }
        if irq || channels.contains(self.tx_ch) {
            self.tx_provide()?;
        }
        if irq {
            self.irq.deferred_irq_ack()?;
        }
        Ok(())
    }
}
