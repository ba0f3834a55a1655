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
//! - **Notifications**: the driver is notified (deferred) after a commit, a client after its
//!   response queue got something. No signal flags (I²C producers always notify).
//! - **Misbehaving client**: impossible queue indices mark it faulty ([`I2cVirt::faulty`]); its
//!   addresses are freed and it is ignored from then on. Nothing a client writes panics the virt.

// Client indices are below `MAX_CLIENTS` (64) and ring positions below 256: they fit a `u8`.
#![allow(clippy::cast_possible_truncation)]

use crate::config::{I2cVirtClient, I2cVirtConfig};
use crate::queue::{
    BusReply, BusRequest, CmdFlags, Command, I2C_QUEUE_USABLE, I2cClientQueues, I2cCmd, I2cError,
    I2cResponse, I2cServerQueues, QueueError,
};
use crate::{Error, channel_of};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, MessageInfo, get_mr};

const NOBODY: u8 = u8::MAX;

/// The I²C virtualiser; see the module docs.
pub struct I2cVirt<'a> {
    config: &'a I2cVirtConfig,
    driver: I2cClientQueues<'a>,
    driver_ch: Channel,
    clients: [Option<(I2cServerQueues<'a>, Channel)>; MAX_CLIENTS],
    /// Owner (client index) of each bus address, or `NOBODY`.
    owner: [u8; 128],
    /// The deferred-work FIFO of client indices from `fifo_head`; `waiting` = the set in it.
    fifo: [u8; MAX_CLIENTS],
    fifo_head: usize,
    waiting: u64,
    /// The submitting client of each transaction the driver has not answered, in
    /// `[in_head, in_tail)` (at most 255).
    inflight: [u8; 256],
    in_head: u8,
    in_tail: u8,
    faulty: u64,
}

impl<'a> I2cVirt<'a> {
    /// The virtualiser over the queues in `config`. A client whose queues already hold
    /// inconsistent indices starts faulty; any other bad connection is an error.
    ///
    /// # Safety
    /// The config's regions are mapped read-write in this component for `'a`, each shared only
    /// with its peer, and no other handle of the same roles exists.
    pub unsafe fn new(config: &'a I2cVirtConfig) -> Result<Self, Error> {
        let mut clients = [const { None }; MAX_CLIENTS];
        let mut faulty = 0;
        for (i, c) in config.clients().iter().enumerate() {
            // SAFETY: forwarded from the caller.
            match unsafe { I2cServerQueues::from_connection(&c.conn) } {
                Ok(q) => clients[i] = Some((q, channel_of(&c.conn)?)),
                Err(QueueError::Handle(_)) => faulty |= 1 << i,
                Err(e) => return Err(e.into()),
            }
        }
        // SAFETY: forwarded from the caller.
        let driver = unsafe { I2cClientQueues::from_connection(&config.driver) }?;
        let (owner, fifo, inflight) = ([NOBODY; 128], [0; MAX_CLIENTS], [0; 256]);
        let driver_ch = channel_of(&config.driver)?;
        let (fifo_head, waiting, in_head, in_tail) = (0, 0, 0, 0);
        Ok(Self {
            config,
            driver,
            driver_ch,
            clients,
            owner,
            fifo,
            fifo_head,
            waiting,
            inflight,
            in_head,
            in_tail,
            faulty,
        })
    }

    /// Clients found misbehaving (bit i = client i); they are ignored.
    pub fn faulty(&self) -> u64 {
        self.faulty
    }

    /// The client owning bus address `address`, if any.
    pub fn owner(&self, address: u8) -> Option<usize> {
        self.owner
            .get(usize::from(address))
            .filter(|&&o| o != NOBODY)
            .map(|&o| o.into())
    }

    /// Stop serving client `c` and free its addresses; returns `true` (done with it).
    fn fault(&mut self, c: usize) -> bool {
        self.faulty |= 1 << c;
        self.clients[c] = None;
        self.owner
            .iter_mut()
            .for_each(|o| *o = if usize::from(*o) == c { NOBODY } else { *o });
        true
    }

    /// Queue a response for client `c` (dropped if its queue is full: it does not read them).
    fn answer(&mut self, c: usize, r: I2cResponse) {
        if let Some((q, _)) = &mut self.clients[c] {
            let _ = q.responses.push(r);
        }
    }

    /// Serve client `c`'s queued transactions. `Ok(false)`: the next one waits for room in the
    /// driver queue; `Ok(true)`: the queue is empty (or the client faulty).
    fn request(&mut self, c: usize) -> Result<bool, Error> {
        let config: &'a I2cVirtConfig = self.config;
        loop {
            let Some((q, _)) = &mut self.clients[c] else {
                return Ok(true);
            };
            let (first, avail) = match (q.requests.peek(), q.requests.len()) {
                (Ok(None), _) => return Ok(true),
                (Ok(Some(first)), Ok(avail)) => (first, avail),
                _ => return Ok(self.fault(c)),
            };
            let (n, address, error) = match first.decode() {
                Ok(Command::Header { batch_len, address }) => (u64::from(batch_len), address, None),
                _ => (0, 0, Some(I2cError::MalformedHeader)),
            };
            let error = if error.is_some() || n == 0 || n + 1 >= I2C_QUEUE_USABLE || avail <= n {
                I2cError::MalformedHeader
            } else if self.owner[usize::from(address)] != c as u8 {
                I2cError::UnpermittedAddr
            } else if self.driver.requests.free()? <= n
                || self.in_tail.wrapping_add(1) == self.in_head
            {
                return Ok(false);
            } else {
                self.forward(c, &config.clients()[c], first, n)?
            };
            let Some((q, _)) = &mut self.clients[c] else {
                return Ok(true);
            };
            // Skip what is left of the transaction (nothing if it was forwarded).
            for _ in q.requests.consumed()..(n + 1).min(avail) {
                let _ = q.requests.pop();
            }
            let failing = q.requests.consumed().saturating_sub(1);
            q.requests.release();
            if error != I2cError::Ok {
                let index = if error == I2cError::MalformedTransaction {
                    failing
                } else {
                    0
                };
                self.answer(c, I2cResponse::new(index, address, error));
            }
        }
    }

    /// Validate, translate and stage client `c`'s transaction of `n` bodies (the header is next
    /// in its queue); commit it whole, or abort it and return the error.
    fn forward(
        &mut self,
        c: usize,
        cfg: &I2cVirtClient,
        hdr: I2cCmd,
        n: u64,
    ) -> Result<I2cError, Error> {
        let (Some((q, _)), d) = (&mut self.clients[c], &mut self.driver.requests) else {
            return Ok(I2cError::Other);
        };
        let _ = q.requests.pop();
        d.stage(hdr).map_err(|_| Error::DriverQueue)?;
        let mut prev = None;
        for _ in 0..n {
            let cmd = q
                .requests
                .pop()
                .ok()
                .flatten()
                .and_then(|b| body(cfg, b, &mut prev));
            if cmd.is_none_or(|cmd| d.stage(cmd).is_err()) {
                d.abort();
                return Ok(I2cError::MalformedTransaction);
            }
        }
        d.commit();
        self.inflight[usize::from(self.in_tail)] = c as u8;
        self.in_tail = self.in_tail.wrapping_add(1);
        self.driver_ch.deferred_notify()?;
        Ok(I2cError::Ok)
    }
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
        // The driver answered: route the responses, then retry the deferred FIFO in order.
        while let Some(r) = self.driver.responses.pop()? {
            if self.in_head != self.in_tail {
                self.answer(self.inflight[usize::from(self.in_head)].into(), r);
                self.in_head = self.in_head.wrapping_add(1);
            }
        }
        self.driver.responses.release();
        while self.waiting != 0 && self.request(self.fifo[self.fifo_head].into())? {
            self.waiting &= !(1 << self.fifo[self.fifo_head]);
            self.fifo_head = (self.fifo_head + 1) % MAX_CLIENTS;
        }
        let n = self.config.clients().len();
        for c in 0..n {
            let hit = self.clients[c]
                .as_ref()
                .is_some_and(|q| channels.contains(q.1));
            if hit && self.waiting & (1 << c) == 0 && (self.waiting != 0 || !self.request(c)?) {
                let at = (self.fifo_head + self.waiting.count_ones() as usize) % MAX_CLIENTS;
                self.fifo[at] = c as u8;
                self.waiting |= 1 << c;
            }
        }
        for (q, ch) in self.clients[..n].iter_mut().flatten() {
            if q.responses.publish() > 0 {
                ch.notify()?;
            }
        }
        Ok(())
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Error> {
        let n = self.config.clients().len();
        let c = (0..n).find(|&c| self.clients[c].as_ref().is_some_and(|q| q.1 == ch));
        let a = usize::try_from(get_mr(0))
            .ok()
            .filter(|&a| a < self.owner.len());
        let (Some(c), Some(a)) = (c, a) else {
            return Ok(MessageInfo::new(BusReply::Failure as u64, 0));
        };
        let (owned, free) = (usize::from(self.owner[a]) == c, self.owner[a] == NOBODY);
        let ok = match BusRequest::try_from(msg.label()) {
            Ok(BusRequest::Claim) if owned || free => Some(c as u8),
            Ok(BusRequest::Release) if owned => Some(NOBODY),
            _ => None,
        };
        self.owner[a] = ok.unwrap_or(self.owner[a]);
        let reply = if ok.is_some() {
            BusReply::Success
        } else {
            BusReply::Failure
        };
        Ok(MessageInfo::new(reply as u64, 0))
    }
}
