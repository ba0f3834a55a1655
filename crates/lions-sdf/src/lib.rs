// SPDX-License-Identifier: BSD-2-Clause
//! # lions-sdf: the Microkit system description, read and checked
//!
//! A `.system` file (Microkit 2.x, as `sdfgen` 0.35 renders it) declares memory regions, protection
//! domains with their maps, IRQs and child PDs, and channels between PDs. The host board, xtask and
//! the interop tests all read it through this crate.
//!
//! ## What is accepted
//!
//! - `<memory_region name size [page_size] [phys_addr]>`; size a multiple of the page size
//!   (default 4 KiB).
//! - `<protection_domain name [priority] [budget] [period] [passive] [stack_size] [cpu] [smc] [id]>`
//!   holding `<program_image path>`, `<map mr vaddr perms [cached] [setvar_vaddr] [setvar_size]>`,
//!   `<irq irq id [trigger]>`, `<setvar symbol region_paddr>` and child `<protection_domain id=…>`.
//! - `<channel>` with exactly two `<end pd id [pp] [notify]>`.
//!
//! [`AlignedBlob`] reads the config blobs sdfgen writes beside the description, aligned so a config
//! struct can be viewed in place.
//!
//! Anything else is refused with an [`Error`] that names the element and its line: unknown
//! elements or attributes, a map of a missing region, maps that overlap or are misaligned, a
//! channel id used twice in one PD (by channels or IRQs), ids above 62, duplicate names.

use std::collections::BTreeMap;
use std::fmt;

mod blob;
mod parse;

pub use blob::AlignedBlob;

/// Largest channel id a PD may use (Microkit has 63 channels).
pub const MAX_CHANNEL_ID: u8 = 62;

/// A memory region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Unique name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Page size in bytes (4 KiB unless given).
    pub page_size: u64,
    /// Fixed physical address, for device regions.
    pub phys_addr: Option<u64>,
}

/// Access rights of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.execute, 'x')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A mapping of a region into a PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// Name of the mapped region.
    pub mr: String,
    /// Virtual address in the PD.
    pub vaddr: u64,
    /// Rights.
    pub perms: Perms,
    /// Cached (default true).
    pub cached: bool,
    /// Symbol patched with `vaddr` at build time.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region size at build time.
    pub setvar_size: Option<String>,
}

/// An IRQ delivered to a PD on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// Hardware IRQ number.
    pub irq: u64,
    /// Channel id it is delivered on.
    pub id: u8,
    /// `level` or `edge`, if given.
    pub trigger: Option<String>,
}

/// A symbol patched with a region's physical address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// Symbol name.
    pub symbol: String,
    /// Region whose physical address is written.
    pub region_paddr: String,
}

/// A protection domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Unique name.
    pub name: String,
    /// Name of the parent PD, for a child PD.
    pub parent: Option<String>,
    /// Child id within the parent.
    pub id: Option<u8>,
    /// Scheduling priority (0..=254, default 0).
    pub priority: u8,
    /// MCS budget in microseconds.
    pub budget: Option<u64>,
    /// MCS period in microseconds.
    pub period: Option<u64>,
    /// Passive PD (runs only on PPCs).
    pub passive: bool,
    /// Stack size in bytes (Microkit default 4 KiB... as given).
    pub stack_size: Option<u64>,
    /// CPU core.
    pub cpu: Option<u32>,
    /// May make SMC calls.
    pub smc: bool,
    /// Program image path.
    pub program_image: String,
    /// Mappings.
    pub maps: Vec<Map>,
    /// IRQs.
    pub irqs: Vec<Irq>,
    /// Symbol patches.
    pub setvars: Vec<SetVar>,
    /// The virtual machine this PD monitors (Microkit 2.3.0 `<virtual_machine>`), if any.
    pub virtual_machine: Option<VirtualMachine>,
}

/// A `<virtual_machine>` inside its VMM PD: vCPUs (their faults go to the PD with the vCPU's id
/// as the child id) and the guest-physical mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMachine {
    /// Unique name.
    pub name: String,
    /// Scheduling priority of its vCPUs (0..=254, default 0; below the VMM's).
    pub priority: u8,
    /// MCS budget in microseconds.
    pub budget: Option<u64>,
    /// MCS period in microseconds.
    pub period: Option<u64>,
    /// The vCPU ids (unique among the PD's children).
    pub vcpus: Vec<u8>,
    /// Guest-physical mappings (`vaddr` is the guest-physical address).
    pub maps: Vec<Map>,
}

/// One end of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// PD name.
    pub pd: String,
    /// Channel id in that PD.
    pub id: u8,
    /// This end may PPC into the other.
    pub pp: bool,
    /// This end may notify the other (default true).
    pub notify: bool,
}

/// A channel between two PDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The two ends, in file order.
    pub ends: [End; 2],
}

/// A whole system description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct System {
    /// Memory regions by name.
    pub memory_regions: BTreeMap<String, MemoryRegion>,
    /// PDs in file order (children after their parent).
    pub pds: Vec<ProtectionDomain>,
    /// Channels in file order.
    pub channels: Vec<Channel>,
}

/// Why a description was refused: what, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// 1-based line of the offending element (0 if not known).
    pub line: u32,
    /// The element, e.g. `protection_domain "client0" > map mr="rx"`.
    pub element: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.element, self.message)
    }
}

impl std::error::Error for Error {}

impl System {
    /// Parse and check a description.
    pub fn parse(xml: &str) -> Result<Self, Error> {
        let sys = parse::parse(xml)?;
        parse::check(&sys)?;
        Ok(sys)
    }

    /// Read and parse a file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let xml = std::fs::read_to_string(path).map_err(|e| Error {
            line: 0,
            element: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&xml)
    }

    /// The PD called `name`.
    pub fn pd(&self, name: &str) -> Option<&ProtectionDomain> {
        self.pds.iter().find(|p| p.name == name)
    }

    /// The region called `name`.
    pub fn mr(&self, name: &str) -> Option<&MemoryRegion> {
        self.memory_regions.get(name)
    }

    /// The channel id `pd` uses for its channel to `peer`, if exactly one exists.
    pub fn channel_id(&self, pd: &str, peer: &str) -> Option<u8> {
        let mut ids = self.channels.iter().filter_map(|c| {
            let [a, b] = &c.ends;
            if a.pd == pd && b.pd == peer {
                Some(a.id)
            } else if b.pd == pd && a.pd == peer {
                Some(b.id)
            } else {
                None
            }
        });
        let first = ids.next()?;
        ids.next().is_none().then_some(first)
    }

    /// Every peer of `pd` with the id `pd` uses for it.
    pub fn channels_of<'a>(&'a self, pd: &'a str) -> impl Iterator<Item = (&'a End, &'a End)> + 'a {
        self.channels.iter().filter_map(move |c| {
            let [a, b] = &c.ends;
            if a.pd == pd {
                Some((a, b))
            } else if b.pd == pd {
                Some((b, a))
            } else {
                None
            }
        })
    }
}

impl ProtectionDomain {
    /// The map of region `mr` in this PD, if exactly one exists.
    pub fn map_of(&self, mr: &str) -> Option<&Map> {
        let mut it = self.maps.iter().filter(|m| m.mr == mr);
        let first = it.next()?;
        it.next().is_none().then_some(first)
    }

    /// The map that contains `vaddr`, with the region it maps.
    pub fn map_at<'a>(
        &'a self,
        sys: &'a System,
        vaddr: u64,
    ) -> Option<(&'a Map, &'a MemoryRegion)> {
        self.maps.iter().find_map(|m| {
            let mr = sys.mr(&m.mr)?;
            (vaddr >= m.vaddr && vaddr - m.vaddr < mr.size).then_some((m, mr))
        })
    }
}

#[cfg(test)]
mod tests;
