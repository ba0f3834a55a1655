// SPDX-License-Identifier: BSD-2-Clause
//! Blk workload: the block virtualiser alone, the bench playing the driver and two clients.
//!
//! The disk (256 MiB, 512-byte sectors) has an MBR with two 64 MiB partitions; client `c` sees
//! partition `c`. 512-entry queues. The virt reads the MBR through the bench's driver at start
//! (the only data the driver moves: the workload checks translation, not payload). A round: the
//! clients submit `batch` single-block (4 KiB) requests between them, reads and writes in turn
//! (32: 16 each; 1: the clients take turns); each client with requests notifies and the virt runs
//! an event at once (it has the higher priority); the driver checks every request (partition
//! start + block, data region I/O address + offset), answers all of them and notifies: one more
//! event; the clients check every response (status, count, id, in order). A unit is one request:
//! the cost of a round's events divided by its requests.

use crate::os::{Mem, Ring, Shim, Width, event_fns, set, start};
use lions_blk::config::{BlkConnectionResource, BlkVirtConfig};
use lions_blk::queue::{BlkRequest, BlkResponse, RequestCode, ResponseStatus};
use lions_blk::storage_info::BlkStorageInfo;
use lions_blk::virt::BlkVirt;
use lions_os::{ConfigClass, DeviceRegionResource, sddf_magic};
use zerocopy::{FromZeros, IntoBytes};

/// Queue capacity (entries).
const QUEUE: u16 = 512;
const BLK: u64 = 4096;
/// Disk size in 4 KiB blocks, and the partitions (start block, blocks).
const DISK_BLOCKS: u64 = 65536;
const PARTS: [(u64, u64); 2] = [(256, 16384), (256 + 16384, 16384)];
/// Buffers in each client's data region.
const CLIENT_BUFFERS: u64 = 64;
/// I/O addresses of the driver's and the clients' data regions.
const IO_DRIVER: u64 = 0x6000_0000;
const IO_CLIENT: [u64; 2] = [0x4000_0000, 0x5000_0000];

event_fns!(
    /// One measured event of the blk virtualiser.
    insns_blk_virt,
    warm_blk_virt,
    BlkVirt<'_>
);

/// A request and a response queue, and a storage-info page.
struct Conn {
    info: Mem,
    req: Mem,
    resp: Mem,
}

impl Conn {
    fn new() -> Self {
        let n = usize::from(QUEUE);
        Self {
            info: Mem::new(4096),
            req: Mem::new(16 + n * size_of::<BlkRequest>()),
            resp: Mem::new(8 + n * size_of::<BlkResponse>()),
        }
    }

    fn res(&self, id: u8) -> BlkConnectionResource {
        BlkConnectionResource {
            storage_info: self.info.res(),
            req_queue: self.req.res(),
            resp_queue: self.resp.res(),
            num_buffers: QUEUE,
            id,
            _pad: [0; 5],
        }
    }

    fn requests(&self) -> Ring<'_, BlkRequest> {
        Ring::new(
            &self.req,
            (0, 4),
            &self.req,
            16,
            u32::from(QUEUE),
            Width::U32,
        )
    }

    fn responses(&self) -> Ring<'_, BlkResponse> {
        Ring::new(
            &self.resp,
            (0, 4),
            &self.resp,
            8,
            u32::from(QUEUE),
            Width::U32,
        )
    }
}

/// The first block of the disk: an MBR with the two partitions.
fn mbr() -> Vec<u8> {
    let mut b = vec![0u8; BLK as usize];
    for (i, &(start, blocks)) in PARTS.iter().enumerate() {
        let e = 446 + 16 * i;
        b[e + 4] = 0x83;
        let first = u32::try_from(start * 8).expect("lba");
        let count = u32::try_from(blocks * 8).expect("sectors");
        b[e + 8..e + 12].copy_from_slice(&first.to_le_bytes());
        b[e + 12..e + 16].copy_from_slice(&count.to_le_bytes());
    }
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

/// The virt with two clients; `batch` requests per client notification.
pub fn virt(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    let driver = Conn::new();
    let clients = [Conn::new(), Conn::new()];
    let bounce = Mem::new(16 * BLK as usize);
    let data = [
        Mem::new((CLIENT_BUFFERS * BLK) as usize),
        Mem::new((CLIENT_BUFFERS * BLK) as usize),
    ];
    let mut info = BlkStorageInfo::new_zeroed();
    (info.sector_size, info.block_size, info.queue_depth) = (512, 1, QUEUE);
    info.capacity = DISK_BLOCKS;
    info.ready = 1;
    driver.info.write(0, info.as_bytes());
    let mut cfg = Box::new(BlkVirtConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::Blk);
    cfg.num_clients = 2;
    cfg.driver.conn = driver.res(0);
    cfg.driver.data = DeviceRegionResource {
        region: bounce.res(),
        io_addr: IO_DRIVER,
    };
    for c in 0..2 {
        cfg.clients[c].conn = clients[c].res(c as u8 + 1);
        cfg.clients[c].data = DeviceRegionResource {
            region: data[c].res(),
            io_addr: IO_CLIENT[c],
        };
        cfg.clients[c].partition = c as u32;
    }
    // SAFETY: every region named in `cfg` is a live `Mem` of this frame, outliving `virt`; the
    // bench touches them only between events, as the peers.
    // (These are the bench's own memories, which no mapping table knows: `assume`.)
    let mut virt = BlkVirt::new(unsafe { lions_os::Mapped::assume(&cfg) }).expect("BlkVirt::new");
    start(|| virt.init());
    // The driver answers the partition-table read(s) from the disk's first block.
    let disk = mbr();
    while !virt.is_ready() {
        let mut any = false;
        while let Some(r) = driver.requests().pop() {
            assert_eq!((r.code, r.block_number), (RequestCode::Read as u32, 0));
            let at = usize::try_from(r.io_or_offset - IO_DRIVER).expect("bounce offset");
            bounce.write(at, &disk);
            let resp = BlkResponse::new(ResponseStatus::Ok, r.count, r.id);
            driver.responses().push(resp);
            any = true;
        }
        assert!(any, "the virt did not read the partition table");
        warm_blk_virt(&mut virt, set(&[0]));
    }
    for (c, conn) in clients.iter().enumerate() {
        let mut page = BlkStorageInfo::new_zeroed();
        conn.info.read(0, page.as_mut_bytes());
        assert_eq!(
            (page.ready, page.capacity),
            (1, PARTS[c].1),
            "client {c} page"
        );
    }
    let (warm, measured) = (warmup.div_ceil(batch), units.div_ceil(batch));
    let (mut seq, mut sent, mut done) = (0u64, [0u64; 2], [0u64; 2]);
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        let measure = round >= warm;
        let run = |v: &mut BlkVirt<'_>, ch: u8| {
            if measure {
                insns_blk_virt(v, set(&[ch]));
            } else {
                warm_blk_virt(v, set(&[ch]));
            }
        };
        let mut reqs: [Vec<BlkRequest>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..batch {
            let c = (seq % 2) as usize;
            let k = sent[c];
            let code = if (seq / 2) % 2 == 0 {
                RequestCode::Read
            } else {
                RequestCode::Write
            };
            let off = (k % CLIENT_BUFFERS) * BLK;
            let id = u32::try_from(k & 0xffff_ffff).expect("id");
            let block = k % PARTS[c].1;
            reqs[c].push(BlkRequest::new(code, off, block, 1, id));
            sent[c] += 1;
            seq += 1;
        }
        // Each client with requests submits them and notifies (blk has no signal flags).
        for (c, conn) in clients.iter().enumerate() {
            if !reqs[c].is_empty() {
                reqs[c].iter().for_each(|&r| conn.requests().push(r));
                run(&mut virt, c as u8 + 1);
            }
        }
        // Driver: check the translation, answer everything.
        let mut answered = 0;
        while let Some(r) = driver.requests().pop() {
            let c = IO_CLIENT
                .iter()
                .rposition(|&io| r.io_or_offset >= io)
                .expect("io address of no client");
            let off = r.io_or_offset - IO_CLIENT[c];
            let k = off / BLK;
            assert!(
                off.is_multiple_of(BLK) && k < CLIENT_BUFFERS,
                "client {c}: offset {off}"
            );
            let block = r.block_number - PARTS[c].0;
            assert!(
                block < PARTS[c].1 && block % CLIENT_BUFFERS == k,
                "client {c}: block"
            );
            assert_eq!(r.count, 1);
            driver
                .responses()
                .push(BlkResponse::new(ResponseStatus::Ok, r.count, r.id));
            answered += 1;
        }
        assert_eq!(
            answered, batch,
            "the virt passed on another number of requests"
        );
        run(&mut virt, 0);
        // Clients: every response, in order.
        for (c, conn) in clients.iter().enumerate() {
            while let Some(r) = conn.responses().pop() {
                assert_eq!(r.status, ResponseStatus::Ok as u32, "client {c}: status");
                assert_eq!(r.success_count, 1, "client {c}: count");
                assert_eq!(u64::from(r.id), done[c] & 0xffff_ffff, "client {c}: id");
                done[c] += 1;
            }
        }
        assert_eq!(done, sent, "requests without a response");
    }
    assert_eq!(virt.faulty(), 0);
    measured * batch
}
