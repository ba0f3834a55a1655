// SPDX-License-Identifier: BSD-2-Clause
//! # Worked example: a new UART driver, tested
//!
//! The whole job of writing a serial driver for lions-*, start to finish, for a made-up UART
//! ("ACME UART") with 16-byte transmit and receive FIFOs and a status register:
//!
//! | offset | register | meaning |
//! |---|---|---|
//! | `0x00` | `DATA` | write: push a byte into the TX FIFO; read: pop one from the RX FIFO |
//! | `0x04` | `STATUS` | bit 0 `TX_FULL`, bit 1 `RX_EMPTY` (read only) |
//! | `0x08` | `CTRL` | bit 0 `TX_IE` (interrupt while the TX FIFO has room), bit 1 `RX_IE` (interrupt while the RX FIFO holds data) |
//! | `0x0c` | `ICR` | write 1s: acknowledge the interrupt |
//!
//! 1. **The driver** ([`AcmeUart`]) implements [`SerialDevice`] over a register-access trait
//!    ([`Regs`]): [`Mmio`] on the hardware, [`AcmeModel`] in tests. It is all a driver author
//!    writes: the queues, the channels and the notification rules live in the generic
//!    [`SerialDriver`](lions_serial::SerialDriver). On seL4 the PD's `init` builds
//!    `SerialDriver::new(AcmeUart::new(Mmio::new(base)), config, irq)` from its config and device
//!    resources.
//! 2. **The model** ([`AcmeModel`]) behaves like the datasheet: the FIFOs, the status bits, the
//!    interrupt line, and a line that moves [`BYTES_PER_TICK`] bytes per clock tick each way.
//!    [`SerialModel`] connects it to the harness.
//! 3. **The tests** build the whole serial subsystem around the driver with
//!    [`SerialRig`](lions_serial::testkit::SerialRig) and check what goes out on the wire and what
//!    the clients receive, including output far larger than every FIFO and queue, two clients,
//!    and input switching, and that the driver never pushes into a full FIFO.
//!
//! Run it: `cargo test -p lions-serial --test worked_uart`.
#![allow(clippy::unwrap_used, clippy::missing_docs_in_private_items)]

use lions_serial::SerialDevice;
use lions_serial::testkit::{RigError, SerialMemory, SerialModel, SerialOptions, SerialRig};
use std::collections::VecDeque;
use std::ptr::NonNull;

// ---- 1. The driver -------------------------------------------------------------------------

/// Register offsets and bits of the ACME UART.
pub mod acme {
    /// Data register.
    pub const DATA: usize = 0x00;
    /// Status register.
    pub const STATUS: usize = 0x04;
    /// Control register.
    pub const CTRL: usize = 0x08;
    /// Interrupt clear register.
    pub const ICR: usize = 0x0c;
    /// `STATUS`: the TX FIFO is full.
    pub const TX_FULL: u32 = 1 << 0;
    /// `STATUS`: the RX FIFO is empty.
    pub const RX_EMPTY: u32 = 1 << 1;
    /// `CTRL`: interrupt while the TX FIFO has room.
    pub const TX_IE: u32 = 1 << 0;
    /// `CTRL`: interrupt while the RX FIFO holds data.
    pub const RX_IE: u32 = 1 << 1;
}

/// 32-bit register access at byte offsets of the device's register block.
pub trait Regs {
    /// Read the register at `offset`.
    fn read(&mut self, offset: usize) -> u32;
    /// Write the register at `offset`.
    fn write(&mut self, offset: usize, value: u32);
}

/// The real registers: volatile accesses to the mapped register block.
pub struct Mmio(NonNull<u32>);

impl Mmio {
    /// The block mapped at `base`.
    ///
    /// # Safety
    /// `base` is the device's register block, mapped uncached for the driver's lifetime, and
    /// nothing else accesses it.
    pub unsafe fn new(base: NonNull<u32>) -> Self {
        Self(base)
    }
}

impl Regs for Mmio {
    fn read(&mut self, offset: usize) -> u32 {
        // SAFETY: within the block (the offsets above), per `new`'s contract.
        unsafe { self.0.byte_add(offset).read_volatile() }
    }
    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { self.0.byte_add(offset).write_volatile(value) }
    }
}

/// The driver: the hardware half of a serial driver, over any [`Regs`].
pub struct AcmeUart<R> {
    regs: R,
    ctrl: u32,
}

impl<R: Regs> AcmeUart<R> {
    /// Take the device with both interrupts off.
    pub fn new(mut regs: R) -> Self {
        regs.write(acme::CTRL, 0);
        Self { regs, ctrl: 0 }
    }

    /// The register access (tests reach the model through it).
    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    fn set_ctrl(&mut self, bit: u32, on: bool) {
        if on {
            self.ctrl |= bit;
        } else {
            self.ctrl &= !bit;
        }
        self.regs.write(acme::CTRL, self.ctrl);
    }
}

impl<R: Regs> SerialDevice for AcmeUart<R> {
    fn tx_write(&mut self, bytes: &[u8]) -> usize {
        let mut n = 0;
        while n < bytes.len() && self.regs.read(acme::STATUS) & acme::TX_FULL == 0 {
            self.regs.write(acme::DATA, bytes[n].into());
            n += 1;
        }
        n
    }

    fn rx_read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && self.regs.read(acme::STATUS) & acme::RX_EMPTY == 0 {
            // The byte is the register's low 8 bits.
            out[n] = self.regs.read(acme::DATA).to_le_bytes()[0];
            n += 1;
        }
        n
    }

    fn set_tx_irq(&mut self, on: bool) {
        self.set_ctrl(acme::TX_IE, on);
    }

    fn set_rx_irq(&mut self, on: bool) {
        self.set_ctrl(acme::RX_IE, on);
    }

    fn ack_irq(&mut self) {
        self.regs.write(acme::ICR, u32::MAX);
    }
}

// ---- 2. The model --------------------------------------------------------------------------

/// FIFO depth of the ACME UART.
pub const FIFO_DEPTH: usize = 16;
/// Bytes the line moves each way per clock tick.
pub const BYTES_PER_TICK: usize = 4;

/// The ACME UART as the datasheet describes it, with both ends of the cable.
#[derive(Default)]
pub struct AcmeModel {
    tx_fifo: VecDeque<u8>,
    rx_fifo: VecDeque<u8>,
    ctrl: u32,
    /// Bytes that left on the line (what the terminal at the other end saw).
    wire_out: Vec<u8>,
    /// Bytes on their way in (typed at the other end, not yet in the RX FIFO).
    line_in: VecDeque<u8>,
    /// Bytes written to `DATA` while the TX FIFO was full (lost: a driver bug).
    pub tx_overflows: usize,
    /// Bytes that arrived while the RX FIFO was full (lost: the driver was too slow).
    pub rx_overruns: usize,
    /// Interrupt acknowledgements.
    pub acks: usize,
}

impl Regs for AcmeModel {
    fn read(&mut self, offset: usize) -> u32 {
        match offset {
            acme::DATA => self.rx_fifo.pop_front().map_or(0, u32::from),
            acme::STATUS => {
                let full = if self.tx_fifo.len() >= FIFO_DEPTH {
                    acme::TX_FULL
                } else {
                    0
                };
                let empty = if self.rx_fifo.is_empty() {
                    acme::RX_EMPTY
                } else {
                    0
                };
                full | empty
            }
            acme::CTRL => self.ctrl,
            _ => 0,
        }
    }

    fn write(&mut self, offset: usize, value: u32) {
        match offset {
            acme::DATA if self.tx_fifo.len() >= FIFO_DEPTH => self.tx_overflows += 1,
            acme::DATA => self.tx_fifo.push_back(value.to_le_bytes()[0]),
            acme::CTRL => self.ctrl = value & (acme::TX_IE | acme::RX_IE),
            acme::ICR => self.acks += 1,
            _ => {}
        }
    }
}

impl SerialModel for AcmeUart<AcmeModel> {
    fn take_transmitted(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.regs.wire_out)
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.regs.line_in.extend(bytes);
    }

    fn irq_pending(&self) -> bool {
        let m = &self.regs;
        (m.ctrl & acme::TX_IE != 0 && m.tx_fifo.len() < FIFO_DEPTH)
            || (m.ctrl & acme::RX_IE != 0 && !m.rx_fifo.is_empty())
    }

    fn tick(&mut self) -> bool {
        let m = &mut self.regs;
        let out = m.tx_fifo.len().min(BYTES_PER_TICK);
        m.wire_out.extend(m.tx_fifo.drain(..out));
        let inn = m.line_in.len().min(BYTES_PER_TICK);
        for b in m.line_in.drain(..inn) {
            if m.rx_fifo.len() < FIFO_DEPTH {
                m.rx_fifo.push_back(b);
            } else {
                m.rx_overruns += 1;
            }
        }
        out + inn > 0
    }
}

// ---- 3. The tests --------------------------------------------------------------------------

fn uart() -> AcmeUart<AcmeModel> {
    AcmeUart::new(AcmeModel::default())
}

/// `\n` as the client library sends it.
fn crlf(s: &[u8]) -> Vec<u8> {
    s.iter()
        .flat_map(|&b| {
            if b == b'\n' {
                vec![b'\r', b'\n']
            } else {
                vec![b]
            }
        })
        .collect()
}

#[test]
fn a_line_goes_out_on_the_wire() -> Result<(), RigError> {
    let mut mem = SerialMemory::new(&SerialOptions::default())?;
    let mut rig = SerialRig::new(&mut mem, uart())?;
    rig.write(0, b"hello, ACME\n")?;
    assert_eq!(rig.transmitted(), b"hello, ACME\r\n");
    let mut dev = rig.device();
    assert_eq!(
        dev.regs().tx_overflows,
        0,
        "the driver pushed into a full FIFO"
    );
    // Idle: TX interrupt off (nothing to send), RX interrupt on (waiting for input).
    assert_eq!(dev.regs().read(acme::CTRL), acme::RX_IE);
    Ok(())
}

#[test]
fn output_far_beyond_every_fifo_and_queue_arrives_whole() -> Result<(), RigError> {
    let opts = SerialOptions {
        driver_queue: 256,
        client_queue: 512,
        ..SerialOptions::default()
    };
    let mut mem = SerialMemory::new(&opts)?;
    let mut rig = SerialRig::new(&mut mem, uart())?;
    let text: Vec<u8> = (0..400)
        .flat_map(|i| format!("line {i}: the quick brown fox\n").into_bytes())
        .collect();
    assert!(text.len() > 10_000);
    rig.write(0, &text)?;
    assert_eq!(rig.unsent(0), 0);
    assert_eq!(rig.transmitted(), crlf(&text));
    assert_eq!(rig.device().regs().tx_overflows, 0);
    Ok(())
}

#[test]
fn two_clients_get_whole_lines() -> Result<(), RigError> {
    let mut mem = SerialMemory::new(&SerialOptions::clients(2))?;
    let mut rig = SerialRig::new(&mut mem, uart())?;
    rig.write(0, b"from zero\n")?;
    rig.write(1, b"from one\n")?;
    assert_eq!(rig.transmitted(), b"from zero\r\nfrom one\r\n");
    Ok(())
}

#[test]
fn input_reaches_the_current_client_and_follows_a_switch() -> Result<(), RigError> {
    let mut mem = SerialMemory::new(&SerialOptions::clients(2))?;
    let mut rig = SerialRig::new(&mut mem, uart())?;
    // More than the RX FIFO holds: the driver must keep draining it as the line delivers.
    let typed: Vec<u8> = (0..100u8).map(|i| b'a' + i % 26).collect();
    rig.receive(&typed)?;
    assert_eq!(rig.received(0), typed);
    assert_eq!(rig.received(1), b"");
    rig.switch_input(1)?;
    rig.receive(b"to one")?;
    assert_eq!(rig.received(1), b"to one");
    assert_eq!(rig.received(0), b"");
    let mut dev = rig.device();
    assert_eq!(dev.regs().rx_overruns, 0);
    assert!(
        dev.regs().acks > 0,
        "each IRQ is acknowledged at the device"
    );
    Ok(())
}
