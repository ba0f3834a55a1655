// SPDX-License-Identifier: BSD-2-Clause
//! `client0`, `client1`: a network client of the example, serving UDP echo on 1235 and TCP echo
//! on 1236 ([`echo_server::Echo`]) at the address in its `.echo_config` (or by DHCP), through a
//! [`NetStack`] over its queues to its copier and the Tx virtualiser. It greets on the serial
//! console with its address once the stack is up.
#![cfg_attr(target_os = "none", no_std, no_main)]

use echo_server::{Echo, EchoConfig, TCP_CONNECTIONS, TCP_PORT, UDP_PORT};
use lions_net::NetClientConfig;
use lions_net::client::{IpConfig, NetDevice, NetStack, StaticCell};
use lions_os::{ChannelSet, Handler};
use lions_serial::client::SerialClient;
use lions_serial::{SerialClientConfig, serial_println};
use lions_timer::{TimerClient, TimerClientConfig};
use smoltcp::iface::SocketStorage;
use smoltcp::socket::{tcp, udp};

lions_os::config!(static NET: NetClientConfig = ".net_client_config");
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");
lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");
lions_os::config!(static ECHO: EchoConfig = ".echo_config");

/// Datagrams the UDP socket buffers each way.
const UDP_SLOTS: usize = 64;
/// Bytes each TCP socket buffers each way.
const TCP_BUF: usize = 16 * 1024;
/// Socket slots: DHCP, UDP, the TCP sockets.
const SOCKETS: usize = 2 + TCP_CONNECTIONS;

static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> =
    StaticCell::new([SocketStorage::EMPTY; SOCKETS]);
static UDP_META: StaticCell<[[udp::PacketMetadata; UDP_SLOTS]; 2]> =
    StaticCell::new([[udp::PacketMetadata::EMPTY; UDP_SLOTS]; 2]);
static UDP_DATA: StaticCell<[[u8; UDP_SLOTS * 1500]; 2]> =
    StaticCell::new([[0; UDP_SLOTS * 1500]; 2]);
static TCP_DATA: StaticCell<[[u8; TCP_BUF]; 2 * TCP_CONNECTIONS]> =
    StaticCell::new([[0; TCP_BUF]; 2 * TCP_CONNECTIONS]);

struct Client {
    stack: NetStack<'static, 'static>,
    echo: Echo,
    serial: SerialClient<'static>,
    greeted: bool,
}

impl Client {
    /// Greet once the interface has an address (at once with a static one).
    fn greet(&mut self) {
        if self.greeted {
            return;
        }
        if let Some(cidr) = self.stack.ipv4_cidr() {
            let name = lions_os::pd_name();
            let mac = self.stack.device().mac();
            // Output is best effort: a full console queue must not stop the server.
            let _ = serial_println!(
                self.serial,
                "{name}: {cidr} ({mac}): UDP echo on {UDP_PORT}, TCP echo on {TCP_PORT}"
            );
            self.greeted = true;
        }
    }
}

impl Handler for Client {
    type Error = lions_net::Error;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        let echo = &mut self.echo;
        self.stack.process(|_, sockets| echo.step(sockets))?;
        self.greet();
        Ok(())
    }
}

/// The one-time storage, or a fault (init runs once per PD).
fn once<T>(cell: &'static StaticCell<T>) -> &'static mut T {
    match cell.take() {
        Some(v) => v,
        None => panic!("{}: storage taken twice", lions_os::pd_name()),
    }
}

fn init() -> Client {
    let name = lions_os::pd_name();
    let (net, timer, serial, echo) = match (NET.mapped(), TIMER.get(), SERIAL.mapped(), ECHO.get())
    {
        (Ok(n), Ok(t), Ok(s), Ok(e)) => (n, t, s, e),
        (n, t, s, e) => panic!(
            "{name}: config: {:?} {:?} {:?} {:?}",
            n.err(),
            t.err(),
            s.err(),
            e.err()
        ),
    };
    let serial = match SerialClient::new(serial) {
        Ok(s) => s,
        Err(e) => panic!("{name}: serial: {e}"),
    };
    let device = match NetDevice::new(net) {
        Ok(d) => d,
        Err(e) => panic!("{name}: net queues: {e}"),
    };
    let Some(timer) = TimerClient::from_config(timer) else {
        panic!("{name}: timer channel above 61");
    };
    let ip = match echo.cidr() {
        Some(address) => IpConfig::Static {
            address,
            gateway: echo.gateway(),
        },
        None => IpConfig::Dhcp,
    };
    let mut stack = match NetStack::new(device, timer, ip, &mut once(&SOCKET_STORAGE)[..]) {
        Ok(s) => s,
        Err(e) => panic!("{name}: {e}"),
    };
    let [m0, m1] = once(&UDP_META);
    let [d0, d1] = once(&UDP_DATA);
    let mut udp = udp::Socket::new(
        udp::PacketBuffer::new(&mut m0[..], &mut d0[..]),
        udp::PacketBuffer::new(&mut m1[..], &mut d1[..]),
    );
    if udp.bind(UDP_PORT).is_err() {
        panic!("{name}: cannot bind UDP {UDP_PORT}");
    }
    let udp = stack.add_socket(udp);
    let mut bufs = once(&TCP_DATA).iter_mut();
    let tcp = core::array::from_fn(|_| match (bufs.next(), bufs.next()) {
        (Some(rx), Some(tx)) => {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            );
            // Cannot fail: a new socket, port not 0.
            let _ = s.listen(TCP_PORT);
            stack.add_socket(s)
        }
        _ => panic!("{name}: TCP buffers miscounted"),
    });
    let mut client = Client {
        stack,
        echo: Echo::new(udp, tcp),
        serial,
        greeted: false,
    };
    if let Err(e) = client.notified(ChannelSet::EMPTY) {
        panic!("{name}: first poll: {e}");
    }
    client
}

lions_os::protection_domain!(init);
