// SPDX-License-Identifier: BSD-2-Clause
//! The block virtualiser (`blk_virt`): one disk, partitioned, shared by up to 64 clients.
//!
//! ## Protocol
//!
//! - **Start**: nothing is served until the driver's storage info is `ready` (checked at
//!   [`BlkVirt::init`] and at every driver notification). Then the partition table is read
//!   through the driver into the start of the driver's data region ([`crate::partition`]: MBR, or
//!   GPT with both copies checked), and each client's storage-info page is published: its
//!   partition's capacity, the disk's sector size, block size, serial number and read-only flag,
//!   and `queue_depth` = its in-flight limit. A client whose partition does not exist (or a disk
//!   without a usable table) sees `ready` with capacity 0, and every request it makes is answered
//!   `ErrNoDevice`. Client requests wait in their queues until then.
//! - **Checks** (answered at once, success count 0): an unknown code is `ErrInvalidParam`; READ and
//!   WRITE need `count > 0`, `block + count` within the partition, the buffer offset 4 KiB aligned
//!   and `offset + 4096 × count` within the client's data region, and no WRITE to a read-only
//!   disk, else `ErrInvalidParam`. FLUSH and BARRIER carry no buffer: their other fields are
//!   ignored.
//! - **Translation**: block + partition start, and offset + the data region's I/O address; the
//!   driver gets a request id of the virt's own (an index into its bookkeeping), and the client's
//!   response carries the client's id, its status, and the driver's success count (at most the
//!   request's count). Responses leave in the order the driver completes, whatever the order of
//!   the requests.
//! - **Ordering**, per client: FLUSH is passed on in queue order and makes durable the writes
//!   completed before it was submitted; it orders nothing. A BARRIER is passed to the driver only
//!   once every earlier request of that client has completed, and no later request of that client
//!   is passed on until the BARRIER has completed (the driver in turn answers it only when nothing
//!   it holds is outstanding). Other clients are not held up by it.
//! - **In-flight limit**: a client has at most `limit` requests at the driver, `limit` = its queue
//!   capacity capped at an equal share of the driver's ids (at least 1); and a request is taken
//!   from a client only while its response queue has room for one more response on top of every
//!   one it is owed. So a client can neither take another's share of the driver nor make a
//!   response wait for room: responses never overflow and never block the virt. Clients are
//!   served round-robin from a rotating start.
//! - **Notifications** (no flags in blk): the driver after any published request; a client after
//!   any published response. A client that could not be served (limit, room, driver full, held
//!   barrier) is served again at the next event: every driver response notifies the virt.
//! - **Restart** ([`BlkVirt::resume`] in place of `init`, for a virt restarted with its regions
//!   intact, paper §5.2). What each driver id stands for is private (sdfgen gives the virt no
//!   region for it) and is *rebuilt conservatively from the queues*. A client is owed an answer
//!   to the requests it has had taken (before its request head) whose id is on no response
//!   published to it (`req.head - resp.tail` of them). A driver id is out when the driver's
//!   request window holds more requests with it than its response window holds responses (ids
//!   alternate; exact until the queues wrap their capacity). Each owed request, newest first,
//!   is matched to the newest driver request still out of the same code whose buffer is that
//!   request's buffer in the client's data region (FLUSH and BARRIER by code alone, so with
//!   two clients flushing at once the two answers may be swapped), and gets its slot, in-flight
//!   count and barrier back. An owed request matching no driver request out (the old
//!   incarnation died between taking it and passing it on, or between the driver's answer and
//!   its own) is answered `ErrUnspec` now, so no client waits forever; a driver id out that
//!   matches no owed request (a partition-table read of the old incarnation) keeps its id until
//!   answered and its answer is dropped. The partition table is read again (clients' requests
//!   wait meanwhile), and the clients' pages are published again with the same contents.
//! - **Misbehaving clients**: an impossible queue index, or indices inconsistent at start, makes
//!   the client faulty ([`BlkVirt::faulty`]): it is no longer served, and its requests still at the
//!   driver are dropped when they complete. Nothing a client writes can make the virt panic.
//! - **Misbehaving driver**: an impossible index is an [`Error`] (the virt faults); a response with an
//!   id the virt did not hand out is ignored.

use crate::Error;
use crate::config::{BlkVirtClient, BlkVirtConfig};
use crate::partition::{Extent, PartitionError, PartitionTable, Partitioner, Step};
use crate::queue::{
    BLK_TRANSFER_SIZE, BlkRequest, BlkRequester, BlkResponse, BlkServer, QueueError, RawBlkQueue,
    RequestCode, ResponseStatus,
};
use crate::storage_info::{StorageInfoPage, StorageInfoWriter};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use lions_os::{Channel, ChannelSet, Handler, Mapped};
use lions_queue::RegionError;
use lions_queue::clients::Clients;

/// Most requests the virt keeps at the driver at once (a larger driver queue is used up to this).
pub const MAX_DRIVER_REQUESTS: usize = 1024;

const BLK: u64 = BLK_TRANSFER_SIZE as u64;
/// The client index of the virt's own (partition table) reads.
const OWN: u8 = u8::MAX;

/// What a driver id stands for.
#[derive(Debug, Clone, Copy)]
struct Slot {
    client: u8,
    count: u16,
    id: u32,
}

struct Client<'a> {
    queue: BlkServer<'a>,
    ch: Channel,
    page: StorageInfoWriter<'a>,
    data_io: u64,
    data_size: u64,
    partition: u32,
    extent: Option<Extent>,
    read_only: bool,
    limit: u64,
    /// Requests at the driver.
    in_flight: u64,
    /// Its BARRIER is at the driver (then it is its only request there).
    barrier: bool,
}

/// The driver connection and the virt's request ids on it.
struct Driver<'a> {
    queue: BlkRequester<'a>,
    /// What each driver id stands for (ids `0..ids`).
    slots: [Option<Slot>; MAX_DRIVER_REQUESTS],
    ids: usize,
    /// The driver ids not in use: `free[..nfree]` (a stack, so taking one is O(1)).
    free: [u16; MAX_DRIVER_REQUESTS],
    nfree: usize,
}

impl Driver<'_> {
    /// Send `r` to the driver under a fresh id standing for (`client`, `id`); `Ok(false)` when
    /// the driver has no room (no free id or a full queue), an error when the driver wrote an
    /// impossible queue index (the driver is trusted: the virt stops rather than stall silently).
    fn send(&mut self, mut r: BlkRequest, client: u8, id: u32) -> Result<bool, Error> {
        let Some(n) = self.nfree.checked_sub(1) else {
            return Ok(false);
        };
        let did = self.free[n];
        r.id = u32::from(did);
        match self.queue.submit(r) {
            Ok(()) => {}
            Err(lions_queue::PushError::Full(_)) => return Ok(false),
            Err(lions_queue::PushError::Peer(e, _)) => return Err(Error::Peer(e)),
        }
        self.nfree = n;
        self.slots[usize::from(did)] = Some(Slot {
            client,
            count: r.count,
            id,
        });
        Ok(true)
    }
}

/// The block virtualiser; see the module docs.
pub struct BlkVirt<'a> {
    /// The checked config (what `resume` reads the driver's queues from).
    config: &'a BlkVirtConfig,
    driver: Driver<'a>,
    driver_ch: Channel,
    disk: StorageInfoPage<'a>,
    /// The driver data region: where partition-table reads land.
    bounce: (NonNull<u8>, usize, u64),
    clients: Clients<Client<'a>>,
    num_clients: usize,
    /// The partition-table reader (`None` until the driver is ready); its pending read starts
    /// `skip` bytes into the buffer.
    part: Option<Partitioner>,
    skip: usize,
    ready: bool,
    next: usize,
}

/// What a restarted virt finds in the driver's queues (see [`BlkVirt::resume`]): the requests
/// it was sent, newest last (the slots still hold the last `capacity`), each matched to an owed
/// client request at most once.
struct DriverWindow<'q> {
    dreq: RawBlkQueue<'q, BlkRequest>,
    /// How many requests the window holds.
    sent: u32,
    /// The raw index of its oldest request.
    first: u32,
    /// Per driver id: requests less responses in the windows (> 0: the id is out now).
    out: [i32; MAX_DRIVER_REQUESTS],
    /// Bit `j`: the request at `first + j` is matched already.
    used: [u64; MAX_DRIVER_REQUESTS.div_ceil(64)],
}

impl<'q> DriverWindow<'q> {
    /// The window of a driver with queues `dreq`/`dresp` of `capacity`.
    fn new(
        dreq: RawBlkQueue<'q, BlkRequest>,
        dresp: &RawBlkQueue<'_, BlkResponse>,
        capacity: u16,
    ) -> Self {
        let tail = dreq.tail();
        let sent = tail
            .min(u32::from(capacity))
            .min(u32::try_from(MAX_DRIVER_REQUESTS).unwrap_or(u32::MAX));
        // Driver ids out now: an id alternates request, response; so it is out when the window
        // holds more requests than responses with it. Exact while the queues have not wrapped
        // their capacity; afterwards the response window is cut to the request window's length.
        let mut out = [0i32; MAX_DRIVER_REQUESTS];
        for j in 1..=sent {
            let id = dreq.entry(tail.wrapping_sub(j)).id;
            if let Some(n) = usize::try_from(id).ok().and_then(|i| out.get_mut(i)) {
                *n += 1;
            }
        }
        for j in 1..=dresp.head().min(sent) {
            let id = dresp.entry(dresp.head().wrapping_sub(j)).id;
            if let Some(n) = usize::try_from(id).ok().and_then(|i| out.get_mut(i)) {
                *n -= 1;
            }
        }
        Self {
            dreq,
            sent,
            first: tail.wrapping_sub(sent),
            out,
            used: [0; MAX_DRIVER_REQUESTS.div_ceil(64)],
        }
    }

    /// Owed client request `q`'s driver request, marked matched: the newest unmatched one of the
    /// same code whose buffer is this one in the client's data region at `data_io`, `data_size`
    /// bytes (FLUSH and BARRIER: by code alone) and whose driver id is out and unclaimed.
    fn claim(
        &mut self,
        q: &BlkRequest,
        data_io: u64,
        data_size: u64,
        driver: &Driver<'_>,
    ) -> Option<(usize, BlkRequest)> {
        let (sent, first) = (self.sent, self.first);
        let (bit, did, r) = (1..=sent).find_map(|j| {
            let at = first.wrapping_add(sent - j);
            let r = self.dreq.entry(at);
            let did = usize::try_from(r.id).ok().filter(|&i| i < driver.ids)?;
            // `sent - j < sent <= MAX_DRIVER_REQUESTS`: a bit of `used`.
            let bit = (sent - j) as usize;
            let fresh = self.used[bit / 64] >> (bit % 64) & 1 == 0
                && driver.slots[did].is_none()
                && self.out[did] > 0;
            let same = r.code == q.code
                && match q.code() {
                    Ok(k) if k.has_buffer() => {
                        r.count == q.count
                            && q.io_or_offset < data_size
                            && r.io_or_offset == data_io.wrapping_add(q.io_or_offset)
                    }
                    _ => true,
                };
            (fresh && same).then_some((bit, did, r))
        })?;
        self.used[bit / 64] |= 1 << (bit % 64);
        Some((did, r))
    }
}

impl<'a> BlkVirt<'a> {
    /// The virtualiser over the connections in `config`. A client whose queues already hold
    /// inconsistent indices starts out faulty; any other bad connection is an error.
    ///
    /// The token says the config's regions are mapped here for `'a` as claimed (the driver's
    /// storage info and data region readable, everything else read-write), and that this is the
    /// one virt built from them.
    ///
    /// The virt is about 33 KB (1024 driver-id slots, 64 clients): a PD builds it in place with
    /// [`new_in`](Self::new_in) rather than moving it around its stack.
    pub fn new(config: Mapped<'a, BlkVirtConfig>) -> Result<Self, QueueError> {
        let mut slot = MaybeUninit::uninit();
        // SAFETY: `slot` is valid for a write of `Self`.
        unsafe { Self::init_at(slot.as_mut_ptr(), config) }?;
        // SAFETY: `init_at` returned `Ok`, so it wrote every field.
        Ok(unsafe { slot.assume_init() })
    }

    /// As [`new`](Self::new), built in `slot` (e.g. a [`StaticSlot`](lions_os::cell::StaticSlot))
    /// field by field, so the virt is never on the stack.
    pub fn new_in(
        slot: &'a mut MaybeUninit<Self>,
        config: Mapped<'a, BlkVirtConfig>,
    ) -> Result<&'a mut Self, QueueError> {
        // SAFETY: `slot` is valid for a write of `Self`.
        unsafe { Self::init_at(slot.as_mut_ptr(), config) }?;
        // SAFETY: `init_at` returned `Ok`, so it wrote every field.
        Ok(unsafe { slot.assume_init_mut() })
    }

    /// Write a virt over `config` at `p`: every field on `Ok`, nothing that needs dropping on
    /// `Err` (the fallible parts come first).
    ///
    /// # Safety
    /// `p` is valid for a write of `Self`.
    unsafe fn init_at(p: *mut Self, config: Mapped<'a, BlkVirtConfig>) -> Result<(), QueueError> {
        let config = config.config();
        let d = &config.driver;
        // SAFETY: the token: mapped here for `'a` as claimed, each region shared only with its
        // peer and device, and this virt makes the only handles on them (here and below).
        let queue = unsafe { BlkRequester::from_connection(&d.conn) }?;
        // SAFETY: as above.
        let disk = unsafe { StorageInfoPage::from_region(&d.conn.storage_info) }?;
        let (base, len) = lions_queue::clients::region(d.data.region.vaddr, d.data.region.size)?;
        let ids = MAX_DRIVER_REQUESTS.min(usize::from(d.conn.num_buffers));
        let num_clients = config.clients().len();
        let share = (ids / num_clients.max(1)).max(1) as u64;
        let driver_ch = d.conn.channel()?;
        let clients = Clients::new(config.clients(), |_, cfg| {
            // SAFETY: as above.
            match unsafe { client(cfg, share) } {
                Ok(cl) => Ok(Some(cl)),
                Err(QueueError::Handle(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        // Every field is written below; this pattern stops compiling when one is added.
        let _every_field = |v: &Self| {
            let Self {
                config: _,
                driver:
                    Driver {
                        queue: _,
                        slots: _,
                        ids: _,
                        free: _,
                        nfree: _,
                    },
                driver_ch: _,
                disk: _,
                bounce: _,
                clients: _,
                num_clients: _,
                part: _,
                skip: _,
                ready: _,
                next: _,
            } = v;
        };
        // SAFETY: `p` is valid for writes of `Self` (the caller), so of each field; the arrays are
        // written element by element (no 16 KB temporary), every element of both.
        unsafe {
            (&raw mut (*p).config).write(config);
            let drv = &raw mut (*p).driver;
            (&raw mut (*drv).queue).write(queue);
            let slots = (&raw mut (*drv).slots).cast::<Option<Slot>>();
            let free = (&raw mut (*drv).free).cast::<u16>();
            for i in 0..MAX_DRIVER_REQUESTS {
                slots.add(i).write(None);
                // Ids pop from the end: hand out 0 first.
                free.add(i)
                    .write(u16::try_from(ids.saturating_sub(1 + i)).unwrap_or(0));
            }
            (&raw mut (*drv).ids).write(ids);
            (&raw mut (*drv).nfree).write(ids);
            (&raw mut (*p).driver_ch).write(driver_ch);
            (&raw mut (*p).disk).write(disk);
            (&raw mut (*p).bounce).write((base, len, d.data.io_addr));
            (&raw mut (*p).clients).write(clients);
            (&raw mut (*p).num_clients).write(num_clients);
            (&raw mut (*p).part).write(None);
            (&raw mut (*p).skip).write(0);
            (&raw mut (*p).ready).write(false);
            (&raw mut (*p).next).write(0);
        }
        Ok(())
    }

    /// Clients found misbehaving (bit i = client i); they are no longer served.
    pub fn faulty(&self) -> u64 {
        self.clients.faulty()
    }

    /// Whether the partition table has been read and the clients' pages published.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Take over from a previous incarnation (a restarted component's `init`, in place of
    /// [`init`](Self::init); see the module docs): rebuild what each driver id stands for from
    /// the queues, answer `ErrUnspec` to owed requests found nowhere, read the partition table
    /// again and serve. Returns how many requests were answered that way.
    ///
    /// It reads the driver's queues, which the token [`new`](Self::new) took vouches for.
    pub fn resume(&mut self) -> Result<u32, Error> {
        let d = &self.config.driver.conn;
        // SAFETY: the token `new` took: the driver's queues are mapped here for `'a` (and `new`
        // checked both regions, so the views cannot be refused).
        let views = unsafe {
            RawBlkQueue::<BlkRequest>::new(&d.req_queue, d.num_buffers, 16).and_then(|q| {
                Ok((
                    q,
                    RawBlkQueue::<BlkResponse>::new(&d.resp_queue, d.num_buffers, 8)?,
                ))
            })
        };
        let Ok((dreq, dresp)) = views else {
            return Err(Error::Overflow);
        };
        // A driver request of no client: a client index that is never served (or, with every
        // index in use, the partitioner's, whose stale answer is then fed to a fresh read).
        let stale = u8::try_from(self.num_clients).unwrap_or(OWN);
        self.driver.slots = [None; MAX_DRIVER_REQUESTS];
        let mut window = DriverWindow::new(dreq, &dresp, d.num_buffers);
        let mut answered = 0;
        let config = self.config;
        for (c, cfg) in config.clients().iter().enumerate().take(self.num_clients) {
            let conn = &cfg.conn;
            // SAFETY: as above, the clients' queues.
            let views = unsafe {
                RawBlkQueue::<BlkRequest>::new(&conn.req_queue, conn.num_buffers, 16).and_then(
                    |q| {
                        let r =
                            RawBlkQueue::<BlkResponse>::new(&conn.resp_queue, conn.num_buffers, 8);
                        Ok((q, r?))
                    },
                )
            };
            let Ok((req, resp)) = views else {
                continue;
            };
            answered += self.reclaim_owed(c, &req, &resp, conn.num_buffers, &mut window);
        }
        self.rebuild_free_ids(&window.out, stale);
        (self.part, self.ready) = (None, false);
        self.notified(ChannelSet::from_bits(1 << self.driver_ch.index()))?;
        Ok(answered)
    }

    /// `resume`, for client `c` with queues `req`/`resp` of `capacity`: find each request it is
    /// owed, give it back its driver id (from `window`) or answer it as lost. How many were
    /// answered.
    fn reclaim_owed(
        &mut self,
        c: usize,
        req: &RawBlkQueue<'_, BlkRequest>,
        resp: &RawBlkQueue<'_, BlkResponse>,
        capacity: u16,
        window: &mut DriverWindow<'_>,
    ) -> u32 {
        let Some((data_io, data_size)) = self.clients.get(c).map(|cl| (cl.data_io, cl.data_size))
        else {
            return 0;
        };
        // Owed: taken (before the request head) and not answered, newest first, as many as
        // the indices say. Ids may be reused once answered, so a request is owed when its id
        // has no newer request and more requests than answers in the windows (the answers
        // window cut to the requests window less what is owed).
        let cap = u32::from(capacity);
        let mut owed = req.head().wrapping_sub(resp.tail()).min(cap);
        let w = req.head().min(cap);
        let rw = w.saturating_sub(owed).min(resp.tail());
        let reqs = |id: u32| {
            (1..=w)
                .filter(|&k| req.entry(req.head().wrapping_sub(k)).id == id)
                .count()
        };
        let answers = |id: u32| {
            (1..=rw)
                .filter(|&k| resp.entry(resp.tail().wrapping_sub(k)).id == id)
                .count()
        };
        let mut answered = 0;
        for k in 1..=w {
            if owed == 0 {
                break;
            }
            let q = req.entry(req.head().wrapping_sub(k));
            let newer = (1..k).any(|k2| req.entry(req.head().wrapping_sub(k2)).id == q.id);
            if newer || reqs(q.id) <= answers(q.id) {
                continue;
            }
            owed -= 1;
            let Some((did, r)) = window.claim(&q, data_io, data_size, &self.driver) else {
                // Taken but at no driver id: the old incarnation died before passing it on.
                answered += self.answer_lost(c, q.id);
                continue;
            };
            self.driver.slots[did] = Some(Slot {
                client: u8::try_from(c).unwrap_or(OWN),
                count: r.count,
                id: q.id,
            });
            if let Some(cl) = self.clients.get(c) {
                cl.in_flight += 1;
                cl.barrier |= r.code() == Ok(RequestCode::Barrier);
            }
        }
        answered
    }

    /// `resume`'s last step: driver ids still `out` that no owed request claimed keep them
    /// (for the `stale` client) until answered; every other id is free again.
    fn rebuild_free_ids(&mut self, out: &[i32; MAX_DRIVER_REQUESTS], stale: u8) {
        for (did, n) in out.iter().enumerate().take(self.driver.ids) {
            if *n > 0 && self.driver.slots[did].is_none() {
                self.driver.slots[did] = Some(Slot {
                    client: stale,
                    count: 0,
                    id: 0,
                });
            }
        }
        self.driver.nfree = 0;
        for did in (0..self.driver.ids).rev() {
            if self.driver.slots[did].is_none() {
                self.driver.free[self.driver.nfree] = u16::try_from(did).unwrap_or(0);
                self.driver.nfree += 1;
            }
        }
    }

    /// Answer client `c`'s request `id` with `ErrUnspec` (lost in a restart); 1 if staged.
    fn answer_lost(&mut self, c: usize, id: u32) -> u32 {
        let Some(cl) = self.clients.get(c) else {
            return 0;
        };
        match cl
            .queue
            .respond(BlkResponse::new(ResponseStatus::ErrUnspec, 0, id))
        {
            Ok(()) => 1,
            Err(_) => 0,
        }
    }

    /// Start partitioning if the driver is ready. Call once, from the PD's `init`.
    pub fn init(&mut self) -> Result<(), Error> {
        self.start()?;
        self.notify()
    }

    fn start(&mut self) -> Result<(), Error> {
        // Once partitioning started the page is not read again (it costs more than a request).
        if self.part.is_some() {
            return Ok(());
        }
        let Some(info) = self.disk.read() else {
            return Ok(());
        };
        let (p, step) = Partitioner::new(info.sector_size, info.capacity, self.bounce.1);
        self.part = Some(p);
        self.step(step)
    }

    /// Ask the driver for a partitioner read, or publish the clients' pages when it is done.
    fn step(&mut self, mut step: Step) -> Result<(), Error> {
        while let Step::Read { offset, len } = step {
            let skip = offset % BLK;
            let count = u16::try_from((skip + len as u64).div_ceil(BLK)).unwrap_or(u16::MAX);
            let r = BlkRequest::new(RequestCode::Read, self.bounce.2, offset / BLK, count, 0);
            if self.driver.send(r, OWN, 0)? {
                self.skip = usize::try_from(skip).unwrap_or(0);
                return Ok(());
            }
            let Some(p) = &mut self.part else {
                return Ok(());
            };
            step = p.read_failed();
        }
        self.publish_partitions();
        Ok(())
    }

    /// The driver answered a partitioner read.
    fn own_response(&mut self, resp: BlkResponse, slot: Slot) -> Result<(), Error> {
        let Some(p) = self.part.as_mut().filter(|_| !self.ready) else {
            return Ok(());
        };
        let (skip, len) = (self.skip, p.expected());
        let ok = resp.status() == Ok(ResponseStatus::Ok) && resp.success_count == slot.count;
        let step = if ok && skip + len <= self.bounce.1 {
            // SAFETY: `skip + len` lies inside the driver data region, mapped for `'a`; the driver
            // has completed the read into it (its response is here) and writes it again only for
            // our next request, which is sent after this slice is dropped.
            let data =
                unsafe { core::slice::from_raw_parts(self.bounce.0.as_ptr().add(skip), len) };
            p.feed(data)
        } else {
            p.read_failed()
        };
        self.step(step)
    }

    /// Publish every client's storage info from the finished table.
    fn publish_partitions(&mut self) {
        let (Some(p), Some(disk)) = (&self.part, self.disk.read()) else {
            return;
        };
        let _ = self.clients.each(|_, cl| {
            cl.extent = p.table().ok().and_then(|t| t.get(cl.partition));
            cl.read_only = disk.read_only();
            let mut info = disk;
            info.capacity = cl.extent.map_or(0, |e| e.blocks);
            info.queue_depth = u16::try_from(cl.limit).unwrap_or(u16::MAX);
            (info.cylinders, info.heads, info.blocks) = (0, 0, 0);
            cl.page.publish(&info);
            Ok::<_, ()>(true)
        });
        self.ready = true;
    }

    /// The partition table read at start (once [`is_ready`](Self::is_ready)), or why there is
    /// none.
    pub fn partitions(&self) -> Option<Result<&PartitionTable, PartitionError>> {
        self.part
            .as_ref()
            .filter(|_| self.is_ready())
            .map(Partitioner::table)
    }

    /// Phase 1, driver side: every response back to its client (or to the partitioner).
    fn driver_return(&mut self) -> Result<(), Error> {
        while let Some(resp) = self.driver.queue.response()? {
            let d = &mut self.driver;
            let did = usize::try_from(resp.id).unwrap_or(usize::MAX);
            let Some(slot) = d.slots[..d.ids].get_mut(did).and_then(Option::take) else {
                continue;
            };
            // `did < ids <= MAX_DRIVER_REQUESTS`, and a taken slot's id is not on the stack.
            d.free[d.nfree] = u16::try_from(did).unwrap_or(0);
            d.nfree += 1;
            if slot.client == OWN {
                self.own_response(resp, slot)?;
                continue;
            }
            let c = usize::from(slot.client);
            let Some(cl) = self.clients.get(c) else {
                continue;
            };
            cl.in_flight = cl.in_flight.saturating_sub(1);
            cl.barrier &= cl.in_flight > 0;
            let status = resp.status().unwrap_or(ResponseStatus::ErrUnspec);
            let count = resp.success_count.min(slot.count);
            if cl
                .queue
                .respond(BlkResponse::new(status, count, slot.id))
                .is_err()
            {
                self.clients.fault(c);
            }
        }
        Ok(())
    }

    /// Phase 1, client side: take client `c`'s requests while its limit, its response room and
    /// the driver allow.
    fn client_provide(&mut self, c: usize) -> Result<(), Error> {
        let Self {
            clients, driver, ..
        } = self;
        let Some(cl) = clients.get(c) else {
            return Ok(());
        };
        loop {
            if cl.barrier || cl.in_flight >= cl.limit {
                return Ok(());
            }
            let req = match cl.queue.peek_request(cl.in_flight) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(_) => {
                    clients.fault(c);
                    return Ok(());
                }
            };
            match translate(cl, &req) {
                Err(status) => {
                    if cl
                        .queue
                        .respond(BlkResponse::new(status, 0, req.id))
                        .is_err()
                    {
                        clients.fault(c);
                        return Ok(());
                    }
                }
                Ok(r) => {
                    let barrier = r.code == RequestCode::Barrier as u32;
                    let owner = u8::try_from(c).unwrap_or(OWN);
                    if barrier && cl.in_flight > 0 || !driver.send(r, owner, req.id)? {
                        return Ok(());
                    }
                    cl.in_flight += 1;
                    cl.barrier = barrier;
                }
            }
            let _ = cl.queue.request();
        }
    }

    /// Phase 3: publish everywhere; notify whoever got something.
    fn notify(&mut self) -> Result<(), Error> {
        if self.driver.queue.publish()? {
            self.driver_ch.notify()?;
        }
        self.clients.each(|_, cl| {
            if cl.queue.publish() {
                cl.ch.notify()?;
            }
            Ok(true)
        })
    }
}

/// The client's connection and data region, checked.
///
/// # Safety
/// As for [`BlkVirt::new`].
unsafe fn client<'a>(cfg: &BlkVirtClient, share: u64) -> Result<Client<'a>, QueueError> {
    // SAFETY: forwarded from the caller.
    let queue = unsafe { BlkServer::from_connection(&cfg.conn) }?;
    // SAFETY: forwarded from the caller.
    let page = unsafe { StorageInfoWriter::from_region(&cfg.conn.storage_info) }?;
    let data = cfg.data;
    if data.io_addr.checked_add(data.region.size).is_none() || !data.io_addr.is_multiple_of(BLK) {
        return Err(QueueError::Region(RegionError::Misaligned));
    }
    Ok(Client {
        queue,
        ch: cfg.conn.channel()?,
        page,
        data_io: data.io_addr,
        data_size: data.region.size,
        partition: cfg.partition,
        extent: None,
        read_only: true,
        limit: share.min(u64::from(cfg.conn.num_buffers)),
        in_flight: 0,
        barrier: false,
    })
}

/// Check a client's request and translate it for the driver (id left 0), or the refusal.
fn translate(cl: &Client<'_>, r: &BlkRequest) -> Result<BlkRequest, ResponseStatus> {
    let bad = ResponseStatus::ErrInvalidParam;
    let code = r.code().map_err(|_| bad)?;
    let part = cl.extent.ok_or(ResponseStatus::ErrNoDevice)?;
    if !code.has_buffer() {
        return Ok(BlkRequest::new(code, 0, 0, 0, 0));
    }
    let count = u64::from(r.count);
    let in_part = r
        .block_number
        .checked_add(count)
        .is_some_and(|e| e <= part.blocks);
    let in_data = r
        .io_or_offset
        .checked_add(count * BLK)
        .is_some_and(|e| e <= cl.data_size);
    let write_ok = code != RequestCode::Write || !cl.read_only;
    if count == 0 || !in_part || !in_data || !r.io_or_offset.is_multiple_of(BLK) || !write_ok {
        return Err(bad);
    }
    let io = cl.data_io + r.io_or_offset;
    Ok(BlkRequest::new(
        code,
        io,
        part.start + r.block_number,
        r.count,
        0,
    ))
}

impl Handler for BlkVirt<'_> {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        if channels.contains(self.driver_ch) {
            self.driver_return()?;
            self.start()?;
        }
        if self.is_ready() && self.num_clients > 0 {
            for i in 0..self.num_clients {
                self.client_provide((self.next + i) % self.num_clients)?;
            }
            self.next = (self.next + 1) % self.num_clients;
        }
        self.notify()
    }
}
