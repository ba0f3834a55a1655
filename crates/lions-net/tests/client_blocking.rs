// SPDX-License-Identifier: BSD-2-Clause
//! The blocking layer: a client using `TcpStream` (embedded-io `Read`/`Write`) and `UdpSocket`
//! against an event-driven peer stack (UDP and TCP echo), back to back through the test wire.
//!
//! A blocking call spins with `lions_os::relax`; here the PD's backend is a test one whose `relax`
//! is "the rest of the system running": it advances the clock by 1 ms, runs the wire and lets the
//! peer stack process. Its timer answers `GET_TIME` from that clock.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod client_common;

use client_common::app::{
    App, Cmd, Ids, Log, TCP_ECHO, UDP_ECHO, ip, make_app, make_stack, step, tcp_socket, udp_socket,
};
use client_common::{Mem, Wire};
use embedded_io::{Read, Write};
use lions_net::client::{NetStack, TcpError, TcpStream, UdpSocket};
use lions_os::runtime::{Backend, with_backend};
use lions_os::{Channel, MessageInfo, OsError};
use lions_timer::TimerLabel;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
use std::cell::{Cell, RefCell};

const IDS: Ids = Ids {
    rx: 0,
    tx: 1,
    timer: 2,
};
const MS: u64 = 1_000_000;

/// The rest of the system, run by `relax`.
struct World {
    clock: Cell<u64>,
    mrs: RefCell<[u64; 4]>,
    wire: RefCell<Option<Wire<'static>>>,
    peer: RefCell<Option<App>>,
    peer_log: &'static Log,
    relaxes: Cell<u64>,
}

impl Backend for World {
    fn pd_name(&self) -> &str {
        "client"
    }
    fn notify(&self, _: Channel) -> Result<(), OsError> {
        Ok(())
    }
    fn irq_ack(&self, _: Channel) -> Result<(), OsError> {
        Ok(())
    }
    fn ppcall(&self, _: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        if msg.label() == TimerLabel::GetTime.label() {
            self.mrs.borrow_mut()[0] = self.clock.get();
            return Ok(MessageInfo::new(0, 1));
        }
        Ok(MessageInfo::new(0, 0))
    }
    fn mr(&self, i: usize) -> u64 {
        self.mrs.borrow().get(i).copied().unwrap_or(0)
    }
    fn set_mr(&self, i: usize, value: u64) {
        if let Some(m) = self.mrs.borrow_mut().get_mut(i) {
            *m = value;
        }
    }
    fn relax(&self) {
        self.relaxes.set(self.relaxes.get() + 1);
        self.clock.set(self.clock.get() + MS);
        self.wire.borrow_mut().as_mut().unwrap().pump();
        let mut peer = self.peer.borrow_mut();
        let app = peer.as_mut().unwrap();
        let s = &app.s;
        let log = self.peer_log;
        app.stack
            .process(|iface, set| step(log, s, iface, set))
            .unwrap();
        self.wire.borrow_mut().as_mut().unwrap().pump();
    }
}

/// The blocking client: a stack with free socket slots.
struct Me {
    stack: NetStack<'static, 'static>,
}

/// Client 0 is the event-driven peer, client 1 the blocking one (returned, with the world).
fn setup() -> (&'static World, Me) {
    let mems: &'static [Mem] = Box::leak((0..2).map(|_| Mem::new()).collect());
    let world: &'static World = Box::leak(Box::new(World {
        clock: Cell::new(1_000 * MS),
        mrs: RefCell::new([0; 4]),
        wire: RefCell::new(None),
        peer: RefCell::new(None),
        peer_log: Box::leak(Box::default()),
        relaxes: Cell::new(0),
    }));
    let me = with_backend(world, || {
        *world.peer.borrow_mut() = Some(make_app(0, &mems[0], IDS));
        Me {
            stack: make_stack(1, &mems[1], IDS, 4),
        }
    });
    *world.wire.borrow_mut() = Some(Wire::new(
        mems,
        |c| IDS.rx + 2 * c as u8,
        |c| IDS.tx + 2 * c as u8,
    ));
    (world, me)
}

fn peer_ep(port: u16) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(ip(0)), port)
}

#[test]
fn tcp_stream_write_all_read_exact_through_an_echo() {
    let (world, mut me) = setup();
    let h = me.stack.add_socket(tcp_socket());
    with_backend(world, || {
        let mut s = TcpStream::connect(&mut me.stack, h, peer_ep(TCP_ECHO), 41000, None).unwrap();
        assert_eq!(s.remote(), Some(peer_ep(TCP_ECHO)));
        // More than every buffer on the way (2 KiB socket buffers, 16-frame queues), in chunks
        // the echo can hold, so neither side waits for the other forever.
        let data: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
        let mut back = vec![0u8; data.len()];
        for (chunk, out) in data.chunks(1000).zip(back.chunks_mut(1000)) {
            s.write_all(chunk).unwrap();
            s.flush().unwrap();
            s.read_exact(out).unwrap();
        }
        assert_eq!(back, data);
        s.close().unwrap();
    });
    assert_eq!(world.peer_log.tcp_echoed.get(), 60_000);
    assert!(world.relaxes.get() > 0, "the calls did block");
}

#[test]
fn tcp_accept_reads_to_end_of_stream() {
    let (world, mut me) = setup();
    let h = me.stack.add_socket(tcp_socket());
    // The peer connects to us on the echo port number, sends a line and closes its side.
    let data = b"hello from the peer, then FIN".to_vec();
    world.peer_log.cmds.borrow_mut().extend([
        Cmd::Connect { to: 1 },
        Cmd::TcpSend(data.clone()),
        Cmd::TcpClose,
    ]);
    with_backend(world, || {
        let mut s = TcpStream::accept(&mut me.stack, h, TCP_ECHO, Some(5_000 * MS)).unwrap();
        assert_eq!(s.remote().map(|e| e.addr), Some(IpAddress::Ipv4(ip(0))));
        let mut got = [0u8; 64];
        let mut n = 0;
        loop {
            match s.read(&mut got[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        assert_eq!(&got[..n], &data[..], "everything, then end of stream");
        // Our reply reaches the peer's client socket.
        s.write_all(b"ok").unwrap();
        s.flush().unwrap();
        s.close().unwrap();
    });
    assert_eq!(*world.peer_log.tcp_reply.borrow(), b"ok");
}

#[test]
fn udp_send_to_and_recv_from() {
    let (world, mut me) = setup();
    let h = me.stack.add_socket(udp_socket());
    with_backend(world, || {
        let mut u = UdpSocket::bind(&mut me.stack, h, 6000).unwrap();
        for i in 0..20u8 {
            let msg = vec![i; 10 + usize::from(i) * 50];
            u.send_to(&msg, peer_ep(UDP_ECHO)).unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = u.recv_from(&mut buf).unwrap();
            assert_eq!((from, &buf[..n]), (peer_ep(UDP_ECHO), &msg[..]));
        }
        // A datagram larger than the caller's buffer is reported, not silently cut.
        u.send_to(&[7u8; 100], peer_ep(UDP_ECHO)).unwrap();
        let mut small = [0u8; 10];
        assert_eq!(u.recv_from(&mut small), Err(TcpError::Size));
    });
    assert_eq!(world.peer_log.udp_echoed.get(), 21);
}

#[test]
fn calls_time_out_on_the_timer_clock() {
    let (world, mut me) = setup();
    let h = me.stack.add_socket(tcp_socket());
    let u = me.stack.add_socket(udp_socket());
    with_backend(world, || {
        // Nobody answers ARP for this address: the connection never gets going.
        let nobody = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 99)), 80);
        let start = world.clock.get();
        let r = TcpStream::connect(&mut me.stack, h, nobody, 41001, Some(300 * MS));
        assert!(matches!(r, Err(TcpError::TimedOut)));
        let waited = world.clock.get() - start;
        assert!(
            (300 * MS..400 * MS).contains(&waited),
            "waited {waited} ns of model time"
        );
        let mut u = UdpSocket::bind(&mut me.stack, u, 6001).unwrap();
        u.set_timeout(Some(50 * MS));
        let mut buf = [0u8; 16];
        assert_eq!(u.recv_from(&mut buf), Err(TcpError::TimedOut));
    });
}

#[test]
fn refused_connection_is_closed_not_a_hang() {
    let (world, mut me) = setup();
    let h = me.stack.add_socket(tcp_socket());
    with_backend(world, || {
        // The peer has no listener on port 9: it answers the SYN with a reset.
        let r = TcpStream::connect(&mut me.stack, h, peer_ep(9), 41002, Some(5_000 * MS));
        assert!(matches!(r, Err(TcpError::Closed)), "{:?}", r.err());
    });
}
