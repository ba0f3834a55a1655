// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the timer config (magic filled in), so user code needs no zerocopy.

use crate::config::{TIMER_MAGIC, TimerClientConfig};

impl TimerClientConfig {
    /// A client whose channel to the timer driver is `driver_id`.
    pub const fn new(driver_id: u8) -> Self {
        Self {
            magic: TIMER_MAGIC,
            driver_id,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lions_os::Config;
    use zerocopy::IntoBytes;

    #[test]
    fn client_round_trips_and_passes_the_check() {
        let c = TimerClientConfig::new(9);
        c.check().unwrap();
        assert_eq!(c.driver_id, 9);
        // The blob a component would find in its section reads back the same.
        let back = TimerClientConfig::from_blob(c.as_bytes()).unwrap();
        assert_eq!(*back, c);
    }
}
