// SPDX-License-Identifier: BSD-2-Clause
//! `client0`, `client1`, ...: a serial client of the example. It greets, then echoes whatever the
//! Rx virtualiser delivers to it and reports every ten characters (`serial_example::Echo`). Its
//! output goes through the Tx virtualiser, which colours it and keeps its lines whole.
//!
//! Benchmark knob: with `LIONS_SERIAL_FLOOD=<bytes>` in the environment (the host board passes the
//! launcher's environment to every PD), `client0` writes that many bytes of 64-byte lines right
//! after its greeting, between a `flood start` and a `flood done` line, as fast as the subsystem
//! takes them (`cargo bench -p xtask --bench serial_tx`; host board only).
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_os::{ChannelSet, Handler};
use lions_serial::client::SerialClient;
use lions_serial::{SerialClientConfig, serial_println};
use serial_example::{Echo, REPORT_EVERY, flood_line};

lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");

struct Client {
    serial: SerialClient<'static>,
    echo: Echo,
}

/// Why the client faults.
#[derive(Debug)]
enum Error {
    Serial(lions_serial::Error),
    Format,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Serial(e) => e.fmt(f),
            Self::Format => f.write_str("output failed"),
        }
    }
}

impl From<lions_serial::Error> for Error {
    fn from(e: lions_serial::Error) -> Self {
        Self::Serial(e)
    }
}

impl From<core::fmt::Error> for Error {
    fn from(_: core::fmt::Error) -> Self {
        Self::Format
    }
}

fn init() -> Client {
    let name = lions_os::pd_name();
    let config = match SERIAL.mapped() {
        Ok(c) => c,
        Err(e) => panic!("{name}: {e}"),
    };
    let mut serial = match SerialClient::new(config) {
        Ok(s) => s,
        Err(e) => panic!("{name}: serial queues: {e}"),
    };
    let input = if serial.rx_channel().is_some() {
        "type and I echo"
    } else {
        "no input connected"
    };
    if serial_println!(
        serial,
        "{name}: hello; {input}; a report every {REPORT_EVERY} characters"
    )
    .is_err()
    {
        panic!("{name}: cannot write its greeting");
    }
    if name == "client0"
        && let Some(bytes) = flood_request()
        && let Err(e) = flood(&mut serial, bytes)
    {
        panic!("{name}: flood: {e}");
    }
    Client {
        serial,
        echo: Echo::default(),
    }
}

/// The flood size `LIONS_SERIAL_FLOOD` asks for (host board only: a seL4 PD has no environment).
fn flood_request() -> Option<u64> {
    #[cfg(not(target_os = "none"))]
    return std::env::var("LIONS_SERIAL_FLOOD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    #[cfg(target_os = "none")]
    None
}

/// Write `bytes` (rounded up to whole lines) between the two marker lines, waiting for room.
fn flood(serial: &mut SerialClient<'_>, bytes: u64) -> Result<(), Error> {
    serial.write_all(b"flood start\n")?;
    for i in 0..bytes.div_ceil(64) {
        serial.write_all(&flood_line(i))?;
    }
    serial.write_all(b"flood done\n")?;
    Ok(())
}

impl Handler for Client {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        let Some(rx) = self.serial.rx_channel() else {
            return Ok(());
        };
        if !channels.contains(rx) {
            return Ok(()); // The Tx virt made room: every write here already waited for it.
        }
        let mut buf = [0u8; 64];
        loop {
            let n = self.serial.try_read(&mut buf)?;
            if n == 0 {
                break;
            }
            // Echoes go straight into the Tx queue: it publishes at each line end, the rest at
            // the flush below.
            lions_os::runtime::with_pd_name(|name| {
                buf[..n]
                    .iter()
                    .try_for_each(|&b| self.echo.feed(name, b, &mut self.serial))
            })?;
        }
        self.serial.flush()?;
        Ok(())
    }
}

lions_os::protection_domain!(init);
