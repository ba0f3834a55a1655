// SPDX-License-Identifier: BSD-2-Clause
//! Errors of kernel operations, naming the PD, the operation and the channel.

use crate::channel::Channel;

/// A kernel operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `notify`.
    Notify,
    /// `irq_ack`.
    IrqAck,
    /// `pp_call`.
    PpCall,
    /// `deferred_notify` / `deferred_irq_ack`.
    Defer,
    /// Message-register access.
    Mr,
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Notify => "notify",
            Self::IrqAck => "irq_ack",
            Self::PpCall => "pp_call",
            Self::Defer => "deferred action",
            Self::Mr => "message register",
        })
    }
}

/// Why an operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsErrorKind {
    /// The system description gives this PD no such right on the channel.
    NotPermitted,
    /// No backend is running this code as a PD.
    NoBackend,
    /// The peer is gone (faulted or stopped).
    PeerGone,
    /// The backend failed (host system call error and the like).
    Failed,
}

/// A refused kernel operation: which PD, which operation, which channel, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsError {
    pd: PdName,
    /// The operation.
    pub op: Op,
    /// The channel, if the operation has one.
    pub channel: Option<Channel>,
    /// Why.
    pub kind: OsErrorKind,
}

/// A PD name kept inline (Microkit names are at most 64 bytes).
#[derive(Clone, PartialEq, Eq)]
struct PdName {
    bytes: [u8; 64],
    len: u8,
}

impl core::fmt::Debug for PdName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PdName {
    fn new(name: &str) -> Self {
        let mut n = name.len().min(64);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        let mut bytes = [0; 64];
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        // n <= 64 fits u8.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            bytes,
            len: n as u8,
        }
    }

    fn as_str(&self) -> &str {
        // Built from a prefix of a &str cut at a char boundary.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl OsError {
    /// An error of `pd` doing `op` on `channel`.
    pub fn new(pd: &str, op: Op, channel: Option<Channel>, kind: OsErrorKind) -> Self {
        Self {
            pd: PdName::new(pd),
            op,
            channel,
            kind,
        }
    }

    /// The PD that attempted the operation.
    pub fn pd(&self) -> &str {
        self.pd.as_str()
    }
}

impl core::fmt::Display for OsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.pd(), self.op)?;
        if let Some(ch) = self.channel {
            write!(f, " on {ch}")?;
        }
        f.write_str(match self.kind {
            OsErrorKind::NotPermitted => ": not permitted by the system description",
            OsErrorKind::NoBackend => ": not running as a protection domain",
            OsErrorKind::PeerGone => ": the peer is not running",
            OsErrorKind::Failed => ": failed",
        })
    }
}

impl core::error::Error for OsError {}
