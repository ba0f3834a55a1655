// SPDX-License-Identifier: BSD-2-Clause
//! Mapped configs: the one check that a config's regions are mapped here with the rights it
//! claims, done once when the PD starts, and the token that carries the result.
//!
//! ## Protocol
//!
//! 1. A config type lists the regions it names and the access its component needs on each
//!    ([`Regions::claims`]: a [`Claim`] is a region, read-only or read-write, with the alignment
//!    its contents need).
//! 2. [`ConfigStatic::mapped`](crate::cell::ConfigStatic::mapped) (a PD's config section, once per
//!    PD) or [`Mapped::check`] (any other config) checks every claim, in order:
//!    - the region is not empty and lies in the address space (`vaddr + size` does not wrap);
//!    - its `vaddr` is a multiple of the claim's alignment;
//!    - it overlaps no other claim of the same config (only two read-only claims of the very same
//!      region may coincide);
//!    - the backend maps all of it, with at least the claimed rights: the host board looks the
//!      range up in the mapping table the launcher handed the PD (one `map` record of the
//!      manifest must hold it), the sim backend in its table of live `sim::Region`s; on seL4
//!      the mapping was made by the Microkit tool from the same system description the config
//!      was generated from, which the PD cannot query, so only the checks above apply there.
//!
//!    The first failure is returned as a [`MapError`] naming the region's role and address.
//! 3. Component constructors take the resulting [`Mapped`] **by value** (it is neither `Clone`
//!    nor `Copy`), so one token builds one component, and build their queue and region handles
//!    from it without further proof.

use crate::config::{Config, RegionResource};
use core::fmt;

/// The rights a component needs on a region (and a backend grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Readable.
    Read,
    /// Readable and writable.
    ReadWrite,
}

/// One region a config names: its role (for errors), where it is, the rights the component needs
/// and the alignment its contents need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The region's role, e.g. `"client 2 rx free queue"`.
    pub what: &'static str,
    /// Which entry of a per-client table it belongs to (`None` for a single one).
    pub index: Option<u8>,
    /// Where the config says it is.
    pub region: RegionResource,
    /// The rights needed.
    pub access: Access,
    /// The alignment `vaddr` needs (a power of two).
    pub align: u32,
}

impl Claim {
    /// A region the component writes (a queue, a data region it fills), aligned to 8 bytes.
    pub const fn rw(what: &'static str, region: RegionResource) -> Self {
        Self {
            what,
            index: None,
            region,
            access: Access::ReadWrite,
            align: 8,
        }
    }

    /// A region the component only reads, aligned to 8 bytes.
    pub const fn ro(what: &'static str, region: RegionResource) -> Self {
        Self {
            what,
            index: None,
            region,
            access: Access::Read,
            align: 8,
        }
    }

    /// The same claim for entry `i` of a per-client table.
    pub fn at(mut self, i: usize) -> Self {
        // Tables hold at most `MAX_CLIENTS` (64) entries.
        self.index = Some(u8::try_from(i).unwrap_or(u8::MAX));
        self
    }

    /// The same claim with alignment `align` (a power of two; byte buffers need 1).
    pub const fn aligned(mut self, align: u32) -> Self {
        self.align = align;
        self
    }

    fn end(&self) -> u64 {
        self.region.vaddr.saturating_add(self.region.size)
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{} [{i}]", self.what)?,
            None => write!(f, "{}", self.what)?,
        }
        write!(
            f,
            " at {:#x} (size {:#x})",
            self.region.vaddr, self.region.size
        )
    }
}

/// A config whose regions can be checked: it lists every region it names.
pub trait Regions: Config {
    /// Call `claim` once for every region this config names and its component uses (only the
    /// entries its count fields make real), in a fixed order.
    fn claims(&self, claim: &mut dyn FnMut(Claim));
}

/// Why a config's regions were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Size 0, vaddr 0, or the end wraps the address space.
    Empty(Claim),
    /// `vaddr` is not a multiple of the claim's alignment.
    Misaligned(Claim),
    /// Two claims share bytes.
    Overlap(Claim, Claim),
    /// The backend maps no region holding all of it.
    Unmapped(Claim),
    /// Claimed read-write, mapped read-only.
    ReadOnly(Claim),
    /// No backend that knows this PD's mappings is running (a host-board build outside
    /// `lions-host`, a test without the `sim` feature).
    NoMappingTable(Claim),
    /// A [`ConfigStatic`](crate::cell::ConfigStatic)'s token was already handed out.
    Taken(&'static str),
    /// The config itself was refused (magic, counts).
    Config(crate::ConfigError),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty(c) => write!(
                f,
                "{c}: empty, unmapped (vaddr 0) or beyond the address space"
            ),
            Self::Misaligned(c) => write!(f, "{c}: not aligned to {} bytes", c.align),
            Self::Overlap(a, b) => write!(f, "{a} overlaps {b}"),
            Self::Unmapped(c) => write!(f, "{c}: not mapped in this PD"),
            Self::ReadOnly(c) => write!(f, "{c}: claimed read-write, mapped read-only"),
            Self::NoMappingTable(c) => {
                write!(f, "{c}: no backend knows this PD's mappings")
            }
            Self::Taken(name) => write!(f, "{name}: the config's token was already taken"),
            Self::Config(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for MapError {}

impl From<crate::ConfigError> for MapError {
    fn from(e: crate::ConfigError) -> Self {
        Self::Config(e)
    }
}

/// What a backend says about a range of this PD's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// One mapping holds all of it, with these rights.
    Mapped(Access),
    /// No mapping holds all of it.
    Unmapped,
    /// This backend cannot tell (seL4: the Microkit tool made the mappings).
    Unknown,
    /// No backend is running that knows this PD's mappings.
    NoTable,
}

/// Proof that every region config `C` names is mapped in this PD with the rights it claims (see
/// the module docs), held by one component: its constructor takes the token by value.
#[derive(Debug)]
pub struct Mapped<'a, C> {
    config: &'a C,
}

impl<'a, C: Regions> Mapped<'a, C> {
    /// Check `config` against this PD's mappings (see the module docs) and hand out its token.
    ///
    /// # Safety
    /// No other token or handle for a region this config claims read-write exists while the
    /// token (or what is built from it) lives, except the peer's at the other end of a queue.
    /// (A PD's own config section gets its token safely, once, from
    /// [`ConfigStatic::mapped`](crate::cell::ConfigStatic::mapped); this is for configs built
    /// at run time, as tests do, where only the caller knows whether a copy of the config was
    /// already used.)
    pub unsafe fn check(config: &'a C) -> Result<Self, MapError> {
        config.check()?;
        check_claims(config, lookup)?;
        Ok(Self { config })
    }

    /// The token without any check.
    ///
    /// # Safety
    /// As [`check`](Self::check), and every region the config claims is mapped here for `'a`
    /// with the claimed rights (the caller did what `check` does, e.g. the regions are plain
    /// memory the caller owns).
    pub unsafe fn assume(config: &'a C) -> Self {
        Self { config }
    }

    /// The checked config (reading it needs no token; building handles from it does).
    pub fn config(&self) -> &'a C {
        self.config
    }
}

/// Check `config`'s claims (see the module docs) with `lookup` as the mapping table: what
/// [`Mapped::check`] does with the running backend's, for a table of one's own (a system
/// description's mappings of a PD; [`Lookup::Unknown`] for the checks that need none). Hands
/// out no token.
pub fn check_with<C: Regions>(
    config: &C,
    lookup: impl Fn(u64, u64) -> Lookup,
) -> Result<(), MapError> {
    check_claims(config, lookup)
}

/// Check `config`'s claims with `lookup` as the backend's mapping table.
pub(crate) fn check_claims<C: Regions>(
    config: &C,
    lookup: impl Fn(u64, u64) -> Lookup,
) -> Result<(), MapError> {
    let mut result = Ok(());
    let mut n = 0usize;
    config.claims(&mut |c| {
        n += 1;
        if result.is_err() {
            return;
        }
        result = check_one(&c, &lookup).and_then(|()| {
            // Against every earlier claim: configs name at most a few hundred regions.
            let mut clash = None;
            let mut k = 0usize;
            config.claims(&mut |d| {
                k += 1;
                if k < n && clash.is_none() && overlaps(&c, &d) {
                    clash = Some(d);
                }
            });
            clash.map_or(Ok(()), |d| Err(MapError::Overlap(c, d)))
        });
    });
    result
}

fn check_one(c: &Claim, lookup: &impl Fn(u64, u64) -> Lookup) -> Result<(), MapError> {
    let r = c.region;
    if r.vaddr == 0 || r.size == 0 || r.vaddr.checked_add(r.size).is_none() {
        return Err(MapError::Empty(*c));
    }
    if !c.align.is_power_of_two() || !r.vaddr.is_multiple_of(u64::from(c.align)) {
        return Err(MapError::Misaligned(*c));
    }
    match lookup(r.vaddr, r.size) {
        Lookup::Mapped(a) if a >= c.access => Ok(()),
        Lookup::Mapped(_) => Err(MapError::ReadOnly(*c)),
        Lookup::Unmapped => Err(MapError::Unmapped(*c)),
        Lookup::Unknown => Ok(()),
        Lookup::NoTable => Err(MapError::NoMappingTable(*c)),
    }
}

fn overlaps(a: &Claim, b: &Claim) -> bool {
    let shared = a.region.vaddr < b.end() && b.region.vaddr < a.end();
    let same_ro = a.region == b.region && a.access == Access::Read && b.access == Access::Read;
    shared && !same_ro
}

/// Ask the running backend about `[vaddr, vaddr + size)`.
pub(crate) fn lookup(vaddr: u64, size: u64) -> Lookup {
    #[cfg(feature = "host")]
    if let Some(l) = crate::host::lookup(vaddr, size) {
        return l;
    }
    #[cfg(feature = "sim")]
    return crate::sim::lookup(vaddr, size);
    #[cfg(all(lions_microkit, not(feature = "sim")))]
    return {
        let _ = (vaddr, size);
        Lookup::Unknown
    };
    #[cfg(not(any(feature = "sim", lions_microkit)))]
    {
        let _ = (vaddr, size);
        Lookup::NoTable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

    /// A config with two queues (read-write) and a data region (read-only).
    #[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
    #[repr(C)]
    struct Two {
        magic: [u8; 8],
        q: [RegionResource; 2],
        data: RegionResource,
    }

    impl Config for Two {
        const SECTION: &'static str = ".two";
        const MAGIC: &'static [u8] = b"TWO";
        const NAME: &'static str = "two_t";
        fn validate(&self) -> Result<(), ConfigError> {
            Ok(())
        }
    }

    impl Regions for Two {
        fn claims(&self, claim: &mut dyn FnMut(Claim)) {
            for (i, q) in self.q.iter().enumerate() {
                claim(Claim::rw("queue", *q).at(i));
            }
            claim(Claim::ro("data", self.data).aligned(1));
        }
    }

    const fn r(vaddr: u64, size: u64) -> RegionResource {
        RegionResource { vaddr, size }
    }

    fn two(a: RegionResource, b: RegionResource, data: RegionResource) -> Two {
        Two {
            magic: *b"TWO\0\0\0\0\0",
            q: [a, b],
            data,
        }
    }

    /// A mapping table: 0x1000..0x3000 read-write, 0x8000..0x9000 read-only.
    fn table(vaddr: u64, size: u64) -> Lookup {
        let end = vaddr + size;
        if vaddr >= 0x1000 && end <= 0x3000 {
            Lookup::Mapped(Access::ReadWrite)
        } else if vaddr >= 0x8000 && end <= 0x9000 {
            Lookup::Mapped(Access::Read)
        } else {
            Lookup::Unmapped
        }
    }

    #[test]
    fn a_config_within_its_mappings_passes() {
        let c = two(r(0x1000, 0x1000), r(0x2000, 0x1000), r(0x8001, 0x10));
        assert_eq!(check_claims(&c, table), Ok(()));
        // A read-only claim is satisfied by a read-write mapping too.
        let c = two(r(0x1000, 0x1000), r(0x2000, 0x800), r(0x2800, 0x10));
        assert_eq!(check_claims(&c, table), Ok(()));
    }

    #[test]
    fn each_bad_region_is_refused_by_name() {
        let unmapped = two(r(0x1000, 0x1000), r(0x4000, 0x1000), r(0x8000, 8));
        match check_claims(&unmapped, table) {
            Err(MapError::Unmapped(c)) => {
                assert_eq!(
                    (c.what, c.index, c.region.vaddr),
                    ("queue", Some(1), 0x4000)
                );
            }
            other => panic!("{other:?}"),
        }
        let past_end = two(r(0x1000, 0x1000), r(0x2000, 0x1001), r(0x8000, 8));
        assert!(matches!(
            check_claims(&past_end, table),
            Err(MapError::Unmapped(_))
        ));
        let zero = two(r(0, 0x1000), r(0x2000, 0x1000), r(0x8000, 8));
        assert!(matches!(
            check_claims(&zero, table),
            Err(MapError::Empty(_))
        ));
        let wraps = two(r(0x1000, 0x1000), r(u64::MAX - 4, 0x10), r(0x8000, 8));
        assert!(matches!(
            check_claims(&wraps, table),
            Err(MapError::Empty(_))
        ));
        let read_only = two(r(0x1000, 0x1000), r(0x8000, 0x100), r(0x8000, 8));
        let e = check_claims(&read_only, table).unwrap_err();
        assert!(matches!(e, MapError::ReadOnly(c) if c.index == Some(1)));
        assert_eq!(
            e.to_string(),
            "queue [1] at 0x8000 (size 0x100): claimed read-write, mapped read-only"
        );
        let misaligned = two(r(0x1004, 0x100), r(0x2000, 0x100), r(0x8000, 8));
        assert!(matches!(
            check_claims(&misaligned, table),
            Err(MapError::Misaligned(c)) if c.index == Some(0)
        ));
    }

    #[test]
    fn overlapping_regions_are_refused() {
        let c = two(r(0x1000, 0x1000), r(0x1800, 0x100), r(0x8000, 8));
        match check_claims(&c, table) {
            Err(MapError::Overlap(a, b)) => {
                assert_eq!((a.index, b.index), (Some(1), Some(0)));
            }
            other => panic!("{other:?}"),
        }
        // The same queue twice is two handles on one queue end.
        let c = two(r(0x1000, 0x100), r(0x1000, 0x100), r(0x8000, 8));
        assert!(matches!(
            check_claims(&c, table),
            Err(MapError::Overlap(..))
        ));
        // Adjacent regions do not overlap.
        let c = two(r(0x1000, 0x100), r(0x1100, 0x100), r(0x8000, 8));
        assert_eq!(check_claims(&c, table), Ok(()));
        // A read-write claim that overlaps a read-only one is refused too.
        let c = two(r(0x1000, 0x100), r(0x1100, 0x100), r(0x1080, 8));
        assert!(matches!(
            check_claims(&c, table),
            Err(MapError::Overlap(..))
        ));
    }

    #[test]
    fn without_a_table_nothing_passes_and_unknown_is_structural_only() {
        let c = two(r(0x1000, 0x100), r(0x1100, 0x100), r(0x8000, 8));
        assert!(matches!(
            check_claims(&c, |_, _| Lookup::NoTable),
            Err(MapError::NoMappingTable(_))
        ));
        assert_eq!(check_claims(&c, |_, _| Lookup::Unknown), Ok(()));
        let bad = two(r(0x1000, 0x100), r(0x1001, 0x100), r(0x8000, 8));
        assert!(check_claims(&bad, |_, _| Lookup::Unknown).is_err());
    }

    #[cfg(feature = "host")]
    #[test]
    fn host_checks_against_the_manifest_maps() {
        use crate::host::manifest::ManifestMap;
        let map = |vaddr, size, write| ManifestMap {
            fd: 3,
            vaddr,
            size,
            read: true,
            write,
            execute: false,
            region: "r".into(),
        };
        let maps = [map(0x1000, 0x2000, true), map(0x8000, 0x1000, false)];
        let host = |v, s| crate::host::lookup_in(&maps, v, s);
        let ok = two(r(0x1000, 0x1000), r(0x2000, 0x1000), r(0x8000, 0x10));
        assert_eq!(check_claims(&ok, host), Ok(()));
        let ro = two(r(0x1000, 0x1000), r(0x8000, 0x1000), r(0x2000, 0x10));
        assert!(matches!(
            check_claims(&ro, host),
            Err(MapError::ReadOnly(_))
        ));
        let gap = two(r(0x1000, 0x1000), r(0x2800, 0x1000), r(0x8000, 0x10));
        assert!(matches!(
            check_claims(&gap, host),
            Err(MapError::Unmapped(_))
        ));
        let olap = two(r(0x1000, 0x1000), r(0x1ff8, 0x10), r(0x8000, 0x10));
        assert!(matches!(
            check_claims(&olap, host),
            Err(MapError::Overlap(..))
        ));
        // Not running as a host PD: the host backend has no table to offer.
        assert_eq!(crate::host::lookup(0x1000, 8), None);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn sim_checks_against_its_live_regions() {
        use crate::sim::Region;
        let rw = Region::new(0x2000);
        let ro = Region::read_only(0x1000);
        let at = |reg: &Region, off: u64, size| RegionResource {
            vaddr: reg.as_ptr().as_ptr() as u64 + off,
            size,
        };
        let ok = two(
            at(&rw, 0, 0x1000),
            at(&rw, 0x1000, 0x1000),
            at(&ro, 0, 0x10),
        );
        // SAFETY: the regions are this test's; no other handle is made.
        assert!(unsafe { Mapped::check(&ok) }.is_ok());
        let bad = two(at(&rw, 0, 0x1000), at(&ro, 0, 0x100), at(&ro, 0x100, 0x10));
        // SAFETY: as above (and refused).
        let e = unsafe { Mapped::check(&bad) }.unwrap_err();
        assert!(
            matches!(e, MapError::ReadOnly(c) if c.index == Some(1)),
            "{e}"
        );
        let past = two(
            at(&rw, 0, 0x1000),
            at(&rw, 0x1800, 0x1000),
            at(&ro, 0, 0x10),
        );
        // SAFETY: as above (and refused).
        let e = unsafe { Mapped::check(&past) }.unwrap_err();
        assert!(matches!(e, MapError::Unmapped(_)), "{e}");
        let misaligned = two(at(&rw, 2, 0x100), at(&rw, 0x1000, 0x100), at(&ro, 0, 0x10));
        // SAFETY: as above (and refused).
        let e = unsafe { Mapped::check(&misaligned) }.unwrap_err();
        assert!(matches!(e, MapError::Misaligned(_)), "{e}");
        let gone = at(&ro, 0, 0x10);
        drop(ro);
        let freed = two(at(&rw, 0, 0x100), at(&rw, 0x1000, 0x100), gone);
        // SAFETY: as above (and refused).
        let e = unsafe { Mapped::check(&freed) }.unwrap_err();
        assert!(
            matches!(e, MapError::Unmapped(_)),
            "a dropped region is unmapped: {e}"
        );
        let mut bad_magic = ok;
        bad_magic.magic[0] = b'x';
        // SAFETY: as above (and refused).
        let e = unsafe { Mapped::check(&bad_magic) }.unwrap_err();
        assert!(
            matches!(e, MapError::Config(ConfigError::BadMagic { .. })),
            "{e}"
        );
    }
}
