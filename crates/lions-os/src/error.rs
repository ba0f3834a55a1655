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
/// Two machine words (the PD's name is kept once per process, see `PdName`), so
/// `Result<(), OsError>` comes back in registers on every `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError {
    pd: &'static PdName,
    /// The operation.
    pub op: Op,
    /// The channel, if the operation has one.
    pub channel: Option<Channel>,
    /// Why.
    pub kind: OsErrorKind,
}

/// A PD name (Microkit names are at most 64 bytes), kept once per distinct name for the life of
/// the process (see `intern`), so an error refers to it by a thin reference.
#[derive(PartialEq, Eq)]
struct PdName {
    bytes: [u8; 64],
    len: u8,
}

impl core::fmt::Debug for PdName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The name used when no other can be kept.
static UNKNOWN: PdName = PdName {
    bytes: {
        let mut b = [0; 64];
        b[0] = b'?';
        b
    },
    len: 1,
};

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

/// The process-wide copy of `name` (made on first use, kept for the life of the process: one per
/// distinct PD name, which are few).
#[cfg(any(test, feature = "std"))]
fn intern(name: &str) -> &'static PdName {
    use std::sync::{Mutex, PoisonError};
    static NAMES: Mutex<std::vec::Vec<&'static PdName>> = Mutex::new(std::vec::Vec::new());
    let want = PdName::new(name);
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&n) = names.iter().find(|&&n| *n == want) {
        return n;
    }
    let n: &'static PdName = std::boxed::Box::leak(std::boxed::Box::new(want));
    names.push(n);
    n
}

/// The process-wide copy of `name`, without `std`: a seL4 PD has one name (its own), so a few
/// slots suffice; past them the name reads "?".
#[cfg(not(any(test, feature = "std")))]
fn intern(name: &str) -> &'static PdName {
    use core::cell::OnceCell;
    struct Names([OnceCell<PdName>; 4]);
    // SAFETY: without `std` this crate runs only as a single-threaded seL4 PD (no threads exist),
    // as `runtime`'s installed frame assumes.
    unsafe impl Sync for Names {}
    static NAMES: Names = Names([const { OnceCell::new() }; 4]);
    let want = PdName::new(name);
    for slot in &NAMES.0 {
        match slot.get() {
            Some(n) if *n == want => return n,
            Some(_) => {}
            None => return slot.get_or_init(|| want),
        }
    }
    &UNKNOWN
}

impl OsError {
    /// An error of `pd` doing `op` on `channel`.
    #[cold]
    pub fn new(pd: &str, op: Op, channel: Option<Channel>, kind: OsErrorKind) -> Self {
        Self {
            pd: if pd == "?" { &UNKNOWN } else { intern(pd) },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_fits_two_registers_and_keeps_its_message() {
        assert!(size_of::<Result<(), OsError>>() <= 2 * size_of::<usize>());
        let long = "a_protection_domain_name_of_exactly_sixty_four_bytes_0123456789a";
        assert_eq!(long.len(), 64);
        let e = OsError::new(long, Op::Notify, Some(Channel::new(3)), OsErrorKind::PeerGone);
        assert_eq!(e.pd(), long);
        assert_eq!(
            std::format!("{e}"),
            std::format!("{long}: notify on channel 3: the peer is not running")
        );
        let f = OsError::new(long, Op::Notify, Some(Channel::new(3)), OsErrorKind::PeerGone);
        assert!(core::ptr::eq(e.pd, f.pd), "one copy per name");
        assert_eq!(e, f);
        assert_eq!(OsError::new("é", Op::Mr, None, OsErrorKind::Failed).pd(), "é");
        assert_eq!(OsError::new("?", Op::Mr, None, OsErrorKind::NoBackend).pd(), "?");
    }
}
