// SPDX-License-Identifier: BSD-2-Clause
//! A register model of the PL011 for host tests, written from the TRM's register descriptions:
//! Tx and Rx FIFOs of a chosen depth, `FR` flags, trigger levels from `IFLS`, and the interrupt
//! status (`RIS`) rules: Tx set when the Tx FIFO drains down to its trigger level (a transition,
//! as on hardware), cleared by writing it above the level or by `ICR`; Rx set while the Rx FIFO is
//! at or above its level; the receive timeout set on demand while characters wait, cleared when
//! the FIFO empties or by `ICR`. `MIS` = `RIS` & `IMSC`. The test plays the wire: [`Pl011Model::
//! transmit`] moves characters out, [`Pl011Model::receive`] brings them in.
//!
//! Misuse the TRM forbids is counted rather than hidden: writing `DR` while the Tx FIFO is full,
//! changing `IBRD`/`FBRD`/`LCR_H` while the UART is enabled; an unmodelled offset panics.

use super::{
    CR, CR_UARTEN, DR, DR_OE, ECR, FBRD, FR, FR_BUSY, FR_RXFE, FR_TXFF, IBRD, ICR, IFLS, IMSC,
    INT_RT, INT_RX, INT_TX, LCR_H, LCR_H_FEN, MIS,
};
use crate::mmio::Mmio;
use std::collections::VecDeque;

const RIS: usize = 0x3C;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
/// `RIS` error bits: overrun, break, parity, framing (bits 10:7).
const INT_OE: u32 = 1 << 10;

pub(super) struct Pl011Model {
    depth: usize,
    tx: VecDeque<u8>,
    rx: VecDeque<u32>,
    pub wire: Vec<u8>,
    pub cr: u32,
    pub lcr_h: u32,
    ibrd: u32,
    fbrd: u32,
    /// `IBRD`/`FBRD` as latched by the last `LCR_H` write.
    pub latched: Option<(u32, u32)>,
    pub ifls: u32,
    pub imsc: u32,
    pub ris: u32,
    /// `DR` writes while the Tx FIFO was full (lost characters).
    pub tx_lost: usize,
    /// Divisor or line-control writes while the UART was enabled.
    pub config_while_enabled: usize,
    pub ecr_writes: usize,
    /// Every `FR` read reports `BUSY` (a transmitter that never finishes).
    pub stuck_busy: bool,
    pub fr_reads: usize,
}

impl Pl011Model {
    /// A UART just out of reset with `depth`-entry FIFOs (16 in QEMU, 32 in r1p5).
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            tx: VecDeque::new(),
            rx: VecDeque::new(),
            wire: Vec::new(),
            cr: 0x300,
            lcr_h: 0,
            ibrd: 0,
            fbrd: 0,
            latched: None,
            ifls: 0x12,
            imsc: 0,
            ris: 0,
            tx_lost: 0,
            config_while_enabled: 0,
            ecr_writes: 0,
            stuck_busy: false,
            fr_reads: 0,
        }
    }

    /// FIFO trigger level in entries for an `IFLS` field (1/8 .. 7/8).
    fn level(&self, field: u32) -> usize {
        let eighths = match field & 7 {
            0 => 1,
            1 => 2,
            2 => 4,
            3 => 6,
            _ => 7,
        };
        self.depth * eighths / 8
    }

    fn tx_level(&self) -> usize {
        self.level(self.ifls)
    }

    fn rx_level(&self) -> usize {
        self.level(self.ifls >> 3)
    }

    /// The interrupt line to the GIC.
    pub fn irq(&self) -> bool {
        self.ris & self.imsc != 0
    }

    pub fn tx_len(&self) -> usize {
        self.tx.len()
    }

    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Put a character with `errors` (`DR` bits 11:8) on the Rx line.
    pub fn receive_with(&mut self, byte: u8, errors: u32) {
        if self.rx.len() >= self.depth {
            if let Some(last) = self.rx.back_mut() {
                *last |= DR_OE;
            }
            self.ris |= INT_OE;
            return;
        }
        self.rx.push_back(u32::from(byte) | errors);
        if errors != 0 {
            self.ris |= errors >> 1; // DR bit n is RIS bit n - 1 for the four error flags.
        }
        if self.rx.len() >= self.rx_level() {
            self.ris |= INT_RX;
        }
    }

    pub fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.receive_with(b, 0);
        }
    }

    /// The line has been idle with characters waiting: raise the receive timeout.
    pub fn rx_timeout(&mut self) {
        if !self.rx.is_empty() {
            self.ris |= INT_RT;
        }
    }

    /// Send up to `n` characters from the Tx FIFO onto the wire.
    pub fn transmit(&mut self, n: usize) {
        for _ in 0..n {
            let above = self.tx.len() > self.tx_level();
            let Some(b) = self.tx.pop_front() else { break };
            self.wire.push(b);
            if above && self.tx.len() <= self.tx_level() {
                self.ris |= INT_TX;
            }
        }
    }

    fn fr(&self) -> u32 {
        let mut fr = 0;
        if self.tx.len() >= self.depth {
            fr |= FR_TXFF;
        }
        if self.tx.is_empty() {
            fr |= FR_TXFE;
        } else {
            fr |= FR_BUSY;
        }
        if self.stuck_busy {
            fr |= FR_BUSY;
        }
        if self.rx.is_empty() {
            fr |= FR_RXFE;
        }
        if self.rx.len() >= self.depth {
            fr |= FR_RXFF;
        }
        fr
    }

    fn line_config(&mut self) {
        if self.cr & CR_UARTEN != 0 {
            self.config_while_enabled += 1;
        }
    }
}

impl Mmio for Pl011Model {
    fn read32(&mut self, offset: usize) -> u32 {
        match offset {
            DR => {
                let v = self.rx.pop_front().unwrap_or(0);
                if self.rx.len() < self.rx_level() {
                    self.ris &= !INT_RX;
                }
                if self.rx.is_empty() {
                    self.ris &= !INT_RT;
                }
                v
            }
            FR => {
                self.fr_reads += 1;
                self.fr()
            }
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.ris,
            MIS => self.ris & self.imsc,
            _ => panic!("PL011 model: read of unmodelled offset {offset:#x}"),
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        match offset {
            DR => {
                if self.tx.len() >= self.depth {
                    self.tx_lost += 1;
                } else {
                    self.tx.push_back(value.to_le_bytes()[0]);
                    if self.tx.len() > self.tx_level() {
                        self.ris &= !INT_TX;
                    }
                }
            }
            ECR => self.ecr_writes += 1,
            IBRD => {
                self.line_config();
                self.ibrd = value & 0xffff;
            }
            FBRD => {
                self.line_config();
                self.fbrd = value & 0x3f;
            }
            LCR_H => {
                self.line_config();
                if value & LCR_H_FEN == 0 {
                    self.tx.clear();
                }
                self.lcr_h = value & 0xff;
                self.latched = Some((self.ibrd, self.fbrd));
            }
            CR => self.cr = value & 0xff87,
            IFLS => self.ifls = value & 0x3f,
            IMSC => self.imsc = value & 0x7ff,
            ICR => self.ris &= !value,
            _ => panic!("PL011 model: write of unmodelled offset {offset:#x}"),
        }
    }
}
