// SPDX-License-Identifier: BSD-2-Clause
//! Config statics: zero-initialised structs in named sections, filled in the ELF after the build,
//! and the PD's one token for each ([`ConfigStatic::mapped`]).

use crate::config::{Config, ConfigError};
use crate::mapped::{MapError, Mapped, Regions};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

/// A config struct that the build writes into the PD's ELF section. Declare one with
/// [`config!`](crate::config!); read it with [`get`](Self::get), which checks the magic, so a
/// section that was never written is an error rather than a silent zero config.
#[repr(transparent)]
pub struct ConfigCell<T>(UnsafeCell<MaybeUninit<T>>);

// SAFETY: no code writes the cell after the program image is loaded (there is no API that could);
// shared reads of immutable data are sound from any thread.
unsafe impl<T: Sync> Sync for ConfigCell<T> {}

impl<T: Config> ConfigCell<T> {
    /// All zero: how the section looks before the build writes the blob.
    pub const fn zeroed() -> Self {
        Self(UnsafeCell::new(MaybeUninit::zeroed()))
    }

    /// The config, checked (magic and counts).
    pub fn get(&'static self) -> Result<&'static T, ConfigError> {
        // The compiler sees an all-zero initialiser and could fold reads of it; the build patches
        // the bytes in the ELF, so hide the pointer's provenance from the optimiser.
        let ptr = core::hint::black_box(self.0.get().cast::<T>());
        // SAFETY: the cell is valid, aligned memory for `T` for 'static and never written at run
        // time; `T: FromBytes` (via `Config`) makes every byte pattern, zeros included, a valid `T`.
        let cfg = unsafe { &*ptr };
        cfg.check()?;
        Ok(cfg)
    }
}

/// A PD's config static as [`config!`](crate::config!) declares it: the [`ConfigCell`] in its
/// section, and whether its [`Mapped`] token was handed out.
pub struct ConfigStatic<T: 'static> {
    cell: &'static ConfigCell<T>,
    taken: AtomicBool,
}

impl<T: Config> ConfigStatic<T> {
    /// The static over `cell` (used by [`config!`](crate::config!)).
    pub const fn new(cell: &'static ConfigCell<T>) -> Self {
        Self {
            cell,
            taken: AtomicBool::new(false),
        }
    }

    /// The config, checked (magic and counts): to read it. Building a component from it takes
    /// [`mapped`](Self::mapped).
    pub fn get(&'static self) -> Result<&'static T, ConfigError> {
        self.cell.get()
    }

    /// The config's token (see [`crate::mapped`]): the config checked, its regions checked
    /// against this PD's mappings, handed out once per PD (a second call is
    /// [`MapError::Taken`]), so the component built from it holds the only handles on its queue
    /// ends in this PD.
    pub fn mapped(&'static self) -> Result<Mapped<'static, T>, MapError>
    where
        T: Regions,
    {
        let config = self.cell.get()?;
        if self.taken.swap(true, Ordering::AcqRel) {
            return Err(MapError::Taken(T::NAME));
        }
        // SAFETY: the token of this PD's own config section is handed out once (the flag
        // above), and nothing else in this PD makes handles from the section: a queue end the
        // config names belongs to this PD alone, the peer's end to the peer (the system
        // description maps it to both and sdfgen names it in both configs).
        unsafe { Mapped::check(config) }
    }
}

/// Static storage for one value that a PD builds in place at start-up (a component too large to
/// move around on the stack): [`take`](Self::take) hands out the empty slot once.
///
/// ```
/// use core::mem::MaybeUninit;
/// static SLOT: lions_os::cell::StaticSlot<[u64; 4096]> = lions_os::cell::StaticSlot::new();
/// let slot: &'static mut MaybeUninit<[u64; 4096]> = SLOT.take().unwrap();
/// let big: &'static mut [u64; 4096] = slot.write([7; 4096]);
/// assert_eq!(big[4095], 7);
/// assert!(SLOT.take().is_none(), "handed out once");
/// ```
pub struct StaticSlot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    taken: AtomicBool,
}

// SAFETY: the cell is reached only through the one `&'static mut` that `take` hands out (the
// flag makes it one), so no two threads ever share it; moving that reference to another thread
// needs `T: Send` as for any `&mut T`.
unsafe impl<T> Sync for StaticSlot<T> {}

impl<T> StaticSlot<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Self {
            value: UnsafeCell::new(MaybeUninit::uninit()),
            taken: AtomicBool::new(false),
        }
    }

    /// The slot, the first time; `None` after.
    #[allow(clippy::mut_from_ref)] // handed out once: the flag makes it unique
    pub fn take(&'static self) -> Option<&'static mut MaybeUninit<T>> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was clear, so this is the only reference ever made to the cell.
        Some(unsafe { &mut *self.value.get() })
    }
}

impl<T> Default for StaticSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `section` is the section `T` belongs in (used by [`config!`](crate::config!) at
/// compile time).
pub const fn section_matches<T: Config>(section: &str) -> bool {
    let (a, b) = (T::SECTION.as_bytes(), section.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Declare a config static in its named section.
///
/// ```
/// lions_os::config!(
///     /// This driver's registers and IRQs.
///     pub static RESOURCES: lions_os::DeviceResources = ".device_resources"
/// );
/// // Not written by a build here, so the magic check fails instead of yielding zeros:
/// assert!(RESOURCES.get().is_err());
/// ```
///
/// The static is a [`ConfigStatic`]: [`get`](ConfigStatic::get) reads the config,
/// [`mapped`](ConfigStatic::mapped) hands out its token once.
///
/// The section name must be the type's [`Config::SECTION`]; a mismatch fails to compile.
#[macro_export]
macro_rules! config {
    ($(#[$attr:meta])* $vis:vis static $name:ident : $ty:ty = $section:literal) => {
        $(#[$attr])*
        $vis static $name: $crate::cell::ConfigStatic<$ty> = {
            #[used]
            #[unsafe(link_section = $section)]
            static CELL: $crate::ConfigCell<$ty> = $crate::ConfigCell::zeroed();
            $crate::cell::ConfigStatic::new(&CELL)
        };
        const _: () = ::core::assert!(
            $crate::cell::section_matches::<$ty>($section),
            "config section does not match the type's Config::SECTION"
        );
    };
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::mapped::{Claim, MapError, Regions};
    use crate::{DeviceResources, sim::Region};
    use zerocopy::FromZeros;

    /// A driver's resources as a config of regions it writes (the test's: real device regions
    /// may start inside their page).
    #[derive(
        Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, zerocopy::KnownLayout,
    )]
    #[repr(transparent)]
    struct Devices(DeviceResources);

    impl Config for Devices {
        const SECTION: &'static str = ".device_resources";
        const MAGIC: &'static [u8] = DeviceResources::MAGIC;
        const NAME: &'static str = "device_resources_t";
        fn validate(&self) -> Result<(), ConfigError> {
            self.0.validate()
        }
    }

    impl Regions for Devices {
        fn claims(&self, claim: &mut dyn FnMut(Claim)) {
            for r in self.0.regions() {
                claim(Claim::rw("device region", r.region));
            }
        }
    }

    fn leak<T>(v: T) -> &'static T {
        Box::leak(Box::new(v))
    }

    #[test]
    fn a_config_static_hands_out_its_token_once_and_only_when_mapped() {
        let region = leak(Region::new(4096));
        let mut d = DeviceResources::new_zeroed();
        d.magic = *b"sDDF\x01";
        d.num_regions = 1;
        d.regions[0].region.vaddr = region.as_ptr().as_ptr() as u64;
        d.regions[0].region.size = 4096;
        let cell = leak(ConfigCell(UnsafeCell::new(MaybeUninit::new(Devices(d)))));
        let config = leak(ConfigStatic::new(cell));
        assert!(config.get().is_ok(), "reading needs no token");
        let token = config.mapped().unwrap();
        assert_eq!(token.config().0.num_regions, 1);
        assert_eq!(
            config.mapped().err(),
            Some(MapError::Taken("device_resources_t"))
        );

        // One page too long: not mapped, refused (and the token stays available).
        d.regions[0].region.size = 8192;
        let cell = leak(ConfigCell(UnsafeCell::new(MaybeUninit::new(Devices(d)))));
        let config = leak(ConfigStatic::new(cell));
        let e = config.mapped().unwrap_err();
        assert!(
            matches!(e, MapError::Unmapped(c) if c.what == "device region"),
            "{e}"
        );
        assert!(config.mapped().is_err());
        // An unwritten section: the magic check refuses it first.
        let cell = leak(ConfigCell::<Devices>::zeroed());
        let config = leak(ConfigStatic::new(cell));
        assert!(matches!(config.mapped(), Err(MapError::Config(_))));
    }
}
