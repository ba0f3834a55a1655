// SPDX-License-Identifier: BSD-2-Clause
//! A test harness for serial drivers (feature `sim`): the whole serial subsystem around your
//! [`SerialDevice`], on the deterministic [`lions_os::sim`] backend, in one call.
//!
//! ```text
//! client i --tx--> VirtTx --tx--> SerialDriver<YourDevice> --> "wire" (SerialModel::take_transmitted)
//! client i <--rx-- VirtRx <--rx-- SerialDriver<YourDevice> <-- "wire" (SerialModel::receive)
//! ```
//!
//! 1. Implement [`SerialDevice`] for your driver's hardware half, usually over a register-access
//!    trait so the same code runs on the real registers and on a model.
//! 2. Implement [`SerialModel`] for it with a model behind the registers: what the "other end of
//!    the cable" sees and sends, and whether the interrupt line is asserted.
//! 3. Build the subsystem: [`SerialMemory::new`] (queues and configs, made with the
//!    [config builders](crate::builders)), then [`SerialRig::new`] (the driver, the Tx and Rx
//!    virtualisers and `clients` client PDs, started). Then [`SerialRig::write`] makes a client
//!    write, [`SerialRig::transmitted`] reads what your device put on the wire,
//!    [`SerialRig::receive`] feeds bytes into your device (its IRQ is delivered as the model
//!    raises it), and [`SerialRig::received`] reads what a client got.
//!
//! Every operation runs the system until nothing moves, in rounds: the simulator runs every PD
//! with work, the device's clock advances one step ([`SerialModel::tick`]), and an asserted
//! interrupt line ([`SerialModel::irq_pending`]) is delivered to the driver; it stops when no PD
//! has work, the tick changed nothing and the line is low. A PD that faulted (a handler returned an error or panicked) makes the operation fail with
//! [`RigError::Fault`].
//!
//! The worked example "a new UART driver, tested" (a FIFO UART with a status register, over a
//! register-model trait) is `crates/lions-serial/tests/worked_uart.rs`; it runs with
//! `cargo test -p lions-serial --features sim`. A minimal use:
//!
//! ```
//! use lions_serial::SerialDevice;
//! use lions_serial::testkit::{SerialMemory, SerialModel, SerialOptions, SerialRig};
//!
//! /// A device that takes everything at once and interrupts while input waits.
//! #[derive(Default)]
//! struct Wire { out: Vec<u8>, input: Vec<u8>, rx_irq: bool }
//!
//! impl SerialDevice for Wire {
//!     fn tx_write(&mut self, bytes: &[u8]) -> usize {
//!         self.out.extend_from_slice(bytes);
//!         bytes.len()
//!     }
//!     fn rx_read(&mut self, out: &mut [u8]) -> usize {
//!         let n = out.len().min(self.input.len());
//!         out[..n].copy_from_slice(&self.input[..n]);
//!         self.input.drain(..n);
//!         n
//!     }
//!     fn set_tx_irq(&mut self, _: bool) {}
//!     fn set_rx_irq(&mut self, on: bool) { self.rx_irq = on; }
//! }
//!
//! impl SerialModel for Wire {
//!     fn take_transmitted(&mut self) -> Vec<u8> { std::mem::take(&mut self.out) }
//!     fn receive(&mut self, bytes: &[u8]) { self.input.extend_from_slice(bytes); }
//!     fn irq_pending(&self) -> bool { self.rx_irq && !self.input.is_empty() }
//! }
//!
//! let mut mem = SerialMemory::new(&SerialOptions::default())?;
//! let mut rig = SerialRig::new(&mut mem, Wire::default())?;
//! rig.write(0, b"hello\n")?;
//! assert_eq!(rig.transmitted(), b"hello\r\n");
//! rig.receive(b"hi")?;
//! assert_eq!(rig.received(0), b"hi");
//! # Ok::<(), lions_serial::testkit::RigError>(())
//! ```
//!
//! ## Channel ids
//!
//! | PD | channel | to |
//! |---|---|---|
//! | driver | [`DRIVER_IRQ`] (0) | the device's IRQ |
//! | driver | [`DRIVER_TX`] (1), [`DRIVER_RX`] (2) | Tx virt, Rx virt |
//! | each virt | [`VIRT_DRIVER`] (0), `1 + i` | the driver, client `i` |
//! | client | [`CLIENT_TX`] (0), [`CLIENT_RX`] (1) | Tx virt, Rx virt |
//! | client | [`CLIENT_CMD`] (2) | an IRQ the rig raises to make the client run |
//!
//! Priorities follow the LionsOS examples: driver 200 > Tx virt 199 > Rx virt 198 > clients 1.

use crate::SerialQueue;
use crate::builders::{DEFAULT_SWITCH_CHAR, DEFAULT_TERMINATE_NUM_CHAR};
use crate::{
    Error, SerialClient, SerialClientConfig, SerialConnectionResource, SerialDevice, SerialDriver,
    SerialDriverConfig, SerialQueueError, SerialVirtRxConfig, SerialVirtTxConfig, VirtRx, VirtTx,
};
use lions_os::sim::{PdId, Region, Shared, Sim, SimError, SimFault};
use lions_os::{Channel, ChannelSet, ConfigError, Handler, Mapped};
use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

/// Driver: the device's IRQ.
pub const DRIVER_IRQ: u8 = 0;
/// Driver: to the Tx virt.
pub const DRIVER_TX: u8 = 1;
/// Driver: to the Rx virt.
pub const DRIVER_RX: u8 = 2;
/// Each virt: to the driver (client `i` is `1 + i`).
pub const VIRT_DRIVER: u8 = 0;
/// Client: to the Tx virt.
pub const CLIENT_TX: u8 = 0;
/// Client: to the Rx virt.
pub const CLIENT_RX: u8 = 1;
/// Client: the IRQ the rig raises to make the client write.
pub const CLIENT_CMD: u8 = 2;

/// Rounds of "run, deliver the IRQ or tick" before an operation gives up ([`RigError::NeverSettled`]).
const MAX_ROUNDS: usize = 100_000;
/// Simulator steps per round.
const MAX_STEPS: usize = 100_000;

/// The hardware model behind a [`SerialDevice`]: the side of the device the driver does not see.
pub trait SerialModel: SerialDevice {
    /// Everything the device put on the wire since the last call.
    fn take_transmitted(&mut self) -> Vec<u8>;
    /// Bytes arrive on the wire (the device keeps what its receiver can hold).
    fn receive(&mut self, bytes: &[u8]);
    /// Whether the device asserts its interrupt line now (given the interrupts the driver enabled).
    fn irq_pending(&self) -> bool;
    /// Let one unit of device time pass (a transmit FIFO drains to the wire, ...); return whether
    /// anything changed. The default has no clock.
    fn tick(&mut self) -> bool {
        false
    }
}

/// What a rig operation reports instead of success.
#[derive(Debug)]
pub enum RigError {
    /// A config could not be built (too many clients, a name too long, a bad queue size).
    Config(ConfigError),
    /// A component refused its queues.
    Queue(SerialQueueError),
    /// A config's regions are not mapped as it claims (see [`lions_os::mapped`]).
    Map(lions_os::MapError),
    /// The simulator refused the wiring or an operation.
    Sim(SimError),
    /// PDs faulted (a handler returned an error or panicked).
    Fault(Vec<SimFault>),
    /// The system kept working for 100 000 rounds (a device model that never quiets down).
    NeverSettled,
}

impl fmt::Display for RigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "config: {e}"),
            Self::Queue(e) => write!(f, "queue: {e:?}"),
            Self::Map(e) => write!(f, "regions: {e}"),
            Self::Sim(e) => write!(f, "sim: {e:?}"),
            Self::Fault(faults) => {
                f.write_str("faulted:")?;
                for x in faults {
                    write!(f, " {}: {};", x.pd, x.cause)?;
                }
                Ok(())
            }
            Self::NeverSettled => write!(f, "the subsystem never settled"),
        }
    }
}

impl std::error::Error for RigError {}

impl From<ConfigError> for RigError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<SerialQueueError> for RigError {
    fn from(e: SerialQueueError) -> Self {
        Self::Queue(e)
    }
}

impl From<lions_os::MapError> for RigError {
    fn from(e: lions_os::MapError) -> Self {
        Self::Map(e)
    }
}

impl From<SimError> for RigError {
    fn from(e: SimError) -> Self {
        Self::Sim(e)
    }
}

/// The shape of the subsystem.
#[derive(Debug, Clone)]
pub struct SerialOptions {
    /// Client PDs (1 to 64).
    pub clients: usize,
    /// Capacity of the two driver queues, in bytes (a power of two).
    pub driver_queue: u64,
    /// Capacity of each client queue, in bytes (a power of two).
    pub client_queue: u64,
    /// Whether there is an Rx virtualiser (input path).
    pub rx: bool,
    /// Whether the Tx virt colours each client's output and prints the legend at start-up.
    pub colour: bool,
    /// The banner the Tx virt writes at start-up when `rx` is on (empty: none).
    pub begin_str: Vec<u8>,
    /// The input-switch sequence: this byte, the client number in decimal, `terminate`.
    pub switch_char: u8,
    /// Ends the client number of an input switch.
    pub terminate: u8,
    /// Baud rate in the driver's config.
    pub baud: u64,
}

impl Default for SerialOptions {
    /// One client, 4 KiB queues, Rx on, colour off, no banner, the examples' switch sequence.
    fn default() -> Self {
        Self {
            clients: 1,
            driver_queue: 4096,
            client_queue: 4096,
            rx: true,
            colour: false,
            begin_str: Vec::new(),
            switch_char: DEFAULT_SWITCH_CHAR,
            terminate: DEFAULT_TERMINATE_NUM_CHAR,
            baud: 115_200,
        }
    }
}

impl SerialOptions {
    /// The defaults with `n` clients.
    pub fn clients(n: usize) -> Self {
        Self {
            clients: n,
            ..Self::default()
        }
    }
}

/// One serial queue's memory: a header region (a page) and a data region of `size` bytes. For a
/// subsystem built by hand (adversarial tests reach into [`header`](Self::header) and
/// [`data`](Self::data) as a misbehaving peer would).
#[derive(Debug)]
pub struct Queue {
    header: Region,
    data: Region,
    size: u64,
}

impl Queue {
    /// The regions of a queue of `size` bytes.
    pub fn new(size: u64) -> Self {
        Self {
            header: Region::new(Region::PAGE),
            data: Region::new(usize::try_from(size).unwrap_or(usize::MAX)),
            size,
        }
    }

    /// The connection over it, to the peer on channel `id`.
    pub fn conn(&self, id: u8) -> SerialConnectionResource {
        let size = self.size.min(self.data.len() as u64);
        SerialConnectionResource::new(self.header.resource(), self.data.slice(0, size), id)
    }

    /// The shared header, as a (misbehaving) peer sees it.
    pub fn header(&self) -> &SerialQueue {
        // SAFETY: the region is page-aligned, larger than the header, lives as long as `self`,
        // and the header's fields are atomics valid for any bits.
        unsafe { self.header.as_ptr().cast::<SerialQueue>().as_ref() }
    }

    /// The data region.
    pub fn data(&self) -> &Region {
        &self.data
    }
}

/// A scripted UART for a subsystem built by hand: what it transmitted (`out`), how many more bytes
/// its transmitter takes (`room`), the input waiting in its receiver, its interrupt enables and
/// how many IRQs were acknowledged. `&ScriptedUart` is the [`SerialDevice`], so the test keeps
/// the state while the driver owns the device.
#[derive(Debug, Default)]
pub struct ScriptedUart {
    /// Every byte transmitted so far.
    pub out: RefCell<Vec<u8>>,
    /// Bytes the transmitter still takes.
    pub room: Cell<usize>,
    /// Received bytes not yet read by the driver.
    pub input: RefCell<VecDeque<u8>>,
    /// The "can take more" interrupt is enabled.
    pub tx_irq: Cell<bool>,
    /// The "byte received" interrupt is enabled.
    pub rx_irq: Cell<bool>,
    /// IRQ acknowledgements so far.
    pub acks: Cell<u32>,
}

impl SerialDevice for &ScriptedUart {
    fn tx_write(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room.get());
        self.out.borrow_mut().extend_from_slice(&bytes[..n]);
        self.room.set(self.room.get() - n);
        n
    }
    fn rx_read(&mut self, out: &mut [u8]) -> usize {
        let mut input = self.input.borrow_mut();
        let n = out.len().min(input.len());
        for (o, b) in out.iter_mut().zip(input.drain(..n)) {
            *o = b;
        }
        n
    }
    fn set_tx_irq(&mut self, on: bool) {
        self.tx_irq.set(on);
    }
    fn set_rx_irq(&mut self, on: bool) {
        self.rx_irq.set(on);
    }
    fn ack_irq(&mut self) {
        self.acks.set(self.acks.get() + 1);
    }
}

/// One client step of a hand-built subsystem: write what `pending` holds (what does not fit stays
/// there and the client waits for the Tx virt's signal), then append every input byte to
/// `received`, read `CHUNK` bytes at a time.
pub fn pump<const CHUNK: usize>(
    client: &mut SerialClient<'_>,
    pending: &mut Vec<u8>,
    received: &mut Vec<u8>,
) -> Result<(), Error> {
    let n = client.write_or_park(pending)?;
    pending.drain(..n);
    let mut buf = [0u8; CHUNK];
    loop {
        let n = client.try_read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        received.extend_from_slice(&buf[..n]);
    }
}

fn client_id(c: usize) -> Result<u8, RigError> {
    u8::try_from(1 + c)
        .ok()
        .filter(|&id| id <= lions_os::MAX_CHANNEL)
        .ok_or(RigError::Config(ConfigError::Count {
            config: "SerialOptions",
            field: "clients",
            value: c as u64 + 1,
            max: u64::from(lions_os::MAX_CHANNEL),
        }))
}

/// The shared memory and the configs of a serial subsystem, built from [`SerialOptions`] with the
/// [config builders](crate::builders). Make it before the [`SerialRig`] that runs on it.
pub struct SerialMemory {
    queues: Vec<Queue>,
    driver: SerialDriverConfig,
    virt_tx: SerialVirtTxConfig,
    virt_rx: SerialVirtRxConfig,
    clients: Vec<SerialClientConfig>,
    opts: SerialOptions,
}

impl SerialMemory {
    /// Allocate the queues and build every config (names `client0`, `client1`, ...).
    pub fn new(opts: &SerialOptions) -> Result<Self, RigError> {
        let driver_tx = Queue::new(opts.driver_queue);
        let driver_rx = Queue::new(opts.driver_queue);
        let driver_rx_conn = opts.rx.then(|| driver_rx.conn(DRIVER_RX));
        let driver = SerialDriverConfig::new(driver_tx.conn(DRIVER_TX), driver_rx_conn, opts.baud);
        let mut virt_tx = SerialVirtTxConfig::new(driver_tx.conn(VIRT_DRIVER))
            .with_colour(opts.colour)
            .with_rx(opts.rx)
            .with_begin_str(&opts.begin_str)?;
        let mut virt_rx = SerialVirtRxConfig::new(driver_rx.conn(VIRT_DRIVER))
            .with_switch(opts.switch_char, opts.terminate);
        let mut clients = Vec::new();
        let mut queues = vec![driver_tx, driver_rx];
        for c in 0..opts.clients {
            let id = client_id(c)?;
            let tx = Queue::new(opts.client_queue);
            let rx = Queue::new(opts.client_queue);
            virt_tx = virt_tx.with_client(tx.conn(id), format!("client{c}"))?;
            virt_rx = virt_rx.with_client(rx.conn(id))?;
            let client_rx = opts.rx.then(|| rx.conn(CLIENT_RX));
            clients.push(SerialClientConfig::new(tx.conn(CLIENT_TX), client_rx));
            queues.extend([tx, rx]);
        }
        use lions_os::Config;
        driver.check()?;
        virt_tx.check()?;
        virt_rx.check()?;
        clients.iter().try_for_each(Config::check)?;
        Ok(Self {
            queues,
            driver,
            virt_tx,
            virt_rx,
            clients,
            opts: opts.clone(),
        })
    }

    /// Client `c`'s Tx and Rx queues, for a test that reaches into them as a misbehaving client
    /// would.
    pub fn client_queues(&self, c: usize) -> Option<(&Queue, &Queue)> {
        let i = 2 + 2 * c;
        Some((self.queues.get(i)?, self.queues.get(i + 1)?))
    }

    /// The driver's config.
    pub fn driver_config(&self) -> &SerialDriverConfig {
        &self.driver
    }

    /// The Tx virt's config.
    pub fn virt_tx_config(&self) -> &SerialVirtTxConfig {
        &self.virt_tx
    }

    /// The Rx virt's config.
    pub fn virt_rx_config(&self) -> &SerialVirtRxConfig {
        &self.virt_rx
    }

    /// Client `c`'s config.
    pub fn client_config(&self, c: usize) -> &SerialClientConfig {
        &self.clients[c]
    }

    /// The options it was made with.
    pub fn options(&self) -> &SerialOptions {
        &self.opts
    }
}

/// A scripted client PD: writes what the rig gave it (waiting for room when its queue is full)
/// and collects its input.
struct ClientPd<'a> {
    client: SerialClient<'a>,
    pending: Vec<u8>,
    received: Vec<u8>,
}

impl Handler for ClientPd<'_> {
    type Error = Error;

    fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
        let cmd = Channel::new(CLIENT_CMD);
        if set.contains(cmd) {
            cmd.irq_ack()?;
        }
        if !self.pending.is_empty() {
            let n = self.client.write_or_park(&self.pending)?;
            self.pending.drain(..n);
            if self.pending.is_empty() {
                // A last line without `\n` goes out too.
                self.client.flush()?;
            }
        }
        let mut buf = [0u8; 64];
        loop {
            let n = self.client.try_read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

/// The serial subsystem around a device `D`, running on [`Sim`]: see the [module docs](self).
pub struct SerialRig<'a, D: SerialModel> {
    sim: Sim<'a>,
    driver: Rc<RefCell<SerialDriver<'a, D>>>,
    virt_tx: Rc<RefCell<VirtTx<'a>>>,
    virt_rx: Option<Rc<RefCell<VirtRx<'a>>>>,
    clients: Vec<Rc<RefCell<ClientPd<'a>>>>,
    driver_pd: PdId,
    virt_tx_pd: PdId,
    virt_rx_pd: Option<PdId>,
    client_pds: Vec<PdId>,
    opts: SerialOptions,
}

impl<'a, D: SerialModel + 'a> SerialRig<'a, D> {
    /// Build the subsystem on `mem` around `device`, start it (every `init`; the Tx virt writes its
    /// banner and legend) and run it until it settles. `mem` is borrowed exclusively, so its
    /// queues have one handle per role.
    pub fn new(mem: &'a mut SerialMemory, device: D) -> Result<Self, RigError> {
        let mem: &'a SerialMemory = mem;
        let mut sim = Sim::new();
        // SAFETY: the regions live in `mem`, borrowed exclusively for `'a`, so they outlive every
        // handle; each role (driver, virts, clients) gets exactly one token, here.
        let token = unsafe { Mapped::check(&mem.driver) }?;
        let driver = SerialDriver::new(device, token, Channel::new(DRIVER_IRQ))?;
        let driver = Rc::new(RefCell::new(driver));
        // SAFETY: as above.
        let token = unsafe { Mapped::check(&mem.virt_tx) }?;
        let virt_tx = Rc::new(RefCell::new(VirtTx::new(token)?));
        let virt_rx = if mem.opts.rx {
            // SAFETY: as above.
            let token = unsafe { Mapped::check(&mem.virt_rx) }?;
            Some(Rc::new(RefCell::new(VirtRx::new(token)?)))
        } else {
            None
        };

        let driver_pd = sim.add_pd("serial_driver", 200, false, Shared::new(driver.clone()));
        sim.irq(driver_pd, DRIVER_IRQ)?;
        let virt_tx_pd = sim.add_pd("serial_virt_tx", 199, false, Shared::new(virt_tx.clone()));
        sim.channel(driver_pd, DRIVER_TX, virt_tx_pd, VIRT_DRIVER)?;
        let vt = virt_tx.clone();
        sim.init(virt_tx_pd, move || vt.borrow_mut().init());
        let virt_rx_pd = match &virt_rx {
            Some(vr) => {
                let pd = sim.add_pd("serial_virt_rx", 198, false, Shared::new(vr.clone()));
                sim.channel(driver_pd, DRIVER_RX, pd, VIRT_DRIVER)?;
                Some(pd)
            }
            None => None,
        };
        let mut clients = Vec::new();
        let mut client_pds = Vec::new();
        for (c, cfg) in mem.clients.iter().enumerate() {
            // SAFETY: as above.
            let client = SerialClient::new(unsafe { Mapped::check(cfg) }?)?;
            let cell = Rc::new(RefCell::new(ClientPd {
                client,
                pending: Vec::new(),
                received: Vec::new(),
            }));
            let pd = sim.add_pd(&format!("client{c}"), 1, false, Shared::new(cell.clone()));
            let id = client_id(c)?;
            sim.channel(pd, CLIENT_TX, virt_tx_pd, id)?;
            if let Some(vr) = virt_rx_pd {
                sim.channel(pd, CLIENT_RX, vr, id)?;
            }
            sim.irq(pd, CLIENT_CMD)?;
            clients.push(cell);
            client_pds.push(pd);
        }
        let mut rig = Self {
            sim,
            driver,
            virt_tx,
            virt_rx,
            clients,
            driver_pd,
            virt_tx_pd,
            virt_rx_pd,
            client_pds,
            opts: mem.opts.clone(),
        };
        rig.sim.start();
        rig.settle()?;
        Ok(rig)
    }

    /// Run until nothing moves (see the [module docs](self)).
    pub fn settle(&mut self) -> Result<(), RigError> {
        for _ in 0..MAX_ROUNDS {
            self.sim.run_until_idle(MAX_STEPS)?;
            let faults = self.sim.faults();
            if !faults.is_empty() {
                return Err(RigError::Fault(faults));
            }
            let (moved, irq) = {
                let mut driver = self.driver.borrow_mut();
                let dev = driver.device();
                let moved = dev.tick();
                (moved, dev.irq_pending())
            };
            if irq {
                self.sim.inject_irq(self.driver_pd, DRIVER_IRQ)?;
            } else if !moved {
                return Ok(());
            }
        }
        Err(RigError::NeverSettled)
    }

    /// Client `c` writes `bytes` (`\n` goes out as `\r\n`; a last partial line is flushed), waiting
    /// for room as a real client does; then the system settles.
    ///
    /// # Panics
    /// If there is no client `c`.
    pub fn write(&mut self, c: usize, bytes: &[u8]) -> Result<(), RigError> {
        self.clients[c]
            .borrow_mut()
            .pending
            .extend_from_slice(bytes);
        self.sim.inject_irq(self.client_pds[c], CLIENT_CMD)?;
        self.settle()
    }

    /// Everything the device put on the wire since the last call.
    pub fn transmitted(&mut self) -> Vec<u8> {
        self.driver.borrow_mut().device().take_transmitted()
    }

    /// Bytes arrive at the device; the system settles (the model raises the IRQ, the driver reads
    /// them, the Rx virt routes them).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), RigError> {
        self.driver.borrow_mut().device().receive(bytes);
        self.settle()
    }

    /// Switch input to client `c` by typing the switch sequence.
    pub fn switch_input(&mut self, c: usize) -> Result<(), RigError> {
        let mut seq = vec![self.opts.switch_char];
        seq.extend_from_slice(c.to_string().as_bytes());
        seq.push(self.opts.terminate);
        self.receive(&seq)
    }

    /// What client `c` received since the last call.
    ///
    /// # Panics
    /// If there is no client `c`.
    pub fn received(&mut self, c: usize) -> Vec<u8> {
        std::mem::take(&mut self.clients[c].borrow_mut().received)
    }

    /// Bytes client `c` still holds because its queue was full.
    pub fn unsent(&self, c: usize) -> usize {
        self.clients[c].borrow().pending.len()
    }

    /// The device (inspect the model, change its state). Do not hold it across another call.
    pub fn device(&self) -> RefMut<'_, D> {
        RefMut::map(self.driver.borrow_mut(), SerialDriver::device)
    }

    /// The Tx virtualiser (counters such as [`VirtTx::faulty`]).
    pub fn virt_tx(&self) -> Ref<'_, VirtTx<'a>> {
        self.virt_tx.borrow()
    }

    /// The Rx virtualiser, when there is one (counters such as [`VirtRx::drops`]).
    pub fn virt_rx(&self) -> Option<Ref<'_, VirtRx<'a>>> {
        self.virt_rx.as_ref().map(|v| v.borrow())
    }

    /// The simulator (traces, statistics, fault injection).
    pub fn sim(&mut self) -> &mut Sim<'a> {
        &mut self.sim
    }

    /// The driver's PD.
    pub fn driver_pd(&self) -> PdId {
        self.driver_pd
    }

    /// The Tx virt's PD.
    pub fn virt_tx_pd(&self) -> PdId {
        self.virt_tx_pd
    }

    /// The Rx virt's PD, when there is one.
    pub fn virt_rx_pd(&self) -> Option<PdId> {
        self.virt_rx_pd
    }

    /// Client `c`'s PD.
    pub fn client_pd(&self, c: usize) -> PdId {
        self.client_pds[c]
    }
}
