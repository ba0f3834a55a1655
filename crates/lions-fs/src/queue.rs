// SPDX-License-Identifier: BSD-2-Clause
//! FS queues: the 32 KiB `fs_queue_t` ring of 511 messages, and the client and server ends of a
//! connection (commands one way, completions the other). The messages themselves are in
//! [`crate::protocol`], re-exported here.

use crate::config::FsConnectionResource;
use core::marker::PhantomData;
use core::ptr::NonNull;
use lions_os::RegionResource;
use lions_queue::atomic::AtomicU64;
use lions_queue::clients::{pair, region};
use lions_queue::{Capacity, Consumer, Producer, QueueHeader, QueueMemory, RegionError};

pub use crate::protocol::*;

/// Messages per queue (`FS_QUEUE_CAPACITY`); all are usable.
pub const FS_QUEUE_CAPACITY: usize = 511;

/// Bytes of one `fs_queue_t`: 64-byte header plus 511 messages.
pub const FS_QUEUE_BYTES: usize = 32_768;

/// The ring shape of every FS queue.
pub fn capacity() -> Result<Capacity, RegionError> {
    Capacity::fixed::<u64>(FS_QUEUE_CAPACITY as u64, FS_QUEUE_CAPACITY as u64)
        .map_err(RegionError::Capacity)
}

/// One FS queue (`fs_queue_t`) header; messages of type `E` follow at offset 64.
#[repr(C)]
pub struct FsQueue<E> {
    /// Consumer-owned index (offset 0).
    head: AtomicU64,
    /// Producer-owned index (offset 8).
    tail: AtomicU64,
    /// The C padding (offset 16), never accessed; atomics so a peer writing it is no data race.
    _pad: [AtomicU64; 6],
    _entry: PhantomData<fn() -> E>,
}

/// The command queue (client → server).
pub type CommandQueue = FsQueue<FsCmd>;
/// The completion queue (server → client).
pub type CompletionQueue = FsQueue<FsCmpl>;

// SAFETY: `head`/`tail` are fields of `self`; messages start at offset 64 in the C layout, a
// multiple of the 8-byte alignment of every `FsMessage`.
unsafe impl<E: FsMessage> QueueHeader for FsQueue<E> {
    type Index = u64;
    type Entry = E;
    const ENTRIES_OFFSET: usize = 64;

    fn head(&self) -> &AtomicU64 {
        &self.head
    }

    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
}

/// Why queues could not be set up: the one error type of every class crate's queues.
pub use lions_queue::clients::QueueError;

fn region_ptr(r: &RegionResource) -> Result<(NonNull<u8>, usize), QueueError> {
    region(r.vaddr, r.size)
}

/// The command and completion queue regions of a connection.
type Regions = ((NonNull<u8>, usize), (NonNull<u8>, usize));

fn regions(conn: &FsConnectionResource) -> Result<Regions, QueueError> {
    Ok((
        region_ptr(&conn.command_queue)?,
        region_ptr(&conn.completion_queue)?,
    ))
}

/// Both queues of a connection, checked, not yet claimed by a role.
type Memories<'a> = (
    QueueMemory<'a, CommandQueue>,
    QueueMemory<'a, CompletionQueue>,
);

/// The client side: produces commands, consumes completions. Publish, then always notify.
pub struct FsClientQueues<'a> {
    /// Commands we send.
    pub commands: Producer<'a, u64, FsCmd>,
    /// Completions we receive.
    pub completions: Consumer<'a, u64, FsCmpl>,
    /// The completion queue's shared head (ours), to tell when the server may wait at the wrap.
    cmpl_head: &'a AtomicU64,
}

/// The server side: consumes commands, produces completions. Publish, then always notify.
pub struct FsServerQueues<'a> {
    /// Commands we receive.
    pub commands: Consumer<'a, u64, FsCmd>,
    /// Completions we send.
    pub completions: Producer<'a, u64, FsCmpl>,
}

impl<'a> FsClientQueues<'a> {
    /// The client side over a command and a completion queue region (32 KiB each).
    ///
    /// # Safety
    /// Both regions are mapped read-write for `'a`, shared with exactly one server, and this
    /// process makes no other client side over them.
    pub unsafe fn new(
        cmd: NonNull<u8>,
        cmd_len: usize,
        cmpl: NonNull<u8>,
        cmpl_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (cmd, cmpl): Memories = unsafe { pair((cmd, cmd_len), (cmpl, cmpl_len), capacity()?)? };
        let cmpl_head = cmpl.header().head();
        Ok(Self {
            commands: cmd.producer()?,
            completions: cmpl.consumer()?,
            cmpl_head,
        })
    }

    /// Whether the server may be holding completions back at the index wrap: 511 slots do not
    /// divide 2^64, so a producer never lets entries straddle the wrap and waits there until
    /// the consumer has taken everything before it. True within one ring of the wrap.
    pub fn server_may_wait_at_wrap(&self) -> bool {
        let head = self.cmpl_head.load(core::sync::atomic::Ordering::Relaxed);
        u64::MAX - head < FS_QUEUE_CAPACITY as u64 || head < FS_QUEUE_CAPACITY as u64
    }

    /// The client side of a connection from a config.
    ///
    /// # Safety
    /// The config describes this component's real mappings; no other client side exists.
    pub unsafe fn from_connection(conn: &FsConnectionResource) -> Result<Self, QueueError> {
        let ((c, cl), (p, pl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(c, cl, p, pl) }
    }
}

impl<'a> FsServerQueues<'a> {
    /// The server side over a command and a completion queue region.
    ///
    /// # Safety
    /// As for [`FsClientQueues::new`], with the roles swapped.
    pub unsafe fn new(
        cmd: NonNull<u8>,
        cmd_len: usize,
        cmpl: NonNull<u8>,
        cmpl_len: usize,
    ) -> Result<Self, QueueError> {
        // SAFETY: forwarded from the caller.
        let (cmd, cmpl): Memories = unsafe { pair((cmd, cmd_len), (cmpl, cmpl_len), capacity()?)? };
        Ok(Self {
            commands: cmd.consumer()?,
            completions: cmpl.producer()?,
        })
    }

    /// The server side of a connection from a config.
    ///
    /// # Safety
    /// As for [`FsClientQueues::from_connection`].
    pub unsafe fn from_connection(conn: &FsConnectionResource) -> Result<Self, QueueError> {
        let ((c, cl), (p, pl)) = regions(conn)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::new(c, cl, p, pl) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use core::sync::atomic::Ordering;
    use lions_queue::PushError;

    #[test]
    fn queue_layout_matches_c() {
        // fs_queue_t: head @0, tail @8, padding[48] @16, buffer[511] @64; 32 KiB in all.
        assert_eq!(size_of::<CommandQueue>(), 64);
        assert_eq!(offset_of!(CommandQueue, head), 0);
        assert_eq!(offset_of!(CommandQueue, tail), 8);
        assert_eq!(offset_of!(CommandQueue, _pad), 16);
        assert_eq!(
            <CommandQueue as QueueHeader>::ENTRIES_OFFSET + FS_QUEUE_CAPACITY * 64,
            FS_QUEUE_BYTES
        );
    }

    /// Two 32 KiB queue regions.
    struct Regions {
        cmd: NonNull<u8>,
        cmpl: NonNull<u8>,
        _mem: Vec<u64>,
    }

    impl Regions {
        fn new(start: u64) -> Self {
            let mut mem = vec![0u64; 2 * FS_QUEUE_BYTES / 8];
            mem[0] = start; // cmd head
            mem[1] = start; // cmd tail
            mem[FS_QUEUE_BYTES / 8] = start;
            mem[FS_QUEUE_BYTES / 8 + 1] = start;
            let base = mem.as_mut_ptr().cast::<u8>();
            let cmd = NonNull::new(base).unwrap();
            // SAFETY: the second half of the allocation.
            let cmpl = unsafe { cmd.add(FS_QUEUE_BYTES) };
            Self {
                cmd,
                cmpl,
                _mem: mem,
            }
        }

        fn index(&self, cmpl: bool, tail: bool) -> &AtomicU64 {
            let base = if cmpl { self.cmpl } else { self.cmd };
            // SAFETY: head/tail words of a live region, accessed atomically.
            unsafe {
                base.add(if tail { 8 } else { 0 })
                    .cast::<AtomicU64>()
                    .as_ref()
            }
        }

        fn connect(&self) -> (FsClientQueues<'_>, FsServerQueues<'_>) {
            // SAFETY: the regions outlive the handles; one handle per role per queue.
            unsafe {
                (
                    FsClientQueues::new(self.cmd, FS_QUEUE_BYTES, self.cmpl, FS_QUEUE_BYTES)
                        .unwrap(),
                    FsServerQueues::new(self.cmd, FS_QUEUE_BYTES, self.cmpl, FS_QUEUE_BYTES)
                        .unwrap(),
                )
            }
        }
    }

    #[test]
    fn ring_of_511_across_the_u64_wrap() {
        let r = Regions::new(u64::MAX - 5);
        let (mut client, mut server) = r.connect();
        let mut next_id = 0u64;
        let mut issue = |client: &mut FsClientQueues<'_>| -> bool {
            let c = Command::FileSize { fd: next_id }.encode(next_id);
            match client.commands.push(c) {
                Ok(()) => {
                    next_id += 1;
                    true
                }
                Err(PushError::Full(_)) => false,
                Err(PushError::Peer(..)) => panic!("well-behaved server"),
            }
        };
        for expect in [6u64, 511, 511] {
            let mut n = 0;
            while issue(&mut client) {
                n += 1;
            }
            assert_eq!(n, expect, "6 before the wrap, then the full 511");
            assert_eq!(client.commands.publish(), expect);
            // The server answers out of order: all, in reverse.
            let mut got = Vec::new();
            while let Some(c) = server.commands.pop().unwrap() {
                got.push((c.id, c.decode().unwrap()));
            }
            server.commands.release();
            assert_eq!(got.len() as u64, expect);
            for &(id, c) in got.iter().rev() {
                assert_eq!(c, Command::FileSize { fd: id });
                server
                    .completions
                    .push(FsCmpl::new(
                        id,
                        Status::Success,
                        CompletionData::Size(id * 10),
                    ))
                    .unwrap();
            }
            assert_eq!(server.completions.publish(), expect);
            let mut seen = 0;
            while let Some(done) = client.completions.pop().unwrap() {
                assert_eq!(
                    done.data(CommandType::FileSize),
                    CompletionData::Size(done.id * 10)
                );
                seen += 1;
            }
            client.completions.release();
            assert_eq!(seen, expect);
        }
        assert_eq!(
            r.index(false, true).load(Ordering::Relaxed),
            6 + 511 + 511 - 6,
            "the u64 tail wrapped"
        );
    }

    #[test]
    fn corrupt_indices_are_peer_errors() {
        let r = Regions::new(0);
        {
            let (mut client, mut server) = r.connect();
            r.index(false, true).store(512, Ordering::Relaxed); // 512 commands in a 511 ring
            assert!(server.commands.pop().is_err());
            r.index(true, false).store(3, Ordering::Relaxed); // completion head past the tail
            assert!(server.completions.free().is_err());
            r.index(true, true).store(u64::MAX, Ordering::Relaxed); // completion tail backwards
            assert!(client.completions.pop().is_err());
            r.index(false, false).store(1, Ordering::Relaxed); // command head past the tail
            assert!(client.commands.free().is_err());
        }
        // SAFETY: fresh handle over the test regions; the old ones are gone.
        let e = unsafe { FsServerQueues::new(r.cmd, FS_QUEUE_BYTES, r.cmpl, FS_QUEUE_BYTES) };
        assert!(matches!(e, Err(QueueError::Handle(_))));
        // SAFETY: as above; a region smaller than 32 KiB is refused before any access.
        let e = unsafe { FsServerQueues::new(r.cmd, FS_QUEUE_BYTES - 1, r.cmpl, FS_QUEUE_BYTES) };
        assert!(matches!(
            e,
            Err(QueueError::Region(RegionError::TooSmall {
                needed: 32_768,
                ..
            }))
        ));
        let conn = <FsConnectionResource as zerocopy::FromZeros>::new_zeroed();
        // SAFETY: nothing is mapped; nothing is dereferenced.
        let r = unsafe { FsClientQueues::from_connection(&conn) };
        assert!(matches!(r, Err(QueueError::Unmapped)));
    }
}
