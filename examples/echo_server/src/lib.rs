// SPDX-License-Identifier: BSD-2-Clause
//! The echo_server example's client logic: its address config blob ([`EchoConfig`]) and the echo
//! services ([`Echo`]) over a `lions_net::client::NetStack`'s sockets.
//!
//! - **UDP echo on [`UDP_PORT`] (1235)**: every datagram goes back to its sender unchanged. While
//!   the socket's send buffer is full, received datagrams wait in its receive buffer; what
//!   overflows that is dropped by the stack (as the copier drops frames for a client with no free
//!   buffer).
//! - **TCP echo on [`TCP_PORT`] (1236)**: every byte comes back on the same connection; up to
//!   [`TCP_CONNECTIONS`] connections at once, each socket listening again when its connection
//!   ends.
#![cfg_attr(not(test), no_std)]

use lions_os::Config;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// UDP echo port.
pub const UDP_PORT: u16 = 1235;
/// TCP echo port.
pub const TCP_PORT: u16 = 1236;
/// TCP connections served at once.
pub const TCP_CONNECTIONS: usize = 4;

/// A client's address, written by the metaprogram into section `.echo_config` (20 bytes):
/// magic `"lionsEC\x01"` at 0, IPv4 address at 8, prefix length at 12 (0: use DHCP), 3 bytes of
/// padding, default gateway at 16 (0.0.0.0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EchoConfig {
    /// [`ECHO_MAGIC`].
    pub magic: [u8; 8],
    /// The address.
    pub ip: [u8; 4],
    /// Prefix length; 0 asks for DHCP.
    pub prefix: u8,
    /// Padding.
    pub _pad: [u8; 3],
    /// Default gateway; all zero for none.
    pub gateway: [u8; 4],
}

/// The magic of [`EchoConfig`].
pub const ECHO_MAGIC: [u8; 8] = *b"lionsEC\x01";

impl Config for EchoConfig {
    const SECTION: &'static str = ".echo_config";
    const MAGIC: &'static [u8] = &ECHO_MAGIC;
    const NAME: &'static str = "echo_config";

    fn validate(&self) -> Result<(), lions_os::ConfigError> {
        if self.prefix > 32 {
            return Err(lions_os::ConfigError::Invalid {
                config: Self::NAME,
                field: "prefix",
                value: u64::from(self.prefix),
            });
        }
        Ok(())
    }
}

impl EchoConfig {
    /// The interface address, or `None` for DHCP.
    pub fn cidr(&self) -> Option<Ipv4Cidr> {
        (self.prefix > 0).then(|| Ipv4Cidr::new(Ipv4Address::from(self.ip), self.prefix))
    }

    /// The default gateway, if any.
    pub fn gateway(&self) -> Option<Ipv4Address> {
        (self.gateway != [0; 4]).then(|| Ipv4Address::from(self.gateway))
    }
}

/// The echo services over their sockets (see the crate docs).
pub struct Echo {
    udp: SocketHandle,
    tcp: [SocketHandle; TCP_CONNECTIONS],
    /// Datagrams echoed.
    pub udp_echoed: u64,
    /// TCP bytes echoed.
    pub tcp_echoed: u64,
}

impl Echo {
    /// The services over a bound UDP socket and listening TCP sockets (they listen again here).
    pub fn new(udp: SocketHandle, tcp: [SocketHandle; TCP_CONNECTIONS]) -> Self {
        Self {
            udp,
            tcp,
            udp_echoed: 0,
            tcp_echoed: 0,
        }
    }

    /// Echo what arrived; true if anything moved (the stack should run again to send it).
    pub fn step(&mut self, sockets: &mut SocketSet<'_>) -> bool {
        let mut did = false;
        let udp = sockets.get_mut::<udp::Socket>(self.udp);
        while udp.can_send() {
            let Ok((data, meta)) = udp.recv() else { break };
            let mut frame = [0u8; 1500];
            let n = data.len().min(frame.len());
            frame[..n].copy_from_slice(&data[..n]);
            if udp.send_slice(&frame[..n], meta.endpoint).is_ok() {
                self.udp_echoed += 1;
            }
            did = true;
        }
        for &h in &self.tcp {
            let tcp = sockets.get_mut::<tcp::Socket>(h);
            if !tcp.is_open() {
                // Cannot fail: the socket is closed and the port is not 0.
                let _ = tcp.listen(TCP_PORT);
                continue;
            }
            let room = tcp.send_capacity() - tcp.send_queue();
            if tcp.can_recv() && room > 0 {
                let mut buf = [0u8; 1024];
                let want = room.min(buf.len());
                if let Ok(n) = tcp.recv_slice(&mut buf[..want]) {
                    // `n <= room`: all of it fits.
                    let sent = tcp.send_slice(&buf[..n]).unwrap_or(0);
                    self.tcp_echoed += sent as u64;
                    did |= n > 0;
                }
            }
            if !tcp.may_recv() && tcp.may_send() && tcp.send_queue() == 0 {
                // The peer closed its side and everything was echoed: close ours.
                tcp.close();
                did = true;
            }
        }
        did
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn config_layout_and_meaning() {
        assert_eq!(size_of::<EchoConfig>(), 20);
        assert_eq!(offset_of!(EchoConfig, ip), 8);
        assert_eq!(offset_of!(EchoConfig, prefix), 12);
        assert_eq!(offset_of!(EchoConfig, gateway), 16);
        let mut c = EchoConfig {
            magic: ECHO_MAGIC,
            ip: [10, 0, 2, 10],
            prefix: 24,
            _pad: [0; 3],
            gateway: [0; 4],
        };
        assert_eq!(
            c.cidr(),
            Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 10), 24))
        );
        assert_eq!(c.gateway(), None);
        c.gateway = [10, 0, 2, 1];
        assert_eq!(c.gateway(), Some(Ipv4Address::new(10, 0, 2, 1)));
        c.prefix = 0;
        assert_eq!(c.cidr(), None, "DHCP");
        c.prefix = 33;
        assert!(c.validate().is_err());
    }
}
