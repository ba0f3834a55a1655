// SPDX-License-Identifier: BSD-2-Clause
//! virtio-net (virtio 1.2 §5.1) over virtio-mmio, as QEMU's `virt` board offers it
//! (`-device virtio-net-device`, device id 1), as an [`EthDevice`].
//!
//! - **Resources** (`interop/drivers/network/virtio_mmio/config.json`): `regs`, the virtio-mmio
//!   slot, and `virtio_rings`, 64 KiB that [`split_rings`] cuts into the receive queue's rings, the
//!   transmit queue's rings and the 12-byte `virtio_net_hdr` of every descriptor. Frames are never
//!   mapped here: their device addresses go straight into the descriptors.
//! - **Init**: probe (magic, version 2, device id 1), negotiate `VERSION_1` (required) and `MAC`
//!   (read, for information: the device is left in QEMU's default promiscuous mode, as the Rx
//!   virtualiser demultiplexes by MAC), queue 0 (receive) and 1 (transmit) of the largest power
//!   of two the device and the memory allow, DRIVER_OK. No checksum or segmentation offload: the
//!   clients' stacks compute checksums.
//! - **Receive**: each posted buffer is a two-descriptor device-writable chain: its header slot
//!   (12 bytes) and the 2048-byte buffer; a completion's length minus the header is the frame's
//!   length (clamped to the buffer).
//! - **Transmit**: a two-descriptor device-readable chain: a zeroed header (no offload) and the
//!   frame.
//! - **Notifications** to the device after each batch unless it suppressed them; `ack_irq`
//!   acknowledges the interrupt status. A used entry naming no chain we gave is skipped (the
//!   queue's checks); a queue whose device breaks the ring protocol gives nothing more.

use crate::mmio::Mmio;
use crate::virtio::mmio::F_VERSION_1;
use crate::virtio::queue::MAX_QUEUE_SIZE;
use crate::virtio::{Buffer, DmaRegion, SplitQueue, VirtioError, VirtioMmio};
use core::ptr::NonNull;
use lions_net::{EthDevice, NetBuffDesc};

/// virtio device id of a network device.
pub const DEVICE_ID: u32 = 1;
/// Feature: the config space holds the device's MAC address.
pub const F_MAC: u64 = 1 << 5;
/// Bytes of `struct virtio_net_hdr` with `VERSION_1`.
pub const HDR_LEN: u32 = 12;
/// Bytes per header slot.
const SLOT: usize = 16;
const MAX: usize = MAX_QUEUE_SIZE as usize;
/// Receive queue index.
const RXQ: u32 = 0;
/// Transmit queue index.
const TXQ: u32 = 1;
/// Bytes of a net buffer.
const BUF: u32 = 2048;

/// Cut a `virtio_rings` region (`base`, `len` bytes, device address `io`) into the receive
/// rings, the transmit rings and the header slots, for queues of up to [`MAX_QUEUE_SIZE`]
/// entries; `None` when it is too small or misaligned.
///
/// # Safety
/// As for [`DmaRegion::new`] over the whole region.
pub unsafe fn split_rings(
    base: NonNull<u8>,
    len: usize,
    io: u64,
) -> Option<(DmaRegion, DmaRegion, DmaRegion)> {
    let rings = SplitQueue::layout(MAX_QUEUE_SIZE).2.next_multiple_of(4096);
    let hdrs = 2 * MAX * SLOT;
    if len < 2 * rings + hdrs {
        return None;
    }
    let r = rings as u64;
    // SAFETY: three disjoint parts of the caller's region, each 4096-aligned from its base.
    unsafe {
        Some((
            DmaRegion::new(base, rings, io)?,
            DmaRegion::new(base.add(rings), rings, io + r)?,
            DmaRegion::new(base.add(2 * rings), hdrs, io + 2 * r)?,
        ))
    }
}

/// A virtio-net device; see the module docs.
#[derive(Debug)]
pub struct VirtioNet<M> {
    dev: VirtioMmio<M>,
    rx: SplitQueue,
    tx: SplitQueue,
    hdrs: DmaRegion,
    rx_bufs: [Option<NetBuffDesc>; MAX],
    tx_bufs: [Option<NetBuffDesc>; MAX],
    mac: Option<[u8; 6]>,
}

impl<M: Mmio> VirtioNet<M> {
    /// Set up the virtio-net device behind `regs` with its queues' rings in `rx_rings` and
    /// `tx_rings` and the header slots in `hdrs` (see [`split_rings`]).
    pub fn new(
        regs: M,
        rx_rings: DmaRegion,
        tx_rings: DmaRegion,
        hdrs: DmaRegion,
    ) -> Result<Self, VirtioError> {
        let mut dev = VirtioMmio::probe(regs, DEVICE_ID)?;
        let features = dev.negotiate(F_MAC, F_VERSION_1)?;
        let mut size = |q: u32, rings: &DmaRegion| -> Result<u16, VirtioError> {
            let max = dev.queue_max(q)?.min(MAX_QUEUE_SIZE);
            (0..16)
                .rev()
                .map(|s| 1u16 << s)
                .find(|&n| n <= max && SplitQueue::layout(n).2 <= rings.len())
                .ok_or(VirtioError::QueueMemory)
        };
        let sizes = size(RXQ, &rx_rings).and_then(|r| Ok((r, size(TXQ, &tx_rings)?)));
        let queues = sizes.and_then(|(r, t)| {
            if hdrs.len() < 2 * MAX * SLOT {
                return Err(VirtioError::QueueMemory);
            }
            let rx = SplitQueue::new(rx_rings, r).map_err(|_| VirtioError::QueueMemory)?;
            let tx = SplitQueue::new(tx_rings, t).map_err(|_| VirtioError::QueueMemory)?;
            Ok((rx, tx))
        });
        let (rx, tx) = match queues {
            Ok(q) => q,
            Err(e) => {
                dev.fail();
                return Err(e);
            }
        };
        dev.setup_queue(RXQ, &rx);
        dev.setup_queue(TXQ, &tx);
        dev.driver_ok();
        let mac = (features & F_MAC != 0).then(|| {
            let (a, b) = (dev.config32(0).to_le_bytes(), dev.config32(4).to_le_bytes());
            [a[0], a[1], a[2], a[3], b[0], b[1]]
        });
        Ok(Self {
            dev,
            rx,
            tx,
            hdrs,
            rx_bufs: [None; MAX],
            tx_bufs: [None; MAX],
            mac,
        })
    }

    /// The device's MAC address, if it offered one.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// The transport (for inspection).
    pub fn transport(&mut self) -> &mut VirtioMmio<M> {
        &mut self.dev
    }

    /// Header slot of descriptor `head` of the receive (`tx` false) or transmit queue.
    fn slot(tx: bool, head: u16) -> usize {
        (usize::from(tx) * MAX + usize::from(head)) * SLOT
    }
}

impl<M: Mmio> EthDevice for VirtioNet<M> {
    fn rx_room(&mut self) -> bool {
        self.rx.num_free() >= 2 && !self.rx.is_broken()
    }

    fn rx_post(&mut self, buf: NetBuffDesc) {
        let Some(head) = self.rx.next_head() else {
            return;
        };
        let chain = [
            Buffer {
                addr: self.hdrs.io_addr(Self::slot(false, head)),
                len: HDR_LEN,
                device_writes: true,
            },
            Buffer {
                addr: buf.io_or_offset,
                len: BUF,
                device_writes: true,
            },
        ];
        if let Some(h) = self.rx.add(&chain) {
            self.rx_bufs[usize::from(h)] = Some(buf);
        }
    }

    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        loop {
            let used = self.rx.pop_used()?;
            let Some(mut buf) = self.rx_bufs[usize::from(used.head)].take() else {
                continue;
            };
            let len = used.len.saturating_sub(HDR_LEN).min(BUF);
            buf.len = u16::try_from(len).unwrap_or(0);
            return Some(buf);
        }
    }

    fn tx_room(&mut self) -> bool {
        self.tx.num_free() >= 2 && !self.tx.is_broken()
    }

    fn tx_post(&mut self, buf: NetBuffDesc) {
        let Some(head) = self.tx.next_head() else {
            return;
        };
        let at = Self::slot(true, head);
        // No offload: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers.
        self.hdrs.write64(at, 0);
        self.hdrs.write32(at + 8, 0);
        let chain = [
            Buffer {
                addr: self.hdrs.io_addr(at),
                len: HDR_LEN,
                device_writes: false,
            },
            Buffer {
                addr: buf.io_or_offset,
                len: u32::from(buf.len),
                device_writes: false,
            },
        ];
        if let Some(h) = self.tx.add(&chain) {
            self.tx_bufs[usize::from(h)] = Some(buf);
        }
    }

    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        loop {
            let used = self.tx.pop_used()?;
            if let Some(buf) = self.tx_bufs[usize::from(used.head)].take() {
                return Some(buf);
            }
        }
    }

    fn rx_kick(&mut self) {
        if self.rx.should_notify() {
            self.dev.notify(RXQ);
        }
    }

    fn tx_kick(&mut self) {
        if self.tx.should_notify() {
            self.dev.notify(TXQ);
        }
    }

    fn ack_irq(&mut self) {
        self.dev.ack_interrupt();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::virtio::model::MmioModel;
    use core::cell::RefCell;

    /// Test memory standing in for DMA: its device address is its address here.
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
        fn base(&mut self) -> NonNull<u8> {
            NonNull::new(self.0.as_mut_ptr().cast::<u8>()).unwrap()
        }
    }

    struct Shared<'a>(&'a RefCell<MmioModel>);

    impl Mmio for Shared<'_> {
        fn read32(&mut self, offset: usize) -> u32 {
            self.0.borrow_mut().read32(offset)
        }
        fn write32(&mut self, offset: usize, value: u32) {
            self.0.borrow_mut().write32(offset, value);
        }
    }

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn model(queue_max: u32) -> MmioModel {
        let mut config = vec![0u8; 12];
        config[..6].copy_from_slice(&MAC);
        MmioModel::new(
            DEVICE_ID,
            F_VERSION_1 | F_MAC,
            &[queue_max, queue_max],
            config,
        )
    }

    struct Rig {
        rings: Mem,
        rings_base: NonNull<u8>,
        data: Mem,
        model: RefCell<MmioModel>,
    }

    impl Rig {
        fn new(queue_max: u32) -> Self {
            let mut rings = Mem::new(64 * 1024);
            let rings_base = rings.base();
            let rig = Self {
                rings,
                rings_base,
                data: Mem::new(64 * 2048),
                model: RefCell::new(model(queue_max)),
            };
            let mut m = rig.model.borrow_mut();
            m.windows.push((rig.rings.addr(), rig.rings.len()));
            m.windows.push((rig.data.addr(), rig.data.len()));
            drop(m);
            rig
        }

        fn driver(&self) -> VirtioNet<Shared<'_>> {
            let (base, len, io) = (self.rings_base, self.rings.len(), self.rings.addr());
            // SAFETY: the rings outlive the driver in each test; the model reaches them by
            // address, as a device would.
            let (r, t, h) = unsafe { split_rings(base, len, io) }.unwrap();
            VirtioNet::new(Shared(&self.model), r, t, h).unwrap()
        }

        fn buf(&self, i: u64, len: u16) -> NetBuffDesc {
            NetBuffDesc::new(self.data.addr() + i * 2048, len)
        }
    }

    #[test]
    fn negotiates_reads_the_mac_and_sets_up_both_queues() {
        let rig = Rig::new(256);
        let (mac, status) = {
            let mut d = rig.driver();
            (d.mac(), d.transport().status())
        };
        assert_eq!(mac, Some(MAC));
        let m = rig.model.borrow();
        assert_eq!(m.driver_features, F_VERSION_1 | F_MAC);
        assert_eq!(status & crate::virtio::mmio::status::DRIVER_OK, 4);
        assert_eq!((m.queues[0].num, m.queues[1].num), (256, 256));
        assert_eq!((m.queues[0].ready, m.queues[1].ready), (1, 1));
        // Too little ring memory is refused, not overrun.
        let mut small = Mem::new(16 * 1024);
        let (b, l, a) = (small.base(), small.len(), small.addr());
        // SAFETY: the buffer outlives the call.
        assert!(unsafe { split_rings(b, l, a) }.is_none());
    }

    #[test]
    fn receive_chains_strip_the_header_and_keep_order() {
        let rig = Rig::new(8);
        let bufs: Vec<_> = (0..4).map(|i| rig.buf(i, 0)).collect();
        let data_addr = rig.data.addr();
        let m = &rig.model;
        let mut d = rig.driver();
        for b in &bufs {
            assert!(d.rx_room());
            d.rx_post(*b);
        }
        d.rx_kick();
        assert_eq!(m.borrow().notifies, [RXQ]);
        // The device takes the chains: header slot then buffer, both device-writable.
        let mut chains = Vec::new();
        loop {
            let next = m.borrow_mut().pop_avail(0);
            let Some(c) = next else { break };
            chains.push(c);
        }
        assert_eq!(chains.len(), 4);
        for (i, (_, c)) in chains.iter().enumerate() {
            assert_eq!(c.len(), 2);
            assert!(c[0].write && c[0].len == HDR_LEN);
            assert!(c[1].write && c[1].len == 2048);
            assert_eq!(c[1].addr, data_addr + i as u64 * 2048);
        }
        assert_eq!(d.rx_poll(), None, "nothing completed yet");
        // Frames of 60 and 1514 bytes arrive in buffers 1 and 0 (the device may reorder).
        for (&(head, ref c), len) in [(&chains[1], 60u32), (&chains[0], 1514)] {
            let mut mm = m.borrow_mut();
            mm.write_mem(c[1].addr, &vec![0xab; len as usize]);
            mm.push_used(0, head, HDR_LEN + len);
        }
        assert_eq!(
            d.rx_poll(),
            Some(NetBuffDesc::new(bufs[1].io_or_offset, 60))
        );
        assert_eq!(
            d.rx_poll(),
            Some(NetBuffDesc::new(bufs[0].io_or_offset, 1514))
        );
        assert_eq!(d.rx_poll(), None);
        // A used entry for a chain we never gave is skipped.
        m.borrow_mut().push_used_raw(0, 7, 1);
        assert_eq!(d.rx_poll(), None);
        d.ack_irq();
        assert_eq!(m.borrow().interrupt, 0, "interrupt acknowledged");
    }

    #[test]
    fn transmit_chains_carry_a_zero_header_and_complete_in_device_order() {
        let rig = Rig::new(4);
        let m = &rig.model;
        let frames: Vec<_> = (0..3).map(|i| rig.buf(i, 100 + i as u16)).collect();
        let mut d = rig.driver();
        for f in &frames {
            d.tx_post(*f);
        }
        assert!(
            !d.tx_room(),
            "3 chains of 2 in a 4-entry queue: no room for another"
        );
        m.borrow_mut().set_no_notify(1, true);
        d.tx_kick();
        assert!(m.borrow().notifies.is_empty(), "suppressed by the device");
        m.borrow_mut().set_no_notify(1, false);
        d.tx_kick();
        assert_eq!(m.borrow().notifies, [TXQ]);
        let mut heads = Vec::new();
        loop {
            let next = m.borrow_mut().pop_avail(1);
            let Some((head, c)) = next else { break };
            assert_eq!(c.len(), 2);
            assert!(!c[0].write && c[0].len == HDR_LEN && !c[1].write);
            let mut hdr = [0xffu8; HDR_LEN as usize];
            m.borrow().read_mem(c[0].addr, &mut hdr);
            assert_eq!(hdr, [0; HDR_LEN as usize], "no offload requested");
            heads.push((head, c[1]));
        }
        assert_eq!(heads.len(), 2, "the third did not fit");
        for (i, (_, buf)) in heads.iter().enumerate() {
            assert_eq!(
                (buf.addr, buf.len),
                (frames[i].io_or_offset, 100 + i as u32)
            );
        }
        m.borrow_mut().push_used(1, heads[1].0, 0);
        m.borrow_mut().push_used(1, heads[0].0, 0);
        assert_eq!(d.tx_poll(), Some(frames[1]));
        assert_eq!(d.tx_poll(), Some(frames[0]));
        assert_eq!(d.tx_poll(), None);
        assert!(d.tx_room());
    }

    #[test]
    fn a_device_without_version_1_is_refused() {
        let rig = Rig::new(8);
        rig.model.borrow_mut().offered = F_MAC;
        let mut rings = Mem::new(64 * 1024);
        let (b, l, a) = (rings.base(), rings.len(), rings.addr());
        // SAFETY: the buffer outlives the driver attempt.
        let (r, t, h) = unsafe { split_rings(b, l, a) }.unwrap();
        assert!(VirtioNet::new(Shared(&rig.model), r, t, h).is_err());
    }
}
