// SPDX-License-Identifier: BSD-2-Clause
//! A register model of the Amlogic Meson I²C controller ([`super::meson`]) over a
//! [`ModelBus`], written from the controller's description there: the token list, the 8-byte
//! write and read FIFOs, `CTRL`'s busy, error and read-count fields, one IRQ per finished list.
//!
//! - A 0 → 1 edge of `CTRL.START` runs the list at once on the model bus: `START` (a repeated
//!   START while the bus is held), the address of `SLAVE_ADDR` with a direction (a NACK sets
//!   `ERROR` and ends the list), `DATA`/`DATA_LAST` (write: the next `TOK_WDATA` byte, a NACK
//!   ends the list; read: into the next `TOK_RDATA` byte, `DATA_LAST` NACKed), `STOP`, `END`.
//! - `CTRL` then reads busy for [`MesonModel::busy_reads`] units of time (each `CTRL` read is
//!   one, [`MesonModel::elapse`] is one) before the outcome shows; the IRQ is raised when the
//!   outcome shows, and once more, early, at the start when the list is slow (a spurious IRQ the
//!   driver must ride out). [`MesonModel::stuck`] makes
//!   every list hang (SCL held low): busy for ever, no IRQ.
//! - Clearing `CTRL.START` abandons a list: not busy, no IRQ.
//! - What the bus saw is logged as [`Wire`] events; anything a controller would not do (an
//!   address or data without a START, a 9th FIFO byte, an unknown token) is logged as
//!   [`Wire::Violation`].

use super::meson::{
    CTRL, CTRL_ERROR, CTRL_READ_COUNT_SHIFT, CTRL_START, CTRL_STATUS, SLAVE_ADDR, TOK_LIST0,
    TOK_RDATA0, TOK_WDATA0, Token,
};
use super::model::{I2cTarget, ModelBus};
use crate::mmio::Mmio;
use lions_i2c::I2cDevice;

/// One thing on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// START.
    Start,
    /// Repeated START.
    RepeatedStart,
    /// Address and direction (`true`: read), and whether it was ACKed.
    Addr(u8, bool, bool),
    /// A byte written, and whether it was ACKed.
    Write(u8, bool),
    /// A byte read, and whether the controller NACKed it.
    Read(u8, bool),
    /// STOP.
    Stop,
    /// Something a controller would not put on the wire.
    Violation,
}

/// The model; see the module docs.
pub struct MesonModel<A, B> {
    regs: [u32; 8],
    bus: ModelBus<A, B>,
    /// Units of time a list stays busy after it started.
    pub busy_reads: u32,
    /// Every list hangs.
    pub stuck: bool,
    busy_left: u32,
    running: bool,
    /// Results of the running list: `ERROR`, read count.
    error: bool,
    read_count: u32,
    held: bool,
    /// The direction the bus was addressed in (kept across lists).
    dir: Option<bool>,
    irq: bool,
    wire: [Wire; 256],
    wire_len: usize,
}

impl<A: I2cTarget, B: I2cTarget> MesonModel<A, B> {
    /// A controller, idle, with `bus` behind it; lists finish at once.
    pub fn new(bus: ModelBus<A, B>) -> Self {
        Self {
            regs: [0; 8],
            bus,
            busy_reads: 0,
            stuck: false,
            busy_left: 0,
            running: false,
            error: false,
            read_count: 0,
            held: false,
            dir: None,
            irq: false,
            wire: [Wire::Violation; 256],
            wire_len: 0,
        }
    }

    /// The bus behind the controller.
    pub fn bus(&mut self) -> &mut ModelBus<A, B> {
        &mut self.bus
    }

    /// What the bus saw since the last [`clear_wire`](Self::clear_wire) (the first 256 events).
    pub fn wire(&self) -> &[Wire] {
        &self.wire[..self.wire_len]
    }

    /// Forget the wire log.
    pub fn clear_wire(&mut self) {
        self.wire_len = 0;
    }

    /// Whether the IRQ was raised since the last call (an edge each time; taking it lowers it).
    pub fn take_irq(&mut self) -> bool {
        core::mem::take(&mut self.irq)
    }

    /// Whether the bus is held (between a START and a STOP).
    pub fn held(&self) -> bool {
        self.held
    }

    fn log(&mut self, w: Wire) {
        if let Some(slot) = self.wire.get_mut(self.wire_len) {
            *slot = w;
            self.wire_len += 1;
        }
    }

    fn reg(&self, offset: usize) -> u32 {
        self.regs[(offset / 4) % 8]
    }

    /// Run the loaded list on the bus (the outcome shows once `busy_left` units have passed).
    // Register fields are cut out of wider values by shifts: the truncation is the point.
    #[allow(clippy::cast_possible_truncation)]
    fn execute(&mut self) {
        let list = u64::from(self.reg(TOK_LIST0)) | u64::from(self.reg(TOK_LIST0 + 4)) << 32;
        let wdata = u64::from(self.reg(TOK_WDATA0)) | u64::from(self.reg(TOK_WDATA0 + 4)) << 32;
        let (mut rdata, mut wi, mut ri) = (0u64, 0u32, 0u32);
        self.error = false;
        for i in 0..16 {
            let ok = match Token::from_bits(((list >> (4 * i)) & 0xf) as u32) {
                Some(Token::End) => break,
                Some(Token::Start) => {
                    let _ = if self.held {
                        self.log(Wire::RepeatedStart);
                        self.bus.repeated_start()
                    } else {
                        self.log(Wire::Start);
                        self.bus.start()
                    };
                    self.held = true;
                    self.dir = None;
                    true
                }
                Some(t @ (Token::AddrWrite | Token::AddrRead)) if self.held => {
                    let (a, read) = (
                        ((self.reg(SLAVE_ADDR) >> 1) & 0x7f) as u8,
                        t == Token::AddrRead,
                    );
                    let ack = self.bus.address(a, read).is_ok();
                    self.log(Wire::Addr(a, read, ack));
                    self.dir = ack.then_some(read);
                    ack
                }
                Some(t @ (Token::Data | Token::DataLast)) if self.dir == Some(true) && ri < 8 => {
                    let mut b = [0u8];
                    let _ = self.bus.read(&mut b, t == Token::DataLast);
                    self.log(Wire::Read(b[0], t == Token::DataLast));
                    rdata |= u64::from(b[0]) << (8 * ri);
                    ri += 1;
                    true
                }
                Some(Token::Data | Token::DataLast) if self.dir == Some(false) && wi < 8 => {
                    let b = (wdata >> (8 * wi)) as u8;
                    wi += 1;
                    let ack = self.bus.write(&[b]).is_ok();
                    self.log(Wire::Write(b, ack));
                    ack
                }
                Some(Token::Stop) => {
                    let _ = self.bus.stop();
                    self.log(Wire::Stop);
                    (self.held, self.dir) = (false, None);
                    true
                }
                _ => {
                    self.log(Wire::Violation);
                    false
                }
            };
            if !ok {
                self.error = true;
                break;
            }
        }
        self.regs[TOK_RDATA0 / 4] = rdata as u32;
        self.regs[TOK_RDATA0 / 4 + 1] = (rdata >> 32) as u32;
        self.read_count = ri;
    }

    /// One unit of time passes (a `CTRL` read is one too): a slow list gets closer to its end.
    pub fn elapse(&mut self) {
        if self.running && !self.stuck {
            self.busy_left = self.busy_left.saturating_sub(1);
            if self.busy_left == 0 {
                self.done();
            }
        }
    }

    /// Whether a list runs and will finish (not stuck).
    pub fn busy(&self) -> bool {
        self.running && !self.stuck
    }

    /// The list's outcome became visible: busy ends, the IRQ rises.
    fn done(&mut self) {
        self.running = false;
        self.irq = true;
    }
}

impl<A: I2cTarget, B: I2cTarget> Mmio for MesonModel<A, B> {
    fn read32(&mut self, offset: usize) -> u32 {
        if offset != CTRL {
            return self.reg(offset);
        }
        self.elapse(); // a poll takes time too
        let base = self.reg(CTRL) & !(CTRL_STATUS | CTRL_ERROR | (0xf << CTRL_READ_COUNT_SHIFT));
        if self.running {
            return base | CTRL_STATUS;
        }
        let error = if self.error { CTRL_ERROR } else { 0 };
        base | error | (self.read_count << CTRL_READ_COUNT_SHIFT)
    }

    fn write32(&mut self, offset: usize, value: u32) {
        if offset == CTRL {
            let rising = self.reg(CTRL) & CTRL_START == 0 && value & CTRL_START != 0;
            if value & CTRL_START == 0 {
                self.running = false; // abandoned (or never started)
            }
            self.regs[0] = value & !(CTRL_STATUS | CTRL_ERROR);
            if rising {
                self.running = true;
                if !self.stuck {
                    self.execute();
                    self.busy_left = self.busy_reads;
                    if self.busy_reads == 0 {
                        self.done();
                    } else {
                        self.irq = true; // early: the driver must see "busy" and wait
                    }
                }
            }
        } else if offset != TOK_RDATA0 && offset != TOK_RDATA0 + 4 {
            self.regs[(offset / 4) % 8] = value;
        }
    }
}
