// SPDX-License-Identifier: BSD-2-Clause
//! The I²C client library: [`I2cClient`] implements embedded-hal 1.0's blocking
//! [`embedded_hal::i2c::I2c`] and embedded-hal-async's [`embedded_hal_async::i2c::I2c`] over the
//! queues to the virtualiser, plus bus-address claim and release.
//!
//! ## Protocol
//!
//! - **Claim / release**: PPC to the virt on the client's channel, label
//!   [`BusRequest::Claim`]/[`BusRequest::Release`], MR0 = address; a `Failure` reply is
//!   [`ClientError::Claim`]. A transaction to an address the client does not own is answered
//!   `UnpermittedAddr`.
//! - **Transactions**: one embedded-hal `transaction(address, operations)` is one sDDF
//!   transaction. Write data is copied into the client's data region, reads are given room there;
//!   each operation becomes bodies of at most 255 bytes. An operation of the same kind as the one
//!   before it, and every piece after the first of a split one, carries `RSTART` (continue: no
//!   START, no address, as embedded-hal merges adjacent operations of one kind); an operation of
//!   the other kind begins with a repeated START and the address; the last body carries `STOP`.
//!   The whole transaction is staged, committed at once and the virt notified. One transaction is
//!   outstanding at a time; the data region (and at most 251 bodies) bound its size
//!   ([`ClientError::TooLarge`]).
//! - **Completion**: the response for the address ends the transaction; read data is copied back
//!   out of the region. The blocking form waits by calling its `wait` function (default
//!   [`lions_os::relax`]: the virt and driver run at higher priorities or in other processes);
//!   the async form returns `Pending` until the response is there.
//! - **Errors** map onto embedded-hal's [`ErrorKind`]: `Nack` → `NoAcknowledge(Unknown)`, `Timeout`
//!   and everything else → `Other`; the failing command's index is kept in
//!   [`ClientError::Transaction`].

use crate::config::I2cClientConfig;
use crate::queue::{BusRequest, CmdFlags, I2cClientQueues, I2cCmd, I2cError, TransactionError};
use crate::{Error, channel_of};
use core::ptr::NonNull;
use core::task::Poll;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource, Operation};
use lions_os::{Channel, Mapped, MessageInfo, OsError, set_mr};

/// Most bytes in one command.
pub const MAX_CMD_BYTES: usize = 255;
/// Most bodies in one transaction (the virt's limit: the header and the bodies fit its queue).
pub const MAX_BODIES: usize = 251;

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The bus or the virt refused the transaction: the error and the failing command's index.
    Transaction {
        /// What went wrong.
        error: I2cError,
        /// Index of the failing command (header 0, bodies from 1).
        command: u64,
    },
    /// The transaction does not fit the data region or the body limit.
    TooLarge,
    /// The virt refused a claim or release.
    Claim,
    /// A kernel operation or the queues failed.
    System(Error),
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        Self::System(e)
    }
}

impl From<OsError> for ClientError {
    fn from(e: OsError) -> Self {
        Self::System(e.into())
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Transaction { error, command } => {
                write!(f, "I2C transaction failed at command {command}: {error:?}")
            }
            Self::TooLarge => write!(f, "I2C transaction too large for the data region"),
            Self::Claim => write!(f, "I2C bus address claim refused"),
            Self::System(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ClientError {}

impl embedded_hal::i2c::Error for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Transaction {
                error: I2cError::Nack,
                ..
            } => ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown),
            _ => ErrorKind::Other,
        }
    }
}

/// A client of the I²C virtualiser; see the module docs.
pub struct I2cClient<'a, W: FnMut() = fn()> {
    q: I2cClientQueues<'a>,
    data: NonNull<u8>,
    data_len: usize,
    /// The data region's address as the virt sees it in body pointers (this PD's vaddr).
    vaddr: u64,
    virt: Channel,
    wait: W,
}

impl<'a> I2cClient<'a> {
    /// The client of `config` (its queues, data region and channel to the virt).
    ///
    /// The token says the config's regions are mapped read-write here for `'a`, and that this
    /// is the one client built from them.
    pub fn new(config: Mapped<'a, I2cClientConfig>) -> Result<Self, Error> {
        let config = config.config();
        // SAFETY: the token: mapped read-write here for `'a`, shared only with the virt (and the
        // data region with the driver), and this client makes the only client handle.
        let q = unsafe { I2cClientQueues::from_connection(&config.virt) }?;
        let (data, data_len) = config
            .data
            .as_raw_parts()
            .ok_or(crate::QueueError::Unmapped)?;
        Ok(Self {
            q,
            data,
            data_len,
            vaddr: config.data.vaddr,
            virt: channel_of(&config.virt)?,
            wait: lions_os::relax,
        })
    }
}

impl<'a, W: FnMut()> I2cClient<'a, W> {
    /// The same client, waiting for responses by calling `wait`.
    pub fn with_wait<V: FnMut()>(self, wait: V) -> I2cClient<'a, V> {
        I2cClient {
            q: self.q,
            data: self.data,
            data_len: self.data_len,
            vaddr: self.vaddr,
            virt: self.virt,
            wait,
        }
    }

    /// The channel to the virt (its responses are notified there).
    pub fn channel(&self) -> Channel {
        self.virt
    }

    /// Claim bus address `address` for this client.
    pub fn claim(&self, address: u8) -> Result<(), ClientError> {
        self.bus(BusRequest::Claim, address)
    }

    /// Release bus address `address`.
    pub fn release(&self, address: u8) -> Result<(), ClientError> {
        self.bus(BusRequest::Release, address)
    }

    fn bus(&self, req: BusRequest, address: u8) -> Result<(), ClientError> {
        set_mr(0, u64::from(address));
        let r = self.virt.pp_call(MessageInfo::new(req as u64, 1))?;
        if r.label() == 0 {
            Ok(())
        } else {
            Err(ClientError::Claim)
        }
    }

    /// Stage `ops` for `address` as one transaction, commit it and notify the virt.
    pub fn submit(&mut self, address: u8, ops: &[Operation<'_>]) -> Result<(), ClientError> {
        let mut cmds = [I2cCmd::default(); MAX_BODIES];
        let (mut n, mut off, mut prev) = (0, 0usize, None);
        for op in ops {
            let (read, len) = match op {
                Operation::Read(b) => (true, b.len()),
                Operation::Write(b) => (false, b.len()),
            };
            if off + len > self.data_len {
                return Err(ClientError::TooLarge);
            }
            if let Operation::Write(b) = op {
                // SAFETY: `[off, off + len)` lies in the data region (checked above), which only
                // we write while no transaction is outstanding.
                unsafe {
                    core::ptr::copy_nonoverlapping(b.as_ptr(), self.data.add(off).as_ptr(), len)
                };
            }
            if len == 0 && prev == Some(read) {
                continue; // adds nothing to the transfer it continues
            }
            let mut k = 0;
            loop {
                let chunk = (len - k).min(MAX_CMD_BYTES);
                let mut flags = if read {
                    CmdFlags::READ
                } else {
                    CmdFlags::empty()
                };
                if k > 0 || prev == Some(read) {
                    flags |= CmdFlags::RSTART;
                }
                let at = if len == 0 { 0 } else { off + k };
                let slot = cmds.get_mut(n).ok_or(ClientError::TooLarge)?;
                // `chunk <= 255`.
                #[allow(clippy::cast_possible_truncation)]
                let cmd = I2cCmd::body(self.vaddr + at as u64, chunk as u8, flags);
                *slot = cmd.map_err(|_| ClientError::TooLarge)?;
                n += 1;
                k += chunk;
                if k >= len {
                    break;
                }
            }
            off += len;
            prev = Some(read);
        }
        if let Some(last) = cmds[..n].last_mut() {
            last.flag_mask |= CmdFlags::STOP.bits();
        }
        match self.q.requests.stage_transaction(address, &cmds[..n]) {
            Ok(()) => {}
            Err(TransactionError::Peer(p)) => return Err(Error::Peer(p).into()),
            Err(_) => return Err(ClientError::TooLarge),
        }
        self.q.requests.commit();
        self.virt.notify()?;
        Ok(())
    }

    /// The outcome of the transaction submitted for `address` if its response arrived (read data
    /// copied into `ops`); `None` while it is outstanding. Responses for other addresses are
    /// dropped (stale).
    pub fn poll(
        &mut self,
        address: u8,
        ops: &mut [Operation<'_>],
    ) -> Option<Result<(), ClientError>> {
        let r = loop {
            match self.q.responses.pop() {
                Ok(Some(r)) if r.bus_address == address => break r,
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(p) => return Some(Err(Error::Peer(p).into())),
            }
        };
        self.q.responses.release();
        match r.error() {
            Ok(I2cError::Ok) => {}
            e => {
                let error = e.unwrap_or(I2cError::Other);
                let command = r.err_cmd;
                return Some(Err(ClientError::Transaction { error, command }));
            }
        }
        let mut off = 0;
        for op in ops {
            match op {
                Operation::Read(b) => {
                    // SAFETY: the same in-region range `submit` reserved; the driver has finished.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            self.data.add(off).as_ptr(),
                            b.as_mut_ptr(),
                            b.len(),
                        );
                    }
                    off += b.len();
                }
                Operation::Write(b) => off += b.len(),
            }
        }
        Some(Ok(()))
    }
}

impl<W: FnMut()> embedded_hal::i2c::ErrorType for I2cClient<'_, W> {
    type Error = ClientError;
}

impl<W: FnMut()> embedded_hal::i2c::I2c for I2cClient<'_, W> {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), ClientError> {
        self.submit(address, ops)?;
        loop {
            if let Some(r) = self.poll(address, ops) {
                return r;
            }
            (self.wait)();
        }
    }
}

impl<W: FnMut()> embedded_hal_async::i2c::I2c for I2cClient<'_, W> {
    async fn transaction(
        &mut self,
        address: u8,
        ops: &mut [Operation<'_>],
    ) -> Result<(), ClientError> {
        self.submit(address, ops)?;
        core::future::poll_fn(|cx| match self.poll(address, ops) {
            Some(r) => Poll::Ready(r),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }
}
