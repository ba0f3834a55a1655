// SPDX-License-Identifier: BSD-2-Clause
//! The virtio-mmio transport, the split virtqueue and the virtio-blk driver against the device
//! model: a virtio-blk backend over the generic [`MmioModel`] that walks the rings in test memory
//! (the stand-in for DMA memory), checks every chain's shape, does the I/O on an in-memory disk
//! and returns chains in the order the test chooses. At the end, the driver under the generic
//! `BlkDriver` loop on the sim backend.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use super::mmio::{F_VERSION_1, status};
use super::model::{Desc, MmioModel};
use super::queue::{MAX_QUEUE_SIZE, SplitQueue};
use super::{DmaRegion, VirtioError};
use crate::mmio::Mmio;
use crate::qemu_virt_aarch64::virtio_blk::{F_BLK_SIZE, F_FLUSH, F_RO, VirtioBlk};
use core::cell::RefCell;
use core::ptr::NonNull;
use lions_blk::{BlkDevice, DeviceCompletion, DeviceOp, DeviceRequest, ResponseStatus};

const BLK: usize = 4096;

/// Test memory standing in for a DMA region: its I/O address is its address here.
struct Mem(Vec<u64>);

impl Mem {
    fn new(bytes: usize) -> Self {
        Self(vec![0; bytes / 8])
    }
    fn addr(&self) -> u64 {
        self.0.as_ptr().expose_provenance() as u64
    }
    fn len(&self) -> usize {
        self.0.len() * 8
    }
    fn region(&mut self) -> DmaRegion {
        let base = NonNull::new(self.0.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the buffer outlives the region in each test; the driver is its only user here
        // (the model reaches it by address, as a device would).
        unsafe { DmaRegion::new(base, self.len(), self.addr()) }.unwrap()
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: a u64 buffer viewed as bytes.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast(), self.len()) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), self.len()) }
    }
}

/// A virtio-blk device: the transport model plus a disk of 512-byte sectors.
struct BlkModel {
    mmio: MmioModel,
    disk: Vec<u8>,
    flushes: u32,
    /// Chains taken and processed but not yet returned: (head, bytes written).
    done: Vec<(u16, u32)>,
    /// Answer every request with this status byte instead of doing it.
    force_status: Option<u8>,
}

impl BlkModel {
    fn new(disk_bytes: usize, offered: u64, blk_size: u32, queue_max: u32) -> Self {
        let mut config = vec![0u8; 24];
        config[..8].copy_from_slice(&((disk_bytes / 512) as u64).to_le_bytes());
        config[20..24].copy_from_slice(&blk_size.to_le_bytes());
        Self {
            mmio: MmioModel::new(2, offered, &[queue_max], config),
            disk: vec![0; disk_bytes],
            flushes: 0,
            done: Vec::new(),
            force_status: None,
        }
    }

    /// Take every available chain and do it (§5.2.6: header, data, status).
    fn take(&mut self) -> usize {
        let mut n = 0;
        while let Some((head, chain)) = self.mmio.pop_avail(0) {
            let written = self.run(&chain);
            self.done.push((head, written));
            n += 1;
        }
        n
    }

    fn run(&mut self, chain: &[Desc]) -> u32 {
        let (hdr, status) = (chain[0], chain[chain.len() - 1]);
        assert!(!hdr.write && hdr.len == 16, "header descriptor {hdr:?}");
        assert!(
            status.write && status.len == 1,
            "status descriptor {status:?}"
        );
        let mut h = [0u8; 16];
        self.mmio.read_mem(hdr.addr, &mut h);
        let kind = u32::from_le_bytes(h[..4].try_into().unwrap());
        let sector = u64::from_le_bytes(h[8..].try_into().unwrap()) as usize;
        let data = &chain[1..chain.len() - 1];
        let mut written = 1;
        let code = match (kind, data) {
            _ if self.force_status.is_some() => self.force_status.unwrap(),
            (0, [d]) => {
                assert!(d.write, "a read's buffer is device-writable");
                let src = &self.disk[sector * 512..][..d.len as usize];
                self.mmio.write_mem(d.addr, src);
                written += d.len;
                0
            }
            (1, [d]) => {
                assert!(!d.write, "a write's buffer is device-readable");
                let mut buf = vec![0; d.len as usize];
                self.mmio.read_mem(d.addr, &mut buf);
                self.disk[sector * 512..][..buf.len()].copy_from_slice(&buf);
                0
            }
            (4, []) => {
                self.flushes += 1;
                0
            }
            other => panic!("unexpected request {other:?}"),
        };
        self.mmio.write_mem(status.addr, &[code]);
        written
    }

    /// Return the processed chains, last taken first.
    fn finish_reversed(&mut self) {
        while let Some((head, len)) = self.done.pop() {
            self.mmio.push_used(0, head, len);
        }
    }
}

/// The model behind a `RefCell`, so the test can play the device while the driver owns it.
struct Shared<'a>(&'a RefCell<BlkModel>);

impl Mmio for Shared<'_> {
    fn read32(&mut self, offset: usize) -> u32 {
        self.0.borrow_mut().mmio.read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut().mmio.write32(offset, value);
    }
}

/// Rings, request headers and data, all declared to the model as device-reachable.
struct Setup {
    rings: Mem,
    requests: Mem,
    data: Mem,
    model: RefCell<BlkModel>,
}

impl Setup {
    fn new(model: BlkModel) -> Self {
        let s = Self {
            rings: Mem::new(64 * 1024),
            requests: Mem::new(8 * 1024),
            data: Mem::new(16 * BLK),
            model: RefCell::new(model),
        };
        for m in [&s.rings, &s.requests, &s.data] {
            s.model.borrow_mut().mmio.windows.push((m.addr(), m.len()));
        }
        s
    }

    fn driver(&mut self) -> Result<VirtioBlk<Shared<'_>>, VirtioError> {
        self.open().map(|(d, _, _)| d)
    }

    /// The driver, and the model and the data memory the test plays with meanwhile.
    #[allow(clippy::type_complexity)]
    fn open(
        &mut self,
    ) -> Result<(VirtioBlk<Shared<'_>>, &RefCell<BlkModel>, &mut Mem), VirtioError> {
        let Self {
            rings,
            requests,
            data,
            model,
        } = self;
        let d = VirtioBlk::new(Shared(model), rings.region(), requests.region())?;
        Ok((d, model, data))
    }
}

fn default_model() -> BlkModel {
    BlkModel::new(1 << 20, F_VERSION_1 | F_FLUSH | F_BLK_SIZE, 512, 256)
}

fn req(op: DeviceOp, io_addr: u64, block: u64, count: u16, id: u32) -> DeviceRequest {
    DeviceRequest {
        op,
        io_addr,
        block,
        count,
        id,
    }
}

fn drain(d: &mut VirtioBlk<Shared<'_>>) -> Vec<DeviceCompletion> {
    std::iter::from_fn(|| d.complete()).collect()
}

#[test]
fn layout_of_a_256_entry_queue() {
    // Descriptors 16 × 256 = 4096; available ring at 4096, 6 + 512 bytes; used ring at 4616
    // (4614 rounded up to 4), 6 + 2048 bytes.
    assert_eq!(SplitQueue::layout(256), (4096, 4616, 6670));
    assert_eq!(SplitQueue::layout(1), (16, 24, 38));
}

#[test]
fn init_handshake_features_queue_and_info() {
    let mut s = Setup::new(BlkModel::new(
        8 << 20,
        F_VERSION_1 | F_RO | F_BLK_SIZE | (1 << 1) | (1 << 28),
        4096,
        1024,
    ));
    let (rings, requests) = (s.rings.addr(), s.requests.addr());
    let info = s.driver().unwrap().info().unwrap();
    assert_eq!(info.capacity, 2048, "8 MiB in 4 KiB blocks");
    assert_eq!(info.sector_size, 4096);
    assert!(info.read_only());
    assert_eq!(info.queue_depth, 256 / 3);
    let m = s.model.borrow();
    let (a, r, f) = (status::ACKNOWLEDGE, status::DRIVER, status::FEATURES_OK);
    assert_eq!(
        m.mmio.status_log,
        [0, a, a | r, a | r | f, a | r | f | status::DRIVER_OK]
    );
    // SIZE_MAX (1) and INDIRECT_DESC (28) offered but not wanted; FLUSH wanted but not offered.
    assert_eq!(m.mmio.driver_features, F_VERSION_1 | F_RO | F_BLK_SIZE);
    let q = &m.mmio.queues[0];
    assert_eq!((q.num, q.ready), (u32::from(MAX_QUEUE_SIZE), 1));
    assert_eq!(
        (q.desc, q.driver, q.device),
        (rings, rings + 4096, rings + 4616)
    );
    assert!(requests > 0);
}

#[test]
fn read_write_round_trip_and_out_of_order_completion() {
    let mut s = Setup::new(default_model());
    let io = s.data.addr();
    for (i, b) in s.data.bytes_mut()[..2 * BLK].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let (mut d, model, data) = s.open().unwrap();
    d.submit(req(DeviceOp::Write, io, 10, 2, 7)).unwrap();
    assert_eq!(model.borrow().mmio.notifies, [0]);
    assert_eq!(model.borrow_mut().take(), 1);
    model.borrow_mut().finish_reversed();
    d.ack_irq();
    assert_eq!(model.borrow().mmio.interrupt, 0, "acknowledged");
    assert_eq!(
        drain(&mut d),
        [DeviceCompletion {
            id: 7,
            status: ResponseStatus::Ok,
            blocks: 2
        }]
    );
    {
        let m = model.borrow();
        assert!(
            m.disk[10 * BLK..12 * BLK]
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8)
        );
    }
    // Three reads, returned last first.
    for (i, block) in [10u64, 11, 0].into_iter().enumerate() {
        let at = io + ((4 + i) * BLK) as u64;
        d.submit(req(DeviceOp::Read, at, block, 1, 20 + i as u32))
            .unwrap();
    }
    assert_eq!(model.borrow_mut().take(), 3);
    model.borrow_mut().finish_reversed();
    let ids: Vec<u32> = drain(&mut d).iter().map(|c| c.id).collect();
    assert_eq!(ids, [22, 21, 20]);
    let bytes = data.bytes();
    assert_eq!(
        bytes[4 * BLK..6 * BLK],
        bytes[..2 * BLK],
        "blocks 10 and 11 read back"
    );
    assert!(bytes[6 * BLK..7 * BLK].iter().all(|&b| b == 0));
}

#[test]
fn busy_queue_hands_requests_back() {
    // A 4-entry queue holds one 3-descriptor chain (and a 2-descriptor FLUSH? no: 1 left).
    let mut s = Setup::new(BlkModel::new(1 << 20, F_VERSION_1 | F_FLUSH, 512, 4));
    let io = s.data.addr();
    let (mut d, model, _data) = s.open().unwrap();
    d.submit(req(DeviceOp::Read, io, 0, 1, 1)).unwrap();
    let second = req(DeviceOp::Read, io + BLK as u64, 1, 1, 2);
    assert_eq!(d.submit(second), Err(second));
    assert_eq!(
        d.submit(req(DeviceOp::Flush, 0, 0, 0, 3)).map_err(|r| r.id),
        Err(3)
    );
    model.borrow_mut().take();
    model.borrow_mut().finish_reversed();
    assert_eq!(drain(&mut d).len(), 1);
    d.submit(second).unwrap();
    model.borrow_mut().take();
    model.borrow_mut().finish_reversed();
    assert_eq!(drain(&mut d)[0].id, 2, "descriptors were freed and reused");
}

#[test]
fn flush_with_and_without_the_feature() {
    let mut s = Setup::new(default_model());
    let (mut d, model, _data) = s.open().unwrap();
    d.submit(req(DeviceOp::Flush, 0, 0, 0, 5)).unwrap();
    model.borrow_mut().take();
    model.borrow_mut().finish_reversed();
    assert_eq!(drain(&mut d)[0].id, 5);
    assert_eq!(model.borrow().flushes, 1);

    let mut s = Setup::new(BlkModel::new(1 << 20, F_VERSION_1, 512, 256));
    let mut d = s.driver().unwrap();
    for id in 0..8 {
        d.submit(req(DeviceOp::Flush, 0, 0, 0, id)).unwrap();
    }
    assert!(
        d.submit(req(DeviceOp::Flush, 0, 0, 0, 8)).is_err(),
        "eight at most wait"
    );
    let got = drain(&mut d);
    assert_eq!(got.len(), 8);
    assert!(
        got.iter()
            .all(|c| c.status == ResponseStatus::Ok && c.blocks == 0)
    );
    assert!(
        s.model.borrow().mmio.notifies.is_empty(),
        "no cache, nothing sent"
    );
}

#[test]
fn device_status_codes() {
    let mut s = Setup::new(default_model());
    let io = s.data.addr();
    let (mut d, model, _data) = s.open().unwrap();
    for (code, want) in [
        (1, ResponseStatus::ErrIo),
        (2, ResponseStatus::ErrInvalidParam),
        (9, ResponseStatus::ErrUnspec),
    ] {
        model.borrow_mut().force_status = Some(code);
        d.submit(req(DeviceOp::Read, io, 0, 2, 1)).unwrap();
        model.borrow_mut().take();
        model.borrow_mut().finish_reversed();
        let c = d.complete().unwrap();
        assert_eq!((c.status, c.blocks), (want, 0));
    }
}

/// A device that returns ids it never got, twice the same chain, or a used index far ahead:
/// skipped or the queue is given up, never a panic or a double completion.
#[test]
fn misbehaving_device() {
    let mut s = Setup::new(default_model());
    let io = s.data.addr();
    let (mut d, model, _data) = s.open().unwrap();
    d.submit(req(DeviceOp::Read, io, 0, 1, 1)).unwrap();
    model.borrow_mut().take();
    let head = model.borrow().done[0].0;
    model.borrow_mut().mmio.push_used_raw(0, 999, 1);
    model
        .borrow_mut()
        .mmio
        .push_used_raw(0, u32::from(head) + 1, 1);
    model.borrow_mut().finish_reversed();
    model.borrow_mut().mmio.push_used(0, head, 1);
    assert_eq!(drain(&mut d).iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
    model
        .borrow_mut()
        .mmio
        .push_used_raw(0, u32::from(head), 300);
    assert!(
        d.complete().is_none(),
        "index 300 ahead of 256 entries: queue given up"
    );
    d.submit(req(DeviceOp::Read, io, 0, 1, 2)).unwrap();
    assert!(d.complete().is_none());
}

#[test]
fn suppressed_notifications_are_respected() {
    let mut s = Setup::new(default_model());
    let io = s.data.addr();
    let (mut d, model, _data) = s.open().unwrap();
    model.borrow_mut().mmio.set_no_notify(0, true);
    d.submit(req(DeviceOp::Read, io, 0, 1, 1)).unwrap();
    assert!(model.borrow().mmio.notifies.is_empty());
    model.borrow_mut().mmio.set_no_notify(0, false);
    d.submit(req(DeviceOp::Read, io, 1, 1, 2)).unwrap();
    assert_eq!(model.borrow().mmio.notifies, [0]);
}

#[test]
fn probe_and_negotiation_failures() {
    type Edit = fn(&mut BlkModel);
    let cases: [(Edit, VirtioError); 6] = [
        (|m| m.mmio.magic = 0x1234, VirtioError::BadMagic(0x1234)),
        (|m| m.mmio.version = 1, VirtioError::Version(1)),
        (
            |m| m.mmio.device_id = 1,
            VirtioError::DeviceId {
                expected: 2,
                found: 1,
            },
        ),
        (
            |m| m.mmio.offered = F_FLUSH,
            VirtioError::MissingFeatures(F_VERSION_1),
        ),
        (
            |m| m.mmio.refuse_features = true,
            VirtioError::FeaturesRefused,
        ),
        (
            |m| m.mmio.queues[0].max = 0,
            VirtioError::QueueUnavailable(0),
        ),
    ];
    for (i, (edit, want)) in cases.into_iter().enumerate() {
        let mut m = default_model();
        edit(&mut m);
        let mut s = Setup::new(m);
        assert_eq!(s.driver().err(), Some(want), "case {i}");
        let failed = s.model.borrow().mmio.status & status::FAILED != 0;
        assert_eq!(
            failed,
            i >= 3,
            "case {i}: FAILED set once negotiation started"
        );
    }
    // Rings too small for even one entry.
    let mut s = Setup::new(default_model());
    s.rings = Mem::new(32);
    assert_eq!(s.driver().err(), Some(VirtioError::QueueMemory));
    assert!(s.model.borrow().mmio.status & status::FAILED != 0);
}

#[test]
fn small_ring_region_gets_a_smaller_queue() {
    let mut s = Setup::new(default_model());
    s.rings = Mem::new(2048); // 64 entries need 1024 + 134 + 518; 128 do not fit
    s.model
        .borrow_mut()
        .mmio
        .windows
        .push((s.rings.addr(), 2048));
    assert!(s.driver().is_ok());
    assert_eq!(s.model.borrow().mmio.queues[0].num, 64);
}

/// The virtio-blk driver under the generic driver loop on the sim backend, with a raw requester
/// in place of the virt: requests through the real rings, IRQ, completions in the device's order.
#[test]
fn under_the_generic_driver_loop() {
    use lions_blk::{BlkDriver, BlkRequest, BlkRequester, BlkServer, RequestCode, StorageInfoPage};
    use lions_os::sim::{Region, Sim};
    use lions_os::{Channel, ChannelSet, Handler};

    const CAP: usize = 8;
    let req_q = Region::new(16 + 32 * CAP);
    let resp_q = Region::new(8 + 12 * CAP);
    let page = Region::new(4096);
    let mut s = Setup::new(default_model());
    let io = s.data.addr();
    let (dev, model, _data) = s.open().unwrap();
    // SAFETY: the regions outlive the sim; one handle per role.
    let (server, writer, requester, reader) = unsafe {
        (
            BlkServer::new(
                req_q.as_ptr(),
                req_q.len(),
                resp_q.as_ptr(),
                resp_q.len(),
                8,
            )
            .unwrap(),
            lions_blk::StorageInfoWriter::new(page.as_ptr(), page.len()).unwrap(),
            BlkRequester::new(
                req_q.as_ptr(),
                req_q.len(),
                resp_q.as_ptr(),
                resp_q.len(),
                8,
            )
            .unwrap(),
            StorageInfoPage::new(page.as_ptr(), page.len()).unwrap(),
        )
    };
    let driver = BlkDriver::with_queues(dev, Channel::new(0), server, Channel::new(1), writer);
    assert_eq!(reader.read().unwrap().capacity, 256);

    struct Virt<'a> {
        q: BlkRequester<'a>,
        io: u64,
        got: &'a RefCell<Vec<u32>>,
    }
    impl Handler for Virt<'_> {
        type Error = lions_blk::Error;
        fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
            if set.contains(Channel::new(1)) {
                for i in 0..3u32 {
                    let at = self.io + u64::from(i) * BLK as u64;
                    let r = BlkRequest::new(RequestCode::Read, at, u64::from(i), 1, 40 + i);
                    self.q.submit(r).unwrap();
                }
                Channel::new(1).irq_ack()?;
            }
            while let Some(r) = self.q.response()? {
                assert_eq!(r.status(), Ok(ResponseStatus::Ok));
                self.got.borrow_mut().push(r.id);
            }
            if self
                .q
                .publish()
                .expect("the driver keeps its queue heads sane")
            {
                Channel::new(0).notify()?;
            }
            Ok(())
        }
    }
    let got = RefCell::new(Vec::new());
    let mut sim = Sim::new();
    let drv = sim.add_pd("blk_driver", 200, false, driver);
    sim.irq(drv, 0).unwrap();
    let virt = Virt {
        q: requester,
        io,
        got: &got,
    };
    let virt = sim.add_pd("virt", 199, false, virt);
    sim.channel(drv, 1, virt, 0).unwrap();
    sim.irq(virt, 1).unwrap();
    sim.start();
    sim.inject_irq(virt, 1).unwrap();
    sim.run_until_idle(1000).unwrap();
    assert_eq!(
        model.borrow().mmio.notifies.len(),
        3,
        "one per request, none suppressed"
    );
    assert_eq!(model.borrow_mut().take(), 3);
    model.borrow_mut().finish_reversed();
    sim.inject_irq(drv, 0).unwrap();
    sim.run_until_idle(1000).unwrap();
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert_eq!(*got.borrow(), [42, 41, 40]);
    assert_eq!(
        model.borrow().mmio.interrupt,
        0,
        "the loop acknowledged the device"
    );
}
