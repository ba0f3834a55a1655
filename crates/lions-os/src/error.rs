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
///
/// One machine word: the PD's name is kept once per process and named here by its number (see
/// `PdId`), so `Result<(), OsError>` comes back in a register on every `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError {
    pd: PdId,
    /// The operation.
    pub op: Op,
    /// The channel, if the operation has one.
    pub channel: Option<Channel>,
    /// Why.
    pub kind: OsErrorKind,
}

/// A PD name (Microkit names are at most 64 bytes), kept once per distinct name for the life of
/// the process (see `intern`).
#[derive(PartialEq, Eq)]
struct PdName {
    bytes: [u8; 64],
    len: u8,
}

/// The number of a kept PD name: 0 is "?", `n > 0` the `n`th name kept.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PdId(u16);

impl core::fmt::Debug for PdId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.name(), f)
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

/// The names kept with `std`: a few per process (one per PD of a simulated system).
#[cfg(any(test, feature = "std"))]
mod names {
    use super::{PdId, PdName};
    use std::sync::{Mutex, PoisonError};
    use std::vec::Vec;

    static NAMES: Mutex<Vec<&'static PdName>> = Mutex::new(Vec::new());

    /// The number of `name`, keeping it on first use ("?" once `u16` numbers ran out).
    pub(super) fn intern(name: &str) -> PdId {
        let want = PdName::new(name);
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match names.iter().position(|&n| *n == want) {
            Some(i) => i,
            None => {
                names.push(std::boxed::Box::leak(std::boxed::Box::new(want)));
                names.len() - 1
            }
        };
        u16::try_from(i + 1).map_or(PdId(0), PdId)
    }

    /// The name numbered `id`.
    pub(super) fn get(id: PdId) -> Option<&'static str> {
        let names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        let n: &'static PdName = names.get(usize::from(id.0).checked_sub(1)?)?;
        Some(n.as_str())
    }
}

/// The names kept without `std`: a seL4 PD has one name (its own), so a few slots suffice; past
/// them a name reads "?".
#[cfg(not(any(test, feature = "std")))]
mod names {
    use super::{PdId, PdName};
    use core::cell::OnceCell;

    struct Names([OnceCell<PdName>; 4]);
    // SAFETY: without `std` this crate runs only as a single-threaded seL4 PD (no threads exist),
    // as `runtime`'s installed frame assumes.
    unsafe impl Sync for Names {}
    static NAMES: Names = Names([const { OnceCell::new() }; 4]);

    /// The number of `name`, keeping it on first use.
    pub(super) fn intern(name: &str) -> PdId {
        let want = PdName::new(name);
        for (i, slot) in (1..).zip(&NAMES.0) {
            match slot.get() {
                Some(n) if *n == want => return PdId(i),
                Some(_) => {}
                None => {
                    slot.get_or_init(|| want);
                    return PdId(i);
                }
            }
        }
        PdId(0)
    }

    /// The name numbered `id`.
    pub(super) fn get(id: PdId) -> Option<&'static str> {
        let slot = NAMES.0.get(usize::from(id.0).checked_sub(1)?)?;
        slot.get().map(PdName::as_str)
    }
}

impl PdId {
    fn name(self) -> &'static str {
        names::get(self).unwrap_or("?")
    }
}

impl OsError {
    /// An error of `pd` doing `op` on `channel`.
    #[cold]
    pub fn new(pd: &str, op: Op, channel: Option<Channel>, kind: OsErrorKind) -> Self {
        Self {
            pd: if pd == "?" {
                PdId(0)
            } else {
                names::intern(pd)
            },
            op,
            channel,
            kind,
        }
    }

    /// The PD that attempted the operation.
    pub fn pd(&self) -> &str {
        self.pd.name()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_fits_two_registers_and_keeps_its_message() {
        assert!(size_of::<Result<(), OsError>>() <= size_of::<u64>());
        let long = "a_protection_domain_name_of_exactly_sixty_four_bytes_0123456789a";
        assert_eq!(long.len(), 64);
        let e = OsError::new(
            long,
            Op::Notify,
            Some(Channel::new(3)),
            OsErrorKind::PeerGone,
        );
        assert_eq!(e.pd(), long);
        assert_eq!(
            std::format!("{e}"),
            std::format!("{long}: notify on channel 3: the peer is not running")
        );
        let f = OsError::new(
            long,
            Op::Notify,
            Some(Channel::new(3)),
            OsErrorKind::PeerGone,
        );
        assert_eq!(e.pd, f.pd, "one copy per name");
        assert_eq!(e, f);
        assert_eq!(
            OsError::new("é", Op::Mr, None, OsErrorKind::Failed).pd(),
            "é"
        );
        assert_eq!(
            OsError::new("?", Op::Mr, None, OsErrorKind::NoBackend).pd(),
            "?"
        );
        let g = OsError::new(
            "another",
            Op::Notify,
            Some(Channel::new(3)),
            OsErrorKind::PeerGone,
        );
        assert_ne!(e, g, "errors of different PDs differ");
        assert_eq!((e.pd(), g.pd()), (long, "another"));
    }
}
