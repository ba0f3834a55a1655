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
//! - **Client notification** (`tx_provide`): serve the client now, or, if clients are already
//!   waiting, queue it behind them. No room: ask the driver for a signal and re-check; still no
//!   room → the client joins the FIFO of waiting clients (each client at most once).
//! - **Driver notification** (`tx_return`): serve the FIFO in order until one still lacks room.
//! - **Notifications**: after every transfer notify the driver; notify the client only if its flag
//!   asks (it waits for space in its queue).
//! - **Misbehaving client**: an impossible index (or inconsistent indices at start) marks the
//!   client faulty ([`VirtTx::faulty`]); it is ignored from then on, everyone else is unaffected,
//!   nothing panics.

use crate::Error;
use crate::config::SerialVirtTxConfig;
use crate::queue::{SerialConsumer, SerialProducer, SerialQueueError, client_queues};
use lions_os::{Channel, ChannelSet, Handler, MAX_CHANNEL, MAX_CLIENTS};

/// `ESC[0m`: back to the terminal's default colour.
const RESET: &[u8] = b"\x1b[0m";
/// Bytes of colour around one transfer: the start code and [`RESET`].
const OVERHEAD: u64 = 5 + 4;
/// Channel ids are below this.
const CHANNELS: usize = MAX_CHANNEL as usize + 1;

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
    /// The driver queue's capacity.
    cap: u64,
    /// Each client's Tx queue (we consume) and channel; `None` once faulty.
    clients: [Option<(SerialConsumer<'a>, Channel)>; MAX_CLIENTS],
    /// The channels of the clients still served (not faulty).
    client_chs: u64,
    /// The client at the other end of each channel in `client_chs`.
    by_channel: [u8; CHANNELS],
    colour: bool,
    /// Clients waiting for room: bit c = client c is in the FIFO (each at most once).
    waiting: u64,
    /// The FIFO of waiting clients: `waiting.count_ones()` entries from `first`, wrapping.
    fifo: [u8; MAX_CLIENTS],
    first: usize,
    faulty: u64,
}

impl<'a> VirtTx<'a> {
    /// The virtualiser over the queues in `config`. A client whose queue already holds
    /// inconsistent indices starts out faulty; any other bad connection is an error.
    ///
    /// # Safety
    /// The config's regions are mapped in this component for `'a`, each shared only with its peer,
    /// and no other handle of the same roles exists (see [`SerialConsumer::from_connection`]).
    pub unsafe fn new(config: &'a SerialVirtTxConfig) -> Result<Self, SerialQueueError> {
        let conns = config.clients().iter().map(|c| &c.conn);
        // SAFETY: forwarded from the caller.
        let (clients, faulty) = unsafe { client_queues(conns, SerialConsumer::from_connection) }?;
        // SAFETY: forwarded from the caller.
        let driver = unsafe { SerialProducer::from_connection(&config.driver) }?;
        let cap = driver.capacity();
        let mut client_chs = 0;
        let mut by_channel = [0; CHANNELS];
        for (c, client) in (0u8..).zip(&clients) {
            if let Some((_, ch)) = client {
                client_chs |= 1 << ch.index();
                by_channel[usize::from(ch.index())] = c;
            }
        }
        Ok(Self {
            config,
            driver,
            driver_ch: config.driver.channel()?,
            cap,
            clients,
            client_chs,
            by_channel,
            colour: config.enable_colour() && cap > OVERHEAD,
            waiting: 0,
            fifo: [0; MAX_CLIENTS],
            first: 0,
            faulty,
        })
    }

    /// Clients found misbehaving (bit i = client i); they are ignored.
    pub fn faulty(&self) -> u64 {
        self.faulty
    }

    /// How many clients wait for room in the driver queue.
    pub fn waiting(&self) -> u32 {
        self.waiting.count_ones()
    }

    /// Write the begin string (Rx enabled) and the colour legend (colour on) to the driver and
    /// notify it. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        if self.config.enable_rx() {
            self.driver.write(self.config.begin_str())?;
        }
        if self.colour {
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
        self.notify_driver()
    }

    /// Phase 3 toward the driver: publish, and notify (the producer always does).
    fn notify_driver(&mut self) -> Result<(), Error> {
        let n = self.driver.publish();
        if self.driver.should_notify(n) {
            self.driver_ch.notify()?;
        }
        Ok(())
    }

    /// Phases 1 and 2 for client `c`: move its batch. `Ok(false)`: the driver queue lacks room
    /// and a signal is requested; `Ok(true)`: done (moved, nothing to move, or client faulty).
    ///
    /// Each round stages the colour code, as much of the batch as the room allows (cut after a
    /// line end when the batch does not fit whole), straight from the client's ring into the
    /// driver's (one copy per contiguous run), and the reset code; then publishes to the driver
    /// and hands the client's bytes back.
    #[inline(always)]
    fn transfer(&mut self, c: usize) -> Result<bool, Error> {
        let overhead = if self.colour { OVERHEAD } else { 0 };
        let Some((q, ch)) = &mut self.clients[c] else {
            return Ok(true);
        };
        let Ok(mut left) = q.len() else {
            return Ok(self.mark_faulty(c));
        };
        while left > 0 {
            // Room for the whole batch, or for a full driver queue when the batch can never fit.
            // `want > overhead` (colour is on only when `cap > overhead`), so each round moves.
            let want = (left + overhead).min(self.cap);
            let free = self.driver.free_for(want)?;
            if free < want {
                if !self.driver.park_for(want)? {
                    return Ok(false);
                }
                continue;
            }
            // `n <= left`, which came from a `u32` ring.
            let mut n = usize::try_from(left.min(free - overhead)).unwrap_or(0);
            if (n as u64) < left {
                match q.rfind(b'\n', n) {
                    Ok(Some(end)) => n = end + 1,
                    Ok(None) => {}
                    Err(_) => return Ok(self.mark_faulty(c)),
                }
            }
            // The room was checked: the colour codes and the move take all their bytes.
            if self.colour {
                let _ = self.driver.write(&colour_code(c));
            }
            // `len` and `free` just re-read both sides: the cached views hold the `n` bytes.
            if q.move_seen(&mut self.driver, n) < n {
                self.driver.abort();
                return Ok(self.mark_faulty(c));
            }
            if self.colour {
                let _ = self.driver.write(RESET);
            }
            left -= n as u64;
            let published = self.driver.publish();
            if self.driver.should_notify(published) {
                self.driver_ch.notify()?;
            }
            let freed = q.release() > 0;
            if q.should_notify(freed) {
                ch.notify()?;
            }
        }
        Ok(true)
    }

    /// Stop serving client `c`; returns `true` (done with it).
    fn mark_faulty(&mut self, c: usize) -> bool {
        self.faulty |= 1 << c;
        if let Some((_, ch)) = self.clients[c].take() {
            self.client_chs &= !(1 << ch.index());
        }
        true
    }

    /// Client `c` notified: serve it now, or queue it behind the waiting clients (once).
    fn tx_provide(&mut self, c: usize) -> Result<(), Error> {
        if (self.waiting != 0 || !self.transfer(c)?) && self.waiting & (1 << c) == 0 {
            let last = (self.first + self.waiting.count_ones() as usize) % MAX_CLIENTS;
            // `c < n <= MAX_CLIENTS` fits a u8 (MAX_CLIENTS is 64).
            #[allow(clippy::cast_possible_truncation)]
            let id = c as u8;
            self.fifo[last] = id;
            self.waiting |= 1 << c;
        }
        Ok(())
    }

    /// The driver freed space we asked for: serve the waiting clients in order.
    fn tx_return(&mut self) -> Result<(), Error> {
        while self.waiting != 0 {
            let c = usize::from(self.fifo[self.first]);
            if !self.transfer(c)? {
                break;
            }
            self.waiting &= !(1 << c);
            self.first = (self.first + 1) % MAX_CLIENTS;
        }
        Ok(())
    }
}

impl Handler for VirtTx<'_> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        if self.waiting != 0 && channels.contains(self.driver_ch) {
            self.tx_return()?;
        }
        // The notified clients, served in client order; only set bits are visited.
        let mut chs = channels.bits() & self.client_chs;
        let mut notified = 0u64;
        while chs != 0 {
            notified |= 1 << self.by_channel[chs.trailing_zeros() as usize];
            chs &= chs - 1;
        }
        while notified != 0 {
            let c = notified.trailing_zeros() as usize;
            notified &= notified - 1;
            if self.clients[c].is_some() {
                self.tx_provide(c)?;
            }
        }
        Ok(())
    }
}
