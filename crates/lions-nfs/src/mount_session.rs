// SPDX-License-Identifier: BSD-2-Clause
//! [`Mounter`]: the sans-IO start of an NFS session — from a server address and an export path
//! to the export's root handle and the NFS port, over whatever TCP connections the caller opens.
//!
//! 1. Unless both ports are configured: a connection to the portmapper (port 111), GETPORT of
//!    MOUNT v3 over TCP, then of NFS v3 over TCP (a port of 0, not registered, is an error).
//! 2. A connection to the MOUNT port: MNT of the export; the reply's root handle.
//!
//! The caller asks [`Mounter::connect_to`] which port to open a connection to (a new one each
//! time the answer changes; the old one may be closed), calls [`Mounter::connected`] once it
//! is up, moves bytes through [`Mounter::rpc`] exactly as for any [`RpcClient`], and calls
//! [`Mounter::poll`] until it yields [`MountState::Mounted`] or [`MountState::Failed`]. A dropped
//! connection: connect again to the same port and call [`Mounter::connected`] (the call in
//! flight is sent again).

use crate::client::{Config, RpcClient};
use crate::mount::{self, MountError};
use crate::nfs3::{self, FileHandle};
use crate::portmap;
use crate::rpc::{Auth, RpcError};
use crate::xdr::XdrError;
use alloc::vec::Vec;

/// Why mounting failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountFailure {
    /// The portmapper does not know MOUNT v3 or NFS v3 over TCP.
    NotRegistered {
        /// The program asked for.
        program: u32,
    },
    /// The server refused MNT (`mountstat3`).
    Refused(u32),
    /// An RPC-level refusal.
    Rpc(RpcError),
    /// A malformed reply.
    Xdr(XdrError),
}

/// Where mounting is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountState {
    /// Still going: keep moving bytes.
    Working,
    /// Mounted: the export's root handle and the port of the NFS service.
    Mounted {
        /// Root handle.
        root: FileHandle,
        /// NFS port.
        nfs_port: u16,
    },
    /// Failed for good.
    Failed(MountFailure),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    GetMountPort,
    GetNfsPort,
    Mnt,
    Done,
}

/// Mounts an export; see the module docs.
#[derive(Debug)]
pub struct Mounter {
    rpc: RpcClient,
    config: Config,
    export: Vec<u8>,
    step: Step,
    mnt_port: u16,
    nfs_port: u16,
    /// The step's call is started on the current connection.
    called: bool,
    up: bool,
    result: MountState,
}

impl Mounter {
    /// Mount `export` with credential `auth`; `ports` (MOUNT, NFS) skip the portmapper.
    pub fn new(export: &[u8], auth: Auth, first_xid: u32, ports: Option<(u16, u16)>) -> Self {
        let config = Config {
            auth,
            first_xid,
            max_in_flight: 1,
            max_record: 4096,
        };
        let (step, mnt_port, nfs_port) = match ports {
            Some((m, n)) => (Step::Mnt, m, n),
            None => (Step::GetMountPort, 0, 0),
        };
        Mounter {
            rpc: RpcClient::new(config.clone()),
            config,
            export: export[..export.len().min(mount::MNTPATHLEN)].to_vec(),
            step,
            mnt_port,
            nfs_port,
            called: false,
            up: false,
            result: MountState::Working,
        }
    }

    /// The port the current connection must go to (`None` once finished).
    pub fn connect_to(&self) -> Option<u16> {
        match self.step {
            Step::GetMountPort | Step::GetNfsPort => Some(portmap::PORT),
            Step::Mnt => Some(self.mnt_port),
            Step::Done => None,
        }
    }

    /// A connection to [`connect_to`](Self::connect_to)'s port is up (new, or again after a
    /// drop).
    pub fn connected(&mut self) {
        self.rpc.reconnected();
        self.up = true;
    }

    /// The RPC client of the current connection.
    pub fn rpc(&mut self) -> &mut RpcClient {
        &mut self.rpc
    }

    fn fail(&mut self, f: MountFailure) -> MountState {
        self.step = Step::Done;
        self.result = MountState::Failed(f);
        self.result
    }

    /// Advance: start the step's call, take its reply.
    pub fn poll(&mut self) -> MountState {
        if self.step == Step::Done || !self.up {
            return self.result;
        }
        if !self.called {
            let export = &self.export;
            let r = match self.step {
                Step::GetMountPort => self.rpc.call(
                    portmap::PROGRAM,
                    portmap::VERSION,
                    portmap::GETPORT,
                    0,
                    |e| portmap::encode_getport(e, mount::PROGRAM, mount::VERSION),
                ),
                Step::GetNfsPort => self.rpc.call(
                    portmap::PROGRAM,
                    portmap::VERSION,
                    portmap::GETPORT,
                    0,
                    |e| portmap::encode_getport(e, nfs3::PROGRAM, nfs3::VERSION),
                ),
                _ => self
                    .rpc
                    .call(mount::PROGRAM, mount::VERSION, mount::MNT, 0, |e| {
                        mount::encode_dirpath(e, export)
                    }),
            };
            // One call at a time on a fresh client: it always fits.
            self.called = r.is_ok();
            return self.result;
        }
        let Some(reply) = self.rpc.poll_reply() else {
            return self.result;
        };
        let body = match reply.result() {
            Ok(b) => b,
            Err(e) => return self.fail(MountFailure::Rpc(e)),
        };
        self.called = false;
        match self.step {
            Step::GetMountPort | Step::GetNfsPort => {
                let program = if self.step == Step::GetMountPort {
                    mount::PROGRAM
                } else {
                    nfs3::PROGRAM
                };
                match portmap::decode_getport(body) {
                    Ok(Some(p)) if self.step == Step::GetMountPort => {
                        self.mnt_port = p;
                        self.step = Step::GetNfsPort;
                    }
                    Ok(Some(p)) => {
                        self.nfs_port = p;
                        self.step = Step::Mnt;
                        // A new connection, to the MOUNT port.
                        self.rpc = RpcClient::new(self.config.clone());
                        self.up = false;
                    }
                    Ok(None) => return self.fail(MountFailure::NotRegistered { program }),
                    Err(e) => return self.fail(MountFailure::Xdr(e)),
                }
                self.result
            }
            Step::Mnt => match mount::decode_mnt(body) {
                Ok((root, _)) => {
                    self.step = Step::Done;
                    self.result = MountState::Mounted {
                        root,
                        nfs_port: self.nfs_port,
                    };
                    self.result
                }
                Err(MountError::Status(s)) => self.fail(MountFailure::Refused(s)),
                Err(MountError::Xdr(e)) => self.fail(MountFailure::Xdr(e)),
            },
            Step::Done => self.result,
        }
    }
}
