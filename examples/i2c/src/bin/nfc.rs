// SPDX-License-Identifier: BSD-2-Clause
//! `nfc`: claims the PN532's bus address (0x24) through the I²C virtualiser, prints its firmware
//! version, configures its secure access module (none: normal mode), then every [`NFC_PERIOD`]
//! asks for one ISO14443A card (InListPassiveTarget) and prints each change: `card <uid>
//! present` when one comes into the field, `card <uid> removed` when it leaves.

#![cfg_attr(target_os = "none", no_std, no_main)]

use i2c_example::{CardWatch, Error, NFC_PERIOD, i2c_client, timer_client};
use lions_drivers::i2c::pn532::{self, Pn532};
use lions_i2c::I2cClient;
use lions_os::{Channel, ChannelSet, Handler};
use lions_timer::TimerClient;

struct Nfc {
    timer: TimerClient,
    reader: Pn532<I2cClient<'static>>,
    virt: Channel,
    watch: CardWatch,
}

fn start(reader: &mut Pn532<I2cClient<'static>>) -> Result<(), Error> {
    reader.bus().claim(pn532::ADDRESS)?;
    let fw = reader.firmware_version()?;
    reader.sam_configuration()?;
    lions_os::debug_println!(
        "nfc: PN5{:02x} firmware {}.{} at 0x{:02x}; waiting for cards",
        fw.ic,
        fw.version,
        fw.revision,
        pn532::ADDRESS
    );
    Ok(())
}

fn init() -> Nfc {
    let i2c = i2c_client();
    let virt = i2c.channel();
    let mut reader = Pn532::new(i2c);
    if let Err(e) = start(&mut reader) {
        panic!("nfc: {e}");
    }
    let timer = timer_client();
    if let Err(e) = timer.set_timeout(NFC_PERIOD) {
        panic!("nfc: {e}");
    }
    Nfc {
        timer,
        reader,
        virt,
        watch: CardWatch::default(),
    }
}

impl Handler for Nfc {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch == self.timer.channel() {
                let card = self.reader.read_passive_target()?;
                for event in self.watch.update(card).into_iter().flatten() {
                    lions_os::debug_println!("nfc: {event}");
                }
                self.timer.set_timeout(NFC_PERIOD)?;
            } else if ch != self.virt {
                return Err(Error::Unexpected(ch));
            }
        }
        Ok(())
    }
}

lions_os::protection_domain!(init);
