// SPDX-License-Identifier: BSD-2-Clause
//! The entry macro: one `init` function becomes a PD for whichever backend is compiled.

/// Turn `fn init() -> impl Handler` into this program's protection domain.
///
/// With the `host` feature it becomes the `main` of a Linux process that the `lions-host` launcher
/// starts; on `aarch64-unknown-none` it becomes a Microkit PD (`_start`, then
/// [`microkit::run`](crate::microkit)). The sim backend runs handlers directly and needs no entry
/// point. A seL4 build also needs `#![no_std]` and `#![no_main]`:
/// `#![cfg_attr(target_os = "none", no_std, no_main)]`.
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

#[cfg(lions_microkit)]
#[doc(hidden)]
#[macro_export]
macro_rules! __backend_entry {
    ($init:path) => {
        extern "C" fn __lions_os_pd_main() -> ! {
            $crate::microkit::run(|| $init())
        }

        // The ELF entry: the Microkit tool starts the PD here with SP at the top of its stack.
        // Clear the frame pointer and link register (the end of any backtrace), then Rust.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "mov x29, xzr",
                "mov x30, xzr",
                "b {main}",
                main = sym __lions_os_pd_main,
            )
        }
    };
}

#[cfg(not(any(feature = "host", lions_microkit)))]
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
