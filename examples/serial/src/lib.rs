// SPDX-License-Identifier: BSD-2-Clause
//! The serial example's client logic, kept apart from its PD wrapper so it is unit-tested.
//!
//! A client echoes every byte it receives and, after every [`REPORT_EVERY`] bytes, prints a report
//! line naming itself. Enter arrives from a raw terminal as `\r` and is echoed as a line end.
#![cfg_attr(not(test), no_std)]

/// A report line follows every this many received bytes.
pub const REPORT_EVERY: u64 = 10;

/// Echo and count, for one client.
#[derive(Debug, Default)]
pub struct Echo {
    received: u64,
}

impl Echo {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Feed one received byte: write its echo to `out` (bytes; `\n` is a line end), then, if it
    /// completes a block of [`REPORT_EVERY`], the report line `\n<name>: <count> characters
    /// received\n`.
    pub fn feed<W: core::fmt::Write>(
        &mut self,
        name: &str,
        byte: u8,
        out: &mut W,
    ) -> core::fmt::Result {
        self.received += 1;
        match byte {
            b'\r' | b'\n' => out.write_char('\n')?,
            // Backspace and DEL rub the character out.
            0x08 | 0x7f => out.write_str("\x08 \x08")?,
            // Other control characters are shown in caret notation (a raw terminal sends them).
            0..0x20 => {
                out.write_char('^')?;
                out.write_char(char::from(byte + 0x40))?;
            }
            // Bytes above ASCII are shown as `\xNN`; a terminal would mangle a lone UTF-8 piece.
            0x80.. => write!(out, "\\x{byte:02x}")?,
            _ => out.write_char(char::from(byte))?,
        }
        if self.received.is_multiple_of(REPORT_EVERY) {
            write!(out, "\n{name}: {} characters received\n", self.received)?;
        }
        Ok(())
    }
}

/// Line `i` of a flood (the Tx throughput benchmark): 63 printable bytes and `\n`, 64 in all.
pub fn flood_line(i: u64) -> [u8; 64] {
    const FILL: &[u8; 48] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL";
    let mut line = [b' '; 64];
    line[..6].copy_from_slice(b"flood ");
    let mut n = i % 1_000_000_000;
    for d in line[6..15].iter_mut().rev() {
        // `n % 10 < 10`, so the digit fits a u8.
        *d = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
    line[16..63].copy_from_slice(&FILL[..47]);
    line[63] = b'\n';
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(e: &mut Echo, input: &[u8]) -> String {
        let mut out = String::new();
        for &b in input {
            e.feed("client0", b, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn echoes_printable_bytes_and_enter_as_line_end() {
        let mut e = Echo::default();
        assert_eq!(feed_all(&mut e, b"hi\r"), "hi\n");
        assert_eq!(e.received(), 3);
    }

    #[test]
    fn reports_after_every_ten_bytes() {
        let mut e = Echo::default();
        let out = feed_all(&mut e, b"0123456789abcdefghij!");
        assert_eq!(
            out,
            "0123456789\nclient0: 10 characters received\n\
             abcdefghij\nclient0: 20 characters received\n!"
        );
    }

    #[test]
    fn flood_lines_are_64_bytes_numbered() {
        let l = flood_line(1234);
        assert_eq!(l.len(), 64);
        assert!(l.starts_with(b"flood 000001234 abc"));
        assert_eq!(l[63], b'\n');
        assert!(!l[..63].contains(&b'\n'));
        assert_ne!(flood_line(1), flood_line(2));
    }

    #[test]
    fn control_and_high_bytes_are_visible() {
        let mut e = Echo::default();
        assert_eq!(feed_all(&mut e, &[0x03, 0x7f, 0xc3]), "^C\x08 \x08\\xc3");
    }
}
