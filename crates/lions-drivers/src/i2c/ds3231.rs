// SPDX-License-Identifier: BSD-2-Clause
//! Maxim DS3231 real-time clock, generic over an embedded-hal [`I2c`] bus.
//!
//! ## Protocol (data sheet facts)
//!
//! 7-bit address 0x68. A write sets the register pointer (first byte) and writes the bytes after
//! it; a read returns registers from the pointer; the pointer auto-increments and wraps from 0x12
//! to 0x00. Time registers hold BCD: 0x00 seconds, 0x01 minutes, 0x02 hours (bit 6 set = 12-hour
//! mode, bit 5 PM; in 24-hour mode bits 5..4 are the tens), 0x03 weekday 1..=7, 0x04 date,
//! 0x05 month (bit 7: century), 0x06 year 00..=99. Alarm 1 at 0x07..=0x0a (seconds, minutes,
//! hours, day/date), bit 7 of each (A1M1..A1M4) masks that field out of the match. 0x0e control
//! (bit 2 INTCN, bit 0 A1IE), 0x0f status (bit 7 OSF oscillator stopped, bit 0 A1F alarm 1
//! fired). Temperature at 0x11 (signed integer degrees) and 0x12 (bits 7..6: quarter degrees).
//!
//! This driver uses 24-hour mode and years 2000..=2199 (century bit = +100).

use embedded_hal::i2c::I2c;

/// The DS3231's bus address.
pub const ADDRESS: u8 = 0x68;

/// Register numbers.
pub mod reg {
    /// Seconds (first time register).
    pub const SECONDS: u8 = 0x00;
    /// Alarm 1 seconds.
    pub const ALARM1: u8 = 0x07;
    /// Control.
    pub const CONTROL: u8 = 0x0e;
    /// Status.
    pub const STATUS: u8 = 0x0f;
    /// Temperature, integer part.
    pub const TEMP_MSB: u8 = 0x11;
}

/// Control: alarm interrupts instead of the square wave.
pub const CONTROL_INTCN: u8 = 1 << 2;
/// Control: alarm 1 interrupt enable.
pub const CONTROL_A1IE: u8 = 1;
/// Status: the oscillator stopped (time invalid) since this bit was last cleared.
pub const STATUS_OSF: u8 = 1 << 7;
/// Status: alarm 1 matched.
pub const STATUS_A1F: u8 = 1;

/// A calendar date and time of day (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// 2000..=2199.
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 1..=7 (the meaning of 1 is the user's choice).
    pub weekday: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

impl core::fmt::Display for DateTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// When alarm 1 fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm1 {
    /// Every second.
    EverySecond,
    /// Every day at this time.
    Daily {
        /// 0..=23.
        hour: u8,
        /// 0..=59.
        minute: u8,
        /// 0..=59.
        second: u8,
    },
}

/// A DS3231 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The bus failed.
    Bus(E),
    /// The device returned a value that is not valid BCD or out of range, or the caller passed
    /// one.
    Invalid,
}

impl<E> From<E> for Error<E> {
    fn from(e: E) -> Self {
        Self::Bus(e)
    }
}

/// `v` (0..=99) as BCD.
pub fn to_bcd(v: u8) -> u8 {
    (v / 10) << 4 | (v % 10)
}

/// BCD `b` as a number, if both digits are decimal.
pub fn from_bcd(b: u8) -> Option<u8> {
    let (hi, lo) = (b >> 4, b & 0xf);
    (hi < 10 && lo < 10).then_some(hi * 10 + lo)
}

/// The DS3231 on bus `I`.
pub struct Ds3231<I> {
    i2c: I,
}

impl<I: I2c> Ds3231<I> {
    /// The clock on `i2c`.
    pub fn new(i2c: I) -> Self {
        Self { i2c }
    }

    /// The bus back.
    pub fn release(self) -> I {
        self.i2c
    }

    fn read(&mut self, reg: u8, buf: &mut [u8]) -> Result<(), Error<I::Error>> {
        Ok(self.i2c.write_read(ADDRESS, &[reg], buf)?)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Error<I::Error>> {
        Ok(self.i2c.write(ADDRESS, bytes)?)
    }

    /// The current date and time (one read of all seven registers: a consistent snapshot).
    pub fn datetime(&mut self) -> Result<DateTime, Error<I::Error>> {
        let mut r = [0u8; 7];
        self.read(reg::SECONDS, &mut r)?;
        let d = |b: u8| from_bcd(b).ok_or(Error::Invalid);
        let hour = if r[2] & 0x40 != 0 {
            // 12-hour mode: 1..=12 and a PM bit.
            let h = d(r[2] & 0x1f)? % 12;
            h + if r[2] & 0x20 != 0 { 12 } else { 0 }
        } else {
            d(r[2] & 0x3f)?
        };
        let century = if r[5] & 0x80 != 0 { 100 } else { 0 };
        let t = DateTime {
            year: 2000 + century + u16::from(d(r[6])?),
            month: d(r[5] & 0x1f)?,
            day: d(r[4] & 0x3f)?,
            weekday: r[3] & 0x07,
            hour,
            minute: d(r[1] & 0x7f)?,
            second: d(r[0] & 0x7f)?,
        };
        valid(&t).then_some(t).ok_or(Error::Invalid)
    }

    /// Set the date and time, and clear the oscillator-stopped flag.
    pub fn set_datetime(&mut self, t: &DateTime) -> Result<(), Error<I::Error>> {
        if !valid(t) {
            return Err(Error::Invalid);
        }
        let y = t.year - 2000;
        // `y % 100 < 100`.
        #[allow(clippy::cast_possible_truncation)]
        let (yy, century) = ((y % 100) as u8, if y >= 100 { 0x80 } else { 0 });
        self.write(&[
            reg::SECONDS,
            to_bcd(t.second),
            to_bcd(t.minute),
            to_bcd(t.hour),
            t.weekday,
            to_bcd(t.day),
            to_bcd(t.month) | century,
            to_bcd(yy),
        ])?;
        let s = self.status()?;
        self.write(&[reg::STATUS, s & !STATUS_OSF])
    }

    /// The status register.
    pub fn status(&mut self) -> Result<u8, Error<I::Error>> {
        let mut s = [0];
        self.read(reg::STATUS, &mut s)?;
        Ok(s[0])
    }

    /// Whether the oscillator stopped since the time was last set (the time is not to be trusted).
    pub fn lost_power(&mut self) -> Result<bool, Error<I::Error>> {
        Ok(self.status()? & STATUS_OSF != 0)
    }

    /// Program alarm 1, clear its flag and enable its interrupt (INTCN, A1IE).
    pub fn set_alarm1(&mut self, a: Alarm1) -> Result<(), Error<I::Error>> {
        let regs = match a {
            Alarm1::EverySecond => [0x80; 4],
            Alarm1::Daily {
                hour,
                minute,
                second,
            } if hour < 24 && minute < 60 && second < 60 => {
                [to_bcd(second), to_bcd(minute), to_bcd(hour), 0x80]
            }
            Alarm1::Daily { .. } => return Err(Error::Invalid),
        };
        self.write(&[reg::ALARM1, regs[0], regs[1], regs[2], regs[3]])?;
        self.clear_alarm1()?;
        let mut c = [0];
        self.read(reg::CONTROL, &mut c)?;
        self.write(&[reg::CONTROL, c[0] | CONTROL_INTCN | CONTROL_A1IE])
    }

    /// Whether alarm 1 has fired (its flag is set).
    pub fn alarm1_fired(&mut self) -> Result<bool, Error<I::Error>> {
        Ok(self.status()? & STATUS_A1F != 0)
    }

    /// Clear alarm 1's flag.
    pub fn clear_alarm1(&mut self) -> Result<(), Error<I::Error>> {
        let s = self.status()?;
        self.write(&[reg::STATUS, s & !STATUS_A1F])
    }

    /// The die temperature in quarter degrees Celsius.
    pub fn temperature_quarters(&mut self) -> Result<i16, Error<I::Error>> {
        let mut t = [0u8; 2];
        self.read(reg::TEMP_MSB, &mut t)?;
        Ok(i16::from(i8::from_ne_bytes([t[0]])) * 4 + i16::from(t[1] >> 6))
    }
}

/// Days in `month` of `year`.
pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn valid(t: &DateTime) -> bool {
    (2000..2200).contains(&t.year)
        && (1..=12).contains(&t.month)
        && t.day >= 1
        && t.day <= days_in_month(t.year, t.month)
        && (1..=7).contains(&t.weekday)
        && t.hour < 24
        && t.minute < 60
        && t.second < 60
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::i2c::model::{Ds3231Model, ModelBus, NoTarget};

    fn rtc() -> Ds3231<ModelBus<Ds3231Model, NoTarget>> {
        Ds3231::new(ModelBus::new(Ds3231Model::new(), NoTarget))
    }

    const T: DateTime = DateTime {
        year: 2024,
        month: 2,
        day: 28,
        weekday: 3,
        hour: 23,
        minute: 59,
        second: 58,
    };

    #[test]
    fn bcd_round_trips_and_rejects_hex_digits() {
        for v in 0..100 {
            assert_eq!(from_bcd(to_bcd(v)), Some(v));
        }
        assert_eq!(to_bcd(59), 0x59);
        assert_eq!(from_bcd(0x5a), None);
        assert_eq!(from_bcd(0xa0), None);
    }

    #[test]
    fn time_set_read_and_the_model_keeps_the_calendar() {
        let mut r = rtc();
        assert!(
            r.lost_power().unwrap(),
            "a fresh model has OSF set, as at power-on"
        );
        r.set_datetime(&T).unwrap();
        assert!(!r.lost_power().unwrap());
        assert_eq!(r.datetime().unwrap(), T);
        // Across midnight into a leap day, then into March.
        r.i2c.first().advance(3);
        let t = r.datetime().unwrap();
        assert_eq!(
            (t.month, t.day, t.hour, t.minute, t.second, t.weekday),
            (2, 29, 0, 0, 1, 4)
        );
        r.i2c.first().advance(86_400);
        let t = r.datetime().unwrap();
        assert_eq!((t.month, t.day, t.second, t.weekday), (3, 1, 1, 5));
        // The century bit.
        let y2100 = DateTime {
            year: 2100,
            month: 12,
            day: 31,
            ..T
        };
        r.set_datetime(&y2100).unwrap();
        r.i2c.first().advance(2);
        let t = r.datetime().unwrap();
        assert_eq!((t.year, t.month, t.day, t.second), (2101, 1, 1, 0));
        assert_eq!(r.i2c.first().registers()[5] & 0x80, 0x80);
        // Refused values never reach the device.
        let bad = DateTime { day: 30, ..T };
        assert_eq!(r.set_datetime(&bad), Err(Error::Invalid));
        assert_eq!(r.datetime().unwrap().year, 2101);
    }

    #[test]
    fn twelve_hour_mode_and_garbage_are_decoded_or_refused() {
        let mut r = rtc();
        r.set_datetime(&T).unwrap();
        // Another master put the clock in 12-hour mode: 11 PM.
        r.i2c.first().registers_mut()[2] = 0x40 | 0x20 | 0x11;
        assert_eq!(r.datetime().unwrap().hour, 23);
        r.i2c.first().registers_mut()[2] = 0x40 | 0x12; // 12 AM
        assert_eq!(r.datetime().unwrap().hour, 0);
        r.i2c.first().registers_mut()[0] = 0x7a;
        assert_eq!(r.datetime(), Err(Error::Invalid));
    }

    #[test]
    fn alarm_one_fires_at_its_time_and_is_cleared() {
        let mut r = rtc();
        r.set_datetime(&T).unwrap();
        r.set_alarm1(Alarm1::Daily {
            hour: 0,
            minute: 0,
            second: 5,
        })
        .unwrap();
        assert_eq!(r.i2c.first().registers()[0x0e] & 0b101, 0b101);
        r.i2c.first().advance(6); // 00:00:04
        assert!(!r.alarm1_fired().unwrap());
        r.i2c.first().advance(1);
        assert!(r.alarm1_fired().unwrap());
        r.clear_alarm1().unwrap();
        assert!(!r.alarm1_fired().unwrap());
        r.i2c.first().advance(86_399);
        assert!(!r.alarm1_fired().unwrap());
        r.i2c.first().advance(1);
        assert!(r.alarm1_fired().unwrap(), "again a day later");
        r.set_alarm1(Alarm1::EverySecond).unwrap();
        r.i2c.first().advance(1);
        assert!(r.alarm1_fired().unwrap());
        assert_eq!(
            r.set_alarm1(Alarm1::Daily {
                hour: 24,
                minute: 0,
                second: 0
            }),
            Err(Error::Invalid)
        );
    }

    #[test]
    fn temperature_in_quarter_degrees() {
        let mut r = rtc();
        assert_eq!(r.temperature_quarters().unwrap(), 25 * 4 + 1);
        r.i2c.first().set_temperature_quarters(-41); // -10.25 °C
        assert_eq!(r.temperature_quarters().unwrap(), -41);
    }
}
