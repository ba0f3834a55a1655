// SPDX-License-Identifier: BSD-2-Clause
//! `greeter`: the product's own PD. It greets on the console, then answers every line typed to it
//! in capitals: a serial client of lions' serial virtualisers, nothing else.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_os::{ChannelSet, Handler};
use lions_serial::client::SerialClient;
use lions_serial::{SerialClientConfig, serial_println};

lions_os::config!(static SERIAL: SerialClientConfig = ".serial_client_config");

struct Greeter {
    serial: SerialClient<'static>,
}

fn init() -> Greeter {
    // The config's token: its regions checked against this PD's mappings, handed out once.
    let config = match SERIAL.mapped() {
        Ok(c) => c,
        Err(e) => panic!("greeter: {e}"),
    };
    let mut serial = match SerialClient::new(config) {
        Ok(s) => s,
        Err(e) => panic!("greeter: serial queues: {e}"),
    };
    if serial_println!(
        serial,
        "greeter: hello from my-product; type and I shout back"
    )
    .is_err()
    {
        panic!("greeter: cannot write its greeting");
    }
    Greeter { serial }
}

impl Handler for Greeter {
    type Error = lions_serial::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if self
            .serial
            .rx_channel()
            .is_none_or(|rx| !channels.contains(rx))
        {
            return Ok(());
        }
        let mut buf = [0u8; 64];
        loop {
            let n = self.serial.try_read(&mut buf)?;
            if n == 0 {
                break;
            }
            let line = &mut buf[..n];
            line.make_ascii_uppercase();
            for b in line.iter_mut().filter(|b| **b == b'\r') {
                *b = b'\n';
            }
            self.serial.write_all(line)?;
        }
        self.serial.flush()
    }
}

lions_os::protection_domain!(init);
