// SPDX-License-Identifier: BSD-2-Clause
//! The network subsystem on the sim backend with every config built by the config builders
//! (`NetDriverConfig::new`, `NetVirtRxConfig::new(..).with_client(..)`,
//! `NetVirtTxConfig::new(..).with_client(..)`, `NetCopyConfig::new(..).with_rx_data(..)`,
//! `NetClientConfig::new`), regions named by `lions_os::sim::Region::resource`, and components run
//! through `lions_os::sim::Shared`: a fake NIC under the generic driver, the Rx virt, one copier,
//! one client, the Tx virt. A frame for the client's MAC and a broadcast reach it, a frame for
//! another MAC does not (and its buffer goes straight back to the NIC); the client's frames go out.
#![allow(clippy::unwrap_used)]

use lions_net::queue::NetQueue;
use lions_net::{
    Coherent, Copier, DataRegion, Error, EthDevice, EthDriver, InOrder, MacAddr, NetBuffDesc,
    NetClientConfig, NetConnectionResource, NetCopyConfig, NetDriverConfig, NetSink, NetSource,
    NetVirtRxConfig, NetVirtTxConfig, NetVirtTxRegion, VirtRx, VirtTx,
};
use lions_os::sim::{Region, Shared, Sim};
use lions_os::{Channel, ChannelSet, Config, Handler};
use std::cell::RefCell;
use std::collections::VecDeque;

const D_IRQ: u8 = 0;
const D_RX: u8 = 1;
const D_TX: u8 = 2;
const V_DRIVER: u8 = 0;
const V_CLIENT: u8 = 1;
const K_VIRT: u8 = 0;
const K_CLIENT: u8 = 1;
const C_RX: u8 = 0;
const C_TX: u8 = 1;
const C_CMD: u8 = 2;

const RX_BUFS: u16 = 8;
const CLIENT_BUFS: u16 = 8;
const RX_IO: u64 = 0x1000_0000;
const TX_IO: u64 = 0x2000_0000;
const ME: MacAddr = MacAddr([0x52, 0x54, 1, 0, 0, 1]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 1, 0, 0, 2]);

fn frame(dst: MacAddr, seq: u8) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&ME.0);
    f.extend_from_slice(&[0x08, 0x00, seq]);
    f.resize(60, seq);
    f
}

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
        NetConnectionResource::new(self.free.resource(), self.active.resource(), self.cap, id)
    }
}

/// The NIC: frames waiting to arrive, Rx buffers posted, frames sent (Tx completes at once).
#[derive(Default)]
struct NicState {
    inbox: VecDeque<Vec<u8>>,
    rx_posted: VecDeque<NetBuffDesc>,
    tx_done: VecDeque<NetBuffDesc>,
    sent: Vec<Vec<u8>>,
}

struct FakeNic<'a> {
    st: &'a RefCell<NicState>,
    dma: Vec<(u64, DataRegion<'a>)>,
}

impl FakeNic<'_> {
    fn span(&self, io: u64, len: u16) -> lions_net::Span<'_> {
        self.dma
            .iter()
            .find_map(|(base, r)| r.span(io.wrapping_sub(*base), len).ok())
            .unwrap()
    }
}

impl EthDevice for FakeNic<'_> {
    fn rx_room(&mut self) -> bool {
        self.st.borrow().rx_posted.len() < usize::from(RX_BUFS)
    }
    fn rx_post(&mut self, buf: NetBuffDesc) {
        self.st.borrow_mut().rx_posted.push_back(buf);
    }
    fn rx_poll(&mut self) -> Option<NetBuffDesc> {
        let mut st = self.st.borrow_mut();
        if st.rx_posted.is_empty() {
            return None;
        }
        let f = st.inbox.pop_front()?;
        let mut buf = st.rx_posted.pop_front()?;
        buf.len = u16::try_from(f.len()).unwrap();
        self.span(buf.io_or_offset, buf.len).write(&f);
        Some(buf)
    }
    fn tx_room(&mut self) -> bool {
        true
    }
    fn tx_post(&mut self, buf: NetBuffDesc) {
        let mut bytes = vec![0; usize::from(buf.len)];
        self.span(buf.io_or_offset, buf.len).read(&mut bytes);
        let mut st = self.st.borrow_mut();
        st.sent.push(bytes);
        st.tx_done.push_back(buf);
    }
    fn tx_poll(&mut self) -> Option<NetBuffDesc> {
        self.st.borrow_mut().tx_done.pop_front()
    }
}

/// The client: returns every received frame's buffer at once; sends what the test queued.
struct ClientPd<'a> {
    rx: NetSink<'a>,
    rx_data: DataRegion<'a>,
    tx: NetSource<'a>,
    tx_data: DataRegion<'a>,
    pending: VecDeque<Vec<u8>>,
    received: Vec<Vec<u8>>,
}

impl Handler for ClientPd<'_> {
    type Error = Error;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        if set.contains(Channel::new(C_CMD)) {
            Channel::new(C_CMD).irq_ack()?;
        }
        while let Some(buf) = self.rx.active.pop()? {
            let mut bytes = vec![0; usize::from(buf.len)];
            let span = self.rx_data.span(buf.io_or_offset, buf.len).unwrap();
            span.read(&mut bytes);
            self.received.push(bytes);
            self.rx.free.push(buf)?;
        }
        self.rx.active.release();
        if self.rx.free.publish() > 0 {
            Channel::new(C_RX).notify()?;
        }
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
        if self.tx.active.publish() > 0 {
            Channel::new(C_TX).notify()?;
        }
        Ok(())
    }
}

#[test]
fn built_configs_carry_a_whole_subsystem() {
    let buf = |n: u16| Region::new(usize::from(n) * 2048);
    let (drv_rx, drv_tx, copy_q) = (
        Queue::new(RX_BUFS),
        Queue::new(RX_BUFS),
        Queue::new(RX_BUFS),
    );
    let (cli_rx, cli_tx) = (Queue::new(CLIENT_BUFS), Queue::new(CLIENT_BUFS));
    let (rx_dma, meta) = (buf(RX_BUFS), Region::new(usize::from(RX_BUFS)));
    let (cli_rx_data, cli_tx_data) = (buf(CLIENT_BUFS), buf(CLIENT_BUFS));

    let drv = NetDriverConfig::new(drv_rx.conn(D_RX), drv_tx.conn(D_TX));
    let vrx = NetVirtRxConfig::new(
        drv_rx.conn(V_DRIVER),
        rx_dma.device_resource(RX_IO),
        meta.resource(),
    )
    .with_client(copy_q.conn(V_CLIENT), &[ME])
    .unwrap();
    let tx_region = NetVirtTxRegion::new(cli_tx_data.device_resource(TX_IO), CLIENT_BUFS.into());
    let vtx = NetVirtTxConfig::new(drv_tx.conn(V_DRIVER))
        .with_client(cli_tx.conn(V_CLIENT), &[tx_region])
        .unwrap();
    let copy = NetCopyConfig::new(
        copy_q.conn(K_VIRT),
        cli_rx.conn(K_CLIENT),
        cli_rx_data.resource(),
    )
    .with_rx_data(0, rx_dma.resource())
    .unwrap();
    let cli = NetClientConfig::new(
        cli_rx.conn(C_RX),
        cli_rx_data.resource(),
        cli_tx.conn(C_TX),
        cli_tx_data.resource(),
        ME,
    );
    drv.check().unwrap();
    vrx.check().unwrap();
    vtx.check().unwrap();
    copy.check().unwrap();
    cli.check().unwrap();

    let nic = RefCell::new(NicState::default());
    let dma = |r: &Region, io: u64, n: u16| {
        // SAFETY: the region outlives the device (declared before it) and holds `n` buffers.
        (io, unsafe { DataRegion::new(r.as_ptr(), n.into(), true) })
    };
    let dev = FakeNic {
        st: &nic,
        dma: vec![
            dma(&rx_dma, RX_IO, RX_BUFS),
            dma(&cli_tx_data, TX_IO, CLIENT_BUFS),
        ],
    };
    let driver = RefCell::new(EthDriver::new(dev, mapped(&drv), Channel::new(D_IRQ)).unwrap());
    let virt_rx = RefCell::new(VirtRx::new(mapped(&vrx), Coherent).unwrap());
    let virt_tx = RefCell::new(VirtTx::new(mapped(&vtx), InOrder, Coherent).unwrap());
    let copier = RefCell::new(Copier::new(mapped(&copy)).unwrap());
    let n = u64::from(CLIENT_BUFS);
    // SAFETY: as above.
    let (rx, mut tx, rx_data, tx_data) = unsafe {
        (
            NetSink::from_connection(&cli.rx).unwrap(),
            NetSource::from_connection(&cli.tx).unwrap(),
            DataRegion::from_resource(&cli.rx_data, n, false).unwrap(),
            DataRegion::from_resource(&cli.tx_data, n, true).unwrap(),
        )
    };
    assert_eq!(tx.prime_free(0).unwrap(), n);
    let client = RefCell::new(ClientPd {
        rx,
        rx_data,
        tx,
        tx_data,
        pending: VecDeque::new(),
        received: Vec::new(),
    });

    let mut sim = Sim::new();
    let d = sim.add_pd("net_driver", 200, false, Shared::new(&driver));
    sim.irq(d, D_IRQ).unwrap();
    sim.init(d, || driver.borrow_mut().init());
    let vt = sim.add_pd("net_virt_tx", 199, false, Shared::new(&virt_tx));
    sim.channel(d, D_TX, vt, V_DRIVER).unwrap();
    let vr = sim.add_pd("net_virt_rx", 198, false, Shared::new(&virt_rx));
    sim.channel(d, D_RX, vr, V_DRIVER).unwrap();
    sim.init(vr, || virt_rx.borrow_mut().init());
    let k = sim.add_pd("net_copy", 150, false, Shared::new(&copier));
    sim.channel(k, K_VIRT, vr, V_CLIENT).unwrap();
    let c = sim.add_pd("client", 100, false, Shared::new(&client));
    sim.channel(c, C_RX, k, K_CLIENT).unwrap();
    sim.channel(c, C_TX, vt, V_CLIENT).unwrap();
    sim.irq(c, C_CMD).unwrap();

    let settle = |sim: &mut Sim<'_>| {
        for _ in 0..1000 {
            sim.run_until_idle(100_000).unwrap();
            assert!(sim.faults().is_empty(), "{:?}", sim.faults());
            let st = nic.borrow();
            let rx = !st.inbox.is_empty() && !st.rx_posted.is_empty();
            if !rx && st.tx_done.is_empty() {
                return;
            }
            drop(st);
            sim.inject_irq(d, D_IRQ).unwrap();
        }
        panic!("the subsystem never settled");
    };
    settle(&mut sim);
    assert_eq!(nic.borrow().rx_posted.len(), usize::from(RX_BUFS));

    let frames = [frame(ME, 1), frame(OTHER, 2), frame(MacAddr::BROADCAST, 3)];
    nic.borrow_mut().inbox.extend(frames.iter().cloned());
    sim.inject_irq(d, D_IRQ).unwrap();
    settle(&mut sim);
    assert_eq!(
        client.borrow().received,
        vec![frames[0].clone(), frames[2].clone()]
    );
    // Every Rx DMA buffer is back at the NIC (the unmatched one at once, the others after the
    // copier took their bytes).
    assert_eq!(nic.borrow().rx_posted.len(), usize::from(RX_BUFS));

    let out = [frame(OTHER, 7), frame(OTHER, 8)];
    client.borrow_mut().pending.extend(out.iter().cloned());
    sim.inject_irq(c, C_CMD).unwrap();
    settle(&mut sim);
    assert_eq!(nic.borrow().sent, out.to_vec());
    assert!(client.borrow().pending.is_empty());
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
