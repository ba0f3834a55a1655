// SPDX-License-Identifier: BSD-2-Clause
//! The device models over the real client sides: virtio-console over `lions_serial::SerialClient`
//! on queues in test memory, with the serial virtualisers' ends played by the test (their
//! producer and consumer handles) and notifications recorded by a fake OS backend.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use core::ptr::NonNull;
use lions_os::runtime::{Backend, with_backend};
use lions_os::{Channel, MessageInfo, Op, OsError, OsErrorKind};
use lions_serial::{SerialClient, SerialConsumer, SerialProducer};
use lions_vmm::abort::Width;
use lions_vmm::ram::{GuestMemory, GuestRam};
use lions_vmm::virtio::console::Console;
use lions_vmm::virtio::mmio::{self, VirtioMmio, reg};
use std::cell::RefCell;

const TX: Channel = Channel::new(1);
const RX: Channel = Channel::new(2);

#[derive(Default)]
struct Os {
    notes: RefCell<Vec<u8>>,
}

impl Backend for Os {
    fn pd_name(&self) -> &str {
        "vmm"
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        self.notes.borrow_mut().push(ch.index());
        Ok(())
    }
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        Err(OsError::new(
            "vmm",
            Op::IrqAck,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn ppcall(&self, ch: Channel, _: MessageInfo) -> Result<MessageInfo, OsError> {
        Err(OsError::new(
            "vmm",
            Op::PpCall,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn mr(&self, _: usize) -> u64 {
        0
    }
    fn set_mr(&self, _: usize, _: u64) {}
}

/// One serial queue's memory (header and data, 8-aligned).
struct Queue {
    header: Vec<u64>,
    data: Vec<u64>,
}

impl Queue {
    const CAP: usize = 256;
    fn new() -> Self {
        Self {
            header: vec![0; 2],
            data: vec![0; Self::CAP / 8],
        }
    }
    fn parts(&mut self) -> (NonNull<u8>, NonNull<u8>) {
        (
            NonNull::new(self.header.as_mut_ptr().cast()).unwrap(),
            NonNull::new(self.data.as_mut_ptr().cast()).unwrap(),
        )
    }
    fn producer(&mut self) -> SerialProducer<'static> {
        let (q, d) = self.parts();
        // SAFETY: the buffers outlive the handles in the test; one handle per role.
        unsafe { SerialProducer::new(q, 16, d, Self::CAP) }.unwrap()
    }
    fn consumer(&mut self) -> SerialConsumer<'static> {
        let (q, d) = self.parts();
        // SAFETY: as above.
        unsafe { SerialConsumer::new(q, 16, d, Self::CAP) }.unwrap()
    }
}

const W: Width = Width::Word;

/// Brings a device up with queues (desc, avail, used, size).
fn bring_up<D: mmio::VirtioDevice>(
    d: &mut VirtioMmio<D>,
    ram: &mut GuestRam<'_>,
    qs: &[(u64, u64, u64, u16)],
) {
    d.write(ram, reg::STATUS, W, 3);
    d.write(ram, reg::DRIVER_FEATURES_SEL, W, 1);
    d.write(ram, reg::DRIVER_FEATURES, W, 1);
    d.write(ram, reg::STATUS, W, 3 | u64::from(mmio::STATUS_FEATURES_OK));
    for (i, &(desc, avail, used, size)) in qs.iter().enumerate() {
        d.write(ram, reg::QUEUE_SEL, W, i as u64);
        d.write(ram, reg::QUEUE_NUM, W, u64::from(size));
        d.write(ram, reg::QUEUE_DESC_LOW, W, desc);
        d.write(ram, reg::QUEUE_DRIVER_LOW, W, avail);
        d.write(ram, reg::QUEUE_DEVICE_LOW, W, used);
        d.write(ram, reg::QUEUE_READY, W, 1);
    }
    d.write(
        ram,
        reg::STATUS,
        W,
        3 | u64::from(mmio::STATUS_FEATURES_OK | mmio::STATUS_DRIVER_OK),
    );
    assert_eq!(d.status() & mmio::STATUS_DRIVER_OK, mmio::STATUS_DRIVER_OK);
}

/// Publishes a one-descriptor chain in the queue at (desc, avail).
fn publish(
    ram: &mut GuestRam<'_>,
    q: (u64, u64, u64, u16),
    idx: u16,
    addr: u64,
    len: u32,
    writable: bool,
) {
    let at = q.0 + 16 * u64::from(idx);
    ram.write_u64(at, addr).unwrap();
    ram.write_u32(at + 8, len).unwrap();
    ram.write_u16(at + 12, if writable { 2 } else { 0 })
        .unwrap();
    ram.write_u16(q.1 + 4 + 2 * u64::from(idx % q.3), idx)
        .unwrap();
    ram.write_u16(q.1 + 2, idx + 1).unwrap();
}

#[test]
fn console_over_the_serial_client() {
    let (mut txq, mut rxq) = (Queue::new(), Queue::new());
    let mut virt_tx = txq.consumer();
    let mut virt_rx = rxq.producer();
    let client = SerialClient::with_queues(txq.producer(), TX, Some((rxq.consumer(), RX)));
    let mut m = vec![0u8; 0x20000];
    let mut ram = GuestRam::single(0x4000_0000, &mut m).unwrap();
    let rx_ring = (0x4000_1000, 0x4000_2000, 0x4000_3000, 8);
    let tx_ring = (0x4000_8000, 0x4000_9000, 0x4000_a000, 8);
    let os = Os::default();
    with_backend(&os, || {
        let mut d = VirtioMmio::new(Console::new(client));
        bring_up(&mut d, &mut ram, &[rx_ring, tx_ring]);
        // Guest output reaches the Tx virtualiser's end, published and notified.
        ram.write(0x4001_0000, b"login: ").unwrap();
        publish(&mut ram, tx_ring, 0, 0x4001_0000, 7, false);
        assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, W, 1));
        let mut out = [0u8; 64];
        let n = virt_tx.read(&mut out).unwrap();
        virt_tx.release();
        assert_eq!(&out[..n], b"login: ");
        assert!(os.notes.borrow().contains(&TX.index()));
        // Input from the Rx virtualiser reaches the guest's receive buffer.
        virt_rx.write(b"root\n").unwrap();
        virt_rx.publish();
        publish(&mut ram, rx_ring, 0, 0x4001_1000, 32, true);
        assert!(d.poll(&mut ram));
        assert_eq!(ram.slice(0x4001_1000, 5).unwrap(), b"root\n");
        assert_eq!(ram.read_u32(0x4000_3000 + 8), Ok(5));
    });
}

mod blk {
    use super::*;
    use lions_blk::{
        BlkClient, BlkRequester, BlkResponse, BlkServer, BlkStorageInfo, RequestCode,
        ResponseStatus, StorageInfoPage, StorageInfoWriter,
    };
    use lions_vmm::virtio::blk::{Blk, S_OK};
    use zerocopy::FromZeros;

    const CH: Channel = Channel::new(3);
    const CAP: u16 = 8;
    const UNITS: usize = 16;

    fn ptr(v: &mut [u64]) -> NonNull<u8> {
        NonNull::new(v.as_mut_ptr().cast()).unwrap()
    }

    /// The blk virtualiser's end: serves every published request against `disk`.
    fn serve(server: &mut BlkServer<'_>, disk: &mut [u8], data: *mut u8) {
        while let Some(r) = server.request().unwrap() {
            let (d, n, o) = (
                r.block_number as usize * 4096,
                usize::from(r.count) * 4096,
                r.io_or_offset as usize,
            );
            // SAFETY: the test's data region is 4 cells of 32 KiB; the device keeps requests in it.
            let region = unsafe { core::slice::from_raw_parts_mut(data, 4 * 32 * 1024) };
            match r.code().unwrap() {
                RequestCode::Read => region[o..o + n].copy_from_slice(&disk[d..d + n]),
                RequestCode::Write => disk[d..d + n].copy_from_slice(&region[o..o + n]),
                _ => {}
            }
            server
                .respond(BlkResponse::new(ResponseStatus::Ok, r.count, r.id))
                .unwrap();
        }
        server.publish();
    }

    #[test]
    fn virtio_blk_over_the_blk_client() {
        let (mut req, mut resp, mut info) = (
            vec![0u64; 2 + 4 * 8],
            vec![0u64; 1 + 2 * 8],
            vec![0u64; 512],
        );
        let mut data = vec![0u64; 4 * 32 * 1024 / 8];
        let mut disk: Vec<u8> = (0..UNITS * 4096).map(|i| (i % 251) as u8).collect();
        let (rq, rs, ip, dp) = (
            ptr(&mut req),
            ptr(&mut resp),
            ptr(&mut info),
            ptr(&mut data),
        );
        let (rql, rsl) = (req.len() * 8, resp.len() * 8);
        // SAFETY: the regions outlive every handle in this test; one handle per role.
        let (client, mut server) = unsafe {
            let mut page = BlkStorageInfo::new_zeroed();
            page.capacity = UNITS as u64;
            page.sector_size = 512;
            StorageInfoWriter::new(ip, 4096).unwrap().publish(&page);
            let q = BlkRequester::new(rq, rql, rs, rsl, CAP).unwrap();
            let client = BlkClient::with_queues(
                q,
                CH,
                StorageInfoPage::new(ip, 4096).unwrap(),
                dp,
                data.len() * 8,
            );
            (client, BlkServer::new(rq, rql, rs, rsl, CAP).unwrap())
        };
        let mut m = vec![0u8; 0x40000];
        let mut ram = GuestRam::single(0, &mut m).unwrap();
        let ring = (0x1000, 0x2000, 0x3000, 16);
        let os = Os::default();
        with_backend(&os, || {
            let mut d = VirtioMmio::new(Blk::new(client).unwrap());
            bring_up(&mut d, &mut ram, &[ring]);
            assert_eq!(d.read(reg::CONFIG, Width::Double), (UNITS * 8) as u64);
            // A partial write (sectors 9..11, inside unit 1), then a read of sectors 8..16.
            let chain = |ram: &mut GuestRam<'_>,
                         first: u16,
                         ty: u32,
                         sector: u64,
                         len: u32,
                         data_w: bool| {
                let hdr = 0x4000 + u64::from(first) * 16;
                ram.write_u32(hdr, ty).unwrap();
                ram.write_u64(hdr + 8, sector).unwrap();
                let descs = [
                    (hdr, 16, 0u16),
                    (0x10000, len, if data_w { 2 } else { 0 }),
                    (0x5000 + u64::from(first), 1, 2),
                ];
                for (k, &(addr, l, f)) in descs.iter().enumerate() {
                    let i = first + k as u16;
                    let at = ring.0 + 16 * u64::from(i);
                    ram.write_u64(at, addr).unwrap();
                    ram.write_u32(at + 8, l).unwrap();
                    ram.write_u16(at + 12, f | if k < 2 { 1 } else { 0 })
                        .unwrap();
                    ram.write_u16(at + 14, i + 1).unwrap();
                }
                let idx = ram.read_u16(ring.1 + 2).unwrap();
                ram.write_u16(ring.1 + 4 + 2 * u64::from(idx % 16), first)
                    .unwrap();
                ram.write_u16(ring.1 + 2, idx + 1).unwrap();
            };
            ram.write(0x10000, &[0xab; 1024]).unwrap();
            chain(&mut ram, 0, 1, 9, 1024, false);
            d.write(&mut ram, reg::QUEUE_NOTIFY, W, 0);
            for _ in 0..4 {
                serve(&mut server, &mut disk, dp.as_ptr());
                d.poll(&mut ram);
            }
            assert_eq!(ram.slice(0x5000, 1).unwrap(), &[S_OK]);
            assert!(disk[9 * 512..11 * 512].iter().all(|&b| b == 0xab));
            assert_eq!(disk[8 * 512], (8 * 512 % 251) as u8);
            assert_eq!(disk[11 * 512], (11 * 512 % 251) as u8);
            chain(&mut ram, 3, 0, 8, 4096, true);
            d.write(&mut ram, reg::QUEUE_NOTIFY, W, 0);
            for _ in 0..4 {
                serve(&mut server, &mut disk, dp.as_ptr());
                d.poll(&mut ram);
            }
            assert_eq!(ram.slice(0x5003, 1).unwrap(), &[S_OK]);
            assert_eq!(ram.slice(0x10000, 4096).unwrap(), &disk[4096..8192]);
            assert_eq!(d.dev.stats, Default::default());
            assert!(os.notes.borrow().contains(&CH.index()));
        });
    }
}

mod net {
    use super::*;
    use lions_net::client::NetDevice;
    use lions_net::{
        MacAddr, NetBuffDesc, NetClientConfig, NetConnectionResource, NetQueue, NetSink, NetSource,
    };
    use lions_os::RegionResource;
    use lions_vmm::virtio::net::{F_MAC, HDR_LEN, Net};

    const CAP: u16 = 4;
    const BUF: usize = 2048;

    fn region(v: &mut [u64]) -> RegionResource {
        RegionResource {
            vaddr: v.as_mut_ptr() as u64,
            size: v.len() as u64 * 8,
        }
    }

    #[test]
    fn virtio_net_over_the_net_client() {
        let q = NetQueue::bytes_for(usize::from(CAP)).div_ceil(8);
        let (mut rxf, mut rxa, mut txf, mut txa) =
            (vec![0u64; q], vec![0u64; q], vec![0u64; q], vec![0u64; q]);
        let (mut rxd, mut txd) = (vec![0u64; BUF * 4 / 8], vec![0u64; BUF * 4 / 8]);
        let rx = NetConnectionResource::new(region(&mut rxf), region(&mut rxa), CAP, 1);
        let tx = NetConnectionResource::new(region(&mut txf), region(&mut txa), CAP, 2);
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 9]);
        let cfg = NetClientConfig::new(rx, region(&mut rxd), tx, region(&mut txd), mac);
        let os = Os::default();
        with_backend(&os, || {
            // SAFETY: every region outlives the handles; the test holds the far end of each pair.
            let (mut copier, mut virt_tx) = unsafe {
                (
                    NetSource::from_connection(&cfg.rx).unwrap(),
                    NetSink::from_connection(&cfg.tx).unwrap(),
                )
            };
            copier.prime_free(0).unwrap();
            // SAFETY: as above (the regions are this test's vectors, which no mapping table
            // knows): the client's ends, one device.
            let dev = NetDevice::new(unsafe { lions_os::Mapped::assume(&cfg) }).unwrap();
            let mut m = vec![0u8; 0x20000];
            let mut ram = GuestRam::single(0, &mut m).unwrap();
            let (rxq, txq) = ((0x1000, 0x2000, 0x3000, 8), (0x8000, 0x9000, 0xa000, 8));
            let mut d = VirtioMmio::new(Net::new(dev));
            bring_up(&mut d, &mut ram, &[rxq, txq]);
            assert_eq!(d.read(reg::DEVICE_FEATURES, W), F_MAC);
            assert_eq!(d.read(reg::CONFIG + 5, Width::Byte), 9);
            // Guest transmit: header + 60-byte frame; the Tx virtualiser's end receives the frame.
            let frame: Vec<u8> = (0..60u8).collect();
            ram.write(0x10000 + u64::from(HDR_LEN), &frame).unwrap();
            publish(&mut ram, txq, 0, 0x10000, HDR_LEN + 60, false);
            assert!(d.write(&mut ram, reg::QUEUE_NOTIFY, W, 1));
            let desc = virt_tx.take_active().unwrap().unwrap();
            assert_eq!(usize::from(desc.len), 60);
            let o = desc.io_or_offset as usize;
            // SAFETY: the Tx data region is alive; the client handed this buffer over.
            let bytes =
                unsafe { core::slice::from_raw_parts(txd.as_ptr().cast::<u8>(), txd.len() * 8) };
            assert_eq!(&bytes[o..o + 60], &frame[..]);
            assert!(os.notes.borrow().contains(&2));
            // Receive: the copier delivers a frame into a free Rx buffer; the guest gets it.
            let buf = copier.take_free().unwrap().unwrap();
            let o = buf.io_or_offset as usize;
            // SAFETY: the Rx data region is alive; the copier owns this buffer until it is active.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    [0xeeu8; 42].as_ptr(),
                    rxd.as_mut_ptr().cast::<u8>().add(o),
                    42,
                )
            };
            copier
                .active
                .push(NetBuffDesc::new(buf.io_or_offset, 42))
                .unwrap();
            copier.publish_active();
            publish(&mut ram, rxq, 0, 0x12000, 1526, true);
            assert!(d.poll(&mut ram));
            assert_eq!(ram.read_u32(rxq.2 + 8), Ok(HDR_LEN + 42));
            assert_eq!(
                ram.slice(0x12000 + u64::from(HDR_LEN), 42).unwrap(),
                &[0xee; 42]
            );
            assert_eq!((d.dev.stats.tx, d.dev.stats.rx), (1, 1));
        });
    }
}
