// SPDX-License-Identifier: BSD-2-Clause
//! The Tx virtualiser (`serial_virt_tx`): many clients' output queues into the driver's one.
//!
//! ## Protocol
//!
//! - **Init** ([`VirtTx::init`]): when Rx is enabled, the config's `begin_str` goes to the driver
//!   queue; when colour is on, a legend follows: every client's name in its colour, one line. The
//!   driver is notified. What does not fit a (tiny) driver queue is left out, a legend entry whole.
//! - **Batches**: a client's *batch* is everything it has published. The client library publishes
//!   whole lines (and on a full queue or an explicit flush), so a batch is whole lines, a prompt, or
//!   what a full queue held. A batch moves whole when the driver queue can ever hold it; a larger
//!   one moves in pieces cut after a line end where the room allows, and no other client's bytes
//!   come between the pieces. So lines of different clients never interleave, and nothing a
//!   client published is lost.
//! - **Colour** (config `enable_colour`, and only when the driver queue is larger than the 9 bytes
//!   it costs): every transfer is wrapped in `ESC[3Xm` … `ESC[0m`, X = 1 + client index mod 6 (red,
//!   green, yellow, blue, magenta, cyan), see [`colour_code`].
//! - **Data path**: a batch moves straight from the client's ring into the driver's, one copy per
//!   contiguous run; the driver's head is re-read only when the room already known is short.
//!   Clients notified in the same event are served in channel order (as libmicrokit delivers).
//! - **Client notification** (`tx_provide`): serve the client now, or, if clients are already
//!   waiting, queue it behind them. No room: ask the driver for a signal and re-check; still no
//!   room → the client joins the FIFO of waiting clients (each client at most once).
//! - **Driver notification** (`tx_return`): serve the FIFO in order until one still lacks room.
//! - **Notifications**: after every transfer notify the driver; notify the client only if its flag
//!   asks (it waits for space in its queue).
//! - **Restart** ([`VirtTx::resume`] in place of `init`, for a component restarted with its
//!   regions intact, paper §5.2): the bytes waiting are all in the queues, so nothing is lost;
//!   the FIFO of waiting clients is private and is *rebuilt conservatively from the queues*:
//!   every client with bytes published is served once in channel order, and those that find no
//!   room join the FIFO in that order. Neither `begin_str` nor the legend is written again. A
//!   batch the old incarnation had moved only in part goes on from where it stopped, so
//!   another client's line may come between its pieces once.
//! - **Misbehaving client**: an impossible index (or inconsistent indices at start) marks the
//!   client faulty ([`VirtTx::faulty`]); it is ignored from then on, everyone else is unaffected,
//!   nothing panics.

use crate::Error;
use crate::config::SerialVirtTxConfig;
use crate::queue::{SerialConsumer, SerialProducer, SerialQueueError, client_queues};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, Mapped};
use lions_queue::fifo::Waiting;

/// `ESC[0m`: back to the terminal's default colour.
const RESET: &[u8] = b"\x1b[0m";
/// Bytes of colour around one transfer: the start code and [`RESET`].
const OVERHEAD: u64 = 5 + 4;
/// Entries of the channel-to-client table: one per bit of a [`ChannelSet`] (ids above
/// `MAX_CHANNEL` never occur; the spare entries keep the lookup free of bounds checks).
const CHANNELS: usize = 64;

/// The colour start code of client `client`: `ESC[3Xm`, X = 1 + `client` mod 6.
pub fn colour_code(client: usize) -> [u8; 5] {
    // `client % 6 < 6`, so the digit is '1'..='6'.
    #[allow(clippy::cast_possible_truncation)]
    [0x1b, b'[', b'3', b'1' + (client % 6) as u8, b'm']
}

/// The Tx virtualiser; see the module docs.
pub struct VirtTx<'a> {
    config: &'a SerialVirtTxConfig,
    driver: SerialProducer<'a>,
    driver_ch: Channel,
    /// Each client's Tx queue (we consume) and channel; `None` once faulty.
    clients: [Option<(SerialConsumer<'a>, Channel)>; MAX_CLIENTS],
    /// The client at the other end of each channel (`u8::MAX`: none).
    by_channel: [u8; CHANNELS],
    /// Bytes of colour around a transfer: [`OVERHEAD`] with colour on, else 0.
    overhead: u64,
    /// The FIFO of clients waiting for room (each at most once).
    waiting: Waiting,
    faulty: u64,
}

impl<'a> VirtTx<'a> {
    /// The virtualiser over the queues in `config`. A client whose queue already holds
    /// inconsistent indices starts out faulty; any other bad connection is an error.
    ///
    /// The token says the config's regions are mapped here for `'a` as claimed, and that this
    /// is the one component built from them.
    pub fn new(config: Mapped<'a, SerialVirtTxConfig>) -> Result<Self, SerialQueueError> {
        let config = config.config();
        let conns = config.clients().iter().map(|c| &c.conn);
        // SAFETY: the token: mapped here for `'a` as claimed, each shared only with its peer, and
        // this component makes the only handles on them (here and below).
        let (clients, faulty) = unsafe { client_queues(conns, SerialConsumer::from_connection) }?;
        // SAFETY: as above.
        let driver = unsafe { SerialProducer::from_connection(&config.driver) }?;
        let mut by_channel = [u8::MAX; CHANNELS];
        for (c, client) in (0u8..).zip(config.clients()) {
            by_channel[usize::from(client.conn.id) % CHANNELS] = c;
        }
        let colour = config.enable_colour() && driver.capacity() > OVERHEAD;
        Ok(Self {
            config,
            driver,
            driver_ch: config.driver.channel()?,
            clients,
            by_channel,
            overhead: if colour { OVERHEAD } else { 0 },
            waiting: Waiting::new(),
            faulty,
        })
    }

    /// Clients found misbehaving (bit i = client i); they are ignored.
    pub fn faulty(&self) -> u64 {
        self.faulty
    }

    /// How many clients wait for room in the driver queue.
    pub fn waiting(&self) -> u32 {
        self.waiting.len()
    }

    /// Write the begin string (Rx enabled) and the colour legend (colour on) to the driver and
    /// notify it. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        if self.config.enable_rx() {
            self.driver.write(self.config.begin_str())?;
        }
        if self.overhead > 0 {
            for (c, client) in self.config.clients().iter().enumerate() {
                let name = client.name();
                if self.driver.free()? < OVERHEAD + name.len() as u64 + 3 {
                    break;
                }
                for part in [&colour_code(c)[..], name, RESET, b" "] {
                    self.driver.write(part)?;
                }
            }
            self.driver.write(b"\r\n")?;
        }
        if self.driver.publish() > 0 {
            self.driver_ch.notify()?;
        }
        Ok(())
    }

    /// Take over from a previous incarnation (a restarted component's `init`; see the module
    /// docs): serve every client once, in channel order, as if each had just notified.
    pub fn resume(&mut self) -> Result<(), Error> {
        self.waiting.clear();
        // Every channel: those of no live client are skipped, the driver's finds nobody waiting.
        self.notified(ChannelSet::from_bits(u64::MAX))
    }

    /// Phases 1 and 2 for client `c`: move its batch. `Ok(false)`: the driver queue lacks room
    /// and a signal is requested; `Ok(true)`: done (moved, nothing to move, or client faulty).
    /// The common case, a batch that fits the room known (re-read once when short), is one
    /// straight move; anything else goes round [`transfer_rounds`](Self::transfer_rounds).
    #[inline(always)]
    fn transfer(&mut self, c: usize) -> Result<bool, Error> {
        // No queue (already faulty) or an impossible tail: (still) faulty.
        let Some(Ok(left)) = self.clients[c].as_mut().map(|(q, _)| q.len()) else {
            return Ok(self.mark_faulty(c));
        };
        let want = left + self.overhead;
        // The driver is trusted: an error re-reading its head is ours.
        if want > u64::from(self.driver.free_cached()) && want > self.driver.free()? {
            return self.transfer_rounds(c, left);
        }
        if left > 0 {
            // `left` bytes came from a `u32` ring.
            self.round(c, usize::try_from(left).unwrap_or(0))?;
        }
        Ok(true)
    }

    /// [`transfer`](Self::transfer) when the room does not suffice: room for the whole batch, or
    /// for a full driver queue when the batch can never fit; else ask for a signal. A batch
    /// larger than the room goes in pieces cut after a line end.
    #[inline(never)]
    fn transfer_rounds(&mut self, c: usize, mut left: u64) -> Result<bool, Error> {
        while left > 0 {
            // `want > overhead` (colour is on only when `capacity > overhead`): each round moves.
            let want = (left + self.overhead).min(self.driver.capacity());
            let free = self.driver.free()?;
            if free < want {
                if !self.driver.park_for(want)? {
                    return Ok(false);
                }
                continue;
            }
            // `n <= left`, which came from a `u32` ring.
            let mut n = usize::try_from(left.min(free - self.overhead)).unwrap_or(0);
            if let Some((q, _)) = &mut self.clients[c]
                && (n as u64) < left
            {
                match q.rfind(b'\n', n) {
                    Ok(end) => n = end.map_or(n, |end| end + 1),
                    Err(_) => return Ok(self.mark_faulty(c)),
                }
            }
            self.round(c, n)?;
            left -= n as u64;
        }
        Ok(true)
    }

    /// One round for client `c`: stage the colour code, `n` bytes of its batch straight from its
    /// ring into the driver's (one copy per contiguous run) and the reset code, publish to the
    /// driver and hand the client's bytes back, notifying each as the rule says. The caller saw
    /// `n` bytes published and room for them and the colour, so all `n` move.
    #[inline(always)]
    fn round(&mut self, c: usize, n: usize) -> Result<(), Error> {
        let Some((q, ch)) = &mut self.clients[c] else {
            return Ok(());
        };
        if self.overhead > 0 {
            let _ = self.driver.write(&colour_code(c));
            q.move_seen(&mut self.driver, n);
            let _ = self.driver.write(RESET);
        } else {
            q.move_seen(&mut self.driver, n);
        }
        if self.driver.publish() > 0 {
            self.driver_ch.notify()?;
        }
        let freed = q.release() > 0;
        if q.should_notify(freed) {
            ch.notify()?;
        }
        Ok(())
    }

    /// Stop serving client `c`; returns `true` (done with it).
    fn mark_faulty(&mut self, c: usize) -> bool {
        self.faulty |= 1 << c;
        self.clients[c] = None;
        true
    }

    /// Client `c` notified: serve it now, or queue it behind the waiting clients (once).
    fn tx_provide(&mut self, c: usize) -> Result<(), Error> {
        if !self.waiting.is_empty() || !self.transfer(c)? {
            self.waiting.push(c);
        }
        Ok(())
    }

    /// The driver freed space we asked for: serve the waiting clients in order.
    fn tx_return(&mut self) -> Result<(), Error> {
        while let Some(c) = self.waiting.front()
            && self.transfer(c)?
        {
            self.waiting.pop();
        }
        Ok(())
    }
}

impl Handler for VirtTx<'_> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        if !self.waiting.is_empty() && channels.contains(self.driver_ch) {
            self.tx_return()?;
        }
        // The notified clients, in channel order (as libmicrokit delivers notifications); only
        // set bits are visited.
        let mut chs = channels.bits();
        while chs != 0 {
            // `trailing_zeros < 64`: inside the table.
            let c = usize::from(self.by_channel[chs.trailing_zeros() as usize]);
            chs &= chs - 1;
            if c < MAX_CLIENTS && self.clients[c].is_some() {
                self.tx_provide(c)?;
            }
        }
        Ok(())
    }
}
