// SPDX-License-Identifier: BSD-2-Clause
//! # lions-interop: the sdfgen fixtures, and the class crates' interop tests
//!
//! `interop/fixtures/<system>/` holds a `.system` file and the `.data` config blobs the real
//! `sdfgen==0.35.1` wrote for it (see `interop/README.md`). This crate finds them, loads blobs into
//! aligned memory, and answers the questions an interop test asks of the system description (what
//! does this PD map at this address, which channel id joins two PDs), panicking with a message that
//! names the PD and region when the answer is "none": these are test assertions.
//!
//! The interop tests themselves (`tests/<class>.rs`: every blob of every fixture parsed with the
//! class crate's structs and checked against its `.system`) live in this unpublished crate, beside
//! the fixtures, so the published crates package no test that reads files outside themselves.
#![allow(clippy::missing_panics_doc)]

use lions_os::RegionResource;
use lions_sdf::{AlignedBlob, Map, MemoryRegion, System};
use std::path::PathBuf;

/// Directory of one fixture system.
pub fn fixture(system: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/fixtures")
        .join(system)
}

/// A `.data` blob in 8-aligned memory.
pub struct Blob(AlignedBlob);

impl Blob {
    /// Load blob `name` of fixture `system`.
    pub fn load(system: &str, name: &str) -> Self {
        let path = fixture(system).join(name);
        Self(AlignedBlob::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// A fixture's system description with test-assertion helpers (and, through `Deref`, every
/// query of [`System`]).
pub struct Sdf(pub System);

impl std::ops::Deref for Sdf {
    type Target = System;

    fn deref(&self) -> &System {
        &self.0
    }
}

impl Sdf {
    /// Load `interop/fixtures/<system>/<system>.system`.
    pub fn load(system: &str) -> Self {
        let path = fixture(system).join(format!("{system}.system"));
        Self(System::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }

    /// The memory region `pd` maps exactly at `vaddr`.
    pub fn mr_at(&self, pd: &str, vaddr: u64) -> &str {
        let p = self.0.pd(pd).unwrap_or_else(|| panic!("no PD {pd}"));
        p.maps
            .iter()
            .find(|m| m.vaddr == vaddr)
            .map(|m| m.mr.as_str())
            .unwrap_or_else(|| panic!("{pd} maps nothing at {vaddr:#x}"))
    }

    /// Whether `pd` maps `mr`.
    pub fn maps(&self, pd: &str, mr: &str) -> bool {
        self.0
            .pd(pd)
            .is_some_and(|p| p.maps.iter().any(|m| m.mr == mr))
    }

    /// Size of region `mr`.
    pub fn size(&self, mr: &str) -> u64 {
        self.0
            .mr(mr)
            .unwrap_or_else(|| panic!("no region {mr}"))
            .size
    }

    /// Physical address of region `mr`, if fixed.
    pub fn phys(&self, mr: &str) -> Option<u64> {
        self.0
            .mr(mr)
            .unwrap_or_else(|| panic!("no region {mr}"))
            .phys_addr
    }

    /// `pd`'s end id of its (first) channel to `peer`.
    pub fn channel_id(&self, pd: &str, peer: &str) -> u64 {
        self.0
            .channels_of(pd)
            .find(|(_, other)| other.pd == peer)
            .map(|(me, _)| u64::from(me.id))
            .unwrap_or_else(|| panic!("no channel {pd} <-> {peer}"))
    }

    /// Check a region of `pd`'s config: `pd` maps a region at `vaddr` of exactly `size`. Returns its
    /// name.
    pub fn check_region(&self, pd: &str, vaddr: u64, size: u64) -> &str {
        let mr = self.mr_at(pd, vaddr);
        assert_eq!(size, self.size(mr), "{pd}: size of {mr}");
        mr
    }

    /// Check a region `pd` shares with `peer`. Returns its name.
    pub fn check_shared(&self, pd: &str, peer: &str, vaddr: u64, size: u64) -> &str {
        let mr = self.check_region(pd, vaddr, size);
        assert!(self.maps(peer, mr), "{peer} does not map {mr}");
        mr
    }

    /// The map and region of a config's region `r` in `pd`: mapped exactly at its vaddr, with
    /// the region's size.
    pub fn mapped(&self, pd: &str, r: &RegionResource) -> (&Map, &MemoryRegion) {
        let p = self.0.pd(pd).unwrap_or_else(|| panic!("no PD {pd}"));
        let (map, mr) = p
            .map_at(&self.0, r.vaddr)
            .unwrap_or_else(|| panic!("{pd}: nothing mapped at {:#x}", r.vaddr));
        assert_eq!(map.vaddr, r.vaddr, "{pd}: vaddr is the map's start");
        assert_eq!(mr.size, r.size, "{pd}: size of {}", mr.name);
        (map, mr)
    }

    /// The one PD other than `pd` that maps `mr`.
    pub fn peer_of(&self, pd: &str, mr: &str) -> &str {
        let peers: Vec<_> = self
            .0
            .pds
            .iter()
            .filter(|p| p.name != pd && p.map_of(mr).is_some())
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(peers.len(), 1, "{mr} is shared by exactly two PDs");
        peers[0]
    }
}
