// SPDX-License-Identifier: BSD-2-Clause
//! # lions-os: the only crate that knows which OS it runs on
//!
//! A component is written once against this crate's Microkit-shaped API and runs under any backend:
//!
//! - [`Channel`] (`notify`, `irq_ack`, `pp_call`, deferred forms), [`ChannelSet`], [`MessageInfo`],
//!   message registers ([`get_mr`], [`set_mr`]), `pd_name` (a `String` with `std`, `&'static str` on seL4);
//! - the [`Handler`] trait (`notified`, `protected`, `fault`) and the [`protection_domain!`] entry
//!   macro that turns an `init` function into a PD;
//! - typed config statics in named link sections ([`config!`], [`ConfigCell`]) and the token a
//!   component is built from, handed out once per PD after its regions are checked against the
//!   PD's mappings ([`ConfigStatic::mapped`], [`Mapped`], module [`mapped`]);
//! - [`debug_println!`]: the PD's console (stdout on the host board, the kernel's debug console on
//!   seL4 with the `debug-print` feature).
//!
//! Backends: `host` (feature; a Linux process per PD), `sim` (feature; in-process, deterministic)
//! and [`microkit`] (seL4, selected by building for `aarch64-unknown-none`).
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `std` | host-side helpers (reading config blobs from files); implied by `host` and `sim` |
//! | `host` | the host board: each PD a Linux process started by `lions-host` (`lions_os::host`) |
//! | `sim` | `lions_os::sim`: every PD of a system in one process under a deterministic, seL4-priority scheduler, for tests of whole subsystems; `sim::Region` for shared memory and its [`RegionResource`]s, `sim::Shared` to keep a reference to a component the simulator runs |
//! | `debug-print` | seL4 backend: [`debug_println!`] to the kernel's debug console |
//!
//! `sim` is for tests: enable it in the test crate's dev-dependencies
//! (`lions-os = { version = "…", features = ["sim"] }`), never in a component's own dependencies.
//! The class crates build on it (for example `lions-serial`'s `sim` feature and its
//! `testkit::SerialRig`).
//!
//! A backend implements [`runtime::Backend`] and installs itself with [`runtime::with_backend`].
//! Every operation is checked against the rights the system description gave the PD; a refused one
//! returns an [`OsError`] naming the PD, the operation and the channel.
//!
//! ## Wire protocol: kernel operations
//!
//! As seL4 Microkit: a notification sets the channel's bit in the receiver's pending word, and bits
//! coalesce until the receiver runs; a PPC runs the callee's `protected` at once with the caller's
//! message registers and returns its reply registers; one deferred action (notify or IRQ ack) is
//! held per event and a second deferral performs the first immediately.
//!
//! On the host board (`host` feature) the kernel objects are shared pages and pipes, split by who
//! may write them so that rights stay unforgeable as seL4 capabilities are: per channel one page
//! (each direction's pending flag, `SLEEPING` flag, call word and message registers) and one
//! wake-up pipe per direction (write end to the sender, read end to the receiver), held only by
//! the channel's two ends; per PD a stats page; and a board
//! table of every PD's lifecycle state that only the launcher can write (sealed; PDs map it
//! read-only). A receiver reads a channel's flag as that channel's bit only when the peer holds the
//! notify right, and serves a call only when the peer holds the PPC right; a sender writes the
//! pipe only when the receiver announced its sleep. Layout version 3, documented in
//! `host::control`; the start-up manifest in `host::manifest`.
//!
//! ## Wire protocol: configuration blobs
//!
//! A system's metaprogram (`sdfgen`) writes one binary blob per component and subsystem; the build
//! writes each blob into a named ELF section of the component (`.device_resources`,
//! `.serial_client_config`, ...), so the component finds its configuration in a static at start-up.
//! Blobs are the C structs, little-endian, natural alignment, LP64 (pointers are 8 bytes):
//!
//! - Every sDDF config starts with a 5-byte magic `"sDDF"` + class byte ([`ConfigClass`]); LionsOS
//!   configs start with the 8-byte `"LionsOS"` + a kind byte. A component checks it before using
//!   anything else ([`Config::check`]).
//! - A region is `{vaddr: u64, size: u64}` ([`RegionResource`], 16 B); a device region adds the
//!   device-visible address (`io_addr`, [`DeviceRegionResource`], 24 B).
//! - `.device_resources` ([`DeviceResources`], 1608 B): magic, `num_regions`, `num_irqs`, 64 device
//!   regions, 64 IRQ channel ids.
//! - Fixed arrays hold up to [`MAX_CLIENTS`] entries; the count fields say how many are real, and are
//!   checked against the array length before any access.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

mod builders;
pub mod cell;
mod channel;
pub mod config;
mod entry;
mod error;
mod handler;
#[cfg(feature = "heap")]
pub mod heap;
#[cfg(feature = "host")]
pub mod host;
pub mod mapped;
pub mod microkit;
pub mod runtime;
#[cfg(feature = "sim")]
pub mod sim;

pub use cell::{ConfigCell, ConfigStatic};
pub use channel::{Channel, ChannelSet, Child, MAX_CHANNEL, MAX_MESSAGE_REGISTERS, MessageInfo};
pub use error::{Op, OsError, OsErrorKind};
pub use handler::{Handler, NullHandler};
pub use mapped::{Access, Claim, MapError, Mapped, Regions};
pub use runtime::{Deferred, get_mr, relax, set_mr};

pub use config::{
    Config, ConfigClass, ConfigError, DeviceIrqResource, DeviceRegionResource, DeviceResources,
    LIONSOS_MAGIC_PREFIX, MAX_CLIENTS, RegionResource, SDDF_MAGIC_PREFIX, check_count, sddf_magic,
};

/// This PD's name ("?" when not running as a PD).
#[cfg(any(test, feature = "std"))]
pub fn pd_name() -> std::string::String {
    runtime::with_pd_name(|name| std::string::String::from(name))
}

#[cfg(lions_microkit)]
pub use microkit::pd_name;

#[cfg(all(lions_microkit, feature = "std"))]
compile_error!(
    "lions-os: the `std`, `host` and `sim` features do not exist on aarch64-unknown-none, where \
     the microkit backend runs (enable them only for Linux targets)"
);

/// Print to the PD's console, without a newline: on the host board and the sim backend, the
/// process's stdout (as `print!`); on seL4, the kernel's debug console with the `debug-print`
/// feature, otherwise nothing (the arguments are still type-checked).
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {
        $crate::__debug_print(::core::format_args!($($arg)*), false)
    };
}

/// [`debug_print!`] with a newline (as `println!`).
#[macro_export]
macro_rules! debug_println {
    () => {
        $crate::__debug_print(::core::format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::__debug_print(::core::format_args!($($arg)*), true)
    };
}

/// How many times this PD was restarted before this run (0 at its first start): a component
/// whose policy-independent state lives in shared memory rebuilds it from there instead of
/// initialising it when this is above 0 (component restart, paper §5.2). On the host board the
/// launcher says so (`lions-host --restart`, or a live swap); elsewhere (seL4 without a restarting
/// monitor, the sim backend, where the test builds the restarted component itself) it is 0.
pub fn incarnation() -> u32 {
    #[cfg(feature = "host")]
    {
        std::env::var(host::manifest::INCARNATION_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    #[cfg(not(feature = "host"))]
    0
}

/// End this PD as one that could not start (a missing config section, a region that is not
/// mapped, a device that does not answer), with the reason. On the host board: the reason on
/// stderr after the PD's name, then the exit status the launcher reports as a start-up failure
/// (`host::EXIT_STARTUP`; such a PD is not restarted). Elsewhere (seL4, the sim backend): a panic
/// with the reason, which the PD's panic handler reports with its name; on seL4 the monitor then
/// reports the fault.
pub fn startup_failed(what: impl core::fmt::Display) -> ! {
    #[cfg(feature = "host")]
    {
        std::eprintln!("{}: cannot start: {what}", pd_name());
        std::process::exit(i32::from(host::EXIT_STARTUP));
    }
    #[cfg(not(feature = "host"))]
    panic!("cannot start: {what}");
}

#[doc(hidden)]
pub fn __debug_print(args: core::fmt::Arguments<'_>, newline: bool) {
    #[cfg(any(test, feature = "std"))]
    if newline {
        std::println!("{args}");
    } else {
        std::print!("{args}");
    }
    #[cfg(lions_microkit)]
    microkit::print(args, newline);
    #[cfg(not(any(test, feature = "std", lions_microkit)))]
    let _ = (args, newline);
}

#[cfg(test)]
mod tests;
