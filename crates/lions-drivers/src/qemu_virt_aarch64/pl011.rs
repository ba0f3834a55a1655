// SPDX-License-Identifier: BSD-2-Clause
//! Arm PrimeCell UART (PL011, r1p5), as QEMU's `virt` board has at `0x0900_0000` (SPI 1).
//!
//! Registers used (byte offsets, Arm DDI 0183): `DR` 0x00 (data; bits 11:8 are the received
//! character's overrun, break, parity and framing error flags), `RSR/ECR` 0x04 (a write clears the
//! error status), `FR` 0x18 (`TXFF` bit 5, `RXFE` bit 4, `BUSY` bit 3), `IBRD` 0x24 and `FBRD`
//! 0x28 (baud divisor), `LCR_H` 0x2C (frame format, FIFO enable; a write latches the divisor),
//! `CR` 0x30 (enables), `IFLS` 0x34 (FIFO trigger levels), `IMSC` 0x38 (interrupt mask set: 1 =
//! enabled), `MIS` 0x40 (masked status), `ICR` 0x44 (interrupt clear).
//!
//! - **Init**: disable (`CR` = 0), wait (bounded) while `BUSY`, flush by clearing `LCR_H.FEN`,
//!   program `IBRD`/`FBRD` for the baud rate from `UARTCLK` (QEMU: 24 MHz), `LCR_H` = 8N1 with
//!   FIFOs (which latches the divisor), `IFLS` = both FIFOs at ½, mask and clear every interrupt,
//!   then enable UART, Tx and Rx.
//! - **Tx**: write `DR` while `FR.TXFF` is clear. **Rx**: read `DR` while `FR.RXFE` is clear; a
//!   character with a framing, parity or break error is dropped, an overrun keeps the character
//!   (the *next* one was lost); every error is counted ([`RxErrors`]) and `ECR` is cleared.
//! - **Interrupts**: Tx = `TXIM` (FIFO drained to its trigger level); Rx = `RXIM` (FIFO filled to
//!   its trigger level) and `RTIM` (characters waiting, line idle), always together. `ack_irq`
//!   clears exactly the pending enabled ones (`ICR` = `MIS`).

use crate::mmio::{Mmio, MmioRegion};
use lions_serial::SerialDevice;

/// `UARTCLK` of QEMU's `virt` board (the `apb-pclk` fixed clock in its device tree).
pub const QEMU_UARTCLK_HZ: u64 = 24_000_000;

/// Bytes of register space the driver touches (up to and including `ICR`).
pub const REGISTER_SPAN: usize = 0x48;

const DR: usize = 0x00;
const ECR: usize = 0x04;
const FR: usize = 0x18;
const IBRD: usize = 0x24;
const FBRD: usize = 0x28;
const LCR_H: usize = 0x2C;
const CR: usize = 0x30;
const IFLS: usize = 0x34;
const IMSC: usize = 0x38;
const MIS: usize = 0x40;
const ICR: usize = 0x44;

const DR_FE: u32 = 1 << 8;
const DR_PE: u32 = 1 << 9;
const DR_BE: u32 = 1 << 10;
const DR_OE: u32 = 1 << 11;
const DR_ERRORS: u32 = DR_OE | DR_BE | DR_PE | DR_FE;

const FR_BUSY: u32 = 1 << 3;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;

const LCR_H_FEN: u32 = 1 << 4;
const LCR_H_WLEN_8: u32 = 0b11 << 5;

const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;

/// `IFLS`: Rx (bits 5:3) and Tx (bits 2:0) trigger at ½ full (the reset value).
const IFLS_HALF: u32 = (0b010 << 3) | 0b010;

const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
/// Every interrupt bit (`ICR` bits 10:0).
const INT_ALL: u32 = 0x7ff;

/// How many `FR` reads init waits for `BUSY` to clear (a character takes well under this).
const BUSY_SPINS: u32 = 100_000;

/// Why a PL011 could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pl011Error {
    /// The register region is smaller than [`REGISTER_SPAN`].
    RegionTooSmall {
        /// Its size in bytes.
        len: usize,
    },
    /// No divisor of the UART clock gives this baud rate (0, above `clock/16`, or so low that
    /// `IBRD` would exceed 16 bits).
    Baud {
        /// The requested rate.
        baud: u64,
        /// The UART clock in Hz.
        clock_hz: u64,
    },
}

impl core::fmt::Display for Pl011Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let span = REGISTER_SPAN;
        match self {
            Self::RegionTooSmall { len } => write!(f, "PL011 region {len:#x} < {span:#x} bytes"),
            Self::Baud { baud, clock_hz } => write!(f, "PL011: no {baud} baud at {clock_hz} Hz"),
        }
    }
}

impl core::error::Error for Pl011Error {}

/// The baud-rate divisor `UARTCLK / (16 × baud)` as the integer (`IBRD`) and 1/64 fraction
/// (`FBRD`) parts, rounded to the nearest 1/64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaudDivisor {
    /// Integer part, 1..=65535.
    pub ibrd: u16,
    /// Fraction in 64ths, 0..=63 (0 when `ibrd` is 65535).
    pub fbrd: u8,
}

impl BaudDivisor {
    /// The divisor for `baud` from a `clock_hz` UART clock.
    pub fn new(clock_hz: u64, baud: u64) -> Result<Self, Pl011Error> {
        let err = Pl011Error::Baud { baud, clock_hz };
        // Divisor in 64ths: clock × 64 / (16 × baud) = clock × 4 / baud, rounded to nearest.
        let scaled = u128::from(clock_hz) * 4;
        let sixty_fourths = scaled
            .checked_add(u128::from(baud / 2))
            .and_then(|n| n.checked_div(u128::from(baud)))
            .ok_or(err)?;
        let ibrd = u16::try_from(sixty_fourths >> 6).map_err(|_| err)?;
        let fbrd = u8::try_from(sixty_fourths & 63).map_err(|_| err)?;
        if ibrd == 0 || (ibrd == u16::MAX && fbrd != 0) {
            return Err(err);
        }
        Ok(Self { ibrd, fbrd })
    }
}

/// Receive errors seen so far (each counter wraps).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxErrors {
    /// Characters lost because the Rx FIFO was full (the flagged character itself is kept).
    pub overrun: u32,
    /// Break conditions (their 0 character is dropped).
    pub breaks: u32,
    /// Characters with a parity error (dropped).
    pub parity: u32,
    /// Characters with a framing error (dropped).
    pub framing: u32,
}

/// A PL011 UART implementing [`SerialDevice`], over any [`Mmio`] register block.
#[derive(Debug)]
pub struct Pl011<M> {
    regs: M,
    errors: RxErrors,
}

impl Pl011<MmioRegion> {
    /// The UART in the mapped register `region`, initialised (see [`Pl011::new`]), after checking
    /// that the region covers every register the driver uses.
    pub fn from_region(region: MmioRegion, clock_hz: u64, baud: u64) -> Result<Self, Pl011Error> {
        if region.len() < REGISTER_SPAN {
            return Err(Pl011Error::RegionTooSmall { len: region.len() });
        }
        Self::new(region, clock_hz, baud)
    }
}

impl<M: Mmio> Pl011<M> {
    /// Initialise the UART behind `regs` for `baud` (8N1, FIFOs on) from a `clock_hz` `UARTCLK`,
    /// with every interrupt masked; the generic driver then enables the ones it needs. The
    /// divisor is checked before any register is written.
    pub fn new(mut regs: M, clock_hz: u64, baud: u64) -> Result<Self, Pl011Error> {
        let div = BaudDivisor::new(clock_hz, baud)?;
        regs.write32(CR, 0);
        for _ in 0..BUSY_SPINS {
            if regs.read32(FR) & FR_BUSY == 0 {
                break;
            }
        }
        regs.write32(LCR_H, 0); // FEN = 0 flushes the Tx FIFO.
        regs.write32(IBRD, div.ibrd.into());
        regs.write32(FBRD, div.fbrd.into());
        regs.write32(LCR_H, LCR_H_WLEN_8 | LCR_H_FEN); // Also latches IBRD/FBRD.
        regs.write32(IFLS, IFLS_HALF);
        regs.write32(IMSC, 0);
        regs.write32(ICR, INT_ALL);
        regs.write32(CR, CR_UARTEN | CR_TXE | CR_RXE);
        Ok(Self {
            regs,
            errors: RxErrors::default(),
        })
    }

    /// Receive errors counted so far.
    pub fn rx_errors(&self) -> RxErrors {
        self.errors
    }

    /// The register block (for inspection).
    #[cfg(test)]
    fn regs(&mut self) -> &mut M {
        &mut self.regs
    }

    fn set_mask(&mut self, bits: u32, on: bool) {
        let imsc = self.regs.read32(IMSC);
        let imsc = if on { imsc | bits } else { imsc & !bits };
        self.regs.write32(IMSC, imsc);
    }

    /// Count the errors flagged in a `DR` value; whether the character is still good.
    fn note_errors(&mut self, dr: u32) -> bool {
        let (e, bit) = (&mut self.errors, |b: u32| u32::from(dr & b != 0));
        e.overrun = e.overrun.wrapping_add(bit(DR_OE));
        e.breaks = e.breaks.wrapping_add(bit(DR_BE));
        e.parity = e.parity.wrapping_add(bit(DR_PE));
        e.framing = e.framing.wrapping_add(bit(DR_FE));
        dr & (DR_BE | DR_PE | DR_FE) == 0
    }
}

impl<M: Mmio> SerialDevice for Pl011<M> {
    fn tx_write(&mut self, bytes: &[u8]) -> usize {
        for (sent, &b) in bytes.iter().enumerate() {
            if self.regs.read32(FR) & FR_TXFF != 0 {
                return sent;
            }
            self.regs.write32(DR, b.into());
        }
        bytes.len()
    }

    fn rx_read(&mut self, out: &mut [u8]) -> usize {
        let mut got = 0;
        let mut errors = false;
        while got < out.len() && self.regs.read32(FR) & FR_RXFE == 0 {
            let dr = self.regs.read32(DR);
            errors |= dr & DR_ERRORS != 0;
            if self.note_errors(dr)
                && let Some(slot) = out.get_mut(got)
            {
                *slot = dr.to_le_bytes()[0];
                got += 1;
            }
        }
        if errors {
            self.regs.write32(ECR, 0);
        }
        got
    }

    fn set_tx_irq(&mut self, on: bool) {
        self.set_mask(INT_TX, on);
    }

    fn set_rx_irq(&mut self, on: bool) {
        self.set_mask(INT_RX | INT_RT, on);
    }

    fn ack_irq(&mut self) {
        let pending = self.regs.read32(MIS) & INT_ALL;
        if pending != 0 {
            self.regs.write32(ICR, pending);
        }
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
