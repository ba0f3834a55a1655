// SPDX-License-Identifier: BSD-2-Clause
//! The host board's user-mode network (`lions,host-net` without privileges): an Ethernet segment
//! that ends in a gateway inside the driver process, with host port forwarding, as an
//! [`EthDevice`].
//!
//! ## The segment
//!
//! - The gateway is a smoltcp stack at [`GATEWAY_IP`] (10.0.2.1/24, MAC [`GATEWAY_MAC`]), the
//!   address a TAP's host side has in the examples. It answers ARP and ICMP echo; it routes
//!   nothing further (no NAT to the outside).
//! - **Port forwarding** ([`Forward`], parsed from `LIONS_NET_FORWARD` by the component):
//!   - `tcp:HOSTPORT:GUESTIP:GUESTPORT`: a listener on `127.0.0.1:HOSTPORT`; each accepted
//!     connection becomes a gateway TCP connection to the guest, and bytes are relayed both ways
//!     (half-close included) until both ends closed. At most [`TCP_SLOTS`] at once; more wait in
//!     the host's accept queue.
//!   - `udp:HOSTPORT:GUESTIP:GUESTPORT`: a socket on `127.0.0.1:HOSTPORT`; each datagram goes to
//!     the guest from the gateway, and the guest's answers go back to the host sender of the most
//!     recent datagram.
//! - **Frames** the guest sends (`tx_post`) are copied out of its DMA buffer at once and queued
//!   for the gateway; frames the gateway sends wait (at most [`WIRE_FRAMES`], then dropped) until
//!   a receive buffer is posted.
//! - **Neighbours**: smoltcp limits ARP requests per interface, not per address: after one
//!   request it sends no other for 1 s, so a second guest contacted within that second would wait
//!   for it (its SYN or datagram held back as "neighbour pending"). The gateway therefore asks
//!   for a forward's guest itself, with an ARP request of its own put on the segment before the
//!   first packet toward it (and again at least every [`ARP_REFRESH`] while it is used, well
//!   within smoltcp's 60 s cache lifetime); smoltcp takes the guest's reply into its cache like
//!   any ARP aimed at it, and the packet goes at once.
//! - **Interrupt**: one epoll fd ([`UserNet::attach_irq`]) over the forward sockets, a timerfd
//!   for the gateway's TCP timers and an eventfd raised when frames or completions are waiting.
//!   The gateway runs in `ack_irq`, at the start of each interrupt, which the generic driver then
//!   follows with its transmit and receive paths. Host sockets are watched only while their data
//!   can be taken (level-triggered, so an unread socket never spins the driver).

mod relay;
mod wire;

use self::relay::{Conn, Port};
use self::wire::Wire;
use super::sys;
use super::tap::Dma;
use lions_net::{EthDevice, NetBuffDesc};
use lions_os::host::control::held;
use lions_os::{Channel, OsError};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};
use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// The gateway's address on the segment.
pub const GATEWAY_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 1);
/// The gateway's MAC address (locally administered).
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x00, 0x02, 0x01];
/// Forwarded TCP connections at once.
pub const TCP_SLOTS: usize = 16;
/// Frames waiting for the guest at most.
pub const WIRE_FRAMES: usize = 1024;
/// How often at most the gateway asks a guest in use for its MAC address itself (see the
/// [module docs](self)).
pub const ARP_REFRESH: Duration = Duration::from_secs(10);
const RX_RING: usize = 256;
const TX_RING: usize = 256;
const BUF: usize = 2048;
const TCP_BUF: usize = 64 * 1024;
const UDP_SLOTS: usize = 64;

/// One port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// TCP (true) or UDP.
    pub tcp: bool,
    /// Port on 127.0.0.1.
    pub host_port: u16,
    /// Where it leads on the segment.
    pub guest: (Ipv4Addr, u16),
}

impl Forward {
    /// Parse `tcp:HOSTPORT:GUESTIP:GUESTPORT` or `udp:...`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().split(':');
        let tcp = match it.next()? {
            "tcp" => true,
            "udp" => false,
            _ => return None,
        };
        let host_port = it.next()?.parse().ok()?;
        let ip = it.next()?.parse().ok()?;
        let port = it.next()?.parse().ok()?;
        if it.next().is_some() || host_port == 0 || port == 0 {
            return None;
        }
        Some(Self {
            tcp,
            host_port,
            guest: (ip, port),
        })
    }

    /// A comma-separated list of forwards.
    pub fn parse_list(s: &str) -> Option<Vec<Self>> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Self::parse)
            .collect()
    }

    fn endpoint(&self) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(self.guest.0), self.guest.1)
    }
}

/// Counters of a [`UserNet`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UserNetStats {
    /// Frames from the guest.
    pub tx_frames: u64,
    /// Frames to the guest.
    pub rx_frames: u64,
    /// Frames dropped (no room toward the guest, or a bad device address).
    pub dropped: u64,
    /// TCP connections forwarded.
    pub connections: u64,
}

/// The user-mode network device; see the [module docs](self).
pub struct UserNet {
    dma: Dma,
    epoll: OwnedFd,
    kick: OwnedFd,
    timer: OwnedFd,
    rx_posted: VecDeque<NetBuffDesc>,
    tx_done: VecDeque<NetBuffDesc>,
    wire: Wire,
    iface: Interface,
    sockets: SocketSet<'static>,
    tcp_slots: Vec<(SocketHandle, bool)>,
    ports: Vec<Port>,
    conns: Vec<Conn>,
    next_port: u16,
    /// Guests asked for their MAC address, and when last.
    asked: Vec<(Ipv4Addr, Instant)>,
    epoch: Instant,
    stats: UserNetStats,
}

fn leak<T>(v: T) -> &'static mut T {
    Box::leak(Box::new(v))
}

fn leak_bytes(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

impl UserNet {
    /// The segment with the DMA windows `dma` and the forwards `forwards` (their host sockets are
    /// bound now: an error names the port).
    pub fn new(dma: Dma, forwards: &[Forward]) -> io::Result<Self> {
        let epoll = sys::epoll()?;
        let kick = sys::eventfd()?;
        let timer = sys::timerfd()?;
        let mut wire = Wire::default();
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(GATEWAY_MAC)));
        cfg.random_seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
        let mut iface = Interface::new(cfg, &mut wire, SmolInstant::ZERO);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(GATEWAY_IP), 24));
        });
        let udps = forwards.iter().filter(|f| !f.tcp).count();
        let storage: Vec<SocketStorage<'static>> = (0..TCP_SLOTS + udps)
            .map(|_| SocketStorage::EMPTY)
            .collect();
        let mut sockets = SocketSet::new(Box::leak(storage.into_boxed_slice()));
        let tcp_slots = (0..TCP_SLOTS)
            .map(|_| {
                let s = tcp::Socket::new(
                    tcp::SocketBuffer::new(leak_bytes(TCP_BUF)),
                    tcp::SocketBuffer::new(leak_bytes(TCP_BUF)),
                );
                (sockets.add(s), false)
            })
            .collect();
        let ports = forwards
            .iter()
            .enumerate()
            .map(|(i, f)| Port::open(i, *f, &mut sockets))
            .collect::<io::Result<Vec<_>>>()?;
        let dev = Self {
            dma,
            epoll,
            kick,
            timer,
            rx_posted: VecDeque::with_capacity(RX_RING),
            tx_done: VecDeque::with_capacity(TX_RING),
            wire,
            iface,
            sockets,
            tcp_slots,
            ports,
            conns: Vec::new(),
            next_port: 40000,
            asked: Vec::new(),
            epoch: Instant::now(),
            stats: UserNetStats::default(),
        };
        let ports = dev.ports.iter().map(Port::as_fd);
        for fd in [dev.kick.as_fd(), dev.timer.as_fd()]
            .into_iter()
            .chain(ports)
        {
            sys::epoll_ctl_fd(dev.epoll.as_fd(), fd, true, false, libc::EPOLL_CTL_ADD)?;
        }
        Ok(dev)
    }

    /// Deliver this device's interrupts on `irq`. Call once, in `init`.
    pub fn attach_irq(&self, irq: Channel) -> Result<(), OsError> {
        lions_os::host::register_irq_fd(irq, self.epoll.as_fd())
    }

    /// Counters.
    pub fn stats(&self) -> UserNetStats {
        UserNetStats {
            dropped: self.stats.dropped + self.wire.dropped,
            ..self.stats
        }
    }

    fn kick(&self) {
        sys::signal(self.kick.as_fd());
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(
            i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX),
        )
    }
}

impl UserNet {
    /// The next received frame (see [`EthDevice::rx_poll`]).
    fn rx_take(&mut self) -> Option<NetBuffDesc> {
        loop {
            let mut buf = *self.rx_posted.front()?;
            let frame = self.wire.to_guest.front()?;
            self.rx_posted.pop_front();
            let Some(ptr) = self.dma.translate(buf.io_or_offset, frame.len()) else {
                self.stats.dropped += 1;
                continue;
            };
            let frame = self.wire.to_guest.pop_front()?;
            // SAFETY: `ptr .. ptr + len` lies in a DMA window (translated above, `len <= 1514`),
            // mapped read-write; the buffer is posted to us, so nobody else writes it.
            unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), ptr.as_ptr(), frame.len()) };
            buf.len = u16::try_from(frame.len()).unwrap_or(0);
            self.stats.rx_frames += 1;
            return Some(buf);
        }
    }
}

impl EthDevice for UserNet {
    fn rx_room(&mut self) -> bool {
        self.rx_posted.len() < RX_RING
    }

    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.rx_posted.push_back(buf);
        lions_os::host::report_held(held::RX, self.rx_posted.len() as u64);
        if !self.wire.to_guest.is_empty() {
            self.kick();
        }
    }

    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        let got = self.rx_take();
        lions_os::host::report_held(held::RX, self.rx_posted.len() as u64);
        got
    }

    fn tx_room(&mut self) -> bool {
        self.tx_done.len() < TX_RING
    }

    fn tx_post(&mut self, buf: NetBuffDesc) {
        let len = usize::from(buf.len);
        match self.dma.translate(buf.io_or_offset, len) {
            Some(ptr) if len <= BUF => {
                let mut frame = vec![0u8; len];
                // SAFETY: `ptr .. ptr + len` lies in a DMA window (translated above), mapped;
                // the frame is posted to us, so nobody writes it meanwhile.
                unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), frame.as_mut_ptr(), len) };
                self.wire.to_gateway.push_back(frame);
                self.stats.tx_frames += 1;
            }
            _ => self.stats.dropped += 1,
        }
        self.tx_done.push_back(buf);
        lions_os::host::report_held(held::TX, self.tx_done.len() as u64);
    }

    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        let done = self.tx_done.pop_front();
        lions_os::host::report_held(held::TX, self.tx_done.len() as u64);
        done
    }

    fn tx_kick(&mut self) {
        self.kick();
    }

    fn ack_irq(&mut self) {
        sys::consume(self.kick.as_fd());
        sys::consume(self.timer.as_fd());
        self.pump();
        if !self.wire.to_guest.is_empty() && !self.rx_posted.is_empty() {
            // More for the guest than this interrupt's receive path will take.
            self.kick();
        }
    }
}

#[cfg(test)]
mod tests;
