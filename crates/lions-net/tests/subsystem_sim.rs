// SPDX-License-Identifier: BSD-2-Clause
//! The network subsystem on the sim backend: a fake NIC (an [`EthDevice`] with in-memory DMA)
//! under the generic driver loop, the Rx virtualiser, two copiers, two scripted clients and the Tx
//! virtualiser, wired as sdfgen wires them.
//!
//! Covered: unicast by MAC, broadcast with reference counts (the DMA buffer goes back to the
//! driver only after both copiers released it), unmatched frames returned at once, a client with
//! no free buffers making its copier drop while the other still receives, Tx validation (bad
//! length, misaligned or out-of-range offset, wrong region id: back to the client, never to the
//! driver), each shaping policy's order under back-pressure, a bandwidth limit over a fake clock,
//! the notification rule (only when the peer asked), adversarial clients, and the u16 index wrap
//! (more than 65536 buffers through every queue).
//!
//! Clients are scripted: each has an IRQ channel (`C_CMD`) the test raises to make it run the
//! commands queued for it. The NIC takes frames from an inbox when the driver polls it and
//! completes transmissions when the test says (or at once, `auto_tx`).
#![allow(clippy::unwrap_used)]
// Small test indices (client numbers, sequence numbers) are cast freely.
#![allow(clippy::cast_possible_truncation)]

use lions_net::policy::Limit;
use lions_net::queue::NetQueue;
use lions_net::{
    Coherent, Copier, DataRegion, Error, EthDevice, EthDriver, InOrder, MacAddr, NetBuffDesc,
    NetClientConfig, NetConnectionResource, NetCopyConfig, NetDriverConfig, NetSink, NetSource,
    NetVirtRxConfig, NetVirtTxConfig, RateLimit, RoundRobin, StrictPriority, TxPolicy, VirtRx,
    VirtTx,
};
use lions_os::sim::{Event, PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, ConfigClass, DeviceRegionResource, Handler, RegionResource};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, Ordering};
use zerocopy::FromZeros;

// Channel ids. Driver: the NIC IRQ, the Rx virt, the Tx virt.
const D_IRQ: u8 = 0;
const D_RX: u8 = 1;
const D_TX: u8 = 2;
// Each virt: the driver is 0, client (copier) c is 1 + c.
const V_DRIVER: u8 = 0;
// Each copier: the Rx virt, its client.
const K_VIRT: u8 = 0;
const K_CLIENT: u8 = 1;
// Each client: its copier, the Tx virt, the test's command IRQ.
const C_RX: u8 = 0;
const C_TX: u8 = 1;
const C_CMD: u8 = 2;

const CLIENTS: usize = 2;
/// Rx DMA buffers (driver queues and the NIC's receive ring).
const RX_BUFS: u16 = 16;
/// Each client's Rx and Tx buffers.
const CLIENT_BUFS: u16 = 8;
const RX_IO: u64 = 0x1000_0000;

fn tx_io(c: usize) -> u64 {
    0x2000_0000 + c as u64 * 0x10_0000
}

fn mac(c: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0x01, 0, 0, u8::try_from(c).unwrap()])
}

/// A frame to `dst` from client `src`, numbered `seq`, `len` bytes.
fn frame(dst: MacAddr, src: usize, seq: u32, len: usize) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&mac(src).0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&seq.to_le_bytes());
    let fill = u8::try_from(seq % 251).unwrap();
    f.resize(len.max(f.len()), fill);
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from_le_bytes(f[14..18].try_into().unwrap())
}

fn res(r: &Region) -> RegionResource {
    RegionResource {
        vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
        size: r.len() as u64,
    }
}

/// A free/active queue pair.
struct Queue {
    free: Region,
    active: Region,
    cap: u16,
}

impl Queue {
    fn new(cap: u16) -> Self {
        let n = NetQueue::bytes_for(usize::from(cap));
        Self {
            free: Region::new(n),
            active: Region::new(n),
            cap,
        }
    }

    fn conn(&self, id: u8) -> NetConnectionResource {
        NetConnectionResource {
            free_queue: res(&self.free),
            active_queue: res(&self.active),
            num_buffers: self.cap,
            id,
            _pad: [0; 5],
        }
    }

    /// The shared index `at` (0 = tail, 2 = head) of the free or active queue, as a peer sees it.
    fn index(&self, active: bool, at: usize) -> &AtomicU16 {
        let r = if active { &self.active } else { &self.free };
        // SAFETY: the region is page-aligned, holds the 8-byte header, lives as long as `self`,
        // and the index fields are atomics valid for any bits.
        unsafe { r.as_ptr().add(at).cast::<AtomicU16>().as_ref() }
    }
}

/// The fake NIC's state, shared by the device (inside the driver) and the test.
struct Nic {
    inbox: RefCell<VecDeque<Vec<u8>>>,
    rx_posted: RefCell<VecDeque<NetBuffDesc>>,
    tx_ring: Cell<usize>,
    tx_posted: RefCell<VecDeque<NetBuffDesc>>,
    tx_done: RefCell<VecDeque<NetBuffDesc>>,
    auto_tx: Cell<bool>,
    /// Transmitted frames: (device address, bytes).
    sent: RefCell<Vec<(u64, Vec<u8>)>>,
    /// Device addresses seen by `tx_post` that map to no region.
    stray: Cell<u64>,
}

/// The device: the shared state plus DMA access to the regions by device address.
struct FakeNic<'a> {
    st: &'a Nic,
    dma: Vec<(u64, DataRegion<'a>)>,
}

impl FakeNic<'_> {
    /// The DMA span at device address `io`, `len` bytes.
    fn span(&self, io: u64, len: u16) -> Option<lions_net::Span<'_>> {
        self.dma
            .iter()
            .find_map(|(base, r)| r.span(io.wrapping_sub(*base), len).ok())
    }
}

impl EthDevice for FakeNic<'_> {
    fn rx_room(&mut self) -> bool {
        self.st.rx_posted.borrow().len() < usize::from(RX_BUFS)
    }
    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.st.rx_posted.borrow_mut().push_back(buf);
    }
    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        if self.st.rx_posted.borrow().is_empty() {
            return None;
        }
        let f = self.st.inbox.borrow_mut().pop_front()?;
        let mut buf = self.st.rx_posted.borrow_mut().pop_front()?;
        let len = u16::try_from(f.len()).unwrap();
        assert_eq!(self.span(buf.io_or_offset, len).unwrap().write(&f), f.len());
        buf.len = len;
        Some(buf)
    }
    fn tx_room(&mut self) -> bool {
        self.st.tx_posted.borrow().len() < self.st.tx_ring.get()
    }
    fn tx_post(&mut self, buf: NetBuffDesc) {
        match self.span(buf.io_or_offset, buf.len) {
            Some(span) => {
                let mut bytes = vec![0; usize::from(buf.len)];
                span.read(&mut bytes);
                self.st.sent.borrow_mut().push((buf.io_or_offset, bytes));
            }
            None => self.st.stray.set(self.st.stray.get() + 1),
        }
        self.st.tx_posted.borrow_mut().push_back(buf);
    }
    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        self.st.tx_done.borrow_mut().pop_front()
    }
}

/// What a client does on a command.
#[derive(Debug, Clone)]
enum Cmd {
    /// Send this frame (waits for a free Tx buffer if none).
    Send(Vec<u8>),
    /// Take a free Tx buffer and enqueue this descriptor in its place, as it is (a client that
    /// corrupts the descriptor of a buffer it owns).
    Raw(NetBuffDesc),
    /// Keep received buffers (true) or return them, and all kept ones (false).
    Hold(bool),
    /// Request a signal after processing received frames (the default) or not (and withdraw
    /// the standing request).
    Park(bool),
    /// Take every descriptor on the Tx free queue into `returned`.
    DrainFree,
    /// Notify the Tx virt without doing anything (after a corruption).
    Poke,
}

#[derive(Default)]
struct ClientState {
    script: VecDeque<Cmd>,
    received: Vec<Vec<u8>>,
    returned: Vec<NetBuffDesc>,
}

/// Everything the PDs share: regions, configs, the NIC and the client scripts.
struct World {
    drv_rx: Queue,
    drv_tx: Queue,
    rx_dma: Region,
    _meta: Region,
    copy_q: Vec<Queue>,
    cli_rx: Vec<Queue>,
    _cli_rx_data: Vec<Region>,
    cli_tx: Vec<Queue>,
    cli_tx_data: Vec<Region>,
    drv: NetDriverConfig,
    vrx: Box<NetVirtRxConfig>,
    vtx: Box<NetVirtTxConfig>,
    copy: Vec<NetCopyConfig>,
    cli: Vec<NetClientConfig>,
    nic: Nic,
    clients: Vec<RefCell<ClientState>>,
    clock: Cell<u64>,
}

impl World {
    /// The subsystem with a driver Tx queue of `driver_tx` and a NIC Tx ring of `tx_ring`.
    fn new(driver_tx: u16, tx_ring: usize) -> Self {
        let magic = lions_os::sddf_magic(ConfigClass::Net);
        let buf = |n: u16| Region::new(usize::from(n) * 2048);
        let drv_rx = Queue::new(RX_BUFS);
        let drv_tx = Queue::new(driver_tx);
        let rx_dma = buf(RX_BUFS);
        let meta = Region::new(usize::from(RX_BUFS));
        let copy_q: Vec<Queue> = (0..CLIENTS).map(|_| Queue::new(RX_BUFS)).collect();
        let cli_rx: Vec<Queue> = (0..CLIENTS).map(|_| Queue::new(CLIENT_BUFS)).collect();
        let cli_rx_data: Vec<Region> = (0..CLIENTS).map(|_| buf(CLIENT_BUFS)).collect();
        let cli_tx: Vec<Queue> = (0..CLIENTS).map(|_| Queue::new(CLIENT_BUFS)).collect();
        let cli_tx_data: Vec<Region> = (0..CLIENTS).map(|_| buf(CLIENT_BUFS)).collect();

        let mut drv = NetDriverConfig::new_zeroed();
        drv.magic = magic;
        drv.virt_rx = drv_rx.conn(D_RX);
        drv.virt_tx = drv_tx.conn(D_TX);

        let mut vrx = Box::new(NetVirtRxConfig::new_zeroed());
        vrx.magic = magic;
        vrx.driver = drv_rx.conn(V_DRIVER);
        vrx.data = DeviceRegionResource {
            region: res(&rx_dma),
            io_addr: RX_IO,
        };
        vrx.buffer_metadata = res(&meta);
        vrx.num_clients = CLIENTS as u8;
        let mut vtx = Box::new(NetVirtTxConfig::new_zeroed());
        vtx.magic = magic;
        vtx.driver = drv_tx.conn(V_DRIVER);
        vtx.num_clients = CLIENTS as u8;
        let mut copy = Vec::new();
        let mut cli = Vec::new();
        for c in 0..CLIENTS {
            let id = 1 + c as u8;
            vrx.clients[c].conn = copy_q[c].conn(id);
            vrx.clients[c].mac_addrs[0] = mac(c);
            vrx.clients[c].num_macs = 1;
            vtx.clients[c].conn = cli_tx[c].conn(id);
            vtx.clients[c].regions[0].data = DeviceRegionResource {
                region: res(&cli_tx_data[c]),
                io_addr: tx_io(c),
            };
            vtx.clients[c].regions[0].num_buffers = CLIENT_BUFS.into();
            vtx.clients[c].num_regions = 1;
            let mut k = NetCopyConfig::new_zeroed();
            k.magic = magic;
            k.rx = copy_q[c].conn(K_VIRT);
            k.rx_data[0] = res(&rx_dma);
            k.client = cli_rx[c].conn(K_CLIENT);
            k.client_data = res(&cli_rx_data[c]);
            copy.push(k);
            let mut n = NetClientConfig::new_zeroed();
            n.magic = magic;
            n.rx = cli_rx[c].conn(C_RX);
            n.rx_data = res(&cli_rx_data[c]);
            n.tx = cli_tx[c].conn(C_TX);
            n.tx_data = res(&cli_tx_data[c]);
            n.mac_addr = mac(c);
            cli.push(n);
        }
        for cfg in [&drv as &dyn Check, &*vrx, &*vtx, &copy[0], &cli[0]] {
            cfg.ok();
        }
        Self {
            drv_rx,
            drv_tx,
            rx_dma,
            _meta: meta,
            copy_q,
            cli_rx,
            _cli_rx_data: cli_rx_data,
            cli_tx,
            cli_tx_data,
            drv,
            vrx,
            vtx,
            copy,
            cli,
            nic: Nic {
                inbox: RefCell::default(),
                rx_posted: RefCell::default(),
                tx_ring: Cell::new(tx_ring),
                tx_posted: RefCell::default(),
                tx_done: RefCell::default(),
                auto_tx: Cell::new(true),
                sent: RefCell::default(),
                stray: Cell::new(0),
            },
            clients: (0..CLIENTS).map(|_| RefCell::default()).collect(),
            clock: Cell::new(0),
        }
    }

    /// Every component, made in start-up order: the driver and virts first (their handles see
    /// empty client queues), then each copier (it primes its client's Rx free queue), then each
    /// client (it primes its Tx free queue; the Tx virt adopts it at the first frame).
    fn parts<P: TxPolicy>(&self, policy: P) -> Parts<'_, P> {
        let dma = |r: &Region, io: u64, n: u16| {
            // SAFETY: the region lives in `self`, outliving the device, and holds `n` buffers.
            (io, unsafe { DataRegion::new(r.as_ptr(), n.into(), true) })
        };
        let mut map = vec![dma(&self.rx_dma, RX_IO, RX_BUFS)];
        for c in 0..CLIENTS {
            map.push(dma(&self.cli_tx_data[c], tx_io(c), CLIENT_BUFS));
        }
        let nic = FakeNic {
            st: &self.nic,
            dma: map,
        };
        let driver = EthDriver::new(nic, mapped(&self.drv), Channel::new(D_IRQ)).unwrap();
        let vrx = VirtRx::new(mapped(&self.vrx), Coherent).unwrap();
        let vtx = VirtTx::new(mapped(&self.vtx), policy, Coherent).unwrap();
        // SAFETY: as above.
        let copiers: Vec<_> = (0..CLIENTS)
            .map(|c| RefCell::new(Copier::new(mapped(&self.copy[c])).unwrap()))
            .collect();
        let clients = (0..CLIENTS)
            .map(|c| RefCell::new(ClientPd::new(self, c)))
            .collect();
        Parts {
            driver: RefCell::new(driver),
            vrx: RefCell::new(vrx),
            vtx: RefCell::new(vtx),
            copiers,
            clients,
        }
    }
}

/// A config check usable on any config type.
trait Check {
    fn ok(&self);
}

impl<T: lions_os::Config> Check for T {
    fn ok(&self) {
        self.check().unwrap();
    }
}

struct Parts<'a, P> {
    driver: RefCell<EthDriver<'a, FakeNic<'a>>>,
    vrx: RefCell<VirtRx<'a, Coherent>>,
    vtx: RefCell<VirtTx<'a, P, Coherent>>,
    copiers: Vec<RefCell<Copier<'a>>>,
    clients: Vec<RefCell<ClientPd<'a>>>,
}

/// A handler the test keeps a reference to (to run `init` and read counters).
struct Shared<'a, H>(&'a RefCell<H>);

impl<H: Handler> Handler for Shared<'_, H> {
    type Error = H::Error;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), H::Error> {
        self.0.borrow_mut().notified(channels)
    }
}

/// A scripted client: sends frames, records what it receives.
struct ClientPd<'a> {
    c: usize,
    w: &'a World,
    rx: NetSink<'a>,
    rx_data: DataRegion<'a>,
    tx: NetSource<'a>,
    tx_data: DataRegion<'a>,
    pending: VecDeque<Vec<u8>>,
    hold: bool,
    park: bool,
    held: Vec<NetBuffDesc>,
}

impl<'a> ClientPd<'a> {
    fn new(w: &'a World, c: usize) -> Self {
        let cfg = &w.cli[c];
        let n = u64::from(CLIENT_BUFS);
        // SAFETY: the regions live in `w`; one handle per role.
        let (rx, mut tx, rx_data, tx_data) = unsafe {
            (
                NetSink::from_connection(&cfg.rx).unwrap(),
                NetSource::from_connection(&cfg.tx).unwrap(),
                DataRegion::from_resource(&cfg.rx_data, n, false).unwrap(),
                DataRegion::from_resource(&cfg.tx_data, n, true).unwrap(),
            )
        };
        assert_eq!(tx.prime_free(0).unwrap(), n);
        Self {
            c,
            w,
            rx,
            rx_data,
            tx,
            tx_data,
            pending: VecDeque::new(),
            hold: false,
            park: true,
            held: Vec::new(),
        }
    }

    fn state(&self) -> std::cell::RefMut<'a, ClientState> {
        self.w.clients[self.c].borrow_mut()
    }

    fn receive(&mut self) -> Result<(), Error> {
        loop {
            while let Some(buf) = self.rx.active.pop()? {
                let mut bytes = vec![0; usize::from(buf.len)];
                self.rx_data
                    .span(buf.io_or_offset, buf.len)
                    .unwrap()
                    .read(&mut bytes);
                self.state().received.push(bytes);
                if self.hold {
                    self.held.push(buf);
                } else {
                    self.rx.free.push(buf)?;
                }
            }
            self.rx.active.release();
            if !self.park || !self.rx.park_active()? {
                break;
            }
        }
        let n = self.rx.free.publish();
        if self.rx.should_notify_free(n > 0) {
            Channel::new(C_RX).notify()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), Error> {
        loop {
            while let Some(f) = self.pending.front() {
                let Some(buf) = self.tx.free.pop()? else {
                    break;
                };
                let len = u16::try_from(f.len()).unwrap();
                self.tx_data.span(buf.io_or_offset, len).unwrap().write(f);
                self.tx
                    .active
                    .push(NetBuffDesc::new(buf.io_or_offset, len))?;
                self.pending.pop_front();
            }
            self.tx.free.release();
            if self.pending.is_empty() || !self.tx.park_free()? {
                break;
            }
        }
        let n = self.tx.active.publish();
        if self.tx.should_notify_active(n > 0) {
            Channel::new(C_TX).notify()?;
        }
        Ok(())
    }
}

impl Handler for ClientPd<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(C_CMD)) {
            let cmds: Vec<Cmd> = self.state().script.drain(..).collect();
            for cmd in cmds {
                match cmd {
                    Cmd::Send(f) => self.pending.push_back(f),
                    Cmd::Raw(d) => {
                        self.tx.free.pop()?.unwrap();
                        self.tx.active.push(d)?;
                    }
                    Cmd::Hold(h) => {
                        self.hold = h;
                        for buf in std::mem::take(&mut self.held) {
                            self.rx.free.push(buf)?;
                        }
                    }
                    Cmd::Park(p) => {
                        self.park = p;
                        self.rx.cancel_active_signal();
                    }
                    Cmd::DrainFree => {
                        while let Some(d) = self.tx.free.pop()? {
                            self.state().returned.push(d);
                        }
                    }
                    Cmd::Poke => Channel::new(C_TX).notify()?,
                }
            }
            Channel::new(C_CMD).irq_ack()?;
        }
        self.receive()?;
        self.send()
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    virt_rx: PdId,
    virt_tx: PdId,
    copiers: Vec<PdId>,
    clients: Vec<PdId>,
}

impl<'a> Rig<'a> {
    fn new<P: TxPolicy>(w: &'a World, p: &'a Parts<'a, P>) -> Self {
        let mut sim = Sim::new();
        let driver = sim.add_pd("net_driver", 200, false, Shared(&p.driver));
        sim.irq(driver, D_IRQ).unwrap();
        sim.init(driver, || p.driver.borrow_mut().init());
        let virt_tx = sim.add_pd("net_virt_tx", 199, false, Shared(&p.vtx));
        sim.channel(driver, D_TX, virt_tx, V_DRIVER).unwrap();
        let virt_rx = sim.add_pd("net_virt_rx", 198, false, Shared(&p.vrx));
        sim.channel(driver, D_RX, virt_rx, V_DRIVER).unwrap();
        sim.init(virt_rx, || p.vrx.borrow_mut().init());
        let mut copiers = Vec::new();
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let id = 1 + c as u8;
            let k = sim.add_pd(&format!("net_copy{c}"), 150, false, Shared(&p.copiers[c]));
            sim.channel(k, K_VIRT, virt_rx, id).unwrap();
            let pd = sim.add_pd(&format!("client{c}"), 100, false, Shared(&p.clients[c]));
            sim.channel(pd, C_RX, k, K_CLIENT).unwrap();
            sim.channel(pd, C_TX, virt_tx, id).unwrap();
            sim.irq(pd, C_CMD).unwrap();
            copiers.push(k);
            clients.push(pd);
        }
        sim.record_trace(true);
        let mut rig = Self {
            sim,
            w,
            driver,
            virt_rx,
            virt_tx,
            copiers,
            clients,
        };
        rig.settle();
        rig
    }

    /// Run until nothing moves: complete transmissions (when `auto_tx`), raise the NIC IRQ
    /// while it has work, step.
    fn settle(&mut self) {
        let nic = &self.w.nic;
        for _ in 0..100_000 {
            self.sim.run_until_idle(1_000_000).unwrap();
            if nic.auto_tx.get() {
                let done: Vec<_> = nic.tx_posted.borrow_mut().drain(..).collect();
                nic.tx_done.borrow_mut().extend(done);
            }
            let rx = !nic.inbox.borrow().is_empty() && !nic.rx_posted.borrow().is_empty();
            if !rx && nic.tx_done.borrow().is_empty() {
                assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
                return;
            }
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        panic!("the subsystem never settled");
    }

    /// Frames arrive at the NIC; run until settled.
    fn receive(&mut self, frames: impl IntoIterator<Item = Vec<u8>>) {
        self.w.nic.inbox.borrow_mut().extend(frames);
        self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        self.settle();
    }

    fn cmd(&mut self, c: usize, cmds: impl IntoIterator<Item = Cmd>) {
        self.w.clients[c].borrow_mut().script.extend(cmds);
        self.sim.inject_irq(self.clients[c], C_CMD).unwrap();
    }

    fn received(&self, c: usize) -> Vec<Vec<u8>> {
        self.w.clients[c].borrow().received.clone()
    }

    /// Notifications `from` sent to `to` since the trace started.
    fn notes(&self, from: PdId, to: PdId) -> usize {
        self.sim
            .trace()
            .iter()
            .filter(|e| matches!(e, Event::Notify { from: f, to: t, .. } if *f == from && *t == to))
            .count()
    }

    /// Every Rx DMA buffer is posted to the NIC again.
    fn all_rx_buffers_home(&self) -> bool {
        self.w.nic.rx_posted.borrow().len() == usize::from(RX_BUFS)
    }

    /// Device addresses of the Rx buffers posted to the NIC.
    fn posted(&self) -> Vec<u64> {
        self.w
            .nic
            .rx_posted
            .borrow()
            .iter()
            .map(|d| d.io_or_offset)
            .collect()
    }

    /// Transmitted frames as (client, seq).
    fn sent(&self) -> Vec<(usize, u32)> {
        self.w
            .nic
            .sent
            .borrow()
            .iter()
            .map(|(io, f)| {
                (
                    usize::try_from((io - tx_io(0)) / 0x10_0000).unwrap(),
                    seq_of(f),
                )
            })
            .collect()
    }
}

fn rig_world() -> World {
    World::new(16, 16)
}

#[test]
fn start_up_posts_every_rx_buffer_and_primes_client_queues() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let rig = Rig::new(&w, &p);
    let mut posted = rig.posted();
    posted.sort_unstable();
    let want: Vec<u64> = (0..u64::from(RX_BUFS)).map(|i| RX_IO + i * 2048).collect();
    assert_eq!(posted, want, "each DMA buffer exactly once");
    for c in 0..CLIENTS {
        // Copier primed the client's Rx free queue, the client its Tx free queue.
        assert_eq!(
            w.cli_rx[c].index(false, 0).load(Ordering::Relaxed),
            CLIENT_BUFS
        );
        assert_eq!(
            w.cli_tx[c].index(false, 0).load(Ordering::Relaxed),
            CLIENT_BUFS
        );
    }
    assert!(rig.sim.faults().is_empty());
}

#[test]
fn unicast_goes_to_the_client_with_that_mac() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let mut rig = Rig::new(&w, &p);
    let frames: Vec<_> = (0..10)
        .map(|i| frame(mac(i % 2), 1 - i % 2, i as u32, 60 + i))
        .collect();
    rig.receive(frames.clone());
    for c in 0..CLIENTS {
        let want: Vec<_> = frames
            .iter()
            .filter(|f| f[..6] == mac(c).0)
            .cloned()
            .collect();
        assert_eq!(
            rig.received(c),
            want,
            "client {c}: its own frames, whole, in order"
        );
        assert_eq!(p.copiers[c].borrow().stats().copied, 5);
    }
    assert!(rig.all_rx_buffers_home());
    assert_eq!(p.vrx.borrow().stats().unmatched, 0);
}

#[test]
fn broadcast_reaches_both_and_returns_after_the_last_copier() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let mut rig = Rig::new(&w, &p);
    let bcast = frame(MacAddr::BROADCAST, 0, 77, 100);
    let io = rig.posted()[0];
    w.nic.inbox.borrow_mut().push_back(bcast.clone());
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    // Run the driver and the virts (everything above the copiers), then one copier at a time.
    let above = |rig: &mut Rig<'_>| {
        while [rig.driver, rig.virt_rx, rig.virt_tx]
            .iter()
            .any(|&pd| !rig.sim.pending(pd).is_empty())
        {
            rig.sim.step();
        }
    };
    above(&mut rig);
    assert!(!rig.posted().contains(&io), "both copiers hold it");
    assert_eq!(rig.sim.step(), Some(rig.copiers[0]));
    above(&mut rig);
    assert!(
        !rig.posted().contains(&io),
        "one copier still holds the buffer"
    );
    assert_eq!(rig.sim.step(), Some(rig.copiers[1]));
    above(&mut rig);
    assert!(
        rig.posted().contains(&io),
        "the last release gave it back to the driver"
    );
    rig.settle();
    for c in 0..CLIENTS {
        assert_eq!(rig.received(c), vec![bcast.clone()]);
    }
    assert_eq!(p.vrx.borrow().stats().broadcast, 1);
    assert!(rig.all_rx_buffers_home());
}

#[test]
fn unmatched_frames_go_straight_back_to_the_driver() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let mut rig = Rig::new(&w, &p);
    let stranger = MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    let multicast = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    let runt = vec![0x52, 0x54, 0x01];
    rig.receive([frame(stranger, 0, 1, 60), frame(multicast, 0, 2, 60), runt]);
    for c in 0..CLIENTS {
        assert!(rig.received(c).is_empty());
        assert_eq!(
            rig.notes(rig.virt_rx, rig.copiers[c]),
            0,
            "no copier was woken"
        );
    }
    assert_eq!(p.vrx.borrow().stats().unmatched, 3);
    assert!(rig.all_rx_buffers_home());
}

#[test]
fn a_client_without_free_buffers_makes_only_its_copier_drop() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let mut rig = Rig::new(&w, &p);
    rig.cmd(1, [Cmd::Hold(true)]);
    rig.settle();
    let n = u32::from(CLIENT_BUFS) + 5;
    for i in 0..n {
        rig.receive([frame(mac(1), 0, i, 80), frame(mac(0), 1, i, 90)]);
        assert!(
            rig.all_rx_buffers_home(),
            "a slow client never holds DMA buffers"
        );
    }
    assert_eq!(
        rig.received(0).len(),
        n as usize,
        "the other client gets everything"
    );
    assert_eq!(rig.received(1).len(), usize::from(CLIENT_BUFS));
    let s = p.copiers[1].borrow().stats();
    assert_eq!((s.copied, s.dropped), (u64::from(CLIENT_BUFS), 5));
    assert_eq!(p.copiers[0].borrow().stats().dropped, 0);
    // Once it lets go of its buffers it receives again.
    rig.cmd(1, [Cmd::Hold(false)]);
    rig.settle();
    rig.receive([frame(mac(1), 0, 1000, 80)]);
    assert_eq!(seq_of(rig.received(1).last().unwrap()), 1000);
}

#[test]
fn tx_reaches_the_wire_translated_and_buffers_come_home() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    let n = 3 * u32::from(CLIENT_BUFS);
    for c in 0..CLIENTS {
        rig.cmd(
            c,
            (0..n).map(|i| Cmd::Send(frame(mac(9), c, i, 64 + i as usize))),
        );
    }
    rig.settle();
    let sent = w.nic.sent.borrow().clone();
    assert_eq!(sent.len(), 2 * n as usize);
    for c in 0..CLIENTS {
        let mine: Vec<_> = sent
            .iter()
            .filter(|(io, _)| (io - tx_io(0)) / 0x10_0000 == c as u64)
            .collect();
        let seqs: Vec<u32> = mine.iter().map(|(_, f)| seq_of(f)).collect();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "client {c} in order");
        for (io, f) in mine {
            assert_eq!(
                f,
                &frame(mac(9), c, seq_of(f), f.len()),
                "bytes as the client wrote them"
            );
            assert!(
                (io - tx_io(c)).is_multiple_of(2048)
                    && io - tx_io(c) < u64::from(CLIENT_BUFS) * 2048
            );
        }
        // Every Tx buffer came back to its client.
        rig.cmd(c, [Cmd::DrainFree]);
    }
    rig.settle();
    for c in 0..CLIENTS {
        let mut back: Vec<u64> = w.clients[c]
            .borrow()
            .returned
            .iter()
            .map(|d| d.io_or_offset)
            .collect();
        back.sort_unstable();
        assert_eq!(
            back,
            (0..u64::from(CLIENT_BUFS))
                .map(|i| i * 2048)
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(w.nic.stray.get(), 0);
    assert_eq!(p.vtx.borrow().stats(), Default::default());
}

#[test]
fn bad_tx_descriptors_go_back_to_the_client_never_to_the_driver() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    let end = u64::from(CLIENT_BUFS) * 2048;
    let bad = [
        NetBuffDesc::new(0, 0),                       // empty
        NetBuffDesc::new(0, 2049),                    // longer than a buffer
        NetBuffDesc::new(100, 60),                    // misaligned
        NetBuffDesc::new(end, 60),                    // past the region
        NetBuffDesc::new(u64::MAX - 2047, 60),        // far past, no overflow
        NetBuffDesc::with_oid(2048, 60, 1).unwrap(),  // no region 1
        NetBuffDesc::with_oid(2048, 60, 63).unwrap(), // no region 63
    ];
    rig.cmd(
        0,
        bad.iter()
            .map(|&d| Cmd::Raw(d))
            .chain([Cmd::Send(frame(mac(9), 0, 5, 70))]),
    );
    rig.cmd(1, [Cmd::Send(frame(mac(9), 1, 6, 70))]);
    rig.settle();
    assert_eq!(
        rig.sent(),
        [(0, 5), (1, 6)],
        "only the good frames reach the wire"
    );
    assert_eq!(p.vtx.borrow().stats().bad, bad.len() as u64);
    rig.cmd(0, [Cmd::DrainFree]);
    rig.settle();
    let returned = w.clients[0].borrow().returned.clone();
    for d in bad {
        assert!(
            returned.contains(&d),
            "{d:?} came back unchanged: {returned:?}"
        );
    }
    assert_eq!(returned.len(), usize::from(CLIENT_BUFS), "nothing lost");
    assert_eq!(p.vtx.borrow().stats().lost, 0);
    assert!(p.vtx.borrow().stats().faulty == 0);
}

/// Both clients load frames while the NIC holds one frame at a time and the driver queue two:
/// each completion lets one more frame in, so the wire order is the policy's order.
fn shaped<P: TxPolicy>(policy: P, w: &World, each: u32) -> Vec<(usize, u32)> {
    let p = w.parts(policy);
    let mut rig = Rig::new(w, &p);
    w.nic.auto_tx.set(false);
    for c in 0..CLIENTS {
        rig.cmd(c, (0..each).map(|i| Cmd::Send(frame(mac(9), c, i, 1000))));
        rig.settle();
    }
    for _ in 0..4 * each {
        if let Some(d) = w.nic.tx_posted.borrow_mut().pop_front() {
            w.nic.tx_done.borrow_mut().push_back(d);
        }
        w.clock.set(w.clock.get() + 100_000_000);
        rig.settle();
    }
    rig.sent()
}

#[test]
fn in_order_drains_client_zero_first() {
    let w = World::new(2, 1);
    let sent = shaped(InOrder, &w, 6);
    let want: Vec<_> = (0..6)
        .map(|i| (0, i))
        .chain((0..6).map(|i| (1, i)))
        .collect();
    assert_eq!(sent, want);
}

#[test]
fn round_robin_alternates_under_back_pressure() {
    let w = World::new(2, 1);
    let sent = shaped(RoundRobin::default(), &w, 6);
    // Client 0's first two (one in the NIC, one in the driver queue) went before client 1 had
    // anything; from then on strict alternation, client 1 first (the turn after client 0).
    let mut want = vec![(0, 0), (0, 1)];
    for i in 0..4 {
        want.extend([(1, i), (0, i + 2)]);
    }
    want.extend([(1, 4), (1, 5)]);
    assert_eq!(sent, want);
}

#[test]
fn strict_priority_serves_the_high_level_first() {
    let w = World::new(2, 1);
    let sent = shaped(StrictPriority::new(&[1, 9]), &w, 6);
    // Two went before client 1 had frames; then it takes every slot until it is empty.
    let want: Vec<_> = [(0, 0), (0, 1)]
        .into_iter()
        .chain((0..6).map(|i| (1, i)))
        .chain((2..6).map(|i| (0, i)))
        .collect();
    assert_eq!(sent, want);
}

#[test]
fn a_bandwidth_limit_holds_one_client_to_its_rate() {
    let w = World::new(16, 16);
    let clock = || w.clock.get();
    // Client 0: 2048 bytes of burst, then 10 kB/s (one 1000-byte frame per 100 ms tick).
    let limit = Limit {
        bytes_per_sec: 10_000,
        burst_bytes: 2048,
    };
    let p = w.parts(RateLimit::new(RoundRobin::default(), clock).limit(0, limit));
    let mut rig = Rig::new(&w, &p);
    rig.cmd(0, (0..8).map(|i| Cmd::Send(frame(mac(9), 0, i, 1000))));
    rig.cmd(1, (0..8).map(|i| Cmd::Send(frame(mac(9), 1, i, 1000))));
    rig.settle();
    let count = |rig: &Rig<'_>, c| rig.sent().iter().filter(|s| s.0 == c).count();
    assert_eq!(
        (count(&rig, 0), count(&rig, 1)),
        (2, 8),
        "the burst, and all of the unlimited client"
    );
    let wake = p.vtx.borrow().policy().wake_at().unwrap();
    assert_eq!(
        wake,
        100_000_000 - 4_800_000,
        "48 bytes left: the next 952 take 95.2 ms"
    );
    for tick in 1..=6u64 {
        w.clock.set(tick * 100_000_000);
        rig.cmd(1, [Cmd::Poke]);
        rig.settle();
        assert_eq!(count(&rig, 0), 2 + tick as usize, "one frame per 100 ms");
    }
}

#[test]
fn notifications_only_when_the_peer_asked() {
    let w = rig_world();
    let p = w.parts(InOrder);
    let mut rig = Rig::new(&w, &p);
    rig.sim.record_trace(true);
    // Two frames in one IRQ: one notification along each hop, none to the other client.
    rig.receive([frame(mac(0), 1, 1, 60), frame(mac(0), 1, 2, 60)]);
    assert_eq!(rig.notes(rig.driver, rig.virt_rx), 1);
    assert_eq!(rig.notes(rig.virt_rx, rig.copiers[0]), 1);
    assert_eq!(rig.notes(rig.copiers[0], rig.clients[0]), 1);
    assert_eq!(rig.notes(rig.virt_rx, rig.copiers[1]), 0);
    assert_eq!(rig.notes(rig.copiers[1], rig.clients[1]), 0);
    assert_eq!(
        rig.notes(rig.clients[0], rig.copiers[0]),
        0,
        "the copier never asks for free buffers"
    );
    assert_eq!(
        rig.notes(rig.copiers[0], rig.virt_rx),
        1,
        "the virt waits for its buffers"
    );
    assert_eq!(
        rig.notes(rig.virt_rx, rig.driver),
        1,
        "the driver's ring had room: it asked"
    );
    // A client that stops asking is not notified, but its frames still arrive.
    rig.cmd(0, [Cmd::Park(false)]);
    rig.settle();
    rig.sim.record_trace(true);
    rig.receive([frame(mac(0), 1, 3, 60)]);
    assert_eq!(rig.notes(rig.copiers[0], rig.clients[0]), 0);
    assert_eq!(rig.received(0).len(), 2);
    rig.cmd(0, [Cmd::Park(true)]);
    rig.settle();
    assert_eq!(rig.received(0).len(), 3, "found on its next look");
    // Tx: the virt notifies the driver once per batch, the driver the virt once per batch of
    // completions, and the client gets its buffers back without asking to be woken.
    rig.sim.record_trace(true);
    rig.cmd(0, (0..4).map(|i| Cmd::Send(frame(mac(9), 0, i, 60))));
    rig.settle();
    assert_eq!(rig.notes(rig.clients[0], rig.virt_tx), 1);
    assert_eq!(rig.notes(rig.virt_tx, rig.driver), 1);
    assert_eq!(rig.notes(rig.driver, rig.virt_tx), 1);
    assert_eq!(
        rig.notes(rig.virt_tx, rig.clients[0]),
        0,
        "it never waited for Tx buffers"
    );
    assert_eq!(rig.sent().len(), 4);
}

#[test]
fn adversarial_clients_do_not_disturb_the_others() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    // Client 1 claims 100 frames in an 8-slot Tx queue, and corrupts its Rx free queue.
    w.cli_tx[1].index(true, 0).store(100, Ordering::Relaxed);
    w.cli_rx[1].index(false, 0).store(9999, Ordering::Relaxed);
    rig.cmd(1, [Cmd::Poke]);
    rig.cmd(0, (0..20).map(|i| Cmd::Send(frame(mac(9), 0, i, 60))));
    rig.settle();
    assert_eq!(p.vtx.borrow().stats().faulty, 0b10);
    assert_eq!(rig.sent().len(), 20);
    for i in 0..20 {
        rig.receive([frame(mac(1), 0, i, 60), frame(mac(0), 1, i, 60)]);
        assert!(rig.all_rx_buffers_home());
    }
    assert!(p.copiers[1].borrow().stats().client_faulty);
    assert_eq!(rig.received(0).len(), 20);
    assert!(rig.sim.faults().is_empty(), "no trusted component faulted");
}

#[test]
fn more_than_65536_buffers_through_every_queue() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    rig.sim.record_trace(false);
    // 8 frames per client per round each way: every queue carries more than 65536 buffers.
    let rounds = 65_536 / 8 + 10;
    let mut seq = 0u32;
    for _ in 0..rounds {
        let batch: Vec<_> = (0..16)
            .map(|i| frame(mac(i % 2), 0, seq + i as u32, 60))
            .collect();
        for c in 0..CLIENTS {
            rig.cmd(c, (0..8).map(|i| Cmd::Send(frame(mac(9), c, seq + i, 60))));
        }
        rig.receive(batch);
        seq += 16;
    }
    for c in 0..CLIENTS {
        let got: Vec<u32> = rig.received(c).iter().map(|f| seq_of(f)).collect();
        assert_eq!(got.len(), rounds * 8);
        assert!(
            got.windows(2).all(|s| s[1] == s[0] + 2),
            "client {c}: in order, none lost"
        );
    }
    let sent = rig.sent();
    assert_eq!(sent.len(), rounds * 16);
    for c in 0..CLIENTS {
        let seqs: Vec<u32> = sent.iter().filter(|s| s.0 == c).map(|s| s.1).collect();
        assert!(
            seqs.chunks(8)
                .all(|k| k.windows(2).all(|s| s[1] == s[0] + 1)),
            "client {c}: Tx in order"
        );
    }
    // The free-running u16 tails wrapped (and every buffer is accounted for).
    let wrapped = |n: usize| u16::try_from(n % 65_536).unwrap();
    let tail = |q: &Queue| q.index(true, 0).load(Ordering::Relaxed);
    assert_eq!(tail(&w.drv_rx), wrapped(rounds * 16));
    assert_eq!(tail(&w.drv_tx), wrapped(rounds * 16));
    for c in 0..CLIENTS {
        assert_eq!(tail(&w.copy_q[c]), wrapped(rounds * 8));
        assert_eq!(tail(&w.cli_rx[c]), wrapped(rounds * 8));
        assert_eq!(tail(&w.cli_tx[c]), wrapped(rounds * 8));
    }
    assert!(rig.all_rx_buffers_home());
    assert!(rig.sim.faults().is_empty());
}

/// Which component a restart test kills.
#[derive(Debug, Clone, Copy)]
enum Victim {
    VirtTx,
    VirtRx,
    Copier(usize),
}

/// Frames arriving in the restart workload: unicast to each client, a broadcast every fourth, an
/// unmatched one every seventh; fed three at a time (never more than a client's free buffers).
fn restart_inbound() -> Vec<Vec<u8>> {
    (0..24u32)
        .map(|i| match i {
            _ if i % 7 == 6 => frame(mac(9), 0, i, 64),
            _ if i % 4 == 3 => frame(MacAddr::BROADCAST, 0, i, 80),
            _ => frame(mac(i as usize % 2), 1, i, 60 + i as usize),
        })
        .collect()
}

/// Run the restart workload (clients send 12 frames each, 24 arrive), killing `victim` after
/// step `kill` (if the run gets that far), letting the rest run `down` more steps without it,
/// then restarting it the way its binary does (`resume`) with its regions as they were. Returns
/// whether the kill happened, with the rig settled.
fn restart_run<'a>(
    w: &'a World,
    p: &'a Parts<'a, RoundRobin>,
    victim: Victim,
    kill: usize,
    down: usize,
) -> (Rig<'a>, bool, usize) {
    let mut rig = Rig::new(w, p);
    for c in 0..CLIENTS {
        rig.cmd(
            c,
            (0..12).map(|i| Cmd::Send(frame(mac(9), c, i, 100 + i as usize))),
        );
    }
    let mut inbound: VecDeque<Vec<u8>> = restart_inbound().into();
    let (mut steps, mut killed_at) = (0, None);
    let nic = &w.nic;
    for _ in 0..100_000 {
        while rig.sim.step().is_some() {
            steps += 1;
            if steps == kill {
                let pd = match victim {
                    Victim::VirtTx => rig.virt_tx,
                    Victim::VirtRx => rig.virt_rx,
                    Victim::Copier(c) => rig.copiers[c],
                };
                rig.sim.fault(pd, "killed by the test");
                killed_at = Some((pd, steps));
            }
            if let Some((pd, at)) = killed_at
                && steps == at + down
                && rig.sim.is_faulted(pd)
            {
                restart(&mut rig, w, p, victim, pd);
            }
        }
        if let Some((pd, _)) = killed_at
            && rig.sim.is_faulted(pd)
        {
            // The system went idle before `down` steps: restart now.
            restart(&mut rig, w, p, victim, pd);
            continue;
        }
        let done: Vec<_> = nic.tx_posted.borrow_mut().drain(..).collect();
        nic.tx_done.borrow_mut().extend(done);
        if nic.inbox.borrow().is_empty() {
            let batch: Vec<_> = (0..3).filter_map(|_| inbound.pop_front()).collect();
            nic.inbox.borrow_mut().extend(batch);
        }
        let rx = !nic.inbox.borrow().is_empty() && !nic.rx_posted.borrow().is_empty();
        if !rx && nic.tx_done.borrow().is_empty() {
            break;
        }
        rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    }
    (rig, killed_at.is_some(), steps)
}

/// Build `victim` anew over the same regions and restart its PD with the resume its binary runs.
fn restart<'a>(
    rig: &mut Rig<'a>,
    w: &'a World,
    p: &'a Parts<'a, RoundRobin>,
    victim: Victim,
    pd: PdId,
) {
    match victim {
        Victim::VirtTx => {
            // SAFETY: the regions live in `w`; the old handles are dropped by the assignment.
            *p.vtx.borrow_mut() =
                VirtTx::new(mapped(&w.vtx), RoundRobin::default(), Coherent).unwrap();
            rig.sim
                .restart_with(pd, Shared(&p.vtx), || p.vtx.borrow_mut().resume().map(drop));
        }
        Victim::VirtRx => {
            *p.vrx.borrow_mut() = VirtRx::new(mapped(&w.vrx), Coherent).unwrap();
            rig.sim
                .restart_with(pd, Shared(&p.vrx), || p.vrx.borrow_mut().resume().map(drop));
        }
        Victim::Copier(c) => {
            *p.copiers[c].borrow_mut() = Copier::resume(mapped(&w.copy[c])).unwrap();
            rig.sim.restart_with(pd, Shared(&p.copiers[c]), || {
                p.copiers[c].borrow_mut().notified(ChannelSet::EMPTY)
            });
        }
    }
}

/// Every buffer is home after a run: each Rx DMA buffer posted to the NIC again, each client's
/// Tx buffers all on its free queue, the Rx holder sets empty, nothing lost by the Tx virt.
fn assert_all_buffers_home(rig: &Rig<'_>, w: &World, p: &Parts<'_, RoundRobin>, what: &str) {
    let mut posted = rig.posted();
    posted.sort_unstable();
    posted.dedup();
    assert_eq!(posted.len(), usize::from(RX_BUFS), "{what}: Rx DMA buffers");
    assert!(rig.all_rx_buffers_home(), "{what}: Rx DMA buffers posted");
    for i in 0..usize::from(RX_BUFS) {
        assert_eq!(p.vrx.borrow().holders(i), 0, "{what}: holders of {i}");
    }
    for c in 0..CLIENTS {
        let q = &w.cli_tx[c];
        let (tail, head) = (q.index(false, 0), q.index(false, 2));
        let n = tail
            .load(Ordering::Relaxed)
            .wrapping_sub(head.load(Ordering::Relaxed));
        assert_eq!(n, CLIENT_BUFS, "{what}: client {c}'s Tx buffers");
    }
    assert_eq!(p.vtx.borrow().stats().lost, 0, "{what}: Tx virt lost");
    assert!(w.nic.stray.get() == 0, "{what}: stray Tx addresses");
}

/// Frames each client should receive from [`restart_inbound`] (unicast to it and broadcasts).
fn restart_expected(c: usize) -> Vec<Vec<u8>> {
    restart_inbound()
        .into_iter()
        .filter(|f| f[..6] == mac(c).0 || f[..6] == MacAddr::BROADCAST.0)
        .collect()
}

/// Item 7 on the sim backend: the net Tx virt, the Rx virt and each copier are killed after
/// every step of a recorded run and restarted at once with their regions intact (the resume
/// their binaries run on a restart). A component killed between events has nothing in flight, so
/// nothing may be lost: every frame is delivered and sent exactly once, in order, and every
/// buffer (Rx DMA, client Tx) is home at the end.
#[test]
fn restart_at_every_step_loses_nothing_and_leaks_no_buffer() {
    let steps = {
        let w = rig_world();
        let p = w.parts(RoundRobin::default());
        let (rig, _, steps) = restart_run(&w, &p, Victim::VirtTx, 0, 0);
        for c in 0..CLIENTS {
            assert_eq!(rig.received(c), restart_expected(c), "baseline client {c}");
        }
        assert_all_buffers_home(&rig, &w, &p, "baseline");
        steps
    };
    assert!(steps > 50, "a real run: {steps} steps");
    let mut runs = 0;
    for victim in [
        Victim::VirtTx,
        Victim::VirtRx,
        Victim::Copier(0),
        Victim::Copier(1),
    ] {
        for kill in 1..=steps {
            let w = rig_world();
            let p = w.parts(RoundRobin::default());
            let (rig, killed, _) = restart_run(&w, &p, victim, kill, 0);
            let what = format!("{victim:?} killed after step {kill}");
            assert!(killed, "{what}: the run is deterministic");
            assert_eq!(rig.sim.faults().len(), 1, "{what}: {:?}", rig.sim.faults());
            for c in 0..CLIENTS {
                assert_eq!(rig.received(c), restart_expected(c), "{what}: client {c}");
                let sent: Vec<u32> = rig
                    .sent()
                    .into_iter()
                    .filter(|&(k, _)| k == c)
                    .map(|(_, s)| s)
                    .collect();
                assert_eq!(sent, (0..12).collect::<Vec<_>>(), "{what}: client {c} sent");
            }
            assert_all_buffers_home(&rig, &w, &p, &what);
            runs += 1;
        }
    }
    println!("restart runs: {runs} ({steps} steps each)");
}

/// As above, but the killed component stays down for 6 steps while the rest keeps running (and
/// its notifications are dropped). Frames may be lost only while it is down and only as many as
/// its queues could hold; nothing arrives twice, and every buffer is home at the end.
#[test]
fn restart_after_downtime_bounds_loss_and_leaks_no_buffer() {
    let steps = {
        let w = rig_world();
        let p = w.parts(RoundRobin::default());
        restart_run(&w, &p, Victim::VirtTx, 0, 0).2
    };
    let (mut runs, mut lost_max) = (0, 0);
    for victim in [
        Victim::VirtTx,
        Victim::VirtRx,
        Victim::Copier(0),
        Victim::Copier(1),
    ] {
        for kill in 1..=steps {
            let w = rig_world();
            let p = w.parts(RoundRobin::default());
            let (rig, killed, _) = restart_run(&w, &p, victim, kill, 6);
            let what = format!("{victim:?} killed after step {kill}, down 6 steps");
            assert!(killed, "{what}");
            assert_eq!(rig.sim.faults().len(), 1, "{what}: {:?}", rig.sim.faults());
            for c in 0..CLIENTS {
                let want = restart_expected(c);
                let got = rig.received(c);
                // In order, no duplicates: `got` is a subsequence of `want`.
                let mut it = want.iter();
                assert!(
                    got.iter().all(|f| it.any(|x| x == f)),
                    "{what}: client {c} got frames out of order or twice"
                );
                let lost = want.len() - got.len();
                assert!(
                    lost <= usize::from(CLIENT_BUFS),
                    "{what}: client {c} lost {lost}"
                );
                lost_max = lost_max.max(lost);
                let sent: Vec<u32> = rig
                    .sent()
                    .into_iter()
                    .filter(|&(k, _)| k == c)
                    .map(|(_, s)| s)
                    .collect();
                assert_eq!(sent, (0..12).collect::<Vec<_>>(), "{what}: client {c} sent");
            }
            assert_all_buffers_home(&rig, &w, &p, &what);
            runs += 1;
        }
    }
    println!("restart-after-downtime runs: {runs}; most frames lost by one client: {lost_max}");
}

/// [`Rig::settle`] without its check that nothing faulted (the tests below kill components).
fn drive(rig: &mut Rig<'_>) {
    let nic = &rig.w.nic;
    for _ in 0..10_000 {
        rig.sim.run_until_idle(1_000_000).unwrap();
        if nic.auto_tx.get() {
            let done: Vec<_> = nic.tx_posted.borrow_mut().drain(..).collect();
            nic.tx_done.borrow_mut().extend(done);
        }
        let rx = !nic.inbox.borrow().is_empty() && !nic.rx_posted.borrow().is_empty();
        if !rx && nic.tx_done.borrow().is_empty() {
            return;
        }
        rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    }
    panic!("the subsystem never settled");
}

/// Move a shared queue index by `delta` (a crash between two steps of a pass, simulated).
fn nudge(index: &AtomicU16, delta: i16) {
    let v = index.load(Ordering::Relaxed);
    index.store(v.wrapping_add_signed(delta), Ordering::Relaxed);
}

/// A crash inside a pass of the Rx virt: it had marked client 0 a holder of a buffer and staged
/// the frame, but died before publishing it. The restarted virt finds the holder bit without a
/// descriptor on the client's queue, clears it and gives the buffer back to the driver.
#[test]
fn restarted_rx_virt_frees_a_buffer_whose_frame_was_never_published() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    rig.sim
        .fault(rig.copiers[0], "down while the frame arrives");
    w.nic.inbox.borrow_mut().push_back(frame(mac(0), 1, 1, 60));
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    drive(&mut rig);
    assert!(!rig.all_rx_buffers_home(), "the frame's buffer is held");
    // Un-publish the push: as if the virt had died with it staged.
    nudge(w.copy_q[0].index(true, 0), -1);
    rig.sim.fault(rig.virt_rx, "killed mid-pass");
    *p.vrx.borrow_mut() = VirtRx::new(mapped(&w.vrx), Coherent).unwrap();
    let freed = Cell::new(0);
    rig.sim.restart_with(rig.virt_rx, Shared(&p.vrx), || {
        p.vrx.borrow_mut().resume().map(|n| freed.set(n))
    });
    assert_eq!(freed.get(), 1, "one stranded buffer back to the driver");
    *p.copiers[0].borrow_mut() = Copier::resume(mapped(&w.copy[0])).unwrap();
    rig.sim
        .restart_with(rig.copiers[0], Shared(&p.copiers[0]), || {
            p.copiers[0].borrow_mut().notified(ChannelSet::EMPTY)
        });
    drive(&mut rig);
    assert!(rig.all_rx_buffers_home(), "no DMA buffer stranded");
    assert!(rig.received(0).is_empty(), "the unpublished frame is lost");
    w.nic.inbox.borrow_mut().push_back(frame(mac(0), 1, 2, 60));
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    drive(&mut rig);
    assert_eq!(rig.received(0).len(), 1, "and client 0 is served again");
    assert!(rig.all_rx_buffers_home());
}

/// A crash inside a pass of a copier: it had taken a frame off the virt's queue but not yet put
/// the DMA buffer back. The restarted copier finds it (the virt's active head is past its free
/// tail) and returns it; the frame is lost, the buffer is not.
#[test]
fn restarted_copier_returns_the_dma_buffer_it_held() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    rig.sim
        .fault(rig.copiers[0], "down while the frame arrives");
    rig.w
        .nic
        .inbox
        .borrow_mut()
        .push_back(frame(mac(0), 1, 1, 60));
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    drive(&mut rig);
    // As if the copier had taken it (and released the slot) and died before returning it.
    nudge(w.copy_q[0].index(true, 2), 1);
    *p.copiers[0].borrow_mut() = Copier::resume(mapped(&w.copy[0])).unwrap();
    assert_eq!(
        p.copiers[0].borrow().stats().dropped,
        1,
        "one held buffer found"
    );
    rig.sim
        .restart_with(rig.copiers[0], Shared(&p.copiers[0]), || {
            p.copiers[0].borrow_mut().notified(ChannelSet::EMPTY)
        });
    drive(&mut rig);
    assert!(rig.all_rx_buffers_home(), "the DMA buffer is back");
    assert!(rig.received(0).is_empty());
    for i in 0..usize::from(RX_BUFS) {
        assert_eq!(p.vrx.borrow().holders(i), 0);
    }
}

/// A crash inside a pass of the Tx virt: it had sent a client's frame to the driver but not yet
/// released the client's queue slot. The restarted virt recognises the frame at the head of the
/// client's queue as one in flight and does not send it twice; every buffer comes home once.
#[test]
fn restarted_tx_virt_does_not_send_a_frame_twice() {
    let w = rig_world();
    let p = w.parts(RoundRobin::default());
    let mut rig = Rig::new(&w, &p);
    w.nic.auto_tx.set(false);
    rig.cmd(0, [Cmd::Send(frame(mac(9), 0, 1, 100))]);
    drive(&mut rig);
    assert_eq!(rig.sent(), vec![(0, 1)]);
    // As if the virt had died before releasing the client's slot.
    nudge(w.cli_tx[0].index(true, 2), -1);
    rig.sim.fault(rig.virt_tx, "killed mid-pass");
    *p.vtx.borrow_mut() = VirtTx::new(mapped(&w.vtx), RoundRobin::default(), Coherent).unwrap();
    let resent = Cell::new(0);
    rig.sim.restart_with(rig.virt_tx, Shared(&p.vtx), || {
        p.vtx.borrow_mut().resume().map(|n| resent.set(n))
    });
    assert_eq!(resent.get(), 1, "the frame in flight was recognised");
    w.nic.auto_tx.set(true);
    drive(&mut rig);
    assert_eq!(rig.sent(), vec![(0, 1)], "sent once");
    rig.cmd(0, [Cmd::Send(frame(mac(9), 0, 2, 100))]);
    drive(&mut rig);
    assert_eq!(rig.sent(), vec![(0, 1), (0, 2)]);
    assert_all_buffers_home(&rig, &w, &p, "after the restart");
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
