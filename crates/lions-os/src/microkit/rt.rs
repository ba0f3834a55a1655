// SPDX-License-Identifier: BSD-2-Clause
//! What makes a Rust program a Microkit PD: the symbols the Microkit tool patches, the start-up
//! path (`_start` from [`protection_domain!`](crate::protection_domain) to [`run`]), the panic
//! handler and debug printing.

use super::pd::{MicrokitPd, PdInfo, serve};
use super::sel4::{Sel4, fault_stop};
use core::cell::UnsafeCell;

// The linker script (`link/lions-os-microkit.ld`, found through the search path the build script
// adds): naming it as a verbatim, non-bundled library makes rust-lld read it as a linker script
// in every binary that links this crate, so no PD crate needs a `-T` flag of its own.
#[link(
    name = "lions-os-microkit.ld",
    kind = "static",
    modifiers = "-bundle,+verbatim"
)]
unsafe extern "C" {}

/// A static the Microkit tool overwrites in the ELF before boot. The compiler sees only the zero
/// initialiser, so every read is volatile.
#[repr(transparent)]
pub(crate) struct Patched<T>(UnsafeCell<T>);

// SAFETY: never written at run time (no API writes it); reads of immutable data are sound.
unsafe impl<T> Sync for Patched<T> {}

impl<T: Copy> Patched<T> {
    const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    fn read(&'static self) -> T {
        // SAFETY: a valid, aligned `T` for 'static, never written after load (see `Sync`).
        unsafe { self.0.get().read_volatile() }
    }
}

// The six symbols every PD must have (the tool fails without any of them). Names and sizes are
// Microkit's; `.data.microkit` is kept by the linker script and lies in the data segment.
#[allow(non_upper_case_globals)]
mod symbols {
    use super::Patched;

    /// The PD's name, NUL-padded.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_name: Patched<[u8; 64]> = Patched::new([0; 64]);
    /// 1 if the PD is passive.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_passive: Patched<u8> = Patched::new(0);
    /// Bit n: channel n is an IRQ.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_irqs: Patched<u64> = Patched::new(0);
    /// Bit n: the PD may notify channel n.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_notifications: Patched<u64> = Patched::new(0);
    /// Bit n: the PD may PPC on channel n.
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_pps: Patched<u64> = Patched::new(0);
    /// x86 I/O ports (unused on Arm, but the tool requires the symbol).
    #[unsafe(no_mangle)]
    #[unsafe(link_section = ".data.microkit")]
    pub(super) static microkit_ioports: Patched<u64> = Patched::new(0);
}

impl PdInfo {
    /// What the Microkit tool wrote into this PD's image.
    pub fn from_symbols() -> Self {
        // Read so the symbol is referenced from the code that always runs (and so linked).
        let _ioports = symbols::microkit_ioports.read();
        Self {
            name: symbols::microkit_name.read(),
            passive: symbols::microkit_passive.read() != 0,
            irqs: symbols::microkit_irqs.read(),
            notifications: symbols::microkit_notifications.read(),
            pps: symbols::microkit_pps.read(),
        }
    }
}

/// The stack a PD runs on: `N` bytes, 16-byte aligned, zero-filled at load. The
/// [`protection_domain!`](crate::protection_domain) macro declares one in `.lions_os_stack`, which
/// the linker script puts in a segment of its own above an unmapped guard page; `_start` switches
/// to it (the 8 KiB stack the Microkit tool maps by default is too small for a debug build and
/// for large handlers, and its size belongs to the program rather than the system description).
#[repr(C, align(16))]
pub struct Stack<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: only the PD's single thread touches it, and only as its stack (through SP), never
// through a Rust reference.
unsafe impl<const N: usize> Sync for Stack<N> {}

impl<const N: usize> Stack<N> {
    /// A zeroed stack.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }
}

/// This PD's name, as the system description gives it ("?" if it is not UTF-8).
pub fn pd_name() -> &'static str {
    let name: &'static [u8; 64] = {
        // SAFETY: `microkit_name` is never written after load; a shared reference to it is sound
        // for 'static. The pointer goes through `black_box` so the compiler cannot fold the zero
        // initialiser into reads through the reference.
        unsafe { &*core::hint::black_box(symbols::microkit_name.0.get()) }
    };
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len]).unwrap_or("?")
}

/// Run this program as the Microkit PD the tool described, with the handler `init` returns: what
/// [`protection_domain!`](crate::protection_domain) expands to. Never returns: when a handler
/// fails, the failure is printed (with `debug-print`) and the PD stops with a fault.
pub fn run<H: crate::Handler>(init: impl FnOnce() -> H) -> ! {
    let pd = MicrokitPd::new(Sel4, PdInfo::from_symbols());
    let failure = serve(&pd, init);
    crate::debug_println!("{}: {failure}", pd_name());
    fault_stop()
}

/// Stop this PD: a fault its fault handler sees (the monitor prints a report naming the PD).
pub fn halt() -> ! {
    fault_stop()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(loc) => crate::debug_println!("{}: panicked at {loc}: {}", pd_name(), info.message()),
        None => crate::debug_println!("{}: panicked: {}", pd_name(), info.message()),
    }
    fault_stop()
}

/// The kernel debug console as a `fmt::Write` sink.
#[cfg(feature = "debug-print")]
struct DebugConsole;

#[cfg(feature = "debug-print")]
impl core::fmt::Write for DebugConsole {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(super::sel4::debug_put_char);
        Ok(())
    }
}

/// Print to the kernel debug console (`debug-print`), or nothing.
pub fn print(args: core::fmt::Arguments<'_>, newline: bool) {
    #[cfg(feature = "debug-print")]
    {
        use core::fmt::Write as _;
        let _ = DebugConsole.write_fmt(args);
        if newline {
            let _ = DebugConsole.write_str("\n");
        }
    }
    #[cfg(not(feature = "debug-print"))]
    let _ = (args, newline);
}
