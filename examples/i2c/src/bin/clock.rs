// SPDX-License-Identifier: BSD-2-Clause
//! `clock`: claims the DS3231's bus address (0x68) through the I²C virtualiser and prints the
//! RTC's date and time once a second, paced by a [`CLOCK_PERIOD`] timeout re-armed on each
//! expiry. The I²C transactions block inside the handler (the virtualiser and the driver run at
//! higher priorities, or in other processes on the host board); the virtualiser's notification
//! that follows each response finds nothing left to do.

#![cfg_attr(target_os = "none", no_std, no_main)]

use i2c_example::{CLOCK_PERIOD, Error, i2c_client, timer_client};
use lions_drivers::i2c::ds3231::{self, Ds3231};
use lions_i2c::I2cClient;
use lions_os::{Channel, ChannelSet, Handler};
use lions_timer::TimerClient;

struct Clock {
    timer: TimerClient,
    rtc: Ds3231<I2cClient<'static>>,
    virt: Channel,
}

fn init() -> Clock {
    let i2c = i2c_client();
    let virt = i2c.channel();
    if let Err(e) = i2c.claim(ds3231::ADDRESS) {
        panic!("clock: claiming 0x{:02x}: {e}", ds3231::ADDRESS);
    }
    let timer = timer_client();
    if let Err(e) = timer.set_timeout(CLOCK_PERIOD) {
        panic!("clock: {e}");
    }
    lions_os::debug_println!(
        "clock: DS3231 at 0x{:02x} claimed; its time every second",
        ds3231::ADDRESS
    );
    Clock {
        timer,
        rtc: Ds3231::new(i2c),
        virt,
    }
}

impl Handler for Clock {
    type Error = Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Error> {
        for ch in channels.iter() {
            if ch == self.timer.channel() {
                let t = self.rtc.datetime()?;
                lions_os::debug_println!("clock: {t}");
                self.timer.set_timeout(CLOCK_PERIOD)?;
            } else if ch != self.virt {
                return Err(Error::Unexpected(ch));
            }
        }
        Ok(())
    }
}

lions_os::protection_domain!(init);
