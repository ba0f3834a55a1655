// SPDX-License-Identifier: BSD-2-Clause
//! The entry macro: one `init` function becomes a PD for whichever backend is compiled.

/// Turn `fn init() -> impl Handler` into this program's protection domain.
///
/// With the `host` feature it becomes the `main` of a Linux process that the `lions-host` launcher
/// starts; on `target_os = "none"` it becomes a Microkit PD. The sim backend runs handlers directly
/// and needs no entry point.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        $crate::__backend_entry!($init);
    };
}

#[cfg(feature = "host")]
#[doc(hidden)]
#[macro_export]
macro_rules! __backend_entry {
    ($init:path) => {
        fn main() -> ::std::process::ExitCode {
            $crate::host::run(|| $init())
        }
    };
}

#[cfg(not(feature = "host"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __backend_entry {
    ($init:path) => {
        ::core::compile_error!(
            "lions-os has no backend for this build: enable its `host` feature (Linux), \
             or build for aarch64-unknown-none (microkit backend)"
        );
    };
}
