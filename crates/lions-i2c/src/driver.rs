// SPDX-License-Identifier: BSD-2-Clause
//! The I²C device-class trait ([`I2cDevice`]) and the generic driver loop ([`I2cDriver`]): the
//! loop owns the queues to the virtualiser, the transaction state machine and the error
//! reporting, so a host-controller driver writes only hardware code.
//!
//! ## Protocol
//!
//! - **Requests** (virt notification, when idle): the next transaction is taken whole from the
//!   request queue (header, then `batch_len` bodies whose pointers are the driver's mapping of a
//!   client data region, checked by the virt) and run body by body:
//!   - a body without `RSTART` begins a segment: START (the transaction's first segment, or after
//!     a STOP) or a repeated START, then the address with the body's direction;
//!   - `WRRD`: address with write, `data[0]` written (the register), repeated START, address with
//!     read, then `len` bytes read into `data[0..len]`;
//!   - a body with `RSTART` continues the previous one in the same direction (no START, no
//!     address): a transfer split into commands of at most 255 bytes is one transfer on the wire;
//!   - the data moves in as many device calls as the device needs; the last byte of a read is
//!     NACKed unless the next body continues it;
//!   - `STOP` after the body, and always after the last one.
//! - **Device calls** return [`Progress::Done`] (finished now, with how many bytes moved) or
//!   [`Progress::Pending`]; a pending call is finished by [`I2cDevice::irq`] on the device's IRQ.
//! - **Errors**: the first [`BusError`] halts the device ([`I2cDevice::halt`]: STOP, bus
//!   released) and answers the transaction at once with the error and `err_cmd` = the failing
//!   body's index (1..=`batch_len`; the header is 0). A transaction that is not whole (the virt
//!   would never send one) is answered `MalformedTransaction` with `err_cmd` 0.
//! - **Responses**: one per transaction, `err_cmd` 0 and `Ok` on success; published, and the virt
//!   notified, at the end of every event that produced one.

use crate::queue::{CmdFlags, Command, I2cError, I2cResponse, I2cServerQueues};
use crate::{Error, I2cDriverConfig, channel_of};
use lions_os::{Channel, ChannelSet, Handler, Mapped};

/// Longest transaction: the driver queue holds 253 commands, one of them the header.
pub const MAX_BODIES: usize = 252;

/// How far a device call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Finished now; for `write` and `read`, this many bytes moved (at least 1 when asked for
    /// any), for the others 0.
    Done(usize),
    /// Started; the device's next IRQ finishes it ([`I2cDevice::irq`]).
    Pending,
}

/// A bus error a device reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// The addressed device (or a written byte) was not acknowledged.
    Nack,
    /// The bus or the controller did not finish in time.
    Timeout,
    /// Arbitration lost, a controller fault, a bad call sequence.
    Other,
}

impl From<BusError> for I2cError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Nack => Self::Nack,
            BusError::Timeout => Self::Timeout,
            BusError::Other => Self::Other,
        }
    }
}

/// What a device call returns.
pub type Step = Result<Progress, BusError>;

/// One I²C host controller, as the generic driver loop drives it. Each call either finishes at
/// once or leaves the operation pending until the device's IRQ ([`irq`](Self::irq)).
pub trait I2cDevice {
    /// Send a START condition (the bus is idle).
    fn start(&mut self) -> Step;
    /// Send a repeated START (the bus is ours, no STOP since).
    fn repeated_start(&mut self) -> Step;
    /// Send the 7-bit `address` with the direction bit; a NACK is [`BusError::Nack`].
    fn address(&mut self, address: u8, read: bool) -> Step;
    /// Write bytes from `data` (non-empty); `Done(n)`: the first `n` were sent and ACKed.
    fn write(&mut self, data: &[u8]) -> Step;
    /// Read into `buf` (non-empty); `last`: NACK the final byte of `buf`. `Done(n)`: the first
    /// `n` bytes of `buf` were read.
    fn read(&mut self, buf: &mut [u8], last: bool) -> Step;
    /// Send a STOP condition.
    fn stop(&mut self) -> Step;
    /// The IRQ arrived: finish the pending call. For a pending `read`, `buf` is the same buffer.
    fn irq(&mut self, buf: &mut [u8]) -> Step;
    /// Abandon the transaction after an error: STOP if possible, leave the bus idle.
    fn halt(&mut self);
}

/// The client data the driver reaches through the (virt-translated) body pointers.
pub trait DataAccess {
    /// `len` bytes at driver address `ptr`, or `None` if they are not all mapped here.
    fn bytes(&mut self, ptr: u64, len: usize) -> Option<&mut [u8]>;
}

/// The PD's own mappings, trusted as the virt checked them: every pointer names memory mapped
/// read-write in this PD.
pub struct MappedData(());

impl MappedData {
    /// Access through raw body pointers.
    ///
    /// # Safety
    /// Every body pointer the driver will see, with its length, lies in client data regions
    /// mapped read-write here for the PD's life (the virt's checks guarantee it), and nothing
    /// else in this PD holds references into them.
    pub unsafe fn new() -> Self {
        Self(())
    }
}

impl DataAccess for MappedData {
    fn bytes(&mut self, ptr: u64, len: usize) -> Option<&mut [u8]> {
        let p = core::ptr::with_exposed_provenance_mut::<u8>(usize::try_from(ptr).ok()?);
        // SAFETY: guaranteed by the contract of `new`; `p` is non-null (checked) and the slice
        // lives only for one device call.
        (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts_mut(p, len) })
    }
}

#[derive(Clone, Copy, Default)]
struct Body {
    ptr: u64,
    len: usize,
    flags: CmdFlags,
}

/// Where the state machine is within the current body.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Begin,
    Address,
    Register,
    Restart,
    ReadAddress,
    Data,
    End,
}

/// The generic I²C driver; see the module docs.
pub struct I2cDriver<'a, D, M> {
    dev: D,
    mem: M,
    q: I2cServerQueues<'a>,
    virt: Channel,
    irq: Channel,
    /// The current transaction: address, bodies, body index, phase, offset, bus held.
    address: u8,
    bodies: [Body; MAX_BODIES],
    n: usize,
    i: usize,
    phase: Phase,
    off: usize,
    busy: bool,
    held: bool,
    pending: bool,
}

impl<'a, D: I2cDevice, M: DataAccess> I2cDriver<'a, D, M> {
    /// The driver of `dev` on the queues in `config`, with its IRQ on `irq`.
    ///
    /// The token says the config's queue regions are mapped read-write here for `'a`, and that
    /// this is the one driver built from them.
    pub fn new(
        dev: D,
        mem: M,
        config: Mapped<'a, I2cDriverConfig>,
        irq: Channel,
    ) -> Result<Self, Error> {
        let config = config.config();
        Ok(Self {
            dev,
            mem,
            // SAFETY: the token: mapped read-write here for `'a`, shared only with the virt, and
            // this driver makes the only serving handle.
            q: unsafe { I2cServerQueues::from_connection(&config.virt) }?,
            virt: channel_of(&config.virt)?,
            irq,
            address: 0,
            bodies: [Body::default(); MAX_BODIES],
            n: 0,
            i: 0,
            phase: Phase::Begin,
            off: 0,
            busy: false,
            held: false,
            pending: false,
        })
    }

    /// The device (for inspection in tests).
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Take the next whole transaction from the queue; `false` if there is none.
    fn load(&mut self) -> Result<bool, Error> {
        let Some(h) = self.q.requests.pop()? else {
            return Ok(false);
        };
        let (n, address) = match h.decode() {
            Ok(Command::Header { batch_len, address }) => (usize::from(batch_len), address),
            _ => (0, 0),
        };
        let mut whole = (1..=MAX_BODIES).contains(&n);
        for b in self.bodies.iter_mut().take(n) {
            match self.q.requests.pop()?.map(|c| c.decode()) {
                Some(Ok(Command::Body { ptr, len, flags })) => {
                    *b = Body {
                        ptr,
                        len: len.into(),
                        flags,
                    };
                }
                _ => whole = false,
            }
        }
        self.q.requests.release();
        if !whole {
            let r = I2cResponse::new(0, address, I2cError::MalformedTransaction);
            let _ = self.q.responses.push(r);
            return Ok(true);
        }
        (self.address, self.n, self.i, self.phase, self.off) = (address, n, 0, Phase::Begin, 0);
        self.busy = true;
        Ok(true)
    }

    /// Issue the device call for the current position.
    fn issue(&mut self) -> Step {
        let b = self.bodies[self.i];
        let read = b.flags.intersects(CmdFlags::READ | CmdFlags::WRRD);
        match self.phase {
            Phase::Begin if self.held => self.dev.repeated_start(),
            Phase::Begin => self.dev.start(),
            Phase::Address => {
                let wrrd = b.flags.contains(CmdFlags::WRRD);
                self.dev.address(self.address, read && !wrrd)
            }
            Phase::Register => match self.mem.bytes(b.ptr, 1) {
                Some(reg) => self.dev.write(reg),
                None => Err(BusError::Other),
            },
            Phase::Restart => self.dev.repeated_start(),
            Phase::ReadAddress => self.dev.address(self.address, true),
            Phase::Data if b.len == 0 => Ok(Progress::Done(0)),
            Phase::Data => {
                let next = self.bodies[..self.n].get(self.i + 1);
                let last = !next.is_some_and(|n| n.flags.contains(CmdFlags::RSTART));
                let rest = self
                    .mem
                    .bytes(b.ptr, b.len)
                    .and_then(|d| d.get_mut(self.off..));
                let step = match rest {
                    Some(rest) if read => self.dev.read(rest, last),
                    Some(rest) => self.dev.write(rest),
                    None => Err(BusError::Other),
                };
                // A device that moves nothing would never finish the body.
                step.and_then(|p| {
                    if p == Progress::Done(0) {
                        Err(BusError::Other)
                    } else {
                        Ok(p)
                    }
                })
            }
            Phase::End => self.dev.stop(),
        }
    }

    /// Move past a finished call that moved `moved` bytes; skip the steps the body does not
    /// have. Returns `true` when the transaction is complete.
    fn advance(&mut self, moved: usize) -> bool {
        let b = self.bodies[self.i];
        let wrrd = b.flags.contains(CmdFlags::WRRD);
        let last = self.i + 1 == self.n;
        let stop = b.flags.contains(CmdFlags::STOP) || last;
        self.phase = match self.phase {
            Phase::Begin => {
                self.held = true;
                Phase::Address
            }
            Phase::Address if wrrd => Phase::Register,
            Phase::Register => Phase::Restart,
            Phase::Restart => Phase::ReadAddress,
            Phase::Address | Phase::ReadAddress => Phase::Data,
            Phase::Data => {
                self.off += moved.max(usize::from(b.len == 0));
                if self.off < b.len {
                    Phase::Data
                } else if stop {
                    Phase::End
                } else {
                    Phase::Begin
                }
            }
            Phase::End => {
                self.held = false;
                Phase::Begin
            }
        };
        if self.phase == Phase::Begin {
            if last {
                return true;
            }
            self.i += 1;
            self.off = 0;
            if self.bodies[self.i].flags.contains(CmdFlags::RSTART) {
                self.phase = Phase::Data;
            }
        }
        false
    }

    /// Act on one call's outcome, then run until a call is pending or the queue is empty.
    fn run(&mut self, mut step: Option<Step>) -> Result<(), Error> {
        loop {
            if !self.busy && !self.load()? {
                return Ok(());
            }
            if !self.busy {
                continue;
            }
            let s = match step.take() {
                Some(s) => s,
                None => self.issue(),
            };
            let error = match s {
                Ok(Progress::Pending) => {
                    self.pending = true;
                    return Ok(());
                }
                Ok(Progress::Done(moved)) if !self.advance(moved) => continue,
                Ok(Progress::Done(_)) => I2cError::Ok,
                Err(e) => {
                    self.dev.halt();
                    self.held = false;
                    e.into()
                }
            };
            let index = if error == I2cError::Ok {
                0
            } else {
                self.i as u64 + 1
            };
            let _ = self
                .q
                .responses
                .push(I2cResponse::new(index, self.address, error));
            self.busy = false;
        }
    }
}

impl<D: I2cDevice, M: DataAccess> Handler for I2cDriver<'_, D, M> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        if channels.contains(self.irq) && self.pending {
            self.pending = false;
            let b = self.bodies[self.i];
            let reading =
                self.phase == Phase::Data && b.flags.intersects(CmdFlags::READ | CmdFlags::WRRD);
            let (ptr, len) = if reading { (b.ptr, b.len) } else { (0, 0) };
            let step = match self.mem.bytes(ptr, len) {
                Some(buf) => self.dev.irq(buf.get_mut(self.off..).unwrap_or_default()),
                None => self.dev.irq(&mut []),
            };
            self.run(Some(step))?;
        } else if !self.pending {
            self.run(None)?;
        }
        if channels.contains(self.irq) {
            self.irq.irq_ack()?;
        }
        if self.q.responses.publish() > 0 {
            self.virt.notify()?;
        }
        Ok(())
    }
}
