// SPDX-License-Identifier: BSD-2-Clause
//! [`NetStack`]: a smoltcp interface and socket set over a [`NetDevice`], driven the way an event
//! handler must drive it.
//!
//! ## The poll discipline (one event)
//!
//! 1. **Process**: read the time (`GET_TIME` on the timer, once per event: the rounds of one
//!    event share it, so a burst of frames costs one call), run smoltcp over every received frame
//!    and everything the sockets have to send ([`NetStack::poll`]).
//! 2. **Publish and notify**: returned Rx buffers and queued Tx frames are published; the copier
//!    or the Tx virtualiser is notified only if it got something and asked.
//! 3. **Request and re-check**: ask for a signal where the device waits (Rx active queue, or Tx
//!    free queue while out of Tx buffers); if work arrived meanwhile, go back to 1.
//! 4. **Application**: [`NetStack::process`] hands the sockets to the application between rounds
//!    for as long as it reports progress, so what it queued is sent in the same event.
//! 5. **Timeout**: the next smoltcp deadline (`poll_delay`) is armed on the timer with
//!    `SET_TIMEOUT`, unless an earlier one is already armed. Its expiry arrives as a notification
//!    on the timer channel, and the handler runs the stack again.
//!
//! A handler calls [`NetStack::process`] on every notification whose channels
//! [`NetStack::handles`] (and may call it for its own events too):
//!
//! ```text
//! fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
//!     let udp = self.udp;
//!     self.stack.process(|_, sockets| echo_udp(sockets.get_mut(udp)))
//! }
//! ```

use super::device::NetDevice;
use crate::Error;
use lions_os::ChannelSet;
use lions_timer::TimerClient;
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::{AnySocket, dhcpv4};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Shortest timeout armed when smoltcp asks to be polled again at once while it can make no
/// progress without an event (so a stalled stack does not spin on timer expiries).
pub const MIN_TIMEOUT_NS: u64 = 1_000_000;

/// How the interface gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpConfig {
    /// A fixed address and prefix, and optionally a default gateway.
    Static {
        /// Address and prefix length.
        address: Ipv4Cidr,
        /// Default route.
        gateway: Option<Ipv4Address>,
    },
    /// DHCPv4 (the stack keeps a DHCP socket in the first slot of its socket storage and applies
    /// each lease: address, prefix and default route).
    Dhcp,
}

/// A smoltcp stack over a client's queues, for an event handler; see the [module docs](self).
pub struct NetStack<'a, 's> {
    device: NetDevice<'a>,
    iface: Interface,
    sockets: SocketSet<'s>,
    timer: TimerClient,
    dhcp: Option<SocketHandle>,
    /// Time of the last poll, ns since boot.
    now_ns: u64,
    /// Deadline of the timeout armed last, ns since boot.
    armed: Option<u64>,
    deferred: bool,
}

fn instant(ns: u64) -> Instant {
    Instant::from_micros(i64::try_from(ns / 1000).unwrap_or(i64::MAX))
}

/// Why a stack could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackError {
    /// The timer driver refused `GET_TIME`.
    Timer(lions_os::OsError),
    /// DHCP was asked for and the socket storage has no slot for its socket.
    NoDhcpSlot,
}

impl core::fmt::Display for StackError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Timer(e) => write!(f, "timer: {e}"),
            Self::NoDhcpSlot => write!(f, "DHCP needs a free slot in the socket storage"),
        }
    }
}

impl core::error::Error for StackError {}

impl<'a, 's> NetStack<'a, 's> {
    /// A stack over `device` with the address from `ip`, time from `timer`, and sockets stored in
    /// `storage` (one slot per socket; with [`IpConfig::Dhcp`] the first slot holds the DHCP
    /// socket). Nothing is sent until the first [`poll`](Self::poll).
    pub fn new(
        mut device: NetDevice<'a>,
        timer: TimerClient,
        ip: IpConfig,
        storage: &'s mut [SocketStorage<'s>],
    ) -> Result<Self, StackError> {
        let now_ns = timer.time_now().map_err(StackError::Timer)?;
        let mac = device.mac().0;
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // TCP initial sequence numbers and DHCP transaction ids: distinct per MAC and boot time.
        let mut seed = [0u8; 8];
        seed[..6].copy_from_slice(&mac);
        config.random_seed = u64::from_le_bytes(seed) ^ now_ns.rotate_left(17);
        let mut iface = Interface::new(config, &mut device, instant(now_ns));
        let slots = storage.len();
        let mut sockets = SocketSet::new(storage);
        let dhcp = match ip {
            IpConfig::Static { address, gateway } => {
                set_address(&mut iface, Some(address), gateway);
                None
            }
            IpConfig::Dhcp if slots == 0 => return Err(StackError::NoDhcpSlot),
            // The set is empty and has a slot, so `add` does not panic.
            IpConfig::Dhcp => Some(sockets.add(dhcpv4::Socket::new())),
        };
        Ok(Self {
            device,
            iface,
            sockets,
            timer,
            dhcp,
            now_ns,
            armed: None,
            deferred: true,
        })
    }

    /// The device (MAC, channels, counters).
    pub fn device(&self) -> &NetDevice<'a> {
        &self.device
    }

    /// The smoltcp interface (addresses, routes, neighbour cache).
    pub fn iface(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The interface and the sockets at once (e.g. to `connect` a TCP socket, which needs the
    /// interface's context).
    pub fn parts(&mut self) -> (&mut Interface, &mut SocketSet<'s>) {
        (&mut self.iface, &mut self.sockets)
    }

    /// The sockets.
    pub fn sockets(&mut self) -> &mut SocketSet<'s> {
        &mut self.sockets
    }

    /// Add a socket. Panics (in smoltcp) when the storage has no free slot: size the storage for
    /// every socket the application adds.
    pub fn add_socket<T: AnySocket<'s>>(&mut self, socket: T) -> SocketHandle {
        self.sockets.add(socket)
    }

    /// The socket behind `handle`, as type `T`. Panics (in smoltcp) if it is of another type.
    pub fn socket<T: AnySocket<'s>>(&mut self, handle: SocketHandle) -> &mut T {
        self.sockets.get_mut(handle)
    }

    /// The interface's IPv4 address and prefix, once it has one.
    pub fn ipv4_cidr(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|a| match a {
            IpCidr::Ipv4(c) => Some(*c),
            #[allow(unreachable_patterns)] // IPv6 enabled by another crate's features
            _ => None,
        })
    }

    /// The timer client the stack takes its time from.
    pub fn timer(&self) -> TimerClient {
        self.timer
    }

    /// Whether any of `channels` is one of the stack's (copier, Tx virtualiser, timer).
    pub fn handles(&self, channels: ChannelSet) -> bool {
        channels.contains(self.device.rx_channel())
            || channels.contains(self.device.tx_channel())
            || channels.contains(self.timer.channel())
    }

    /// Notify peers through the PD's deferred slot (`true`, the default: for a handler that
    /// returns soon) or at once (`false`: for code that keeps running, as the blocking layer).
    pub fn set_deferred_notify(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    /// Whether peers are notified through the deferred slot.
    pub fn deferred_notify(&self) -> bool {
        self.deferred
    }

    /// The time of the last poll, as smoltcp sees it.
    pub fn last_poll(&self) -> Instant {
        instant(self.now_ns)
    }

    /// Phases 1 to 3 of the [discipline](self): run smoltcp until no received frame and nothing
    /// to send is left, publishing and notifying after each round, and ask for the signals to
    /// sleep on. Returns whether a socket's state may have changed. Does not arm the timer (see
    /// [`arm_timer`](Self::arm_timer)). Received frames are taken in rounds of the device's Rx
    /// budget ([`NetDevice::set_rx_budget`]); without an application between rounds (see
    /// [`process`](Self::process)) a socket may overflow.
    pub fn poll(&mut self) -> Result<bool, Error> {
        self.read_time()?;
        let mut changed = false;
        loop {
            let (c, more) = self.round()?;
            changed |= c;
            if !more {
                return Ok(changed);
            }
        }
    }

    /// Change the device's Rx budget per round (see [`NetDevice::set_rx_budget`]).
    pub fn set_rx_budget(&mut self, frames: usize) {
        self.device.set_rx_budget(frames);
    }

    /// Read the time for the rounds of one event (never earlier than the last reading).
    fn read_time(&mut self) -> Result<(), Error> {
        self.now_ns = self.timer.time_now()?.max(self.now_ns);
        Ok(())
    }

    /// One round at the time of the last [`read_time`](Self::read_time): smoltcp over up to one
    /// Rx budget of frames and everything to send, then publish and notify. Returns (socket state
    /// may have changed, more work is waiting).
    fn round(&mut self) -> Result<(bool, bool), Error> {
        let now = instant(self.now_ns);
        self.device.refill_budget();
        let mut changed = self.iface.poll(now, &mut self.device, &mut self.sockets)
            == PollResult::SocketStateChanged;
        changed |= self.dhcp_update();
        if let Some(e) = self.device.take_fault() {
            return Err(e);
        }
        self.device.flush(self.deferred)?;
        let more = self.device.budget_spent() || self.device.park()?;
        Ok((changed, more))
    }

    /// One whole event: rounds of smoltcp (see [`poll`](Self::poll)) with `app` over the
    /// interface and sockets after each, until no frame waits and `app` returns `false` (it made
    /// no progress: consumed or queued nothing), then [`arm_timer`](Self::arm_timer).
    pub fn process(
        &mut self,
        mut app: impl FnMut(&mut Interface, &mut SocketSet<'s>) -> bool,
    ) -> Result<(), Error> {
        self.read_time()?;
        loop {
            let (_, more) = self.round()?;
            let did = app(&mut self.iface, &mut self.sockets);
            if !more && !did {
                break;
            }
        }
        self.arm_timer()
    }

    /// Phase 5: arm the timer for smoltcp's next deadline, unless a timeout no later than it is
    /// armed already.
    pub fn arm_timer(&mut self) -> Result<(), Error> {
        let now = self.now_ns;
        let Some(delay) = self.iface.poll_delay(instant(now), &self.sockets) else {
            return Ok(());
        };
        let mut ns = delay.total_micros().saturating_mul(1000);
        if ns == 0 {
            if self.device.tx_starved() {
                // The Tx virtualiser's signal resumes us.
                return Ok(());
            }
            ns = MIN_TIMEOUT_NS;
        }
        let deadline = now.saturating_add(ns);
        if self.armed.is_none_or(|a| a <= now || deadline < a) {
            self.timer.set_timeout(ns)?;
            self.armed = Some(deadline);
        }
        Ok(())
    }

    /// Apply a DHCP lease change; true if there was one.
    fn dhcp_update(&mut self) -> bool {
        let Some(h) = self.dhcp else { return false };
        let lease = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return false,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match lease {
            Some((address, router)) => set_address(&mut self.iface, Some(address), router),
            None => set_address(&mut self.iface, None, None),
        }
        true
    }
}

/// Replace the interface's address and default route.
fn set_address(iface: &mut Interface, address: Option<Ipv4Cidr>, gateway: Option<Ipv4Address>) {
    iface.update_ip_addrs(|addrs| {
        addrs.clear();
        if let Some(a) = address {
            // The list was just cleared and holds at least one address.
            let _ = addrs.push(IpCidr::Ipv4(a));
        }
    });
    let routes = iface.routes_mut();
    routes.remove_default_ipv4_route();
    if let Some(gw) = gateway {
        // Room for one route was just made.
        let _ = routes.add_default_ipv4_route(gw);
    }
}
