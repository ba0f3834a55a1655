// SPDX-License-Identifier: BSD-2-Clause
//! `webserver`: LionsOS's web server PD. An HTTP/1.1 static-file server ([`webserver::conn`])
//! on a [`NetStack`] (its own copier and the Tx virtualiser), serving the files of its FS server
//! (`fs_fat` on a blk partition, or `fs_nfs` on an NFSv3 export) on the port and with as many
//! connections at once as its `.webserver_config` says (one listening TCP socket each), and
//! printing one line per response on its serial console:
//! `webserver: <peer> <METHOD> <path> <status> <body bytes>`.
//!
//! File-system calls are the blocking FS client ([`FsClient::call`]): each stat, open and read
//! waits for the server's completion. That finishes because the FS server runs concurrently (the
//! host board: a process of its own; seL4: a higher priority). Reads go from the share region
//! straight into the TCP socket's send buffer; closes are sent without waiting.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_fs::{
    AccessMode, FsClient, FsClientConfig, FsError, OpenFlags, Reply, Request, Status as FsStatus,
};
use lions_net::NetClientConfig;
use lions_net::client::{IpConfig, NetDevice, NetStack, StaticCell};
use lions_os::{ChannelSet, Handler, startup_failed as fail};
use lions_serial::client::{OnFull, SerialClient};
use lions_serial::{SerialClientConfig, serial_println};
use lions_timer::{TimerClient, TimerClientConfig};
use smoltcp::iface::{SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use webserver::conn::{Conn, FileSource, Kind, LogEntry, SourceError};
use webserver::http::Meta;
use webserver::{MAX_CONNECTIONS, WebConfig};

lions_os::config!(static NET: NetClientConfig = ".net_client_config");
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");
lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");
lions_os::config!(static FS: FsClientConfig = ".fs_client_config");
lions_os::config!(static WEB: WebConfig = ".webserver_config");

/// Bytes each TCP socket buffers for receiving (request heads).
const TCP_RX: usize = 4 * 1024;
/// Bytes each TCP socket buffers for sending (response bodies are read straight into it).
const TCP_TX: usize = 64 * 1024;
/// Socket slots: DHCP and the TCP sockets.
const SOCKETS: usize = 1 + MAX_CONNECTIONS;
/// `S_IFMT` and `S_IFDIR` of a stat's mode.
const S_IFMT: u64 = 0o170_000;
const S_IFDIR: u64 = 0o040_000;

static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> =
    StaticCell::new([SocketStorage::EMPTY; SOCKETS]);
static TCP_RX_DATA: StaticCell<[[u8; TCP_RX]; MAX_CONNECTIONS]> =
    StaticCell::new([[0; TCP_RX]; MAX_CONNECTIONS]);
static TCP_TX_DATA: StaticCell<[[u8; TCP_TX]; MAX_CONNECTIONS]> =
    StaticCell::new([[0; TCP_TX]; MAX_CONNECTIONS]);
static CONNS: StaticCell<[Conn; MAX_CONNECTIONS]> =
    StaticCell::new([const { Conn::new() }; MAX_CONNECTIONS]);

/// The seL4 PD's heap: built together with `fs_fat`, lions-fs links `alloc`; nothing here
/// allocates, so a small one.
#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: lions_os::heap::Heap<{ 64 << 10 }> = lions_os::heap::Heap::new();

/// The FS client as the server's file source (blocking calls).
struct Files {
    fs: FsClient<'static>,
}

impl FileSource for Files {
    fn stat(&mut self, path: &str) -> Result<Kind, SourceError> {
        match self.fs.call(Request::Stat { path }, &mut []) {
            Ok(Reply::Stat(st)) if st.mode & S_IFMT == S_IFDIR => Ok(Kind::Dir),
            Ok(Reply::Stat(st)) => Ok(Kind::File(Meta {
                size: st.size,
                mtime: st.mtime,
            })),
            Err(FsError::Status(
                FsStatus::NoFile | FsStatus::InvalidPath | FsStatus::InvalidName,
            )) => Ok(Kind::Missing),
            _ => Err(SourceError),
        }
    }

    fn open(&mut self, path: &str) -> Result<u64, SourceError> {
        let flags = OpenFlags::new(AccessMode::ReadOnly);
        match self.fs.call(Request::Open { path, flags }, &mut []) {
            Ok(Reply::Fd(fd)) => Ok(fd),
            _ => Err(SourceError),
        }
    }

    fn read(&mut self, fd: u64, offset: u64, out: &mut [u8]) -> Result<usize, SourceError> {
        let len = (out.len() as u64).min(self.fs.buffer_bytes());
        match self.fs.call(Request::Read { fd, offset, len }, out) {
            Ok(Reply::Read(n)) => Ok(n),
            _ => Err(SourceError),
        }
    }

    fn close(&mut self, fd: u64) {
        // Not waited for: the completion is dropped when it comes.
        if let Ok(id) = self.fs.submit(Request::Close { fd }) {
            self.fs.discard(id);
        }
    }
}

/// The sockets, their connections and the file source.
struct Web {
    sockets: [SocketHandle; MAX_CONNECTIONS],
    n: usize,
    /// Per socket: it was seen in TIME-WAIT one round ago.
    lingered: [bool; MAX_CONNECTIONS],
    conns: &'static mut [Conn],
    files: Files,
    serial: SerialClient<'static>,
    port: u16,
}

impl Web {
    /// Serve every connection as far as its socket allows; true if anything moved.
    fn step(&mut self, set: &mut SocketSet<'_>) -> bool {
        let mut did = false;
        let slots = self.sockets[..self.n].iter().zip(self.conns.iter_mut());
        for ((&h, conn), lingered) in slots.zip(self.lingered.iter_mut()) {
            let tcp = set.get_mut::<tcp::Socket>(h);
            if tcp.state() == tcp::State::TimeWait && !*lingered {
                // We closed first and the peer's FIN came: one more round of the stack sends
                // its ACK, then the slot listens again at once instead of after TIME-WAIT's
                // 10 s (a server closing first would otherwise run out of listening sockets).
                *lingered = true;
                did = true;
                continue;
            }
            if !tcp.is_open() {
                *lingered = false;
                conn.reset(&mut self.files);
                // Cannot fail: the socket is closed and the port is not 0.
                let _ = tcp.listen(self.port);
                continue;
            }
            if !tcp.is_active() {
                // Listening: nothing to serve yet.
                continue;
            }
            let peer = tcp.remote_endpoint();
            while tcp.can_recv() && !conn.receive_buffer().is_empty() {
                match tcp.recv_slice(conn.receive_buffer()) {
                    Ok(n) if n > 0 => {
                        conn.received(n);
                        did = true;
                    }
                    _ => break,
                }
            }
            let (files, serial) = (&mut self.files, &mut self.serial);
            let mut log = |e: &LogEntry<'_>| {
                let method = e.method.map_or("-", |m| m.as_str());
                let path = if e.path.is_empty() { "-" } else { e.path };
                // Best effort (the client drops what does not fit): the console never stops the
                // server.
                let _ = match peer {
                    Some(p) => serial_println!(
                        serial,
                        "webserver: {} {method} {path} {} {}",
                        p.addr,
                        e.status,
                        e.bytes
                    ),
                    None => serial_println!(
                        serial,
                        "webserver: - {method} {path} {} {}",
                        e.status,
                        e.bytes
                    ),
                };
            };
            while tcp.can_send() && !conn.done() {
                match tcp.send(|buf| {
                    let n = conn.produce(buf, files, &mut log);
                    (n, n)
                }) {
                    Ok(n) if n > 0 => {
                        did = true;
                    }
                    _ => break,
                }
            }
            if conn.done() && tcp.send_queue() == 0 {
                tcp.close();
                conn.reset(files);
                did = true;
            } else if tcp.state() == tcp::State::CloseWait && conn.idle() && tcp.send_queue() == 0 {
                // The peer finished sending and every request is answered.
                tcp.close();
                did = true;
            }
        }
        did
    }
}

struct Server {
    stack: NetStack<'static, 'static>,
    web: Web,
    greeted: bool,
}

impl Handler for Server {
    type Error = lions_net::Error;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        let web = &mut self.web;
        self.stack.process(|_, sockets| web.step(sockets))?;
        if !self.greeted
            && let Some(cidr) = self.stack.ipv4_cidr()
        {
            let n = self.web.n;
            let port = self.web.port;
            let _ = serial_println!(
                self.web.serial,
                "webserver: serving http://{}:{port}/ ({n} connections)",
                cidr.address()
            );
            self.greeted = true;
        }
        Ok(())
    }
}

/// The one-time storage (init runs once per PD).
fn once<T>(cell: &'static StaticCell<T>) -> &'static mut T {
    match cell.take() {
        Some(v) => v,
        None => fail("storage taken twice"),
    }
}

fn init() -> Server {
    let (net, timer, serial, fs, web) = match (
        NET.mapped(),
        TIMER.get(),
        SERIAL.mapped(),
        FS.mapped(),
        WEB.get(),
    ) {
        (Ok(n), Ok(t), Ok(s), Ok(f), Ok(w)) => (n, t, s, f, w),
        (n, t, s, f, w) => fail(format_args!(
            "config: {:?} {:?} {:?} {:?} {:?}",
            n.err(),
            t.err(),
            s.err(),
            f.err(),
            w.err()
        )),
    };
    let mut serial = match SerialClient::new(serial) {
        Ok(s) => s,
        Err(e) => fail(format_args!("serial: {e}")),
    };
    serial.set_on_full(OnFull::Drop);
    let mut fs = match FsClient::new(fs) {
        Ok(f) => f,
        Err(e) => fail(format_args!("fs: {e}")),
    };
    if let Err(e) = fs.call(Request::Initialise, &mut []) {
        fail(format_args!("mount: {e}"));
    }
    let device = match NetDevice::new(net) {
        Ok(d) => d,
        Err(e) => fail(format_args!("net queues: {e}")),
    };
    let Some(timer) = TimerClient::from_config(timer) else {
        fail("timer channel above 61");
    };
    let ip = match web.prefix {
        0 => IpConfig::Dhcp,
        prefix => IpConfig::Static {
            address: smoltcp::wire::Ipv4Cidr::new(web.ip.into(), prefix),
            gateway: (web.gateway != [0; 4]).then(|| web.gateway.into()),
        },
    };
    let mut stack = match NetStack::new(device, timer, ip, &mut once(&SOCKET_STORAGE)[..]) {
        Ok(s) => s,
        Err(e) => fail(e),
    };
    let n = usize::from(web.connections);
    let mut list = [None; MAX_CONNECTIONS];
    let rx = once(&TCP_RX_DATA);
    let tx = once(&TCP_TX_DATA);
    for ((slot, rx), tx) in list
        .iter_mut()
        .zip(rx.iter_mut())
        .zip(tx.iter_mut())
        .take(n)
    {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        s.set_nagle_enabled(false);
        // Cannot fail: a new socket, port not 0 (validated).
        let _ = s.listen(web.port);
        *slot = Some(stack.add_socket(s));
    }
    // `n >= 1` (validated): the unused slots repeat the first socket and are never served.
    let Some(first) = list[0] else {
        fail("no connections configured");
    };
    let mut server = Server {
        stack,
        web: Web {
            sockets: list.map(|h| h.unwrap_or(first)),
            n,
            lingered: [false; MAX_CONNECTIONS],
            conns: &mut once(&CONNS)[..n],
            files: Files { fs },
            serial,
            port: web.port,
        },
        greeted: false,
    };
    if let Err(e) = server.notified(ChannelSet::EMPTY) {
        fail(format_args!("first poll: {e}"));
    }
    server
}

// seL4: 1 MiB of stack. An unoptimised `init` keeps several copies of the server (the FS
// client's 511 request slots, the smoltcp interface) on its frame and overflows the 256 KiB
// default.
lions_os::protection_domain!(init, stack_size = 1024 * 1024);
