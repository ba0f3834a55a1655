// SPDX-License-Identifier: BSD-2-Clause
//! The user-mode network against real host sockets: forwards, ARP, TCP and UDP relays.

use super::*;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
};
use std::net::{TcpListener, TcpStream};

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

/// The events ready on the driver's epoll set now, without waiting.
fn ready_events(dev: &UserNet) -> Vec<u32> {
    use std::os::fd::AsRawFd;
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
    // SAFETY: `evs` is a live array of 16 epoll_events; the epoll fd is open.
    let n = unsafe { libc::epoll_wait(dev.epoll.as_raw_fd(), evs.as_mut_ptr(), 16, 0) };
    evs[..usize::try_from(n).unwrap()]
        .iter()
        .map(|e| e.events)
        .collect()
}

/// A forwarded connection the guest closes first (its FIN passed on as a shutdown of the host
/// socket), then the host: the host socket, finished both ways, leaves the epoll set, so its
/// endless `EPOLLHUP` cannot wake the driver again and again while the guest's side closes (it
/// did: the driver spun, and at a real-time priority starved the guest that was to close).
#[test]
fn a_connection_the_guest_closes_first_leaves_nothing_ready() {
    use smoltcp::iface::SocketStorage;
    use smoltcp::iface::{Config, Interface, SocketSet};
    use smoltcp::socket::tcp;
    use smoltcp::wire::{HardwareAddress, IpCidr};
    use std::io::Read;

    let port = free_port();
    let (ip, mac) = (Ipv4Address::new(10, 0, 2, 10), [0x52, 0x54, 1, 0, 0, 0]);
    let forwards = [Forward {
        tcp: true,
        host_port: port,
        guest: (Ipv4Addr::new(10, 0, 2, 10), 1236),
    }];
    // SAFETY: no regions, so no windows.
    let dma = unsafe { Dma::new(&[]) };
    let mut dev = UserNet::new(dma, &forwards).unwrap();
    // The guest: a smoltcp stack on a wire of its own (its `to_gateway` is what it receives).
    let mut wire = Wire::default();
    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    let mut iface = Interface::new(config, &mut wire, SmolInstant::ZERO);
    iface.update_ip_addrs(|a| a.push(IpCidr::new(ip.into(), 24)).unwrap());
    let mut storage = [SocketStorage::EMPTY];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let (mut rx, mut tx) = ([0u8; 4096], [0u8; 4096]);
    let h = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut rx[..]),
        tcp::SocketBuffer::new(&mut tx[..]),
    ));
    sockets.get_mut::<tcp::Socket>(h).listen(1236).unwrap();
    let mut host = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    host.set_nonblocking(true).unwrap();
    let mut now = SmolInstant::ZERO;
    let mut step = |dev: &mut UserNet, sockets: &mut SocketSet<'_>| {
        dev.ack_irq();
        wire.to_gateway.extend(dev.wire.to_guest.drain(..));
        now += smoltcp::time::Duration::from_millis(10);
        iface.poll(now, &mut wire, sockets);
        dev.wire.to_gateway.extend(wire.to_guest.drain(..));
    };
    let mut said = false;
    let mut got = Vec::new();
    for _ in 0..500 {
        step(&mut dev, &mut sockets);
        let sock = sockets.get_mut::<tcp::Socket>(h);
        if !said && sock.may_send() {
            sock.send_slice(b"bye").unwrap();
            sock.close();
            said = true;
        }
        let mut b = [0u8; 16];
        match host.read(&mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
        }
    }
    assert_eq!(got, b"bye", "the guest's data, then its end of stream");
    drop(host);
    // The host's close reaches the driver; the guest has not answered yet.
    dev.ack_irq();
    dev.ack_irq();
    let hup = u32::try_from(libc::EPOLLHUP).unwrap();
    assert!(
        ready_events(&dev).iter().all(|e| e & hup == 0),
        "a finished host socket still wakes the driver: {:?}",
        ready_events(&dev)
    );
    for _ in 0..200 {
        step(&mut dev, &mut sockets);
    }
    assert!(
        dev.conns.is_empty(),
        "the connection is gone once both sides closed"
    );
}
