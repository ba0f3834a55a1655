// SPDX-License-Identifier: BSD-2-Clause
//! The I²C virtualiser (`i2c_virt`): many clients' transactions onto one driver, each client
//! confined to the bus addresses it claimed and to its own data region.
//!
//! ## Protocol
//!
//! - **Bus claiming** (PPC from a client on its channel): label [`BusRequest::Claim`] or
//!   [`BusRequest::Release`], MR0 = 7-bit address. A claim succeeds when nobody else owns the
//!   address (claiming one's own again succeeds); a release when the caller owns it. Reply label
//!   [`BusReply::Success`] or [`BusReply::Failure`], no registers.
//! - **Client notification** (`request`): the client's queue is read one transaction at a time and
//!   every rule is checked before anything reaches the driver. The header comes first; its
//!   `batch_len` is 1..=251 (a transaction must fit the driver queue) and exactly that many bodies
//!   are queued behind it; the client owns the address. Each body decodes (no unknown flag, no
//!   `HEAD`), its data range `[ptr, ptr + max(len, 1))` lies inside the client's data region,
//!   `RSTART` only follows a body of the same direction (`READ` or `WRRD` is a read) and never
//!   carries `WRRD`. Pointers are rewritten into the driver's mapping while the transaction is
//!   staged in the driver queue, and the whole transaction is committed at once. On the first
//!   broken rule the staged part is aborted, the rest of the transaction is skipped, and the client
//!   gets a response at once with the error and `err_cmd` = the failing command's index (header 0,
//!   bodies 1..=`batch_len`). A body where a header is expected is answered the same way.
//! - **Deferred work**: when the driver queue lacks room for a whole transaction, the client joins
//!   a FIFO (each client at most once) and its transaction stays in its own queue; later clients
//!   queue behind it, so transactions reach the driver in the order their clients asked. The FIFO
//!   is retried whenever the driver answers (it frees room before it answers).
//! - **Driver notification** (`response`): each response goes to the client that submitted the
//!   transaction (the address's owner at submission; the driver answers in order), even if it has
//!   released the address since; a new owner never sees another client's answer.
//! - **Notifications**: the driver is notified (deferred) once per event in which something was
//!   committed, a client after its response queue got something. No signal flags (I²C producers
//!   always notify).
//! - **Misbehaving client**: impossible queue indices mark it faulty ([`I2cVirt::faulty`]); its
//!   addresses are freed and it is ignored from then on. Nothing a client writes panics the virt.

// Client indices are below `MAX_CLIENTS` (64): they fit a `u8`.
#![allow(clippy::cast_possible_truncation)]

use crate::config::{I2cVirtClient, I2cVirtConfig};
use crate::queue::{
    BusReply, BusRequest, CmdFlags, Command, I2C_QUEUE_USABLE, I2cClientQueues, I2cCmd, I2cError,
    I2cResponse, I2cServerQueues, QueueError, RequestProducer,
};
use crate::{Error, channel_of};
use lions_os::{Channel, ChannelSet, Handler, Mapped, MessageInfo, get_mr};
use lions_queue::clients::{Clients, bits};
use lions_queue::fifo::{Route, Waiting};

const NOBODY: u8 = u8::MAX;

/// An error and the index of the failing command (header 0, bodies from 1).
type Answer = (I2cError, u64);

/// The I²C virtualiser; see the module docs.
pub struct I2cVirt<'a> {
    config: &'a I2cVirtConfig,
    driver: I2cClientQueues<'a>,
    driver_ch: Channel,
    clients: Clients<(I2cServerQueues<'a>, Channel)>,
    /// Owner (client index) of each bus address, or `NOBODY`.
    owner: [u8; 128],
    /// The deferred-work FIFO: clients whose transaction waits for room at the driver.
    deferred: Waiting,
    /// The submitting client of each transaction the driver has not answered, oldest first.
    inflight: Route,
}

impl<'a> I2cVirt<'a> {
    /// The virtualiser over the queues in `config`. A client whose queues already hold
    /// inconsistent indices starts faulty; any other bad connection is an error.
    ///
    /// The token says the config's regions are mapped read-write here for `'a`, and that this
    /// is the one virt built from them.
    pub fn new(config: Mapped<'a, I2cVirtConfig>) -> Result<Self, Error> {
        let config = config.config();
        Ok(Self {
            config,
            // SAFETY: the token: mapped read-write here for `'a`, each queue shared only with its
            // peer, and this virt makes the only handles on them (here and below).
            driver: unsafe { I2cClientQueues::from_connection(&config.driver) }?,
            driver_ch: channel_of(&config.driver)?,
            clients: Clients::new(config.clients(), |_, c| {
                // SAFETY: as above.
                match unsafe { I2cServerQueues::from_connection(&c.conn) } {
                    Ok(q) => Ok(Some((q, channel_of(&c.conn)?))),
                    Err(QueueError::Handle(_)) => Ok(None),
                    Err(e) => Err(Error::from(e)),
                }
            })?,
            owner: [NOBODY; 128],
            deferred: Waiting::new(),
            inflight: Route::new(),
        })
    }

    /// Clients found misbehaving (bit i = client i); they are ignored.
    pub fn faulty(&self) -> u64 {
        self.clients.faulty()
    }

    /// The client owning bus address `address`, if any.
    pub fn owner(&self, address: u8) -> Option<usize> {
        let o = *self.owner.get(usize::from(address))?;
        (o != NOBODY).then_some(o.into())
    }

    /// Serve client `c`'s queued transactions. `Ok(false)`: the next one waits for room in the
    /// driver queue; `Ok(true)`: the queue is empty, or the client faulty (then it is cut off
    /// and its addresses freed).
    fn request(&mut self, c: usize) -> Result<bool, Error> {
        let cfg = &self.config.clients()[c];
        while let Some((q, _)) = self.clients.get(c) {
            let (first, avail) = match (q.requests.peek(), q.requests.len()) {
                (Ok(None), _) => return Ok(true),
                (Ok(Some(first)), Ok(avail)) => (first, avail),
                _ => {
                    self.clients.fault(c);
                    self.owner = self.owner.map(|o| if o == c as u8 { NOBODY } else { o });
                    return Ok(true);
                }
            };
            let (n, address) = match first.decode() {
                Ok(Command::Header { batch_len, address }) => (u64::from(batch_len), address),
                _ => (0, 0),
            };
            let (error, index) = if n == 0 || n + 1 >= I2C_QUEUE_USABLE || avail <= n {
                (I2cError::MalformedHeader, 0)
            } else if self.owner[usize::from(address)] != c as u8 {
                (I2cError::UnpermittedAddr, 0)
            } else if self.driver.requests.free()? <= n || self.inflight.is_full() {
                return Ok(false);
            } else {
                forward(q, &mut self.driver.requests, cfg, n)
            };
            // Skip what is left of the transaction (nothing once it was forwarded).
            for _ in q.requests.consumed()..(n + 1).min(avail) {
                let _ = q.requests.pop();
            }
            q.requests.release();
            if error == I2cError::Ok {
                self.inflight.push(c);
            } else {
                let _ = q.responses.push(I2cResponse::new(index, address, error));
            }
        }
        Ok(true)
    }
}

/// Validate, translate and stage the header and the `n` bodies next in `q`, and commit them
/// whole; or abort them and return the error with the failing command's index.
fn forward(q: &mut I2cServerQueues, d: &mut RequestProducer, c: &I2cVirtClient, n: u64) -> Answer {
    let mut prev = None;
    for i in 0..=n {
        let cmd = q.requests.pop().ok().flatten();
        let cmd = cmd.and_then(|b| (i == 0).then_some(b).or_else(|| body(c, b, &mut prev)));
        if cmd.is_none_or(|cmd| d.stage(cmd).is_err()) {
            d.abort();
            return (I2cError::MalformedTransaction, i);
        }
    }
    d.commit();
    (I2cError::Ok, 0)
}

/// Check one body command against the rules in the module docs and translate its pointer;
/// `prev` is the direction of the previous body (`true`: read).
fn body(cfg: &I2cVirtClient, cmd: I2cCmd, prev: &mut Option<bool>) -> Option<I2cCmd> {
    let Ok(Command::Body { ptr, len, flags }) = cmd.decode() else {
        return None;
    };
    let read = flags.intersects(CmdFlags::READ | CmdFlags::WRRD);
    if flags.contains(CmdFlags::RSTART) && (*prev != Some(read) || flags.contains(CmdFlags::WRRD)) {
        return None;
    }
    *prev = Some(read);
    I2cCmd::body(cfg.translate(ptr, u64::from(len.max(1)))?, len, flags).ok()
}

impl Handler for I2cVirt<'_> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        // The driver answered: route each response to its submitter, then retry the deferred
        // FIFO in order.
        let committed = self.inflight.pushed();
        while let Some(r) = self.driver.responses.pop()? {
            if let Some((q, _)) = self.inflight.pop().and_then(|c| self.clients.get(c)) {
                let _ = q.responses.push(r);
            }
        }
        self.driver.responses.release();
        while let Some(c) = self.deferred.front()
            && self.request(c)?
        {
            self.deferred.pop();
        }
        for c in bits(self.clients.live()) {
            let hit = self.clients.get(c).is_some_and(|q| channels.contains(q.1));
            // A client already waiting is not served out of turn (and `push` keeps it once).
            if hit && (!self.deferred.is_empty() || !self.request(c)?) {
                self.deferred.push(c);
            }
        }
        // One notification for everything committed in this event.
        if self.inflight.pushed() != committed {
            self.driver_ch.deferred_notify()?;
        }
        self.clients.each(|_, (q, ch)| {
            if q.responses.publish() > 0 {
                ch.notify()?;
            }
            Ok(true)
        })
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Error> {
        let c = bits(self.clients.live()).find(|&c| self.clients.get(c).is_some_and(|q| q.1 == ch));
        let c = c.map_or(NOBODY, |c| c as u8);
        let a = usize::try_from(get_mr(0))
            .ok()
            .filter(|&a| a < 128 && c != NOBODY);
        let (a, new) = match (a, BusRequest::try_from(msg.label())) {
            (Some(a), Ok(BusRequest::Claim)) if [c, NOBODY].contains(&self.owner[a]) => (a, c),
            (Some(a), Ok(BusRequest::Release)) if self.owner[a] == c => (a, NOBODY),
            _ => return Ok(MessageInfo::new(BusReply::Failure as u64, 0)),
        };
        self.owner[a] = new;
        Ok(MessageInfo::new(BusReply::Success as u64, 0))
    }
}
