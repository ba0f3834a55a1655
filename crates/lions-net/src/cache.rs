// SPDX-License-Identifier: BSD-2-Clause
//! Cache maintenance for DMA buffers: the hook the virtualisers call, a no-op for DMA-coherent
//! platforms and the AArch64 implementation.
//!
//! Where it is called (as in sDDF 0.7):
//!
//! - the **Rx virtualiser** cleans and invalidates `[buffer, buffer + len)` of every frame the
//!   driver returns, *before* it reads the destination MAC: lines the CPU may hold from before the
//!   device wrote the buffer are dropped (EL0 cannot invalidate without cleaning; the Rx DMA region
//!   is mapped read-only everywhere else, so no dirty line can exist to be written back over the
//!   frame);
//! - the **Tx virtualiser** cleans `[buffer, buffer + len)` of every valid frame *before* it hands
//!   it to the driver, so the device reads what the client wrote.
//!
//! The driver and the copiers do no cache maintenance.

use crate::region::Span;

/// Cache maintenance over spans of DMA buffers. Each operation completes before it returns.
pub trait CacheOps {
    /// Write dirty lines of `span` back to memory (before a device reads it).
    fn clean(&self, span: Span<'_>);
    /// Write back and invalidate the lines of `span` (after a device wrote it, before the CPU
    /// reads it).
    fn clean_invalidate(&self, span: Span<'_>);
}

/// DMA-coherent platforms (the host board, QEMU's virtio devices): nothing to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coherent;

impl CacheOps for Coherent {
    fn clean(&self, _: Span<'_>) {}
    fn clean_invalidate(&self, _: Span<'_>) {}
}

/// The default for this target: `Aarch64Cache` on bare-metal AArch64 (seL4 boards; correct, if
/// redundant, on coherent ones), [`Coherent`] everywhere else.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub type PlatformCache = Aarch64Cache;
/// The default for this target: `Aarch64Cache` on bare-metal AArch64 (seL4 boards; correct, if
/// redundant, on coherent ones), [`Coherent`] everywhere else.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub type PlatformCache = Coherent;

/// AArch64 data-cache maintenance by virtual address from EL0: `DC CVAC` (clean) and `DC CIVAC`
/// (clean and invalidate) for every line the span touches, then `DSB SY`. On seL4 this needs the
/// kernel built with `AARCH64_USER_CACHE_ENABLE` (EL0 access to `CTR_EL0` and `DC` by VA); Linux
/// allows both.
#[cfg(target_arch = "aarch64")]
#[derive(Debug, Clone, Copy)]
pub struct Aarch64Cache {
    /// The smallest data-cache line in the system, in bytes (a power of two).
    line: usize,
}

#[cfg(target_arch = "aarch64")]
impl Default for Aarch64Cache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "aarch64")]
impl Aarch64Cache {
    /// Line size from `CTR_EL0.DminLine` (log2 of the smallest data-cache line, in words).
    pub fn new() -> Self {
        let ctr: u64;
        // SAFETY: reads a system register that EL0 may read (see the type's docs); no memory
        // access.
        unsafe {
            core::arch::asm!(
                "mrs {}, ctr_el0",
                out(reg) ctr,
                options(nomem, nostack, preserves_flags)
            )
        };
        Self::with_line_size(4 << ((ctr >> 16) & 0xf))
    }

    /// A fixed line size (rounded up to a power of two, at least 4 bytes). Stepping by a size
    /// smaller than the real line is correct, only slower; a larger one misses lines.
    pub const fn with_line_size(bytes: usize) -> Self {
        let line = if bytes < 4 {
            4
        } else {
            bytes.next_power_of_two()
        };
        Self { line }
    }

    /// Every line address `span` touches.
    fn lines(&self, span: Span<'_>) -> impl Iterator<Item = usize> {
        let start = span.addr() & !(self.line - 1);
        (start..span.addr() + usize::from(span.len())).step_by(self.line)
    }
}

#[cfg(target_arch = "aarch64")]
impl CacheOps for Aarch64Cache {
    fn clean(&self, span: Span<'_>) {
        for line in self.lines(span) {
            // SAFETY: the line belongs to a mapped buffer (a `Span` exists only for mapped memory);
            // cleaning writes back data without changing it.
            unsafe {
                core::arch::asm!("dc cvac, {}", in(reg) line, options(nostack, preserves_flags))
            };
        }
        // SAFETY: a barrier; completes the cleans before anything that follows (the enqueue).
        unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
    }

    fn clean_invalidate(&self, span: Span<'_>) {
        for line in self.lines(span) {
            // SAFETY: as in `clean`; the line is written back before it is dropped, so no data of
            // ours is lost.
            unsafe {
                core::arch::asm!("dc civac, {}", in(reg) line, options(nostack, preserves_flags))
            };
        }
        // SAFETY: a barrier; completes the maintenance before the frame is read.
        unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
    }
}
