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
