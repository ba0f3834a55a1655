// SPDX-License-Identifier: BSD-2-Clause
//! A test client application on a [`NetStack`]: UDP echo on 1235, TCP echo on 1236, and a
//! client side (ICMP echo, UDP from port 5000, one TCP connection) driven by queued commands.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, dead_code)]

use super::Mem;
use lions_net::client::{IpConfig, NetDevice, NetStack};
use lions_os::Channel;
use lions_timer::TimerClient;
use smoltcp::iface::{SocketHandle, SocketStorage};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

pub const UDP_ECHO: u16 = 1235;
pub const TCP_ECHO: u16 = 1236;

/// Client `c`'s address: 10.0.0.(10 + c)/24.
pub fn ip(c: usize) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, 10 + u8::try_from(c).unwrap())
}

/// Channel ids of a client: to its Rx side, its Tx side, its timer.
#[derive(Clone, Copy)]
pub struct Ids {
    pub rx: u8,
    pub tx: u8,
    pub timer: u8,
}

/// What a client does when the test raises its command IRQ.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// ICMP echo request to client `to`.
    Ping { to: usize, seq: u16, data: Vec<u8> },
    /// A UDP datagram from port 5000 to client `to`'s echo port.
    Udp { to: usize, data: Vec<u8> },
    /// Connect to client `to`'s TCP echo port.
    Connect { to: usize },
    /// Queue bytes on the outgoing TCP connection (sent as the send buffer allows).
    TcpSend(Vec<u8>),
    /// Close the outgoing TCP connection once every queued byte is in the socket.
    TcpClose,
}

/// A client's state, shared with the test.
#[derive(Default)]
pub struct Log {
    pub cmds: RefCell<VecDeque<Cmd>>,
    pub pongs: RefCell<Vec<(u16, Vec<u8>)>>,
    pub udp_replies: RefCell<Vec<(IpEndpoint, Vec<u8>)>>,
    pub tcp_reply: RefCell<Vec<u8>>,
    pub tcp_pending: RefCell<VecDeque<u8>>,
    pub udp_echoed: Cell<u64>,
    pub udp_rejected: Cell<u64>,
    pub tcp_echoed: Cell<u64>,
    pub tcp_close: Cell<bool>,
    /// DHCP replies sent (offers and acks).
    pub dhcp_served: Cell<u64>,
}

pub struct Sockets {
    pub udp_echo: SocketHandle,
    pub udp_client: SocketHandle,
    pub tcp_echo: SocketHandle,
    pub tcp_client: SocketHandle,
    pub icmp: SocketHandle,
    /// A DHCP server's socket (port 67), if this client serves DHCP.
    pub dhcp_srv: Option<SocketHandle>,
}

pub struct App {
    pub stack: NetStack<'static, 'static>,
    pub s: Sockets,
}

pub fn leak<T>(v: T) -> &'static mut T {
    Box::leak(Box::new(v))
}

/// Datagrams each UDP socket buffers each way (more than a client's queues hold).
pub const UDP_SLOTS: usize = 32;

pub fn udp_socket() -> udp::Socket<'static> {
    let meta = || leak([udp::PacketMetadata::EMPTY; UDP_SLOTS]);
    udp::Socket::new(
        udp::PacketBuffer::new(&mut meta()[..], &mut leak([0u8; 16384])[..]),
        udp::PacketBuffer::new(&mut meta()[..], &mut leak([0u8; 16384])[..]),
    )
}

pub fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(&mut leak([0u8; 2048])[..]),
        tcp::SocketBuffer::new(&mut leak([0u8; 2048])[..]),
    )
}

/// Client `c`'s stack over `mem` with `slots` socket slots and no sockets, at `ip(c)`/24.
pub fn make_stack(
    c: usize,
    mem: &'static Mem,
    ids: Ids,
    slots: usize,
) -> NetStack<'static, 'static> {
    let ipc = IpConfig::Static {
        address: Ipv4Cidr::new(ip(c), 24),
        gateway: None,
    };
    make_stack_with(c, mem, ids, slots, ipc)
}

/// Client `c`'s stack with the address configuration `ipc`.
pub fn make_stack_with(
    c: usize,
    mem: &'static Mem,
    ids: Ids,
    slots: usize,
    ipc: IpConfig,
) -> NetStack<'static, 'static> {
    let cfg = leak(mem.config(c, ids.rx, ids.tx));
    // SAFETY: the regions are leaked ('static) and shared only with the wire; one device per
    // client.
    let token = unsafe { lions_os::Mapped::check(cfg) }.unwrap_or_else(|e| panic!("{e}"));
    let dev = NetDevice::new(token).unwrap();
    let storage: Vec<SocketStorage<'static>> = (0..slots).map(|_| SocketStorage::EMPTY).collect();
    let storage = &mut Box::leak(storage.into_boxed_slice())[..];
    NetStack::new(dev, TimerClient::new(Channel::new(ids.timer)), ipc, storage).unwrap()
}

/// Client `c`'s stack with the echo servers and the client sockets.
pub fn make_app(c: usize, mem: &'static Mem, ids: Ids) -> App {
    let ipc = IpConfig::Static {
        address: Ipv4Cidr::new(ip(c), 24),
        gateway: None,
    };
    make_app_with(c, mem, ids, ipc, false)
}

/// As [`make_app`] with the address configuration `ipc`, and a DHCP server (port 67) if
/// `dhcp_server`.
pub fn make_app_with(
    c: usize,
    mem: &'static Mem,
    ids: Ids,
    ipc: IpConfig,
    dhcp_server: bool,
) -> App {
    let mut stack = make_stack_with(c, mem, ids, 7, ipc);
    let mut udp_echo = udp_socket();
    udp_echo.bind(UDP_ECHO).unwrap();
    let mut udp_client = udp_socket();
    udp_client.bind(5000).unwrap();
    let mut tcp_echo = tcp_socket();
    tcp_echo.listen(TCP_ECHO).unwrap();
    let meta = || leak([icmp::PacketMetadata::EMPTY; 4]);
    let mut icmp = icmp::Socket::new(
        icmp::PacketBuffer::new(&mut meta()[..], &mut leak([0u8; 2048])[..]),
        icmp::PacketBuffer::new(&mut meta()[..], &mut leak([0u8; 2048])[..]),
    );
    icmp.bind(icmp::Endpoint::Ident(0x22)).unwrap();
    let s = Sockets {
        udp_echo: stack.add_socket(udp_echo),
        udp_client: stack.add_socket(udp_client),
        tcp_echo: stack.add_socket(tcp_echo),
        tcp_client: stack.add_socket(tcp_socket()),
        icmp: stack.add_socket(icmp),
        dhcp_srv: dhcp_server.then(|| {
            let mut srv = udp_socket();
            srv.bind(67).unwrap();
            stack.add_socket(srv)
        }),
    };
    App { stack, s }
}

/// One application step over the sockets; true if it moved anything.
pub fn step(
    log: &Log,
    s: &Sockets,
    iface: &mut smoltcp::iface::Interface,
    set: &mut smoltcp::iface::SocketSet<'static>,
) -> bool {
    let mut did = false;
    // Commands.
    while let Some(cmd) = log.cmds.borrow_mut().pop_front() {
        did = true;
        match cmd {
            Cmd::Ping { to, seq, data } => {
                let repr = Icmpv4Repr::EchoRequest {
                    ident: 0x22,
                    seq_no: seq,
                    data: &data,
                };
                let sock = set.get_mut::<icmp::Socket>(s.icmp);
                let buf = sock
                    .send(repr.buffer_len(), IpAddress::Ipv4(ip(to)))
                    .unwrap();
                repr.emit(
                    &mut Icmpv4Packet::new_unchecked(buf),
                    &ChecksumCapabilities::default(),
                );
            }
            Cmd::Udp { to, data } => {
                let dst = IpEndpoint::new(IpAddress::Ipv4(ip(to)), UDP_ECHO);
                if set
                    .get_mut::<udp::Socket>(s.udp_client)
                    .send_slice(&data, dst)
                    .is_err()
                {
                    log.udp_rejected.set(log.udp_rejected.get() + 1);
                }
            }
            Cmd::Connect { to } => {
                let dst = IpEndpoint::new(IpAddress::Ipv4(ip(to)), TCP_ECHO);
                set.get_mut::<tcp::Socket>(s.tcp_client)
                    .connect(iface.context(), dst, 40000)
                    .unwrap();
            }
            Cmd::TcpSend(data) => log.tcp_pending.borrow_mut().extend(data),
            Cmd::TcpClose => log.tcp_close.set(true),
        }
    }
    // DHCP server: every client gets DHCP_LEASE, this client is router and server.
    if let Some(h) = s.dhcp_srv {
        did |= serve_dhcp(log, set.get_mut::<udp::Socket>(h), iface);
    }
    // UDP echo server.
    let sock = set.get_mut::<udp::Socket>(s.udp_echo);
    while sock.can_send()
        && let Ok((data, meta)) = sock.recv()
    {
        let (data, from) = (data.to_vec(), meta.endpoint);
        sock.send_slice(&data, from).unwrap();
        log.udp_echoed.set(log.udp_echoed.get() + 1);
        did = true;
    }
    // TCP echo server: echo what fits, listen again once a connection is gone.
    let sock = set.get_mut::<tcp::Socket>(s.tcp_echo);
    if sock.can_recv() && sock.can_send() {
        let room = sock.send_capacity() - sock.send_queue();
        let mut buf = vec![0u8; room];
        let n = sock.recv_slice(&mut buf).unwrap();
        assert_eq!(sock.send_slice(&buf[..n]).unwrap(), n);
        log.tcp_echoed.set(log.tcp_echoed.get() + n as u64);
        did |= n > 0;
    }
    if !sock.is_open() {
        sock.listen(TCP_ECHO).unwrap();
    }
    // Clients.
    let sock = set.get_mut::<udp::Socket>(s.udp_client);
    while let Ok((data, meta)) = sock.recv() {
        log.udp_replies
            .borrow_mut()
            .push((meta.endpoint, data.to_vec()));
        did = true;
    }
    let sock = set.get_mut::<icmp::Socket>(s.icmp);
    while let Ok((data, _)) = sock.recv() {
        let p = Icmpv4Packet::new_checked(data).unwrap();
        if let Ok(Icmpv4Repr::EchoReply { seq_no, data, .. }) =
            Icmpv4Repr::parse(&p, &ChecksumCapabilities::default())
        {
            log.pongs.borrow_mut().push((seq_no, data.to_vec()));
        }
        did = true;
    }
    let sock = set.get_mut::<tcp::Socket>(s.tcp_client);
    if sock.can_recv() {
        let mut buf = [0u8; 4096];
        let n = sock.recv_slice(&mut buf).unwrap();
        log.tcp_reply.borrow_mut().extend_from_slice(&buf[..n]);
        did |= n > 0;
    }
    let mut pending = log.tcp_pending.borrow_mut();
    if sock.can_send() && !pending.is_empty() {
        let (a, _) = pending.as_slices();
        let n = sock.send_slice(a).unwrap();
        pending.drain(..n);
        did |= n > 0;
    }
    if log.tcp_close.get() && pending.is_empty() && sock.may_send() {
        sock.close();
        log.tcp_close.set(false);
        did = true;
    }
    did
}

/// The address the test DHCP server leases.
pub const DHCP_LEASE: Ipv4Address = Ipv4Address::new(10, 0, 0, 50);

/// Answer DISCOVER with OFFER and REQUEST with ACK (one fixed lease); true if anything was sent.
fn serve_dhcp(
    log: &Log,
    sock: &mut udp::Socket<'static>,
    iface: &mut smoltcp::iface::Interface,
) -> bool {
    use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr};
    let Some(me) = iface.ipv4_addr() else {
        return false;
    };
    let mut did = false;
    while let Ok((data, _)) = sock.recv() {
        let data = data.to_vec();
        let Ok(packet) = DhcpPacket::new_checked(&data[..]) else {
            continue;
        };
        let Ok(req) = DhcpRepr::parse(&packet) else {
            continue;
        };
        let reply_type = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => DhcpMessageType::Ack,
            _ => continue,
        };
        let reply = DhcpRepr {
            message_type: reply_type,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: req.client_hardware_address,
            client_ip: Ipv4Address::UNSPECIFIED,
            your_ip: DHCP_LEASE,
            server_ip: me,
            router: Some(me),
            subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Address::UNSPECIFIED,
            broadcast: true,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(me),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(3600),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut buf = vec![0u8; reply.buffer_len()];
        reply
            .emit(&mut DhcpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        let to = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::BROADCAST), 68);
        sock.send_slice(&buf, to).unwrap();
        log.dhcp_served.set(log.dhcp_served.get() + 1);
        did = true;
    }
    did
}
