// SPDX-License-Identifier: BSD-2-Clause
//! The client library: a smoltcp TCP/IP stack over a client's two queue pairs (sDDF's
//! `lib_sddf_lwip`, with smoltcp in place of lwIP), for a PD written as a [`lions_os::Handler`].
//!
//! ## Layers
//!
//! - [`NetDevice`] ([`device`]): a smoltcp [`phy::Device`](smoltcp::phy::Device) over the Rx pair
//!   (from the copier) and the Tx pair (to the Tx virtualiser), described by the client's
//!   `.net_client_config` ([`NetClientConfig`](crate::NetClientConfig)).
//! - [`NetStack`] ([`stack`]): the smoltcp interface, the sockets and the poll discipline of an
//!   event handler (process Rx, run smoltcp, notify only when a peer asked, arm the next timeout on
//!   the timer). A static address or DHCPv4 ([`IpConfig`]).
//! - [`blocking`]: a blocking layer over the same stack: [`TcpStream`] (embedded-io `Read` and
//!   `Write`) and [`UdpSocket`], for code written as a sequence of calls instead of events.
//!
//! ## Wire protocol (what the client does on its queues)
//!
//! - **Start.** The client owns its Tx data region: it puts every Tx buffer on its Tx free queue
//!   (offsets `i * 2048`, `net_buffers_init`); the Tx virtualiser adopts them. The copier owns the
//!   Rx side's start: it puts every Rx buffer on the client's Rx free queue; the client adopts
//!   that queue's tail before it first returns a buffer.
//! - **Receive (zero-copy).** A descriptor taken from the Rx active queue becomes a smoltcp
//!   `RxToken` whose bytes are the buffer itself in the Rx data region (its offset and length are
//!   checked first; a bad one is counted and skipped). When the token is dropped the buffer goes
//!   back on the Rx free queue (`len` 0, `oid` 0).
//! - **Transmit.** A `TxToken` holds a buffer taken from the Tx free queue; smoltcp writes the frame
//!   straight into it and it goes on the Tx active queue with the frame's length. With no free Tx
//!   buffer, no token is given (smoltcp keeps the data and retries), and receiving pauses too, so a
//!   reply is never dropped for want of a buffer.
//! - **Signalling** (the net rule: only a producer notifies, only when the consumer asked). After
//!   each round the client publishes returned Rx buffers and queued Tx frames and notifies the
//!   copier or the Tx virtualiser only if it published something and that peer asked. Before it
//!   sleeps it asks for a signal where it waits: on the Rx active queue, or on the Tx free queue
//!   while it has no Tx buffer; each request is followed by a re-check.
//! - **Time.** smoltcp's clock is the timer driver's (`GET_TIME`, ns since boot); after each
//!   round the next smoltcp deadline is armed with `SET_TIMEOUT` when it is earlier than the one
//!   already armed (or that one has passed).
//!
//! Peers on both queue pairs (the copier, the Tx virtualiser) are trusted components: an
//! impossible queue index from one is an [`Error::Peer`](crate::Error::Peer).

pub mod blocking;
pub mod device;
pub mod stack;

pub use blocking::{TcpError, TcpStream, UdpSocket};
pub use device::{DeviceStats, NetDevice, RX_BUDGET};
pub use stack::{IpConfig, NetStack};

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Storage that can be taken once as `&'static mut T`: socket buffers and the socket table of a
/// PD's stack, which must outlive the handler and may not be allocated on seL4.
///
/// ```
/// use lions_net::client::StaticCell;
/// static RX: StaticCell<[u8; 4096]> = StaticCell::new([0; 4096]);
/// let rx: &'static mut [u8; 4096] = RX.take().expect("first take");
/// assert!(RX.take().is_none());
/// # let _ = rx;
/// ```
pub struct StaticCell<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reachable only through the one `&mut` that `take` hands out, once, so
// sharing the cell between threads shares nothing else; `T: Send` because that reference may be
// used on another thread than the one that made the cell.
unsafe impl<T: Send> Sync for StaticCell<T> {}

impl<T> StaticCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` afterwards.
    // The `&mut` comes out of a shared cell on purpose: the flag makes it unique.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was false, so no reference was handed out before, and none will be
        // after: this is the only reference to the value, for 'static.
        Some(unsafe { &mut *self.value.get() })
    }
}
