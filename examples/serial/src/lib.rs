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
    fn control_and_high_bytes_are_visible() {
        let mut e = Echo::default();
        assert_eq!(feed_all(&mut e, &[0x03, 0x7f, 0xc3]), "^C\x08 \x08\\xc3");
    }
}
