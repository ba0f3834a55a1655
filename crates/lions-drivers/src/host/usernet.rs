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

use super::tap::Dma;
use lions_net::{EthDevice, NetBuffDesc};
use lions_os::{Channel, OsError};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address,
};
use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// The Ethernet segment between the guest's buffers and the gateway.
#[derive(Default)]
struct Wire {
    to_gateway: VecDeque<Vec<u8>>,
    to_guest: VecDeque<Vec<u8>>,
    dropped: u64,
}

struct FrameRx(Vec<u8>);
struct FrameTx<'a>(&'a mut Wire);

impl phy::RxToken for FrameRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for FrameTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        if self.0.to_guest.len() < WIRE_FRAMES {
            self.0.to_guest.push_back(frame);
        } else {
            self.0.dropped += 1;
        }
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = FrameRx;
    type TxToken<'a> = FrameTx<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(FrameRx, FrameTx<'_>)> {
        let f = self.to_gateway.pop_front()?;
        Some((FrameRx(f), FrameTx(self)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<FrameTx<'_>> {
        Some(FrameTx(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A forwarded TCP connection.
struct Conn {
    host: TcpStream,
    slot: usize,
    /// The guest's address.
    guest: Ipv4Addr,
    /// Bytes from the guest not yet written to the host.
    to_host: Vec<u8>,
    host_eof: bool,
    /// The guest accepted the connection (so a closed receive side means its FIN).
    established: bool,
    /// The guest's end of stream was passed to the host.
    shut: bool,
}

/// A listening or bound forward and its state.
enum Port {
    Tcp {
        fwd: Forward,
        listener: TcpListener,
    },
    Udp {
        fwd: Forward,
        host: UdpSocket,
        handle: SocketHandle,
        peer: Option<SocketAddr>,
    },
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

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(ret: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(ret)?;
    // SAFETY: the call that returned `fd` created it for us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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
        // SAFETY: creates new descriptors.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: as above.
        let kick = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: as above.
        let timer = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
            )
        })?;
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
        let mut ports = Vec::new();
        for (i, f) in forwards.iter().enumerate() {
            let at = (Ipv4Addr::LOCALHOST, f.host_port);
            let what = |e: io::Error| {
                let proto = if f.tcp { "tcp" } else { "udp" };
                io::Error::new(
                    e.kind(),
                    format!("forward {proto} 127.0.0.1:{}: {e}", f.host_port),
                )
            };
            if f.tcp {
                let listener = TcpListener::bind(at).map_err(what)?;
                listener.set_nonblocking(true)?;
                ports.push(Port::Tcp { fwd: *f, listener });
            } else {
                let host = UdpSocket::bind(at).map_err(what)?;
                host.set_nonblocking(true)?;
                let meta = || &mut leak([udp::PacketMetadata::EMPTY; UDP_SLOTS])[..];
                let mut s = udp::Socket::new(
                    udp::PacketBuffer::new(meta(), leak_bytes(UDP_SLOTS * 1500)),
                    udp::PacketBuffer::new(meta(), leak_bytes(UDP_SLOTS * 1500)),
                );
                // Distinct and non-zero: cannot fail.
                let _ = s.bind(30000 + u16::try_from(i).unwrap_or(0));
                let handle = sockets.add(s);
                ports.push(Port::Udp {
                    fwd: *f,
                    host,
                    handle,
                    peer: None,
                });
            }
        }
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
        watch(
            &dev.epoll,
            dev.kick.as_fd(),
            true,
            false,
            libc::EPOLL_CTL_ADD,
        )?;
        watch(
            &dev.epoll,
            dev.timer.as_fd(),
            true,
            false,
            libc::EPOLL_CTL_ADD,
        )?;
        for p in &dev.ports {
            let fd = match p {
                Port::Tcp { listener, .. } => listener.as_fd(),
                Port::Udp { host, .. } => host.as_fd(),
            };
            watch(&dev.epoll, fd, true, false, libc::EPOLL_CTL_ADD)?;
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
        write_u64(self.kick.as_raw_fd(), 1);
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(
            i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX),
        )
    }

    /// Accept host connections into free TCP slots.
    fn accept(&mut self) {
        for p in &self.ports {
            let Port::Tcp { fwd, listener } = p else {
                continue;
            };
            while let Some(slot) = self.tcp_slots.iter().position(|(_, busy)| !busy) {
                let Ok((host, _)) = listener.accept() else {
                    break;
                };
                let _ = host.set_nonblocking(true);
                let (h, busy) = &mut self.tcp_slots[slot];
                self.next_port = if self.next_port >= 60000 {
                    40000
                } else {
                    self.next_port + 1
                };
                let sock = self.sockets.get_mut::<tcp::Socket>(*h);
                if sock
                    .connect(self.iface.context(), fwd.endpoint(), self.next_port)
                    .is_err()
                {
                    continue;
                }
                *busy = true;
                self.stats.connections += 1;
                ask_neighbor(&mut self.asked, &mut self.wire, fwd.guest.0);
                if watch(&self.epoll, host.as_fd(), true, false, libc::EPOLL_CTL_ADD).is_ok() {
                    self.conns.push(Conn {
                        guest: fwd.guest.0,
                        host,
                        slot,
                        to_host: Vec::new(),
                        host_eof: false,
                        established: false,
                        shut: false,
                    });
                }
            }
        }
    }

    /// Move bytes between host connections and their gateway sockets; drop finished ones.
    /// Returns whether anything moved.
    fn relay_tcp(&mut self) -> bool {
        let mut moved = false;
        let mut buf = vec![0u8; TCP_BUF];
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            ask_neighbor(&mut self.asked, &mut self.wire, c.guest);
            let (h, _) = self.tcp_slots[c.slot];
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            // Host -> guest, as much as the socket takes.
            let room = sock.send_capacity() - sock.send_queue();
            if !c.host_eof && sock.may_send() && room > 0 {
                match c.host.read(&mut buf[..room]) {
                    Ok(0) => {
                        c.host_eof = true;
                        sock.close();
                        moved = true;
                    }
                    Ok(n) => {
                        let _ = sock.send_slice(&buf[..n]);
                        moved = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        c.host_eof = true;
                        sock.abort();
                    }
                }
            }
            // Guest -> host.
            if c.to_host.is_empty() && sock.can_recv() {
                let n = sock.recv_slice(&mut buf).unwrap_or(0);
                c.to_host.extend_from_slice(&buf[..n]);
                moved |= n > 0;
            }
            if !c.to_host.is_empty() {
                match c.host.write(&c.to_host) {
                    Ok(n) => {
                        c.to_host.drain(..n);
                        moved |= n > 0;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        c.to_host.clear();
                        sock.abort();
                    }
                }
            }
            c.established |= sock.may_send() || sock.may_recv();
            if c.established && !c.shut && c.to_host.is_empty() && !sock.may_recv() {
                // The guest closed its side: pass the end of stream on.
                let _ = c.host.shutdown(std::net::Shutdown::Write);
                c.shut = true;
            }
            let done = !sock.is_open() && c.to_host.is_empty();
            let (read, write) = (
                !c.host_eof && sock.may_send() && room > 0,
                !c.to_host.is_empty(),
            );
            if done {
                let _ = watch(
                    &self.epoll,
                    c.host.as_fd(),
                    false,
                    false,
                    libc::EPOLL_CTL_DEL,
                );
                self.tcp_slots[c.slot].1 = false;
                self.conns.swap_remove(i);
                moved = true;
                continue;
            }
            let _ = watch(
                &self.epoll,
                c.host.as_fd(),
                read,
                write,
                libc::EPOLL_CTL_MOD,
            );
            i += 1;
        }
        moved
    }

    /// Move datagrams between forwarded UDP ports and the guest.
    fn relay_udp(&mut self) -> bool {
        let mut moved = false;
        let mut buf = [0u8; 65536];
        for p in &mut self.ports {
            let Port::Udp {
                fwd,
                host,
                handle,
                peer,
            } = p
            else {
                continue;
            };
            let sock = self.sockets.get_mut::<udp::Socket>(*handle);
            while let Ok((n, from)) = host.recv_from(&mut buf) {
                *peer = Some(from);
                ask_neighbor(&mut self.asked, &mut self.wire, fwd.guest.0);
                // A full socket drops the datagram, as a congested link would.
                let _ = sock.send_slice(&buf[..n], fwd.endpoint());
                moved = true;
            }
            while let Ok((data, _)) = sock.recv() {
                if let Some(to) = *peer {
                    let _ = host.send_to(data, to);
                }
                moved = true;
            }
        }
        moved
    }

    /// Run the gateway until it is idle: host sockets, the stack, timers.
    fn pump(&mut self) {
        self.accept();
        for _ in 0..64 {
            let mut moved = self.relay_tcp() | self.relay_udp();
            let now = self.now();
            moved |= self.iface.poll(now, &mut self.wire, &mut self.sockets)
                == smoltcp::iface::PollResult::SocketStateChanged;
            if !moved {
                break;
            }
        }
        let delay = self.iface.poll_delay(self.now(), &self.sockets);
        arm(self.timer.as_raw_fd(), delay.map(|d| d.total_micros()));
    }
}

/// Put the gateway's own ARP request for `guest` on the segment, unless `guest` lies outside the
/// gateway's subnet or was asked within [`ARP_REFRESH`] (`asked` records when).
fn ask_neighbor(asked: &mut Vec<(Ipv4Addr, Instant)>, wire: &mut Wire, guest: Ipv4Addr) {
    if guest.octets()[..3] != GATEWAY_IP.octets()[..3] || guest == GATEWAY_IP {
        return;
    }
    let now = Instant::now();
    match asked.iter_mut().find(|(ip, _)| *ip == guest) {
        Some((_, at)) if now.duration_since(*at) < ARP_REFRESH => return,
        Some((_, at)) => *at = now,
        None => asked.push((guest, now)),
    }
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(GATEWAY_MAC),
        source_protocol_addr: GATEWAY_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: guest,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(GATEWAY_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    if wire.to_guest.len() < WIRE_FRAMES {
        wire.to_guest.push_back(frame);
    } else {
        wire.dropped += 1;
    }
}

/// Add, change (`EPOLL_CTL_MOD`) or remove `fd` in the epoll set `epoll`, watched for reading
/// and/or writing.
fn watch(
    epoll: &OwnedFd,
    fd: BorrowedFd<'_>,
    read: bool,
    write: bool,
    op: libc::c_int,
) -> io::Result<()> {
    let events = (if read { libc::EPOLLIN } else { 0 }) | (if write { libc::EPOLLOUT } else { 0 });
    let mut ev = libc::epoll_event {
        events: u32::try_from(events).unwrap_or(0),
        u64: u64::try_from(fd.as_raw_fd()).unwrap_or(0),
    };
    // SAFETY: `ev` is a live epoll_event; both fds are open.
    check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd.as_raw_fd(), &mut ev) })?;
    Ok(())
}

fn write_u64(fd: RawFd, v: u64) {
    let b = v.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live buffer to an eventfd we own.
    let _ = unsafe { libc::write(fd, b.as_ptr().cast(), 8) };
}

fn read_u64(fd: RawFd) {
    let mut b = [0u8; 8];
    // SAFETY: reads 8 bytes into a live buffer from a non-blocking fd we own.
    let _ = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 8) };
}

/// Arm the timerfd `micros` from now (at least 1 us), or disarm it.
fn arm(fd: RawFd, micros: Option<u64>) {
    let us = micros.map_or(0, |m| m.max(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(us / 1_000_000).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::try_from((us % 1_000_000) * 1000).unwrap_or(0),
        },
    };
    // SAFETY: `spec` is live; the old value is not asked for.
    let _ = unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
}

impl EthDevice for UserNet {
    fn rx_room(&mut self) -> bool {
        self.rx_posted.len() < RX_RING
    }

    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.rx_posted.push_back(buf);
        if !self.wire.to_guest.is_empty() {
            self.kick();
        }
    }

    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
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
    }

    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        self.tx_done.pop_front()
    }

    fn tx_kick(&mut self) {
        self.kick();
    }

    fn ack_irq(&mut self) {
        read_u64(self.kick.as_raw_fd());
        read_u64(self.timer.as_raw_fd());
        self.pump();
        if !self.wire.to_guest.is_empty() && !self.rx_posted.is_empty() {
            // More for the guest than this interrupt's receive path will take.
            self.kick();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse() {
        assert_eq!(
            Forward::parse_list("tcp:5555:10.0.2.10:1236, udp:5556:10.0.2.11:1235").unwrap(),
            [
                Forward {
                    tcp: true,
                    host_port: 5555,
                    guest: (Ipv4Addr::new(10, 0, 2, 10), 1236)
                },
                Forward {
                    tcp: false,
                    host_port: 5556,
                    guest: (Ipv4Addr::new(10, 0, 2, 11), 1235)
                }
            ]
        );
        assert_eq!(Forward::parse_list("").unwrap(), []);
        for bad in [
            "sctp:1:10.0.0.1:2",
            "tcp:0:10.0.0.1:2",
            "tcp:1:10.0.0:2",
            "udp:1:10.0.0.1",
            "tcp:1:10.0.0.1:2:3",
        ] {
            assert_eq!(Forward::parse(bad), None, "{bad}");
        }
    }

    /// A port on 127.0.0.1 free just now.
    fn free_port() -> u16 {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The frames the gateway has for the guest, after one interrupt.
    fn interrupt(dev: &mut UserNet) -> Vec<Vec<u8>> {
        dev.ack_irq();
        dev.wire.to_guest.drain(..).collect()
    }

    /// The target of `frame` if it is an ARP request from the gateway.
    fn arp_request(frame: &[u8]) -> Option<Ipv4Address> {
        let f = EthernetFrame::new_checked(frame).ok()?;
        if f.ethertype() != EthernetProtocol::Arp {
            return None;
        }
        match ArpRepr::parse(&ArpPacket::new_checked(f.payload()).ok()?).ok()? {
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } if source_protocol_addr == GATEWAY_IP => Some(target_protocol_addr),
            _ => None,
        }
    }

    /// The model guest `ip` at `mac` answers the gateway's ARP request.
    fn arp_reply(ip: Ipv4Address, mac: [u8; 6]) -> Vec<u8> {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(mac),
            source_protocol_addr: ip,
            target_hardware_addr: EthernetAddress(GATEWAY_MAC),
            target_protocol_addr: GATEWAY_IP,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(mac),
            dst_addr: EthernetAddress(GATEWAY_MAC),
            ethertype: EthernetProtocol::Arp,
        };
        let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut f);
        arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        frame
    }

    /// Whether one of `frames` is an IPv4 packet to `mac`.
    fn ipv4_to(frames: &[Vec<u8>], mac: [u8; 6]) -> bool {
        frames.iter().any(|f| {
            EthernetFrame::new_checked(&f[..]).is_ok_and(|f| {
                f.ethertype() == EthernetProtocol::Ipv4 && f.dst_addr() == EthernetAddress(mac)
            })
        })
    }

    /// Two guests contacted one right after the other through their forwards: the second is
    /// asked for its MAC address at once, and its SYN follows its reply, not smoltcp's
    /// interface-wide 1 s silence after the first guest's ARP request.
    #[test]
    fn a_second_guest_is_reached_without_the_arp_silence() {
        let guests = [
            (Ipv4Address::new(10, 0, 2, 10), [0x52, 0x54, 1, 0, 0, 0]),
            (Ipv4Address::new(10, 0, 2, 11), [0x52, 0x54, 1, 0, 0, 1]),
        ];
        let ports = [free_port(), free_port()];
        let forwards: Vec<Forward> = guests
            .iter()
            .zip(ports)
            .map(|((ip, _), p)| Forward {
                tcp: true,
                host_port: p,
                guest: (*ip, 1236),
            })
            .collect();
        // SAFETY: no regions, so no windows.
        let dma = unsafe { Dma::new(&[]) };
        let mut dev = UserNet::new(dma, &forwards).unwrap();
        let mut hosts = Vec::new();
        for ((ip, mac), port) in guests.into_iter().zip(ports) {
            hosts.push(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap());
            let frames = interrupt(&mut dev);
            assert!(
                frames.iter().any(|f| arp_request(f) == Some(ip)),
                "no ARP request for {ip} on the first contact"
            );
            dev.wire.to_gateway.push_back(arp_reply(ip, mac));
            let frames = interrupt(&mut dev);
            assert!(ipv4_to(&frames, mac), "no SYN to {ip} after its ARP reply");
        }
        assert_eq!(dev.stats().connections, 2);
    }
}
