// SPDX-License-Identifier: BSD-2-Clause
//! Configuration blobs: regions, device resources, magics, and the [`Config`] trait every class
//! config implements.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Fixed array length of every per-client (and per-region) table in sDDF configs.
pub const MAX_CLIENTS: usize = 64;

/// First four bytes of every sDDF config magic.
pub const SDDF_MAGIC_PREFIX: [u8; 4] = *b"sDDF";

/// First seven bytes of every LionsOS config magic (`"LionsOS"` + kind byte).
pub const LIONSOS_MAGIC_PREFIX: [u8; 7] = *b"LionsOS";

/// The class byte that ends an sDDF magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConfigClass {
    /// `.device_resources`.
    Device = 0x01,
    /// Block.
    Blk = 0x02,
    /// Serial.
    Serial = 0x03,
    /// I²C.
    I2c = 0x04,
    /// Network.
    Net = 0x05,
    /// Timer.
    Timer = 0x06,
    /// The network client library's buffer-pool config (`lib_sddf_lwip`).
    Lwip = 0x08,
}

/// The 5-byte magic of an sDDF config of `class`.
pub const fn sddf_magic(class: ConfigClass) -> [u8; 5] {
    let p = SDDF_MAGIC_PREFIX;
    [p[0], p[1], p[2], p[3], class as u8]
}

/// Why a config blob was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The blob is shorter than the struct.
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The blob is not aligned for the struct.
    Misaligned,
    /// The magic is wrong: the section was never written, or holds another class's config.
    BadMagic {
        /// Config type that was expected.
        config: &'static str,
    },
    /// A count field exceeds its array.
    Count {
        /// Config type.
        config: &'static str,
        /// The count field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A field holds a value outside its domain (a capacity that is not a power of two, ...).
    Invalid {
        /// Config type.
        config: &'static str,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort { needed, have } => {
                write!(f, "config blob has {have} bytes, struct needs {needed}")
            }
            Self::Misaligned => write!(f, "config blob is misaligned"),
            Self::BadMagic { config } => {
                write!(
                    f,
                    "{config}: bad magic (section not written, or wrong config)"
                )
            }
            Self::Count {
                config,
                field,
                value,
                max,
            } => {
                write!(f, "{config}: {field} = {value} exceeds {max}")
            }
            Self::Invalid {
                config,
                field,
                value,
            } => {
                write!(f, "{config}: invalid {field} = {value}")
            }
        }
    }
}

impl core::error::Error for ConfigError {}

/// Check a count field against the length of the array it counts.
pub fn check_count(
    config: &'static str,
    field: &'static str,
    value: u64,
    max: usize,
) -> Result<(), ConfigError> {
    if value > max as u64 {
        return Err(ConfigError::Count {
            config,
            field,
            value,
            max: max as u64,
        });
    }
    Ok(())
}

/// A configuration struct written by sdfgen into a named section.
pub trait Config: FromBytes + IntoBytes + Immutable + KnownLayout + Sized {
    /// ELF section the blob goes in (with the leading dot).
    const SECTION: &'static str;
    /// Expected magic bytes at offset 0.
    const MAGIC: &'static [u8];
    /// Human-readable name (the C struct's), used in errors.
    const NAME: &'static str;

    /// Class-specific checks beyond the magic (counts within arrays, ...).
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Check the magic, then [`validate`](Self::validate).
    fn check(&self) -> Result<(), ConfigError> {
        if !self.as_bytes().starts_with(Self::MAGIC) {
            return Err(ConfigError::BadMagic { config: Self::NAME });
        }
        self.validate()
    }

    /// View a blob as this config (aligned, at least the struct's size; trailing bytes ignored),
    /// checked.
    fn from_blob(bytes: &[u8]) -> Result<&Self, ConfigError>
    where
        Self: KnownLayout<PointerMetadata = ()>,
    {
        let (cfg, _) = Self::ref_from_prefix(bytes).map_err(|e| match e {
            zerocopy::ConvertError::Alignment(_) => ConfigError::Misaligned,
            _ => ConfigError::TooShort {
                needed: size_of::<Self>(),
                have: bytes.len(),
            },
        })?;
        cfg.check()?;
        Ok(cfg)
    }
}

/// A memory region mapped into this component: `region_resource_t` (16 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RegionResource {
    /// Virtual address of the mapping in this component (0 if not mapped).
    pub vaddr: u64,
    /// Size in bytes.
    pub size: u64,
}

impl RegionResource {
    /// The region as a pointer and length in this address space, or `None` when it is not mapped
    /// here (vaddr 0) or does not fit the address space. Making the pointer is safe; using it is
    /// the caller's business (the system description vouches that the mapping exists).
    pub fn as_raw_parts(&self) -> Option<(core::ptr::NonNull<u8>, usize)> {
        let addr = usize::try_from(self.vaddr).ok()?;
        let len = usize::try_from(self.size).ok()?;
        let ptr = core::ptr::NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr))?;
        Some((ptr, len))
    }
}

/// A region the device can also reach: `device_region_resource_t` (24 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DeviceRegionResource {
    /// The mapping in this component.
    pub region: RegionResource,
    /// Address the device uses for it (physical or IOVA).
    pub io_addr: u64,
}

/// One IRQ of a driver: `device_irq_resource_t` (1 B): the channel it arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DeviceIrqResource {
    /// Microkit channel id of the IRQ.
    pub id: u8,
}

/// A driver's device resources: `device_resources_t` (1608 B), section `.device_resources`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DeviceResources {
    /// `"sDDF"` + 0x01.
    pub magic: [u8; 5],
    /// Valid entries in `regions`.
    pub num_regions: u8,
    /// Valid entries in `irqs`.
    pub num_irqs: u8,
    /// Explicit C padding.
    pub _pad: u8,
    /// Regions in the order of the driver's `config.json`.
    pub regions: [DeviceRegionResource; MAX_CLIENTS],
    /// IRQs in the order of the driver's `config.json`.
    pub irqs: [DeviceIrqResource; MAX_CLIENTS],
}

impl DeviceResources {
    /// The valid regions (count checked by [`Config::check`]; clamped here too).
    pub fn regions(&self) -> &[DeviceRegionResource] {
        &self.regions[..usize::from(self.num_regions).min(MAX_CLIENTS)]
    }

    /// The valid IRQs.
    pub fn irqs(&self) -> &[DeviceIrqResource] {
        &self.irqs[..usize::from(self.num_irqs).min(MAX_CLIENTS)]
    }

    /// The channel of IRQ `i` (a driver's first is its device's interrupt); `None` when there is
    /// no such IRQ or its id is not a channel.
    pub fn irq_channel(&self, i: usize) -> Option<crate::Channel> {
        crate::Channel::try_new(self.irqs().get(i)?.id)
    }
}

const DEVICE_MAGIC: [u8; 5] = sddf_magic(ConfigClass::Device);

impl Config for DeviceResources {
    const SECTION: &'static str = ".device_resources";
    const MAGIC: &'static [u8] = &DEVICE_MAGIC;
    const NAME: &'static str = "device_resources_t";

    fn validate(&self) -> Result<(), ConfigError> {
        check_count(
            Self::NAME,
            "num_regions",
            self.num_regions.into(),
            MAX_CLIENTS,
        )?;
        check_count(Self::NAME, "num_irqs", self.num_irqs.into(), MAX_CLIENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layouts_match_c() {
        assert_eq!(size_of::<RegionResource>(), 16);
        assert_eq!(offset_of!(RegionResource, size), 8);
        assert_eq!(size_of::<DeviceRegionResource>(), 24);
        assert_eq!(offset_of!(DeviceRegionResource, io_addr), 16);
        assert_eq!(size_of::<DeviceIrqResource>(), 1);
        assert_eq!(size_of::<DeviceResources>(), 1608);
        assert_eq!(offset_of!(DeviceResources, num_regions), 5);
        assert_eq!(offset_of!(DeviceResources, num_irqs), 6);
        assert_eq!(offset_of!(DeviceResources, regions), 8);
        assert_eq!(offset_of!(DeviceResources, irqs), 8 + 64 * 24);
    }

    #[test]
    fn raw_parts_refuse_unmapped_regions() {
        assert_eq!(
            RegionResource {
                vaddr: 0,
                size: 4096
            }
            .as_raw_parts(),
            None
        );
        let (p, len) = RegionResource {
            vaddr: 0x2000_0000,
            size: 4096,
        }
        .as_raw_parts()
        .unwrap();
        assert_eq!((p.as_ptr() as usize, len), (0x2000_0000, 4096));
    }

    #[test]
    fn magic_and_counts_are_checked() {
        let mut d = DeviceResources::new_zeroed();
        assert_eq!(
            d.check(),
            Err(ConfigError::BadMagic {
                config: "device_resources_t"
            })
        );
        d.magic = *b"sDDF\x01";
        d.num_regions = 2;
        assert!(d.check().is_ok());
        assert_eq!(d.regions().len(), 2);
        d.num_irqs = 65;
        assert!(matches!(
            d.check(),
            Err(ConfigError::Count {
                field: "num_irqs",
                value: 65,
                ..
            })
        ));
        assert_eq!(d.irqs().len(), 64, "accessors clamp even unchecked counts");
        d.magic[4] = 0x03;
        assert!(matches!(d.check(), Err(ConfigError::BadMagic { .. })));
    }

    #[test]
    fn irq_channel_is_a_listed_irq_that_is_a_channel() {
        let mut d = DeviceResources::new_zeroed();
        d.irqs[0].id = 5;
        d.irqs[1].id = 200;
        assert_eq!(d.irq_channel(0), None, "no IRQ listed yet");
        d.num_irqs = 2;
        assert_eq!(d.irq_channel(0), Some(crate::Channel::new(5)));
        assert_eq!(d.irq_channel(1), None, "200 is not a channel id");
        assert_eq!(d.irq_channel(2), None, "beyond num_irqs");
    }

    #[test]
    fn from_blob_checks_length_and_alignment() {
        let mut buf = vec![0u64; 1608 / 8 + 1];
        let bytes = buf.as_mut_bytes();
        bytes[..5].copy_from_slice(b"sDDF\x01");
        assert!(DeviceResources::from_blob(&bytes[..1608]).is_ok());
        assert_eq!(
            DeviceResources::from_blob(&bytes[..100]).err(),
            Some(ConfigError::TooShort {
                needed: 1608,
                have: 100
            })
        );
        assert_eq!(
            DeviceResources::from_blob(&bytes[1..1609]).err(),
            Some(ConfigError::Misaligned)
        );
    }
}
