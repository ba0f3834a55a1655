// SPDX-License-Identifier: BSD-2-Clause
//! The state of one FS client connection, as every server keeps it: the server's queue ends,
//! the client's share region and channel, the fd table, the mount flag, the "client is faulty"
//! flag, the counters and the two path buffers. [`FsServer`](crate::FsServer) (backend answers
//! at once) and [`DeferredServer`](crate::DeferredServer) (backend answers later) each own one
//! and differ only in how a command is executed.
//!
//! The queue rules both follow: a queue error (the client wrote impossible indices) marks the
//! connection faulty and nothing more is taken from it; every command taken gets exactly one
//! completion with its id; a failed one is counted in [`ServerStats::failed`].

use crate::queue::{CompletionData, FsCmd, FsCmpl, FsServerQueues, Status};
use crate::server::{FdKind, FdTable, MAX_OPEN_FILES, ServerStats};
use crate::share::{PATH_BUFFER_BYTES, ShareRegion};
use lions_os::{Channel, ChannelSet};

/// One client connection's state (see the module docs).
pub(crate) struct Connection<'a, H> {
    pub(crate) queues: FsServerQueues<'a>,
    pub(crate) share: ShareRegion<'a>,
    pub(crate) client: Channel,
    pub(crate) fds: FdTable<H>,
    pub(crate) mounted: bool,
    pub(crate) faulty: bool,
    pub(crate) stats: ServerStats,
    pub(crate) paths: [[u8; PATH_BUFFER_BYTES]; 2],
}

impl<'a, H: Copy> Connection<'a, H> {
    /// A fresh, unmounted connection with no fd open.
    pub(crate) fn new(queues: FsServerQueues<'a>, share: ShareRegion<'a>, client: Channel) -> Self {
        Self {
            queues,
            share,
            client,
            fds: FdTable::new(),
            mounted: false,
            faulty: false,
            stats: ServerStats::default(),
            paths: [[0; PATH_BUFFER_BYTES]; 2],
        }
    }

    /// Room in the completion queue (`None`: the client is faulty, now or from before).
    pub(crate) fn room(&mut self) -> Option<u64> {
        if self.faulty {
            return None;
        }
        let room = self.queues.completions.free().ok();
        self.faulty = room.is_none();
        room
    }

    /// The next command (`None`: none waiting, or the client turned faulty).
    pub(crate) fn next_command(&mut self) -> Option<FsCmd> {
        match self.queues.commands.pop() {
            Ok(c) => c,
            Err(_) => {
                self.faulty = true;
                None
            }
        }
    }

    /// Stage a completion; `false` (and faulty) when the client moved the head impossibly (room
    /// was checked before the command was taken, and only the server pushes).
    pub(crate) fn push(&mut self, c: FsCmpl) -> bool {
        let ok = self.queues.completions.push(c).is_ok();
        self.faulty |= !ok;
        ok
    }

    /// Release the commands taken and publish the completions staged (faulty or not: what was
    /// staged was answered); how many were published.
    pub(crate) fn publish(&mut self) -> u64 {
        self.queues.commands.release();
        self.queues.completions.publish()
    }

    /// The completion of command `id` with result `r`; a failure is counted.
    pub(crate) fn completion(&mut self, id: u64, r: Result<CompletionData, Status>) -> FsCmpl {
        match r {
            Ok(d) => FsCmpl::new(id, Status::Success, d),
            Err(s) => {
                self.stats.failed += 1;
                FsCmpl::new(id, s, CompletionData::None)
            }
        }
    }

    /// The completion of a command that could not be decoded (counted as invalid).
    pub(crate) fn invalid(&mut self, id: u64) -> FsCmpl {
        self.stats.invalid += 1;
        self.completion(id, Err(Status::InvalidCommand))
    }

    /// Every open fd and its kind (a copy, so each can be closed while walking it).
    pub(crate) fn open_fds(&self) -> [Option<(u64, FdKind)>; MAX_OPEN_FILES] {
        let mut out = [None; MAX_OPEN_FILES];
        for (slot, (fd, kind, _)) in out.iter_mut().zip(self.fds.iter()) {
            *slot = Some((fd, kind));
        }
        out
    }

    /// Whether `channels` holds a channel other than the client's (the device or network under
    /// the backend).
    pub(crate) fn others(&self, channels: ChannelSet) -> bool {
        channels.bits() & !ChannelSet::default().with(self.client).bits() != 0
    }
}
