// SPDX-License-Identifier: BSD-2-Clause
//! Shared test scaffolding: one FS connection's regions, a formatted RAM disk, and a server over
//! it, plus the raw client side of the queues for tests that speak the wire protocol directly.
#![allow(dead_code, clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_fs::fat::{self, FatFs, RamDisk};
use lions_fs::queue::{Command, FsCmd, FsCmpl};
use lions_fs::{FS_QUEUE_BYTES, FsBuffer, FsClientQueues, FsServer, FsServerQueues, ShareRegion};
use lions_os::Channel;
use lions_os::sim::Region;

/// A client-visible name for the server's channel to the client.
pub const CLIENT_CH: u8 = 1;
/// The client's channel to the server.
pub const SERVER_CH: u8 = 2;

/// The three regions of one connection.
pub struct Conn {
    pub cmd: Region,
    pub cmpl: Region,
    pub share: Region,
}

impl Conn {
    pub fn new(share_bytes: usize) -> Self {
        Self {
            cmd: Region::new(FS_QUEUE_BYTES),
            cmpl: Region::new(FS_QUEUE_BYTES),
            share: Region::new(share_bytes),
        }
    }

    pub fn server_queues(&self) -> FsServerQueues<'_> {
        // SAFETY: the regions live as long as `self`; tests make one server side per connection.
        unsafe {
            FsServerQueues::new(
                self.cmd.as_ptr(),
                FS_QUEUE_BYTES,
                self.cmpl.as_ptr(),
                FS_QUEUE_BYTES,
            )
            .unwrap()
        }
    }

    pub fn client_queues(&self) -> FsClientQueues<'_> {
        // SAFETY: as above, one client side per connection.
        unsafe {
            FsClientQueues::new(
                self.cmd.as_ptr(),
                FS_QUEUE_BYTES,
                self.cmpl.as_ptr(),
                FS_QUEUE_BYTES,
            )
            .unwrap()
        }
    }

    pub fn share(&self) -> ShareRegion<'_> {
        // SAFETY: the region lives as long as `self` and is only accessed by copies.
        unsafe { ShareRegion::new(self.share.as_ptr(), self.share.len()) }
    }

    pub fn server<B: lions_fs::FsBackend>(&self, backend: B) -> FsServer<'_, B> {
        FsServer::new(
            self.server_queues(),
            self.share(),
            Channel::new(CLIENT_CH),
            backend,
        )
    }
}

/// A freshly formatted RAM disk of `mib` MiB with 512-byte blocks, and a handle to look at it.
pub fn formatted_disk(mib: u64) -> RamDisk {
    let disk = RamDisk::new(512, mib * 2048);
    fat::format(disk.clone()).unwrap();
    disk
}

/// A FAT backend over a fresh disk, and the disk.
pub fn fat_backend(mib: u64) -> (FatFs, RamDisk) {
    let disk = formatted_disk(mib);
    (FatFs::new(disk.clone()), disk)
}

/// The raw client end: push commands, run the server, pop completions.
pub struct Wire<'a> {
    pub q: FsClientQueues<'a>,
    pub share: ShareRegion<'a>,
    next: u64,
}

impl<'a> Wire<'a> {
    pub fn new(conn: &'a Conn) -> Self {
        Self {
            q: conn.client_queues(),
            share: conn.share(),
            next: 1000,
        }
    }

    /// Put bytes at `offset` in the share region; returns the buffer.
    pub fn put(&self, offset: u64, bytes: &[u8]) -> FsBuffer {
        let b = FsBuffer {
            offset,
            size: bytes.len() as u64,
        };
        self.share.write(b, 0, bytes).unwrap();
        b
    }

    /// Bytes of `buf` in the share region.
    pub fn get(&self, buf: FsBuffer, len: u64) -> Vec<u8> {
        let mut out = vec![0u8; len as usize];
        self.share.read(buf, 0, &mut out).unwrap();
        out
    }

    pub fn send_raw(&mut self, cmd: FsCmd) {
        self.q.commands.push(cmd).unwrap();
        self.q.commands.publish();
    }

    pub fn send(&mut self, c: Command) -> u64 {
        self.next += 1;
        let id = self.next;
        self.send_raw(c.encode(id));
        id
    }

    pub fn completions(&mut self) -> Vec<FsCmpl> {
        let mut out = Vec::new();
        while let Some(c) = self.q.completions.pop().unwrap() {
            out.push(c);
        }
        self.q.completions.release();
        out
    }
}
