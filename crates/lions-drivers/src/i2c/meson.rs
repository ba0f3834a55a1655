// SPDX-License-Identifier: BSD-2-Clause
//! The Amlogic Meson I²C controller (`amlogic,meson-axg-i2c`; the Odroid-C4's S905X3 has it) as
//! an [`I2cDevice`] for the generic driver loop [`lions_i2c::I2cDriver`].
//!
//! ## The controller
//!
//! The controller runs a **token list**: up to 16 four-bit tokens, executed in order once
//! `CTRL.START` goes from 0 to 1, until an `END` token (0, so an unused slot ends the list). Data
//! moves through an **8-byte FIFO**: up to 8 bytes written from `TOK_WDATA0/1` (byte *i* in bits
//! `8 * (i % 4)` of register *i* / 4), up to 8 read into `TOK_RDATA0/1`, one `DATA` or
//! `DATA_LAST` token per byte. Between lists the controller keeps the bus (no STOP without a
//! `STOP` token), so one transfer may take several lists. When a list ends, by `END` or by an
//! error, `CTRL.STATUS` (busy) clears and the controller raises its **IRQ** (edge, no
//! acknowledge register); `CTRL.ERROR` says the list stopped at a byte nobody acknowledged
//! (NACK), `CTRL.READ_COUNT` how many bytes it read.
//!
//! | register | offset | fields used |
//! |---|---|---|
//! | `CTRL` | 0x00 | `START` bit 0, `ACK_IGNORE` bit 1 (kept 0), `STATUS` bit 2, `ERROR` bit 3, `CURR_TOKEN` bits 4–7, `READ_COUNT` bits 8–11, `CLKDIV` bits 12–21, `CLKDIV_EXT` bits 28–29 |
//! | `SLAVE_ADDR` | 0x04 | bits 0–7: the 7-bit address shifted left by one |
//! | `TOK_LIST0` / `TOK_LIST1` | 0x08 / 0x0c | tokens 0–7 / 8–15, token *i* in bits `4 * (i % 8)` |
//! | `TOK_WDATA0` / `TOK_WDATA1` | 0x10 / 0x14 | write FIFO bytes 0–3 / 4–7 |
//! | `TOK_RDATA0` / `TOK_RDATA1` | 0x18 / 0x1c | read FIFO bytes 0–3 / 4–7 |
//!
//! Tokens: `END` 0, `START` 1, `SLAVE_ADDR_WRITE` 2, `SLAVE_ADDR_READ` 3, `DATA` 4 (a read byte
//! is ACKed), `DATA_LAST` 5 (a read byte is NACKed), `STOP` 6.
//!
//! ## The driver
//!
//! Each [`I2cDevice`] call is one token list: `start`/`repeated_start` only note that the next
//! address gets a `START` token in front of it (a `START` while the bus is held is a repeated
//! start); `address` runs `[START,] SLAVE_ADDR_*`; `write` and `read` run up to 8 `DATA` tokens
//! (the last read byte of the transfer as `DATA_LAST` when asked to NACK it) and report how many
//! bytes moved, so the loop calls again for the rest; `stop` runs `STOP`. A list is started by
//! writing `CTRL` with `START` clear, then set. Completion:
//!
//! - [`Completion::Irq`]: every call returns `Pending`; the IRQ calls [`I2cDevice::irq`], which
//!   reads `CTRL`: still busy is a spurious IRQ (still `Pending`), `ERROR` is a NACK, otherwise
//!   the call is done (a read copies `READ_COUNT` bytes out of the FIFO; fewer than asked is an
//!   error). The controller has no timeout of its own: bounding a call needs a timer.
//! - [`Completion::Poll`]: the call polls `CTRL.STATUS` at most `limit` times; a list still busy
//!   then is a [`BusError::Timeout`], and the controller is halted.
//!
//! `halt` clears `CTRL.START` (the controller abandons the list), runs a lone `STOP` so the bus
//! is released, and polls `CTRL.STATUS` (at most [`HALT_POLLS`] times) until that STOP is done.

use crate::mmio::Mmio;
use lions_i2c::{BusError, I2cDevice, Progress, Step};

/// `CTRL`.
pub const CTRL: usize = 0x00;
/// `SLAVE_ADDR`.
pub const SLAVE_ADDR: usize = 0x04;
/// `TOK_LIST0` (tokens 0–7); `TOK_LIST1` follows at 0x0c.
pub const TOK_LIST0: usize = 0x08;
/// `TOK_WDATA0` (write bytes 0–3); `TOK_WDATA1` follows at 0x14.
pub const TOK_WDATA0: usize = 0x10;
/// `TOK_RDATA0` (read bytes 0–3); `TOK_RDATA1` follows at 0x1c.
pub const TOK_RDATA0: usize = 0x18;

/// `CTRL.START`: a 0 → 1 edge starts the token list.
pub const CTRL_START: u32 = 1 << 0;
/// `CTRL.STATUS`: the controller is running a list.
pub const CTRL_STATUS: u32 = 1 << 2;
/// `CTRL.ERROR`: the list stopped at a NACK.
pub const CTRL_ERROR: u32 = 1 << 3;
/// `CTRL.READ_COUNT` shift (4 bits).
pub const CTRL_READ_COUNT_SHIFT: u32 = 8;
/// `CTRL.CLKDIV` shift (10 bits; 2 more at [`CTRL_CLKDIV_EXT_SHIFT`]).
pub const CTRL_CLKDIV_SHIFT: u32 = 12;
/// `CTRL.CLKDIV_EXT` shift (the divider's bits 10 and 11).
pub const CTRL_CLKDIV_EXT_SHIFT: u32 = 28;

/// `CTRL` reads `halt` waits at most for its STOP to finish.
pub const HALT_POLLS: u32 = 1000;

/// Bytes of the data FIFO (each way).
pub const FIFO: usize = 8;

/// A token of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Token {
    /// End of the list.
    End = 0,
    /// START (repeated START while the bus is held).
    Start = 1,
    /// The address from `SLAVE_ADDR`, writing.
    AddrWrite = 2,
    /// The address from `SLAVE_ADDR`, reading.
    AddrRead = 3,
    /// One data byte (a read byte is ACKed).
    Data = 4,
    /// One data byte (a read byte is NACKed).
    DataLast = 5,
    /// STOP.
    Stop = 6,
}

impl Token {
    /// The token of a 4-bit field.
    pub fn from_bits(b: u32) -> Option<Self> {
        Some(match b {
            0 => Self::End,
            1 => Self::Start,
            2 => Self::AddrWrite,
            3 => Self::AddrRead,
            4 => Self::Data,
            5 => Self::DataLast,
            6 => Self::Stop,
            _ => return None,
        })
    }
}

/// How the driver learns that a token list finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// From the controller's IRQ (no timeout without a timer).
    Irq,
    /// By polling `CTRL.STATUS` at most this many times, then [`BusError::Timeout`].
    Poll(u32),
}

/// What the running list does, for its completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Idle,
    Control,
    Write(usize),
    Read(usize),
}

/// The Meson I²C controller behind `R`; see the module docs.
pub struct MesonI2c<R> {
    regs: R,
    completion: Completion,
    /// The next address gets a `START` in front.
    start: bool,
    op: Op,
}

impl<R: Mmio> MesonI2c<R> {
    /// The controller behind `regs`, idle, with the bus clock divider for `bus_hz` from a
    /// `clock_hz` input (`CLKDIV` = input / (4 × bus), as the Meson controllers divide; at most
    /// 12 bits, at least 1).
    pub fn new(mut regs: R, completion: Completion, clock_hz: u32, bus_hz: u32) -> Self {
        let div = (clock_hz / bus_hz.max(1) / 4).clamp(1, 0xfff);
        let ctrl = ((div & 0x3ff) << CTRL_CLKDIV_SHIFT) | ((div >> 10) << CTRL_CLKDIV_EXT_SHIFT);
        regs.write32(CTRL, ctrl);
        Self {
            regs,
            completion,
            start: false,
            op: Op::Idle,
        }
    }

    /// The registers (for inspection).
    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    /// Load `tokens` (at most 16) and start the list; then wait as [`Completion`] says.
    fn run(&mut self, tokens: &[Token], op: Op, buf: &mut [u8]) -> Step {
        let mut list = [0u32; 2];
        for (i, t) in tokens.iter().take(16).enumerate() {
            list[i / 8] |= (*t as u32) << (4 * (i % 8));
        }
        self.regs.write32(TOK_LIST0, list[0]);
        self.regs.write32(TOK_LIST0 + 4, list[1]);
        let ctrl = self.regs.read32(CTRL) & !(CTRL_START | CTRL_STATUS | CTRL_ERROR);
        self.regs.write32(CTRL, ctrl);
        self.regs.write32(CTRL, ctrl | CTRL_START);
        self.op = op;
        match self.completion {
            Completion::Irq => Ok(Progress::Pending),
            Completion::Poll(limit) => {
                for _ in 0..limit {
                    if let s @ (Ok(Progress::Done(_)) | Err(_)) = self.finish(buf) {
                        return s;
                    }
                }
                self.halt();
                Err(BusError::Timeout)
            }
        }
    }

    /// The running list's outcome: `Pending` while `CTRL.STATUS` says busy.
    fn finish(&mut self, buf: &mut [u8]) -> Step {
        let ctrl = self.regs.read32(CTRL);
        if ctrl & CTRL_STATUS != 0 {
            return Ok(Progress::Pending);
        }
        let op = core::mem::replace(&mut self.op, Op::Idle);
        if ctrl & CTRL_ERROR != 0 {
            return Err(BusError::Nack);
        }
        match op {
            Op::Idle => Err(BusError::Other),
            Op::Control => Ok(Progress::Done(0)),
            Op::Write(n) => Ok(Progress::Done(n)),
            Op::Read(n) => {
                let count = (ctrl >> CTRL_READ_COUNT_SHIFT) & 0xf;
                if count as usize != n || buf.len() < n {
                    return Err(BusError::Other);
                }
                let fifo = [
                    self.regs.read32(TOK_RDATA0),
                    self.regs.read32(TOK_RDATA0 + 4),
                ];
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = fifo[i / 4].to_le_bytes()[i % 4];
                }
                Ok(Progress::Done(n))
            }
        }
    }
}

impl<R: Mmio> I2cDevice for MesonI2c<R> {
    fn start(&mut self) -> Step {
        self.start = true;
        Ok(Progress::Done(0))
    }

    fn repeated_start(&mut self) -> Step {
        self.start = true;
        Ok(Progress::Done(0))
    }

    fn address(&mut self, address: u8, read: bool) -> Step {
        self.regs
            .write32(SLAVE_ADDR, u32::from(address & 0x7f) << 1);
        let a = if read {
            Token::AddrRead
        } else {
            Token::AddrWrite
        };
        let start = core::mem::take(&mut self.start);
        let tokens = [Token::Start, a];
        self.run(&tokens[usize::from(!start)..], Op::Control, &mut [])
    }

    fn write(&mut self, data: &[u8]) -> Step {
        let n = data.len().min(FIFO);
        let mut fifo = [0u8; FIFO];
        fifo[..n].copy_from_slice(&data[..n]);
        let word = |i: usize| u32::from_le_bytes([fifo[i], fifo[i + 1], fifo[i + 2], fifo[i + 3]]);
        self.regs.write32(TOK_WDATA0, word(0));
        self.regs.write32(TOK_WDATA0 + 4, word(4));
        self.run(&[Token::Data; FIFO][..n], Op::Write(n), &mut [])
    }

    fn read(&mut self, buf: &mut [u8], last: bool) -> Step {
        let n = buf.len().min(FIFO);
        let mut tokens = [Token::Data; FIFO];
        if last && n == buf.len() && n > 0 {
            tokens[n - 1] = Token::DataLast;
        }
        self.run(&tokens[..n], Op::Read(n), buf)
    }

    fn stop(&mut self) -> Step {
        self.run(&[Token::Stop], Op::Control, &mut [])
    }

    fn irq(&mut self, buf: &mut [u8]) -> Step {
        self.finish(buf)
    }

    fn halt(&mut self) {
        let ctrl = self.regs.read32(CTRL) & !(CTRL_START | CTRL_STATUS | CTRL_ERROR);
        self.regs.write32(CTRL, ctrl);
        self.regs.write32(TOK_LIST0, Token::Stop as u32);
        self.regs.write32(TOK_LIST0 + 4, 0);
        self.regs.write32(CTRL, ctrl | CTRL_START);
        // Let the STOP finish before anything restarts the controller (bounded: a hung bus stays
        // hung, and the next list is refused the same way).
        for _ in 0..HALT_POLLS {
            if self.regs.read32(CTRL) & CTRL_STATUS == 0 {
                break;
            }
        }
        (self.op, self.start) = (Op::Idle, false);
    }
}
