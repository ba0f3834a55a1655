// SPDX-License-Identifier: BSD-2-Clause
//! The PL011 driver against the register model.

use super::model::Pl011Model;
use super::*;

fn uart(depth: usize) -> Pl011<Pl011Model> {
    Pl011::new(Pl011Model::new(depth), QEMU_UARTCLK_HZ, 115_200).unwrap()
}

#[test]
fn divisor_for_115200_at_24mhz_is_13_and_1_64th() {
    // 24e6 / (16 × 115200) = 13.0208; 0.0208 × 64 = 1.33, rounded to 1.
    let d = BaudDivisor::new(QEMU_UARTCLK_HZ, 115_200).unwrap();
    assert_eq!((d.ibrd, d.fbrd), (13, 1));
    // The TRM's worked example: 4 MHz, 230400 baud → 1.085 → IBRD 1, FBRD 5.
    let d = BaudDivisor::new(4_000_000, 230_400).unwrap();
    assert_eq!((d.ibrd, d.fbrd), (1, 5));
    let d = BaudDivisor::new(QEMU_UARTCLK_HZ, 9_600).unwrap();
    assert_eq!((d.ibrd, d.fbrd), (156, 16));
}

#[test]
fn divisor_is_the_nearest_64th() {
    for baud in [
        300, 1_200, 9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
    ] {
        let d = BaudDivisor::new(QEMU_UARTCLK_HZ, baud).unwrap();
        // |divisor×64 − clock×4/baud| ≤ ½, in integers: |64·div·baud − 4·clock| ≤ baud/2.
        let got = (u64::from(d.ibrd) * 64 + u64::from(d.fbrd)) * baud;
        let want = QEMU_UARTCLK_HZ * 4;
        assert!(got.abs_diff(want) * 2 <= baud, "{baud}: {d:?}");
    }
}

#[test]
fn impossible_rates_are_refused() {
    for baud in [0, QEMU_UARTCLK_HZ / 16 + QEMU_UARTCLK_HZ / 8, 1, u64::MAX] {
        assert_eq!(
            BaudDivisor::new(QEMU_UARTCLK_HZ, baud),
            Err(Pl011Error::Baud {
                baud,
                clock_hz: QEMU_UARTCLK_HZ
            }),
            "{baud}"
        );
    }
    // The fastest rate: divisor exactly 1.
    assert!(BaudDivisor::new(QEMU_UARTCLK_HZ, QEMU_UARTCLK_HZ / 16).is_ok());
    // A refused rate writes no register.
    let m = Pl011::new(Pl011Model::new(16), QEMU_UARTCLK_HZ, 0);
    assert!(m.is_err());
}

#[test]
fn init_programs_8n1_fifos_and_divisor_while_disabled_then_enables() {
    let mut u = uart(16);
    let m = u.regs();
    assert_eq!(m.latched, Some((13, 1)), "LCR_H write latches IBRD/FBRD");
    assert_eq!(
        m.lcr_h,
        (0b11 << 5) | (1 << 4),
        "8 bits, no parity, 1 stop, FIFOs on"
    );
    assert_eq!(
        m.config_while_enabled, 0,
        "line settings changed only while disabled"
    );
    assert_eq!(m.cr, 0x301, "UARTEN | TXE | RXE");
    assert_eq!(m.ifls, 0x12);
    assert_eq!((m.imsc, m.ris), (0, 0), "all interrupts masked and cleared");
}

#[test]
fn init_gives_up_waiting_for_a_stuck_busy_flag() {
    let mut m = Pl011Model::new(16);
    m.stuck_busy = true;
    let mut u = Pl011::new(m, QEMU_UARTCLK_HZ, 115_200).unwrap();
    assert_eq!(u.regs().fr_reads, BUSY_SPINS as usize);
    assert_eq!(u.regs().cr, 0x301);
}

#[test]
fn tx_stops_at_fifo_full_and_resumes_after_draining() {
    let mut u = uart(16);
    let data: Vec<u8> = (0..40).collect();
    assert_eq!(u.tx_write(&data), 16);
    assert_eq!(u.regs().tx_len(), 16);
    assert_eq!(u.tx_write(&data[16..]), 0, "FIFO still full");
    assert_eq!(u.regs().tx_lost, 0, "never writes DR while TXFF");
    u.regs().transmit(5);
    assert_eq!(u.tx_write(&data[16..]), 5);
    u.regs().transmit(100);
    assert_eq!(u.tx_write(&data[21..]), 16);
    u.regs().transmit(100);
    assert_eq!(u.regs().wire, data[..37]);
}

#[test]
fn tx_interrupt_fires_when_fifo_drains_and_is_masked_when_off() {
    let mut u = uart(16);
    u.set_tx_irq(true);
    assert_eq!(u.regs().imsc, INT_TX);
    assert_eq!(u.tx_write(&[b'x'; 20]), 16);
    assert!(!u.regs().irq());
    u.regs().transmit(8); // 8 left = the ½ level.
    assert!(u.regs().irq(), "drained to the trigger level");
    u.ack_irq();
    assert!(!u.regs().irq(), "ICR cleared it");
    u.regs().transmit(8);
    assert_eq!(u.tx_write(&[b'y'; 20]), 16);
    u.set_tx_irq(false);
    u.regs().transmit(16);
    assert_eq!(u.regs().ris & INT_TX, INT_TX, "raised in RIS");
    assert!(!u.regs().irq(), "but masked");
}

#[test]
fn rx_drains_the_fifo_in_pieces() {
    let mut u = uart(16);
    u.regs().receive(b"hello, world");
    let mut buf = [0u8; 5];
    assert_eq!(u.rx_read(&mut buf), 5);
    assert_eq!(&buf, b"hello");
    assert_eq!(u.regs().rx_len(), 7);
    let mut rest = [0u8; 32];
    assert_eq!(u.rx_read(&mut rest), 7);
    assert_eq!(&rest[..7], b", world");
    assert_eq!(u.rx_read(&mut rest), 0);
    assert_eq!(u.rx_read(&mut []), 0);
    assert_eq!(u.rx_errors(), RxErrors::default());
}

#[test]
fn rx_errors_drop_bad_characters_keep_overrun_ones_and_count_all() {
    let mut u = uart(4);
    let m = u.regs();
    m.receive_with(b'a', 0);
    m.receive_with(b'?', DR_FE);
    m.receive_with(b'?', DR_PE);
    m.receive_with(0, DR_BE);
    let mut buf = [0u8; 8];
    assert_eq!(u.rx_read(&mut buf), 1);
    assert_eq!(buf[0], b'a');
    // Overrun: a fifth character into a full 4-entry FIFO is lost and the newest is flagged.
    u.regs().receive(b"wxyz!");
    assert_eq!(u.rx_read(&mut buf), 4);
    assert_eq!(&buf[..4], b"wxyz");
    let e = u.rx_errors();
    assert_eq!((e.overrun, e.breaks, e.parity, e.framing), (1, 1, 1, 1));
    assert_eq!(
        u.regs().ecr_writes,
        2,
        "error status cleared after each batch with errors"
    );
}

#[test]
fn rx_interrupts_are_masked_and_unmasked_together() {
    let mut u = uart(16);
    u.set_rx_irq(true);
    assert_eq!(u.regs().imsc, INT_RX | INT_RT);
    u.regs().receive(b"abc");
    assert!(!u.regs().irq(), "below the ½ level");
    u.regs().rx_timeout();
    assert!(u.regs().irq(), "receive timeout with characters waiting");
    u.set_rx_irq(false);
    assert!(!u.regs().irq());
    u.regs().receive(b"defgh");
    assert!(!u.regs().irq(), "level reached but masked");
    u.set_rx_irq(true);
    assert!(u.regs().irq());
    let mut buf = [0u8; 16];
    assert_eq!(u.rx_read(&mut buf), 8);
    assert!(
        !u.regs().irq(),
        "reading below the level and emptying clear Rx and timeout"
    );
}

#[test]
fn ack_clears_only_pending_enabled_interrupts() {
    let mut u = uart(16);
    u.set_rx_irq(true);
    u.regs().receive_with(b'!', DR_FE);
    u.regs().rx_timeout();
    let before = u.regs().ris;
    assert_eq!(before & INT_RT, INT_RT);
    u.ack_irq();
    let after = u.regs().ris;
    assert_eq!(after & INT_RT, 0, "the enabled, pending timeout is cleared");
    assert_eq!(
        after,
        before & !INT_RT,
        "the masked framing-error status is left alone"
    );
}

#[test]
fn region_constructor_checks_the_span() {
    let mut words = [0u32; 4];
    let base = core::ptr::NonNull::from(&mut words).cast::<u8>();
    // SAFETY: `words` stands in for a (too small) device block; the constructor refuses it before
    // any access.
    let region = unsafe { MmioRegion::new(base, 16) }.unwrap();
    assert_eq!(
        Pl011::from_region(region, QEMU_UARTCLK_HZ, 115_200).err(),
        Some(Pl011Error::RegionTooSmall { len: 16 })
    );
}

/// The PL011 under the generic [`lions_serial::SerialDriver`] on the sim backend, with one peer PD
/// playing both virtualisers through the client library; the test plays the wire and raises the
/// IRQ whenever the model's interrupt line is high.
mod subsystem {
    use super::*;
    use core::cell::RefCell;
    use lions_os::sim::{PdId, Region, Sim};
    use lions_os::{Channel, ChannelSet, ConfigClass, Handler, RegionResource, sddf_magic};
    use lions_serial::{
        Error, SerialClient, SerialClientConfig, SerialConnectionResource, SerialDriver,
        SerialDriverConfig,
    };
    use zerocopy::FromZeros;

    const D_IRQ: u8 = 0;
    const D_TX: u8 = 1;
    const D_RX: u8 = 2;
    const P_TX: u8 = 0;
    const P_RX: u8 = 1;
    const P_CMD: u8 = 2;

    /// The model behind a `RefCell`, so the test can play the wire while the driver owns the UART.
    struct Shared<'a>(&'a RefCell<Pl011Model>);

    impl Mmio for Shared<'_> {
        fn read32(&mut self, offset: usize) -> u32 {
            self.0.borrow_mut().read32(offset)
        }
        fn write32(&mut self, offset: usize, value: u32) {
            self.0.borrow_mut().write32(offset, value);
        }
    }

    struct Queue {
        header: Region,
        data: Region,
    }

    impl Queue {
        fn new(size: usize) -> Self {
            Self {
                header: Region::new(Region::PAGE),
                data: Region::new(size),
            }
        }

        fn conn(&self, id: u8) -> SerialConnectionResource {
            let res = |r: &Region| RegionResource {
                vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
                size: r.len() as u64,
            };
            let mut c = SerialConnectionResource::new_zeroed();
            c.queue = res(&self.header);
            c.data = res(&self.data);
            c.id = id;
            c
        }
    }

    /// The virtualisers' ends of both driver queues: writes `out`, collects into `got`.
    struct Peer<'a> {
        client: SerialClient<'a>,
        out: &'a RefCell<Vec<u8>>,
        got: &'a RefCell<Vec<u8>>,
    }

    impl Handler for Peer<'_> {
        type Error = Error;

        fn notified(&mut self, set: ChannelSet) -> Result<(), Error> {
            if set.contains(Channel::new(P_CMD)) {
                Channel::new(P_CMD).irq_ack()?;
            }
            let mut out = self.out.borrow_mut();
            let n = self.client.write_or_park(&out)?;
            out.drain(..n);
            self.client.flush()?;
            let mut buf = [0u8; 32];
            loop {
                let n = self.client.try_read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                self.got.borrow_mut().extend_from_slice(&buf[..n]);
            }
        }
    }

    struct World {
        tx: Queue,
        rx: Queue,
        model: RefCell<Pl011Model>,
        out: RefCell<Vec<u8>>,
        got: RefCell<Vec<u8>>,
    }

    fn run(w: &World, wire_step: usize, input: &[u8]) {
        let magic = sddf_magic(ConfigClass::Serial);
        let mut drv = SerialDriverConfig::new_zeroed();
        drv.magic = magic;
        drv.tx = w.tx.conn(D_TX);
        drv.rx = w.rx.conn(D_RX);
        drv.rx_enabled = 1;
        drv.default_baud = 115_200;
        let mut cli = SerialClientConfig::new_zeroed();
        cli.magic = magic;
        cli.tx = w.tx.conn(P_TX);
        cli.rx = w.rx.conn(P_RX);

        let uart = Pl011::new(Shared(&w.model), QEMU_UARTCLK_HZ, drv.default_baud).unwrap();
        let mut sim = Sim::new();
        // SAFETY: the regions live in `w`, outliving the sim; one handle per role.
        let token = unsafe { lions_os::Mapped::check(&drv) }.unwrap();
        let driver = SerialDriver::new(uart, token, Channel::new(D_IRQ)).unwrap();
        let driver: PdId = sim.add_pd("serial_driver", 200, false, driver);
        sim.irq(driver, D_IRQ).unwrap();
        // SAFETY: as above.
        let client = SerialClient::new(unsafe { lions_os::Mapped::check(&cli) }.unwrap()).unwrap();
        let peer = Peer {
            client,
            out: &w.out,
            got: &w.got,
        };
        let peer = sim.add_pd("virt", 199, false, peer);
        sim.channel(driver, D_TX, peer, P_TX).unwrap();
        sim.channel(driver, D_RX, peer, P_RX).unwrap();
        sim.irq(peer, P_CMD).unwrap();
        sim.start();
        sim.inject_irq(peer, P_CMD).unwrap();
        let mut input = input.chunks(5);
        for _ in 0..10_000 {
            sim.run_until_idle(100_000).unwrap();
            assert!(sim.faults().is_empty(), "{:?}", sim.faults());
            let mut m = w.model.borrow_mut();
            if m.irq() {
                drop(m);
                sim.inject_irq(driver, D_IRQ).unwrap();
                continue;
            }
            if m.tx_len() > 0 {
                m.transmit(wire_step);
            } else if let Some(chunk) = input.next() {
                m.receive(chunk);
                m.rx_timeout();
            } else if w.out.borrow().is_empty() {
                return;
            }
        }
        panic!("never settled");
    }

    #[test]
    fn bytes_flow_both_ways_through_fifo_and_interrupts() {
        let w = World {
            tx: Queue::new(64),
            rx: Queue::new(16),
            model: RefCell::new(Pl011Model::new(16)),
            out: RefCell::new((0..1000u32).map(|i| b'a' + (i % 26) as u8).collect()),
            got: RefCell::new(Vec::new()),
        };
        let sent = w.out.borrow().clone();
        let input: Vec<u8> = (0..100u8).map(|i| b'A' + i % 26).collect();
        run(&w, 3, &input);
        let m = w.model.borrow();
        assert_eq!(
            m.wire, sent,
            "every byte, in order, through a 64-byte queue"
        );
        assert_eq!(m.tx_lost, 0);
        assert_eq!(
            *w.got.borrow(),
            input,
            "every byte through a 16-byte Rx queue"
        );
        assert_eq!(
            m.imsc & INT_TX,
            0,
            "tx interrupt off once the queue is empty"
        );
        assert_eq!(
            m.imsc & (INT_RX | INT_RT),
            INT_RX | INT_RT,
            "rx interrupts on"
        );
    }
}
