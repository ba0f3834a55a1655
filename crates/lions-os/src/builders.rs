// SPDX-License-Identifier: BSD-2-Clause
//! Safe constructors for the shared config types: a driver's `.device_resources` blob built from
//! its regions and IRQ channels, with the magic and the counts filled in (no zerocopy in user
//! code). The class crates have the same for their own configs.
//!
//! ```
//! use lions_os::{Config, DeviceRegionResource, DeviceResources, RegionResource};
//!
//! let regs = DeviceRegionResource::new(RegionResource::new(0x500_0000, 0x1000), 0x900_0000);
//! let res = DeviceResources::new().with_region(regs)?.with_irq(0)?;
//! res.check()?;
//! assert_eq!(res.irq_channel(0).map(|c| c.index()), Some(0));
//! # Ok::<(), lions_os::ConfigError>(())
//! ```

use crate::config::{
    Config, ConfigClass, ConfigError, DeviceIrqResource, DeviceRegionResource, DeviceResources,
    MAX_CLIENTS, RegionResource, sddf_magic,
};
use zerocopy::FromZeros;

impl RegionResource {
    /// A region mapped at `vaddr` with `size` bytes.
    pub const fn new(vaddr: u64, size: u64) -> Self {
        Self { vaddr, size }
    }
}

impl DeviceRegionResource {
    /// A region as this component maps it, and the address the device uses for it.
    pub const fn new(region: RegionResource, io_addr: u64) -> Self {
        Self { region, io_addr }
    }
}

fn full(field: &'static str, have: u8) -> ConfigError {
    ConfigError::Count {
        config: DeviceResources::NAME,
        field,
        value: u64::from(have) + 1,
        max: MAX_CLIENTS as u64,
    }
}

impl Default for DeviceResources {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceResources {
    /// No regions, no IRQs.
    pub fn new() -> Self {
        let mut c = Self::new_zeroed();
        c.magic = sddf_magic(ConfigClass::Device);
        c
    }

    /// Add the next region (in the order of the driver's `config.json`).
    pub fn with_region(mut self, region: DeviceRegionResource) -> Result<Self, ConfigError> {
        let n = self.num_regions;
        let slot = self
            .regions
            .get_mut(usize::from(n))
            .ok_or(full("num_regions", n))?;
        *slot = region;
        self.num_regions += 1;
        Ok(self)
    }

    /// Add the next IRQ, arriving on channel `id`.
    pub fn with_irq(mut self, id: u8) -> Result<Self, ConfigError> {
        let n = self.num_irqs;
        let slot = self
            .irqs
            .get_mut(usize::from(n))
            .ok_or(full("num_irqs", n))?;
        *slot = DeviceIrqResource { id };
        self.num_irqs += 1;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn device_resources_round_trip_and_refuse_a_65th_entry() {
        let a = DeviceRegionResource::new(RegionResource::new(0x1000, 0x2000), 0x9000);
        let b = DeviceRegionResource::new(RegionResource::new(0x4000, 0x1000), 0xa000);
        let r = DeviceResources::new()
            .with_region(a)
            .unwrap()
            .with_region(b)
            .unwrap()
            .with_irq(5)
            .unwrap();
        r.check().unwrap();
        assert_eq!(r.regions(), &[a, b]);
        assert_eq!(r.irqs(), &[DeviceIrqResource { id: 5 }]);
        assert_eq!(r.irq_channel(0).map(|c| c.index()), Some(5));
        let mut full = DeviceResources::default();
        for i in 0..MAX_CLIENTS {
            full = full.with_irq(u8::try_from(i).unwrap()).unwrap();
        }
        full.check().unwrap();
        assert!(matches!(
            full.with_irq(0),
            Err(ConfigError::Count { value: 65, .. })
        ));
    }
}
