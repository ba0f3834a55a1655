// SPDX-License-Identifier: BSD-2-Clause
//! The gateway's relays: host connections and datagrams to and from the guest through the
//! smoltcp stack, and the pump that runs them until the gateway is idle.

use super::wire::ask_neighbor;
use super::{Forward, TCP_BUF, UDP_SLOTS, UserNet, leak, leak_bytes, sys};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

/// A forwarded TCP connection.
pub(super) struct Conn {
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
    /// The host socket is out of the epoll set: both of its directions are finished (a socket
    /// shut both ways reports `EPOLLHUP` whatever the interest set, and would wake the driver
    /// without end while the guest's side closes).
    unwatched: bool,
}

/// A listening or bound forward and its state.
pub(super) enum Port {
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

impl Port {
    /// Forward number `i`: its host socket bound on 127.0.0.1 (an error names the port) and, for
    /// UDP, its gateway socket in `sockets`.
    pub(super) fn open(i: usize, f: Forward, sockets: &mut SocketSet<'static>) -> io::Result<Self> {
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
            return Ok(Self::Tcp { fwd: f, listener });
        }
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
        Ok(Self::Udp {
            fwd: f,
            host,
            handle,
            peer: None,
        })
    }

    /// The host socket, for the epoll set.
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp { listener, .. } => listener.as_fd(),
            Self::Udp { host, .. } => host.as_fd(),
        }
    }
}

impl UserNet {
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
                if sys::epoll_ctl_fd(
                    self.epoll.as_fd(),
                    host.as_fd(),
                    true,
                    false,
                    libc::EPOLL_CTL_ADD,
                )
                .is_ok()
                {
                    self.conns.push(Conn {
                        guest: fwd.guest.0,
                        host,
                        slot,
                        to_host: Vec::new(),
                        host_eof: false,
                        established: false,
                        shut: false,
                        unwatched: false,
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
            let host_finished = c.host_eof && c.shut && !write;
            if (done || host_finished) && !c.unwatched {
                let _ = sys::epoll_ctl_fd(
                    self.epoll.as_fd(),
                    c.host.as_fd(),
                    false,
                    false,
                    libc::EPOLL_CTL_DEL,
                );
                c.unwatched = true;
            }
            if done {
                self.tcp_slots[c.slot].1 = false;
                self.conns.swap_remove(i);
                moved = true;
                continue;
            }
            if !c.unwatched {
                let _ = sys::epoll_ctl_fd(
                    self.epoll.as_fd(),
                    c.host.as_fd(),
                    read,
                    write,
                    libc::EPOLL_CTL_MOD,
                );
            }
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
    pub(super) fn pump(&mut self) {
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
        sys::timerfd_arm_in(self.timer.as_fd(), delay.map(|d| d.total_micros()));
    }
}
