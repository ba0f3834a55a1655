// SPDX-License-Identifier: BSD-2-Clause
//! [`FsNfs`]: the `fs_nfs` component's event handler (feature `fs-nfs`) — an FS server for one
//! client whose file system is an NFSv3 export, reached through the PD's own network stack
//! (`lions_net::client::NetStack` over its copier and the Tx virtualiser).
//!
//! One TCP socket carries the session, one connection at a time:
//!
//! 1. once the interface has an address: [`Mounter`] over connections to the server's
//!    portmapper (GETPORT of MOUNT and NFS) and MOUNT port (MNT of the export);
//! 2. then a connection to the NFS port, and the FS protocol served by a
//!    [`DeferredServer`] over an [`NfsBackend`]: commands start NFS calls, completions are
//!    published as replies arrive (after any event: network, timer or client).
//!
//! A connection that drops is opened again to the same port from a fresh local port, and the
//! calls in flight are sent again ([`RpcClient::reconnected`](crate::RpcClient::reconnected));
//! the FS client's commands wait in their queue until the export is mounted.

use crate::client::{Config, RpcClient};
use crate::fs::NfsFs;
use crate::fs_server::{MAX_IO, NfsBackend};
use crate::mount_session::{MountState, Mounter};
use crate::rpc::Auth;
use alloc::boxed::Box;
use lions_fs::{DeferredServer, FsServerQueues, ShareRegion};
use lions_net::client::NetStack;
use lions_net::smoltcp::iface::{Interface, SocketHandle, SocketSet};
use lions_net::smoltcp::socket::tcp;
use lions_net::smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
use lions_os::{Channel, ChannelSet, Handler};

/// First local TCP port used; each new connection takes the next (wrapping within 16384).
pub const LOCAL_PORT_BASE: u16 = 49152;

#[allow(clippy::large_enum_variant)] // one per PD, never moved after start
enum Phase<'a> {
    Mounting(Mounter),
    Serving(Box<DeferredServer<'a, NfsBackend>>, u16),
    Failed,
}

/// The `fs_nfs` PD; see the module docs.
pub struct FsNfs<'a, 's> {
    stack: NetStack<'a, 's>,
    session: Session<'a>,
}

/// Everything but the stack (so the stack's `process` can run the session between rounds).
struct Session<'a> {
    socket: SocketHandle,
    server: Ipv4Address,
    /// Set until the server is built (the FS queues wait for the mount).
    queues: Option<(FsServerQueues<'a>, ShareRegion<'a>)>,
    client: Channel,
    phase: Phase<'a>,
    port: Option<u16>,
    next_local: u16,
    xid: u32,
    failure: Option<crate::mount_session::MountFailure>,
}

fn pump(sock: &mut tcp::Socket<'_>, rpc: &mut RpcClient) -> bool {
    let mut did = false;
    if sock.may_send() {
        let q = rpc.transmit_queue();
        if !q.is_empty()
            && let Ok(n) = sock.send_slice(q)
        {
            rpc.transmitted(n);
            did |= n > 0;
        }
    }
    let mut buf = [0u8; 2048];
    while sock.can_recv() {
        match sock.recv_slice(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                did = true;
                if rpc.receive(&buf[..n]).is_err() {
                    // The stream is unreadable: drop it; it is opened again.
                    sock.abort();
                    break;
                }
            }
        }
    }
    did
}

impl<'a, 's> FsNfs<'a, 's> {
    /// The PD over its network stack (with `socket`, a TCP socket added to it), the NFS server's
    /// address, the export, and its FS connection (`queues`, `share`, `client`); `boot_id`
    /// varies the first xid between boots.
    pub fn new(
        stack: NetStack<'a, 's>,
        socket: SocketHandle,
        server: Ipv4Address,
        export: &[u8],
        fs: (FsServerQueues<'a>, ShareRegion<'a>, Channel),
        boot_id: u32,
    ) -> Self {
        let xid = boot_id.wrapping_mul(0x9e37_79b9);
        let auth = Auth::Sys {
            stamp: boot_id,
            machine_name: b"lions-fs-nfs".to_vec(),
            uid: 0,
            gid: 0,
            gids: alloc::vec::Vec::new(),
        };
        let session = Session {
            socket,
            server,
            queues: Some((fs.0, fs.1)),
            client: fs.2,
            phase: Phase::Mounting(Mounter::new(export, auth, xid, None)),
            port: None,
            next_local: 0,
            xid,
            failure: None,
        };
        FsNfs { stack, session }
    }

    /// Whether the export is mounted and the FS protocol served.
    pub fn serving(&self) -> bool {
        matches!(self.session.phase, Phase::Serving(..))
    }

    /// Why mounting failed for good, if it did.
    pub fn mount_failure(&self) -> Option<crate::mount_session::MountFailure> {
        self.session.failure
    }
}

impl<'a> Session<'a> {
    fn rpc<'p>(phase: &'p mut Phase<'a>) -> Option<&'p mut RpcClient> {
        match phase {
            Phase::Mounting(m) => Some(m.rpc()),
            Phase::Serving(s, _) => Some(s.backend_mut().fs().rpc()),
            Phase::Failed => None,
        }
    }

    /// One pass over the session; true if anything moved.
    fn step(&mut self, iface: &mut Interface, sockets: &mut SocketSet<'_>) -> bool {
        let mut did = false;
        let want = match &self.phase {
            Phase::Mounting(m) => m.connect_to(),
            Phase::Serving(_, port) => Some(*port),
            Phase::Failed => None,
        };
        let sock = sockets.get_mut::<tcp::Socket>(self.socket);
        // A connection that ended (closed, reset, or the server closed its side; one still
        // being set up is alive), or one to the wrong port: start the right one.
        let dead = !sock.is_open()
            || (!sock.may_recv()
                && !matches!(sock.state(), tcp::State::SynSent | tcp::State::SynReceived));
        if want != self.port || dead {
            sock.abort();
            if let Some(port) = want
                && !sock.is_open()
            {
                let local = LOCAL_PORT_BASE + self.next_local % 16384;
                self.next_local = self.next_local.wrapping_add(1);
                let remote = IpEndpoint::new(IpAddress::Ipv4(self.server), port);
                if sock.connect(iface.context(), remote, local).is_ok() {
                    self.port = Some(port);
                    match &mut self.phase {
                        Phase::Mounting(m) => m.connected(),
                        Phase::Serving(s, _) => s.backend_mut().fs().rpc().reconnected(),
                        Phase::Failed => {}
                    }
                    did = true;
                }
            }
        }
        if let Some(rpc) = Self::rpc(&mut self.phase) {
            did |= pump(sock, rpc);
        }
        if let Phase::Mounting(m) = &mut self.phase {
            match m.poll() {
                MountState::Working => {}
                MountState::Failed(f) => {
                    self.failure = Some(f);
                    self.phase = Phase::Failed;
                }
                MountState::Mounted { root, nfs_port } => {
                    if let Some((queues, share)) = self.queues.take() {
                        let rpc = RpcClient::new(Config {
                            auth: Auth::Sys {
                                stamp: self.xid,
                                machine_name: b"lions-fs-nfs".to_vec(),
                                uid: 0,
                                gid: 0,
                                gids: alloc::vec::Vec::new(),
                            },
                            first_xid: self.xid.wrapping_add(0x100),
                            max_in_flight: 64,
                            // A READ reply: the data plus its headers.
                            max_record: usize::try_from(MAX_IO).unwrap_or(1 << 20) + 4096,
                        });
                        let backend = NfsBackend::new(NfsFs::new(rpc, root));
                        let server =
                            Box::new(DeferredServer::new(queues, share, self.client, backend));
                        self.phase = Phase::Serving(server, nfs_port);
                    }
                    did = true;
                }
            }
        }
        did
    }
}

impl Handler for FsNfs<'_, '_> {
    type Error = lions_net::Error;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        let FsNfs { stack, session } = self;
        // Network rounds with the session (and the FS server on it) between them, until
        // nothing moves: commands start calls, replies finish commands.
        stack.process(|iface, sockets| {
            let mut did = session.step(iface, sockets);
            if let Phase::Serving(s, _) = &mut session.phase {
                let n = s.process();
                if n > 0 {
                    // Best effort: a refused notification changes nothing for the queues.
                    let _ = session.client.notify();
                }
                // New calls to send are progress too.
                did |= !s.backend_mut().fs().rpc().transmit_queue().is_empty();
            }
            did
        })
    }
}
