// SPDX-License-Identifier: BSD-2-Clause
//! The entry macro: one `init` function becomes a PD for whichever backend is compiled.

/// Turn `fn init() -> impl Handler` into this program's protection domain.
///
/// With the `host` feature it becomes the `main` of a Linux process that the `lions-host` launcher
/// starts; on `aarch64-unknown-none` it becomes a Microkit PD (`_start`, then
/// [`microkit::run`](crate::microkit)). The sim backend runs handlers directly and needs no entry
/// point. A seL4 build also needs `#![no_std]` and `#![no_main]`:
/// `#![cfg_attr(target_os = "none", no_std, no_main)]`.
///
/// `protection_domain!(init, stack_size = BYTES)` sets the size of the PD's stack on seL4 (default
/// [`microkit::DEFAULT_STACK_SIZE`](crate::microkit::DEFAULT_STACK_SIZE), above an unmapped guard
/// page); other backends ignore it.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        $crate::__backend_entry!($init, $crate::microkit::DEFAULT_STACK_SIZE);
    };
    ($init:path, stack_size = $size:expr) => {
        $crate::__backend_entry!($init, $size);
    };
}

#[cfg(feature = "host")]
#[doc(hidden)]
#[macro_export]
macro_rules! __backend_entry {
    ($init:path, $stack_size:expr) => {
        // The stack is the host process's own.
        const _: usize = $stack_size;

        fn main() -> ::std::process::ExitCode {
            $crate::host::run(|| $init())
        }
    };
}

#[cfg(lions_microkit)]
#[doc(hidden)]
#[macro_export]
macro_rules! __backend_entry {
    ($init:path, $stack_size:expr) => {
        // The PD's stack, in the section the linker script places above a guard page.
        #[used]
        #[unsafe(link_section = ".lions_os_stack")]
        static __LIONS_OS_STACK: $crate::microkit::Stack<{ $stack_size }> =
            $crate::microkit::Stack::new();

        extern "C" fn __lions_os_pd_main() -> ! {
            $crate::microkit::run(|| $init())
        }

        // The ELF entry, where the Microkit tool starts the PD: switch to our stack (its top is
        // `__lions_os_stack_top` from the linker script), clear the frame pointer and link
        // register (the end of any backtrace), then Rust.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "adrp x9, __lions_os_stack_top",
                "add x9, x9, :lo12:__lions_os_stack_top",
                "mov sp, x9",
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
    ($init:path, $stack_size:expr) => {
        ::core::compile_error!(
            "lions-os has no backend for this build: enable its `host` feature (Linux), \
             or build for aarch64-unknown-none (microkit backend)"
        );
    };
}
