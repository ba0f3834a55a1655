// SPDX-License-Identifier: BSD-2-Clause
//! Device models written from the data sheets, and the **model bus** that hosts them.
//!
//! - [`I2cTarget`]: what a device on the bus sees: its address with a direction (START), bytes
//!   written (each ACKed or not), bytes read, STOP.
//! - [`Ds3231Model`]: the 19 registers, BCD time that [`Ds3231Model::advance`] moves on by whole
//!   seconds with the calendar (leap years, century bit), alarm 1 matching with its mask bits,
//!   OSF set at power-on, flags that a write can only clear, read-only temperature.
//! - [`Pn532Model`]: the PN532's I²C frame protocol: a command frame (preamble, start code
//!   0x00 0xff, LEN, LCS with LEN + LCS = 0, TFI 0xd4, command, data, DCS with TFI + command +
//!   data + DCS = 0, postamble) is ACKed (`00 00 ff 00 ff 00`) and answered with TFI 0xd5 and
//!   command + 1; every read starts with the status byte (bit 0: ready). A frame with a bad
//!   checksum is ignored (no ACK). Commands: GetFirmwareVersion (0x02: IC 0x32, version 1.6,
//!   support 7), SAMConfiguration (0x14), InListPassiveTarget (0x4a, 106 kbps type A: one target
//!   with SENS_RES 0x0004, SEL_RES 0x08 and the card's UID, or none).
//! - [`ModelBus`]: two targets on one bus, as a [`lions_i2c::I2cDevice`] (every call finishes at
//!   once; an address nobody answers is a NACK) for the generic driver loop, and as an
//!   embedded-hal [`I2c`] for tests. It is a stand-in for a controller on boards that have none,
//!   not a hardware driver.

use embedded_hal::i2c::{ErrorKind, I2c, NoAcknowledgeSource, Operation};
use lions_i2c::{BusError, I2cDevice, Progress, Step};

/// A device on the bus, as the bus sees it.
pub trait I2cTarget {
    /// Its 7-bit address.
    fn address(&self) -> u8;
    /// Addressed after a (repeated) START, with the direction.
    fn start(&mut self, read: bool);
    /// A byte written to it; `false` is a NACK.
    fn write(&mut self, byte: u8) -> bool;
    /// The next byte it sends.
    fn read(&mut self) -> u8;
    /// STOP.
    fn stop(&mut self);
    /// `secs` seconds of the bus clock passed (for devices that keep time).
    fn elapse(&mut self, secs: u64) {
        let _ = secs;
    }
}

/// An empty slot of a [`ModelBus`] (answers no address).
pub struct NoTarget;

impl I2cTarget for NoTarget {
    fn address(&self) -> u8 {
        0xff
    }
    fn start(&mut self, _: bool) {}
    fn write(&mut self, _: u8) -> bool {
        false
    }
    fn read(&mut self) -> u8 {
        0xff
    }
    fn stop(&mut self) {}
}

/// The DS3231 model; see the module docs.
pub struct Ds3231Model {
    regs: [u8; 19],
    ptr: usize,
    pointer_next: bool,
}

impl Default for Ds3231Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Ds3231Model {
    /// At power-on: 2000-01-01 00:00:00, weekday 1, OSF set, 25.25 °C.
    pub fn new() -> Self {
        let mut regs = [0u8; 19];
        (regs[3], regs[4], regs[5]) = (1, 1, 1);
        regs[0x0e] = 0x1c;
        regs[0x0f] = super::ds3231::STATUS_OSF;
        (regs[0x11], regs[0x12]) = (25, 1 << 6);
        Self {
            regs,
            ptr: 0,
            pointer_next: false,
        }
    }

    /// The registers.
    pub fn registers(&self) -> &[u8; 19] {
        &self.regs
    }

    /// The registers, to fake what another bus master did.
    pub fn registers_mut(&mut self) -> &mut [u8; 19] {
        &mut self.regs
    }

    /// Set the temperature reading.
    pub fn set_temperature_quarters(&mut self, q: i16) {
        // Integer part fits i8 for the device's range; the fraction is 0..=3.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        {
            self.regs[0x11] = q.div_euclid(4) as i8 as u8;
            self.regs[0x12] = (q.rem_euclid(4) as u8) << 6;
        }
    }

    /// Move the clock on by `secs` seconds, one at a time (alarm 1 is checked at each).
    pub fn advance(&mut self, secs: u64) {
        for _ in 0..secs {
            self.tick();
        }
    }

    fn tick(&mut self) {
        use super::ds3231::{days_in_month, from_bcd, to_bcd};
        let d = |b: u8| from_bcd(b).unwrap_or(0);
        let r = &mut self.regs;
        let mut v = [d(r[0] & 0x7f), d(r[1] & 0x7f), d(r[2] & 0x3f)];
        let (mut day, mut month) = (d(r[4] & 0x3f), d(r[5] & 0x1f));
        let (mut year, mut century) = (d(r[6]), r[5] & 0x80 != 0);
        v[0] += 1;
        for (i, lim) in [(0, 60), (1, 60), (2, 24)] {
            if v[i] >= lim {
                v[i] = 0;
                if i < 2 {
                    v[i + 1] += 1;
                }
            } else {
                break;
            }
        }
        if v == [0, 0, 0] {
            r[3] = r[3] % 7 + 1;
            day += 1;
            let full = 2000 + u16::from(year) + if century { 100 } else { 0 };
            if day > days_in_month(full, month) {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                    if year > 99 {
                        (year, century) = (0, !century);
                    }
                }
            }
        }
        (r[0], r[1], r[2]) = (to_bcd(v[0]), to_bcd(v[1]), to_bcd(v[2]));
        (r[4], r[6]) = (to_bcd(day), to_bcd(year));
        r[5] = to_bcd(month) | if century { 0x80 } else { 0 };
        // Alarm 1: each field matches unless its mask bit (bit 7) is set; day/date by DY/DT.
        let a = &r[7..11];
        let field = |i: usize, now: u8, mask: u8| a[i] & 0x80 != 0 || a[i] & mask == now & mask;
        let dd = if a[3] & 0x40 != 0 { r[3] } else { r[4] };
        if field(0, r[0], 0x7f)
            && field(1, r[1], 0x7f)
            && field(2, r[2], 0x3f)
            && field(3, dd, 0x3f)
        {
            r[0x0f] |= super::ds3231::STATUS_A1F;
        }
    }
}

impl I2cTarget for Ds3231Model {
    fn address(&self) -> u8 {
        super::ds3231::ADDRESS
    }
    fn start(&mut self, read: bool) {
        self.pointer_next = !read;
    }
    fn write(&mut self, byte: u8) -> bool {
        if self.pointer_next {
            self.pointer_next = false;
            self.ptr = usize::from(byte) % self.regs.len();
            return true;
        }
        match self.ptr {
            // Status: OSF and the alarm flags can only be cleared; EN32kHz is writable.
            0x0f => self.regs[0x0f] = (self.regs[0x0f] & byte & 0x83) | (byte & 0x08),
            0x11 | 0x12 => {}
            p => self.regs[p] = byte,
        }
        self.ptr = (self.ptr + 1) % self.regs.len();
        true
    }
    fn read(&mut self) -> u8 {
        let b = self.regs[self.ptr];
        self.ptr = (self.ptr + 1) % self.regs.len();
        b
    }
    fn stop(&mut self) {}
    fn elapse(&mut self, secs: u64) {
        // Longer gaps (a suspended host) jump by whole days first.
        let (days, rest) = (secs / 86_400, secs % 86_400);
        for _ in 0..days.min(366) {
            self.advance(86_400);
        }
        self.advance(rest);
    }
}

/// A card's UID (4, 7 or 10 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uid {
    /// Bytes in use.
    pub len: u8,
    /// The UID, from index 0.
    pub bytes: [u8; 10],
}

impl Uid {
    /// The UID of `bytes` (at most 10; more are cut).
    pub fn new(bytes: &[u8]) -> Self {
        let mut b = [0; 10];
        let n = bytes.len().min(10);
        b[..n].copy_from_slice(&bytes[..n]);
        // `n <= 10`.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            len: n as u8,
            bytes: b,
        }
    }

    /// The bytes in use.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The PN532 model; see the module docs.
pub struct Pn532Model {
    rx: [u8; 64],
    rx_len: usize,
    /// What the next reads return after the status byte: the ACK, then the response.
    ack: bool,
    resp: [u8; 64],
    resp_len: usize,
    reading: Option<usize>,
    card: Option<Uid>,
    card_source: Option<fn() -> Option<Uid>>,
    /// Commands received with a good frame.
    pub commands: u32,
}

impl Default for Pn532Model {
    fn default() -> Self {
        Self::new()
    }
}

/// The ACK frame.
pub const PN532_ACK: [u8; 6] = [0, 0, 0xff, 0, 0xff, 0];

impl Pn532Model {
    /// No card in the field.
    pub fn new() -> Self {
        Self {
            rx: [0; 64],
            rx_len: 0,
            ack: false,
            resp: [0; 64],
            resp_len: 0,
            reading: None,
            card: None,
            card_source: None,
            commands: 0,
        }
    }

    /// Put a card in the field (or take it away).
    pub fn set_card(&mut self, card: Option<Uid>) {
        self.card = card;
    }

    /// Ask `source` for the card in the field at every InListPassiveTarget instead.
    pub fn set_card_source(&mut self, source: fn() -> Option<Uid>) {
        self.card_source = Some(source);
    }

    fn ready(&self) -> bool {
        self.ack || self.resp_len > 0
    }

    /// A whole frame was written: check it and prepare the ACK and the response.
    fn command(&mut self) {
        let f = &self.rx[..self.rx_len];
        let ok = f.len() >= 9
            && f[..3] == [0, 0, 0xff]
            && f[3].wrapping_add(f[4]) == 0
            && usize::from(f[3]) + 7 == f.len()
            && f[5] == 0xd4
            && f[5..f.len() - 1]
                .iter()
                .fold(0u8, |s, b| s.wrapping_add(*b))
                == 0;
        if !ok {
            return;
        }
        self.commands += 1;
        let (cmd, data) = (f[6], &f[7..f.len() - 2]);
        let mut out = [0u8; 24];
        let n = match (cmd, data) {
            (0x02, _) => {
                out[..4].copy_from_slice(&[0x32, 0x01, 0x06, 0x07]);
                4
            }
            (0x14, _) => 0,
            (0x4a, [1, 0, ..]) => {
                if let Some(src) = self.card_source {
                    self.card = src();
                }
                match self.card {
                    Some(u) => {
                        out[..6].copy_from_slice(&[1, 1, 0x00, 0x04, 0x08, u.len]);
                        out[6..6 + usize::from(u.len)].copy_from_slice(u.as_slice());
                        6 + usize::from(u.len)
                    }
                    None => 1,
                }
            }
            _ => return,
        };
        // Response frame: 00 00 ff LEN LCS d5 cmd+1 data DCS 00.
        // `n <= 16`, so LEN fits.
        #[allow(clippy::cast_possible_truncation)]
        let len = n as u8 + 2;
        let r = &mut self.resp;
        r[..5].copy_from_slice(&[0, 0, 0xff, len, len.wrapping_neg()]);
        (r[5], r[6]) = (0xd5, cmd + 1);
        r[7..7 + n].copy_from_slice(&out[..n]);
        let sum = r[5..7 + n].iter().fold(0u8, |s, b| s.wrapping_add(*b));
        (r[7 + n], r[8 + n]) = (sum.wrapping_neg(), 0);
        self.resp_len = 9 + n;
        self.ack = true;
    }
}

impl I2cTarget for Pn532Model {
    fn address(&self) -> u8 {
        super::pn532::ADDRESS
    }
    fn start(&mut self, read: bool) {
        self.rx_len = 0;
        self.reading = read.then_some(0);
    }
    fn write(&mut self, byte: u8) -> bool {
        if let Some(b) = self.rx.get_mut(self.rx_len) {
            *b = byte;
            self.rx_len += 1;
        }
        true
    }
    fn read(&mut self) -> u8 {
        let Some(i) = self.reading else { return 0 };
        self.reading = Some(i + 1);
        let ready = self.ready();
        match (i, ready, self.ack) {
            (0, _, _) => u8::from(ready),
            (_, false, _) => 0,
            (i, true, true) => PN532_ACK.get(i - 1).copied().unwrap_or(0),
            (i, true, false) => self.resp.get(i - 1).copied().unwrap_or(0),
        }
    }
    fn stop(&mut self) {
        match self.reading.take() {
            // A read that got past the status byte of a ready device took the frame.
            Some(n) if n > 1 && self.ready() => {
                if self.ack {
                    self.ack = false;
                } else {
                    self.resp_len = 0;
                }
            }
            Some(_) => {}
            None if self.rx_len > 0 => self.command(),
            None => {}
        }
    }
}

/// Two device models on one bus; see the module docs.
pub struct ModelBus<A, B> {
    a: A,
    b: B,
    /// The addressed target: 0 = `a`, 1 = `b`.
    cur: Option<u8>,
    clock: fn() -> u64,
    last: u64,
}

fn no_clock() -> u64 {
    0
}

impl<A: I2cTarget, B: I2cTarget> ModelBus<A, B> {
    /// `a` and `b` on one bus; no clock (time-keeping models stand still).
    pub fn new(a: A, b: B) -> Self {
        Self {
            a,
            b,
            cur: None,
            clock: no_clock,
            last: 0,
        }
    }

    /// Let the models' time follow `clock` (seconds), checked at every START.
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self.last = clock();
        self
    }

    /// The first model.
    pub fn first(&mut self) -> &mut A {
        &mut self.a
    }

    /// The second model.
    pub fn second(&mut self) -> &mut B {
        &mut self.b
    }

    fn target(&mut self) -> Option<&mut dyn I2cTarget> {
        match self.cur {
            Some(0) => Some(&mut self.a),
            Some(_) => Some(&mut self.b),
            None => None,
        }
    }

    fn begin(&mut self) {
        let now = (self.clock)();
        let dt = now.saturating_sub(self.last);
        if dt > 0 {
            self.last = now;
            self.a.elapse(dt);
            self.b.elapse(dt);
        }
    }

    fn select(&mut self, address: u8, read: bool) -> bool {
        if let Some(t) = self.target() {
            t.stop();
        }
        self.cur = if self.a.address() == address {
            Some(0)
        } else if self.b.address() == address {
            Some(1)
        } else {
            None
        };
        self.target().map(|t| t.start(read)).is_some()
    }

    fn end(&mut self) {
        if let Some(t) = self.target() {
            t.stop();
        }
        self.cur = None;
    }
}

impl<A: I2cTarget, B: I2cTarget> I2cDevice for ModelBus<A, B> {
    fn start(&mut self) -> Step {
        self.begin();
        Ok(Progress::Done(0))
    }
    fn repeated_start(&mut self) -> Step {
        Ok(Progress::Done(0))
    }
    fn address(&mut self, address: u8, read: bool) -> Step {
        if self.select(address, read) {
            Ok(Progress::Done(0))
        } else {
            Err(BusError::Nack)
        }
    }
    fn write(&mut self, data: &[u8]) -> Step {
        let t = self.target().ok_or(BusError::Other)?;
        for &b in data {
            if !t.write(b) {
                return Err(BusError::Nack);
            }
        }
        Ok(Progress::Done(data.len()))
    }
    fn read(&mut self, buf: &mut [u8], _last: bool) -> Step {
        let t = self.target().ok_or(BusError::Other)?;
        buf.iter_mut().for_each(|b| *b = t.read());
        Ok(Progress::Done(buf.len()))
    }
    fn stop(&mut self) -> Step {
        self.end();
        Ok(Progress::Done(0))
    }
    fn irq(&mut self, _: &mut [u8]) -> Step {
        Err(BusError::Other) // never pending
    }
    fn halt(&mut self) {
        self.end();
    }
}

impl<A, B> embedded_hal::i2c::ErrorType for ModelBus<A, B> {
    type Error = ErrorKind;
}

impl<A: I2cTarget, B: I2cTarget> I2c for ModelBus<A, B> {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        self.begin();
        let mut prev = None;
        let mut r = Ok(());
        for op in ops.iter_mut() {
            let read = matches!(op, Operation::Read(_));
            if prev != Some(read) && !self.select(address, read) {
                r = Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
                break;
            }
            prev = Some(read);
            let s = match op {
                Operation::Read(b) => I2cDevice::read(self, b, true),
                Operation::Write(b) => I2cDevice::write(self, b),
            };
            if s.is_err() {
                r = Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data));
                break;
            }
        }
        self.end();
        r
    }
}
