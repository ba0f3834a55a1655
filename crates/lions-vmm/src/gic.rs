// SPDX-License-Identifier: BSD-2-Clause
//! A software GICv2 distributor, list-register bookkeeping, and the guest's virtual timer PPI.
//!
//! The guest's **CPU interface** is the hardware GIC virtual CPU interface (GICV, mapped at the
//! guest's GICC address); only the **distributor** (GICD) is emulated: every guest access to it
//! is a data abort the VMM passes to [`Gic::read`] / [`Gic::write`] with the offset in the 4 KiB
//! window.
//!
//! **State.** Interrupts 0-15 (SGIs) and 16-31 (PPIs) are **banked per vCPU** (enable, pending,
//! active, group, priority, and PPI configuration); [`NUM_SPIS`] shared interrupts from 32 have
//! one state and a target byte. Registers served: `CTLR`, `TYPER` (ITLinesNumber, CPUNumber),
//! `IIDR`, `IGROUPR`, `I[SC]ENABLER`, `I[SC]PENDR`, `I[SC]ACTIVER`, `IPRIORITYR` (byte access
//! too), `ITARGETSR` (byte access too; read-only own-CPU mask for 0-31), `ICFGR` (SGIs fixed
//! edge), `SGIR`, `[CS]PENDSGIR` (read as zero), and `PIDR2` (architecture version 2). Anything
//! else reads 0 and ignores writes.
//!
//! **Injection protocol.** A device model or passthrough IRQ calls [`Gic::inject`] (edge) or
//! [`Gic::set_level`] (level). The interrupt becomes pending in the distributor; if it is enabled
//! (and the distributor is), it joins its vCPU's **waiting queue** (a [`OVERFLOW`]-entry ring).
//! The VMM then calls [`Gic::take_lr_write`] until it returns `None`: each result names a free
//! list register of the vCPU's [`NUM_LRS`] and the interrupt to put there, which the seL4 side
//! writes with `seL4_ARM_VCPU_InjectIRQ`. The VMM keeps a **shadow** of each list register. When
//! the guest completes an interrupt, seL4 sends a **VGIC maintenance** fault naming the list
//! register: [`Gic::maintenance`] frees the shadow, clears active/pending, re-pends a level
//! interrupt whose line is still high, and says which interrupt was completed (so the VMM can
//! `irq_ack` a passthrough IRQ, or `seL4_ARM_VCPU_AckVPPI` the virtual timer); then the VMM
//! drains [`Gic::take_lr_write`] again. An interrupt enabled while pending joins the queue at
//! the enable. Guest-written values never index out of range: bad offsets, vCPU ids and INTIDs
//! are ignored or reported as [`GicError`].
//!
//! **Virtual timer.** The EL1 virtual timer is PPI [`VTIMER_PPI`] (INTID 27). seL4 masks it and
//! delivers a VPPI event when it fires; the VMM injects it with [`Gic::inject`] on the vCPU and,
//! once [`Gic::maintenance`] reports INTID 27 complete, acknowledges the VPPI.

/// Most vCPUs one guest has.
pub const MAX_VCPUS: usize = 4;
/// Shared peripheral interrupts emulated (INTIDs 32..32 + NUM_SPIS).
pub const NUM_SPIS: usize = 128;
/// All interrupts.
pub const NUM_IRQS: usize = 32 + NUM_SPIS;
/// List registers per vCPU.
pub const NUM_LRS: usize = 4;
/// Entries in a vCPU's waiting queue.
pub const OVERFLOW: usize = 64;
/// INTID of the EL1 virtual timer.
pub const VTIMER_PPI: u16 = 27;
/// Size of the distributor window.
pub const GICD_SIZE: u64 = 0x1000;

const WORDS: usize = NUM_IRQS / 32;

/// Register offsets in the distributor window.
pub mod reg {
    /// `GICD_CTLR`.
    pub const CTLR: u64 = 0x000;
    /// `GICD_TYPER`.
    pub const TYPER: u64 = 0x004;
    /// `GICD_IIDR`.
    pub const IIDR: u64 = 0x008;
    /// `GICD_IGROUPRn`.
    pub const IGROUPR: u64 = 0x080;
    /// `GICD_ISENABLERn`.
    pub const ISENABLER: u64 = 0x100;
    /// `GICD_ICENABLERn`.
    pub const ICENABLER: u64 = 0x180;
    /// `GICD_ISPENDRn`.
    pub const ISPENDR: u64 = 0x200;
    /// `GICD_ICPENDRn`.
    pub const ICPENDR: u64 = 0x280;
    /// `GICD_ISACTIVERn`.
    pub const ISACTIVER: u64 = 0x300;
    /// `GICD_ICACTIVERn`.
    pub const ICACTIVER: u64 = 0x380;
    /// `GICD_IPRIORITYRn`.
    pub const IPRIORITYR: u64 = 0x400;
    /// `GICD_ITARGETSRn`.
    pub const ITARGETSR: u64 = 0x800;
    /// `GICD_ICFGRn`.
    pub const ICFGR: u64 = 0xc00;
    /// `GICD_SGIR`.
    pub const SGIR: u64 = 0xf00;
    /// `GICD_CPENDSGIRn`.
    pub const CPENDSGIR: u64 = 0xf10;
    /// `GICD_SPENDSGIRn`.
    pub const SPENDSGIR: u64 = 0xf20;
    /// `GICD_PIDR2`.
    pub const PIDR2: u64 = 0xfe8;
}

/// A misuse the GIC refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicError {
    /// No such vCPU.
    BadVcpu(usize),
    /// No such interrupt.
    BadIrq(u16),
    /// No such list register, or it holds nothing.
    BadLr(usize),
    /// The vCPU's waiting queue is full; the interrupt stays pending in the distributor and is
    /// queued again when it is next raised or enabled.
    Overflow(u16),
}

/// A list-register write the VMM performs (`seL4_ARM_VCPU_InjectIRQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LrWrite {
    /// The vCPU.
    pub vcpu: usize,
    /// The list register.
    pub lr: usize,
    /// The INTID.
    pub irq: u16,
    /// Its priority byte.
    pub priority: u8,
    /// Its group (0 or 1).
    pub group: u8,
    /// For an SGI, the vCPU that sent it.
    pub source: u8,
}

/// The bits of one per-interrupt property: banked words for 0-31, shared for the SPIs.
#[derive(Debug, Clone, Copy)]
struct Bits {
    banked: [u32; MAX_VCPUS],
    shared: [u32; WORDS],
}

impl Bits {
    const fn new() -> Self {
        Self {
            banked: [0; MAX_VCPUS],
            shared: [0; WORDS],
        }
    }
    fn word(&mut self, vcpu: usize, n: usize) -> Option<&mut u32> {
        if n == 0 {
            self.banked.get_mut(vcpu)
        } else {
            self.shared.get_mut(n)
        }
    }
    fn get(&self, vcpu: usize, irq: usize) -> bool {
        let w = if irq < 32 {
            self.banked.get(vcpu)
        } else {
            self.shared.get(irq / 32)
        };
        w.is_some_and(|w| w >> (irq % 32) & 1 == 1)
    }
    fn set(&mut self, vcpu: usize, irq: usize, v: bool) {
        if let Some(w) = self.word(vcpu, irq / 32) {
            if v {
                *w |= 1 << (irq % 32);
            } else {
                *w &= !(1 << (irq % 32));
            }
        }
    }
}

/// Per-vCPU list-register shadows and waiting queue.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    lr: [Option<(u16, u8)>; NUM_LRS],
    queue: [(u16, u8); OVERFLOW],
    head: usize,
    len: usize,
    /// Source vCPUs of pending SGIs, a mask per SGI.
    sgi_sources: [u8; 16],
}

impl Cpu {
    const fn new() -> Self {
        Self {
            lr: [None; NUM_LRS],
            queue: [(0, 0); OVERFLOW],
            head: 0,
            len: 0,
            sgi_sources: [0; 16],
        }
    }
    fn holds(&self, irq: u16, src: u8) -> bool {
        self.lr.contains(&Some((irq, src)))
            || (0..self.len).any(|i| self.queue[(self.head + i) % OVERFLOW] == (irq, src))
    }
}

/// The emulated distributor and the list-register bookkeeping of every vCPU.
#[derive(Debug, Clone)]
pub struct Gic {
    nvcpus: usize,
    ctlr: u32,
    enabled: Bits,
    pending: Bits,
    active: Bits,
    group: Bits,
    level: Bits,
    priority_banked: [[u8; 32]; MAX_VCPUS],
    priority: [u8; NUM_SPIS],
    targets: [u8; NUM_SPIS],
    /// Two bits per interrupt; word 1 (PPIs) banked.
    cfg_banked: [u32; MAX_VCPUS],
    cfg: [u32; NUM_IRQS / 16],
    cpus: [Cpu; MAX_VCPUS],
    /// Guest accesses refused (bad offsets or widths).
    pub bad_accesses: u32,
}

/// What [`Gic::maintenance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The INTID the guest completed.
    pub irq: u16,
    /// It was re-pended: a level interrupt whose line is still high.
    pub repended: bool,
}

impl Gic {
    /// A distributor for `nvcpus` vCPUs (1..=[`MAX_VCPUS`]; out-of-range values are clamped).
    pub fn new(nvcpus: usize) -> Self {
        Self {
            nvcpus: nvcpus.clamp(1, MAX_VCPUS),
            ctlr: 0,
            enabled: Bits::new(),
            pending: Bits::new(),
            active: Bits::new(),
            group: Bits::new(),
            level: Bits::new(),
            priority_banked: [[0; 32]; MAX_VCPUS],
            priority: [0; NUM_SPIS],
            targets: [0; NUM_SPIS],
            cfg_banked: [0; MAX_VCPUS],
            // SGIs are edge-triggered (0b10 per interrupt), read-only.
            cfg: [0; NUM_IRQS / 16],
            cpus: [Cpu::new(); MAX_VCPUS],
            bad_accesses: 0,
        }
    }

    /// Number of vCPUs.
    pub fn nvcpus(&self) -> usize {
        self.nvcpus
    }

    fn check(&self, vcpu: usize, irq: u16) -> Result<usize, GicError> {
        if vcpu >= self.nvcpus {
            return Err(GicError::BadVcpu(vcpu));
        }
        let i = usize::from(irq);
        if i >= NUM_IRQS {
            return Err(GicError::BadIrq(irq));
        }
        Ok(i)
    }

    /// The vCPU an interrupt is delivered to: `vcpu` for 0-31, the lowest target for an SPI.
    fn route(&self, vcpu: usize, irq: usize) -> usize {
        if irq < 32 {
            return vcpu;
        }
        let t = self.targets[irq - 32];
        (0..self.nvcpus).find(|&c| t >> c & 1 == 1).unwrap_or(0)
    }

    fn priority_of(&self, vcpu: usize, irq: usize) -> u8 {
        if irq < 32 {
            self.priority_banked[vcpu][irq]
        } else {
            self.priority[irq - 32]
        }
    }

    /// Puts a pending, enabled interrupt in its vCPU's waiting queue.
    fn queue(&mut self, vcpu: usize, irq: usize, src: u8) -> Result<(), GicError> {
        let irq16 = u16::try_from(irq).unwrap_or(u16::MAX);
        if self.ctlr & 1 == 0 || !self.enabled.get(vcpu, irq) {
            return Ok(());
        }
        let c = &mut self.cpus[vcpu];
        if c.holds(irq16, src) {
            return Ok(());
        }
        if c.len == OVERFLOW {
            return Err(GicError::Overflow(irq16));
        }
        c.queue[(c.head + c.len) % OVERFLOW] = (irq16, src);
        c.len += 1;
        Ok(())
    }

    /// Raises edge interrupt `irq` (for an SGI or PPI, on `vcpu`; an SPI goes to its target).
    pub fn inject(&mut self, vcpu: usize, irq: u16) -> Result<(), GicError> {
        let i = self.check(vcpu, irq)?;
        let v = self.route(vcpu, i);
        if i < 16 {
            // An SGI the VMM raises counts as sent by the vCPU itself.
            self.cpus[v].sgi_sources[i] |= 1 << v;
            self.pending.set(v, i, true);
            return self.queue(v, i, u8::try_from(v).unwrap_or(0));
        }
        self.pending.set(v, i, true);
        self.queue(v, i, 0)
    }

    /// Sets the line of level interrupt `irq`: high pends it, low withdraws a pending one not
    /// yet in a list register.
    pub fn set_level(&mut self, vcpu: usize, irq: u16, high: bool) -> Result<(), GicError> {
        let i = self.check(vcpu, irq)?;
        let v = self.route(vcpu, i);
        self.level.set(v, i, high);
        if high {
            self.pending.set(v, i, true);
            return self.queue(v, i, 0);
        }
        let c = &mut self.cpus[v];
        if !c.lr.iter().flatten().any(|&(q, _)| usize::from(q) == i) {
            self.pending.set(v, i, false);
            // Drop it from the waiting queue, keeping the others in order.
            let mut kept = 0;
            for k in 0..c.len {
                let e = c.queue[(c.head + k) % OVERFLOW];
                if usize::from(e.0) != i {
                    c.queue[(c.head + kept) % OVERFLOW] = e;
                    kept += 1;
                }
            }
            c.len = kept;
        }
        Ok(())
    }

    /// The next list-register write for `vcpu`: a waiting interrupt and a free list register.
    pub fn take_lr_write(&mut self, vcpu: usize) -> Option<LrWrite> {
        if vcpu >= self.nvcpus {
            return None;
        }
        loop {
            let c = &self.cpus[vcpu];
            if c.len == 0 {
                return None;
            }
            let lr = c.lr.iter().position(Option::is_none)?;
            let (irq, src) = c.queue[c.head];
            let c = &mut self.cpus[vcpu];
            c.head = (c.head + 1) % OVERFLOW;
            c.len -= 1;
            let i = usize::from(irq);
            // Withdrawn or disabled meanwhile: skip it.
            if !self.pending.get(vcpu, i) || !self.enabled.get(vcpu, i) {
                continue;
            }
            self.cpus[vcpu].lr[lr] = Some((irq, src));
            self.active.set(vcpu, i, true);
            return Some(LrWrite {
                vcpu,
                lr,
                irq,
                priority: self.priority_of(vcpu, i),
                group: u8::from(self.group.get(vcpu, i)),
                source: src,
            });
        }
    }

    /// The guest completed the interrupt in list register `lr` of `vcpu` (a VGIC maintenance
    /// fault).
    pub fn maintenance(&mut self, vcpu: usize, lr: usize) -> Result<Completed, GicError> {
        if vcpu >= self.nvcpus {
            return Err(GicError::BadVcpu(vcpu));
        }
        let (irq, src) = self.cpus[vcpu]
            .lr
            .get_mut(lr)
            .and_then(Option::take)
            .ok_or(GicError::BadLr(lr))?;
        let i = usize::from(irq);
        self.active.set(vcpu, i, false);
        let mut repended = false;
        if i < 16 {
            let s = &mut self.cpus[vcpu].sgi_sources[i];
            *s &= !(1 << src);
            let left = *s;
            self.pending.set(vcpu, i, left != 0);
            // Requeue SGIs from other sources still pending.
            for other in 0..self.nvcpus {
                if left >> other & 1 == 1 {
                    let _ = self.queue(vcpu, i, u8::try_from(other).unwrap_or(0));
                }
            }
        } else if self.level.get(vcpu, i) {
            repended = true;
            self.pending.set(vcpu, i, true);
            let _ = self.queue(vcpu, i, 0);
        } else {
            self.pending.set(vcpu, i, false);
        }
        Ok(Completed { irq, repended })
    }

    /// Queues every pending, enabled interrupt of `vcpu` that is not queued yet (after an enable).
    fn requeue(&mut self, vcpu: usize, irqs: core::ops::Range<usize>) {
        for i in irqs {
            if i < 16 {
                let srcs = self.cpus[vcpu].sgi_sources[i];
                for s in 0..self.nvcpus {
                    if srcs >> s & 1 == 1 {
                        let _ = self.queue(vcpu, i, u8::try_from(s).unwrap_or(0));
                    }
                }
            } else if self.pending.get(vcpu, i) && self.route(vcpu, i) == vcpu {
                let _ = self.queue(vcpu, i, 0);
            }
        }
    }

    fn send_sgi(&mut self, from: usize, value: u32) {
        let sgi = usize::try_from(value & 0xf).unwrap_or(0);
        let list = (value >> 16) & 0xff;
        let targets = match (value >> 24) & 3 {
            0 => list,
            1 => !(1 << from) & 0xff,
            2 => 1 << from,
            _ => 0,
        };
        let src = u8::try_from(from).unwrap_or(0);
        for t in 0..self.nvcpus {
            if targets >> t & 1 == 1 {
                self.cpus[t].sgi_sources[sgi] |= 1 << from;
                self.pending.set(t, sgi, true);
                let _ = self.queue(t, sgi, src);
            }
        }
    }

    /// A guest read of the distributor at `offset` by `vcpu`, `bytes` wide (1 or 4).
    pub fn read(&mut self, vcpu: usize, offset: u64, bytes: usize) -> u32 {
        if vcpu >= self.nvcpus || offset >= GICD_SIZE {
            self.bad_accesses += 1;
            return 0;
        }
        let Ok(off) = usize::try_from(offset) else {
            return 0;
        };
        if matches!(offset, reg::IPRIORITYR..0x7fc | reg::ITARGETSR..0xbfc)
            && (bytes == 1 || bytes == 4)
        {
            let mut v = 0u32;
            for k in 0..bytes {
                v |= u32::from(self.byte_reg(vcpu, off + k)) << (8 * k);
            }
            return v;
        }
        if bytes != 4 || !off.is_multiple_of(4) {
            self.bad_accesses += 1;
            return 0;
        }
        let n = (off & 0x7f) / 4;
        let bits = |b: &Bits| {
            if n == 0 {
                b.banked[vcpu]
            } else {
                b.shared.get(n).copied().unwrap_or(0)
            }
        };
        match offset {
            reg::CTLR => self.ctlr,
            reg::TYPER => {
                let lines = u32::try_from(NUM_IRQS / 32 - 1).unwrap_or(0);
                let cpus = u32::try_from(self.nvcpus - 1).unwrap_or(0);
                lines | cpus << 5
            }
            // Implementer 0x43b (Arm), product 0.
            reg::IIDR => 0x43b,
            0x080..0x100 => bits(&self.group),
            0x100..0x200 => bits(&self.enabled),
            0x200..0x300 => bits(&self.pending),
            0x300..0x400 => bits(&self.active),
            0xc00..0xd00 => {
                let w = (off - 0xc00) / 4;
                match w {
                    0 => 0xaaaa_aaaa,
                    1 => self.cfg_banked[vcpu],
                    _ => self.cfg.get(w).copied().unwrap_or(0),
                }
            }
            reg::PIDR2 => 0x2b,
            _ => 0,
        }
    }

    fn byte_reg(&self, vcpu: usize, off: usize) -> u8 {
        if (0x400..0x800).contains(&off) {
            let i = off - 0x400;
            return match i {
                0..32 => self.priority_banked[vcpu][i],
                _ => self.priority.get(i - 32).copied().unwrap_or(0),
            };
        }
        let i = off - 0x800;
        match i {
            0..32 => 1 << vcpu,
            _ => self.targets.get(i - 32).copied().unwrap_or(0),
        }
    }

    /// A guest write of `value` to the distributor at `offset` by `vcpu`, `bytes` wide (1 or 4).
    /// Afterwards the VMM drains [`Gic::take_lr_write`] for each vCPU.
    pub fn write(&mut self, vcpu: usize, offset: u64, bytes: usize, value: u32) {
        if vcpu >= self.nvcpus || offset >= GICD_SIZE {
            self.bad_accesses += 1;
            return;
        }
        let Ok(off) = usize::try_from(offset) else {
            return;
        };
        if matches!(offset, reg::IPRIORITYR..0x7fc | reg::ITARGETSR..0xbfc)
            && (bytes == 1 || bytes == 4)
        {
            for k in 0..bytes {
                let b = u8::try_from(value >> (8 * k) & 0xff).unwrap_or(0);
                self.set_byte_reg(vcpu, off + k, b);
            }
            return;
        }
        if bytes != 4 || !off.is_multiple_of(4) {
            self.bad_accesses += 1;
            return;
        }
        self.write_word(vcpu, offset, off, value);
    }

    /// A checked 32-bit write to a word register (every register but priorities and targets).
    fn write_word(&mut self, vcpu: usize, offset: u64, off: usize, value: u32) {
        let n = (off & 0x7f) / 4;
        match offset {
            reg::CTLR => self.write_ctlr(value),
            0x080..0x100 => {
                if let Some(w) = self.group.word(vcpu, n) {
                    *w = value;
                }
            }
            0x100..0x180 => self.set_enable(vcpu, n, value),
            0x180..0x200 => {
                if let Some(w) = self.enabled.word(vcpu, n) {
                    *w &= !value;
                }
            }
            0x200..0x300 => self.write_pending(vcpu, n, value, offset < 0x280),
            0x300..0x380 => {
                if let Some(w) = self.active.word(vcpu, n) {
                    *w |= value;
                }
            }
            0x380..0x400 => {
                if let Some(w) = self.active.word(vcpu, n) {
                    *w &= !value;
                }
            }
            0xc00..0xd00 => match (off - 0xc00) / 4 {
                0 => {}
                1 => self.cfg_banked[vcpu] = value,
                w => {
                    if let Some(c) = self.cfg.get_mut(w) {
                        *c = value;
                    }
                }
            },
            reg::SGIR => self.send_sgi(vcpu, value),
            _ => self.bad_accesses += 1,
        }
    }

    /// `GICD_CTLR`: turning the distributor on queues what became deliverable.
    fn write_ctlr(&mut self, value: u32) {
        let was = self.ctlr & 1;
        self.ctlr = value & 3;
        if was == 0 && self.ctlr & 1 == 1 {
            for c in 0..self.nvcpus {
                self.requeue(c, 0..NUM_IRQS);
            }
        }
    }

    /// `GICD_ISENABLER<n>`: enable the set bits, then queue what became deliverable (word 0 is
    /// banked per vCPU).
    fn set_enable(&mut self, vcpu: usize, n: usize, value: u32) {
        if let Some(w) = self.enabled.word(vcpu, n) {
            *w |= value;
        }
        if n == 0 {
            self.requeue(vcpu, 0..32);
        } else if n < WORDS {
            for c in 0..self.nvcpus {
                self.requeue(c, n * 32..(n + 1) * 32);
            }
        }
    }

    /// `GICD_ISPENDR<n>` (`set`) or `GICD_ICPENDR<n>`: the set bits' SPIs and PPIs (not SGIs)
    /// become pending (and are queued) or not, on the vCPU each is routed to.
    fn write_pending(&mut self, vcpu: usize, n: usize, value: u32, set: bool) {
        let range = n * 32..(n + 1) * 32;
        for i in range.filter(|i| value >> (i % 32) & 1 == 1 && *i >= 16 && *i < NUM_IRQS) {
            let v = self.route(vcpu, i);
            self.pending.set(v, i, set);
            if set {
                let _ = self.queue(v, i, 0);
            }
        }
    }

    fn set_byte_reg(&mut self, vcpu: usize, off: usize, b: u8) {
        if (0x400..0x800).contains(&off) {
            let i = off - 0x400;
            match i {
                0..32 => self.priority_banked[vcpu][i] = b,
                _ => {
                    if let Some(p) = self.priority.get_mut(i - 32) {
                        *p = b;
                    }
                }
            }
            return;
        }
        let i = off - 0x800;
        if let Some(t) = i.checked_sub(32).and_then(|j| self.targets.get_mut(j)) {
            *t = b;
        }
    }

    /// The interrupt in list register `lr` of `vcpu`, if any (the shadow).
    pub fn lr(&self, vcpu: usize, lr: usize) -> Option<u16> {
        self.cpus
            .get(vcpu)?
            .lr
            .get(lr)
            .copied()
            .flatten()
            .map(|(i, _)| i)
    }

    /// Interrupts waiting for a list register on `vcpu`.
    pub fn waiting(&self, vcpu: usize) -> usize {
        self.cpus.get(vcpu).map_or(0, |c| c.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enabled_gic(n: usize) -> Gic {
        let mut g = Gic::new(n);
        g.write(0, reg::CTLR, 4, 1);
        g
    }

    fn enable(g: &mut Gic, vcpu: usize, irq: u16) {
        let irq = u64::from(irq);
        g.write(vcpu, reg::ISENABLER + 4 * (irq / 32), 4, 1 << (irq % 32));
    }

    #[test]
    fn identification_registers() {
        let mut g = Gic::new(2);
        assert_eq!(g.read(0, reg::TYPER, 4), 4 | 1 << 5);
        assert_eq!(g.read(0, reg::PIDR2, 4) >> 4 & 0xf, 2);
        assert_eq!(g.read(1, reg::ICFGR, 4), 0xaaaa_aaaa);
        // Own-CPU target mask for banked interrupts.
        assert_eq!(g.read(1, reg::ITARGETSR, 4), 0x0202_0202);
        assert_eq!(g.read(0, reg::ITARGETSR + 28, 1), 1);
        // Bad widths, offsets, vCPUs: counted, zero.
        assert_eq!(g.read(0, reg::TYPER, 2), 0);
        assert_eq!(g.read(0, GICD_SIZE, 4), 0);
        assert_eq!(g.read(7, reg::CTLR, 4), 0);
        assert_eq!(g.bad_accesses, 3);
    }

    #[test]
    fn banked_state_per_vcpu() {
        let mut g = enabled_gic(2);
        enable(&mut g, 0, VTIMER_PPI);
        g.write(0, reg::IPRIORITYR + 27, 1, 0xa0);
        assert_eq!(g.read(0, reg::ISENABLER, 4), 1 << 27);
        assert_eq!(g.read(1, reg::ISENABLER, 4), 0);
        assert_eq!(g.read(0, reg::IPRIORITYR + 24, 4), 0xa0 << 24);
        assert_eq!(g.read(1, reg::IPRIORITYR + 24, 4), 0);
        // SPI state is shared.
        enable(&mut g, 1, 40);
        assert_eq!(g.read(0, reg::ISENABLER + 4, 4), 1 << 8);
        g.write(1, reg::ICENABLER + 4, 4, 1 << 8);
        assert_eq!(g.read(0, reg::ISENABLER + 4, 4), 0);
    }

    #[test]
    fn timer_ppi_injection_and_maintenance() {
        let mut g = enabled_gic(1);
        // Not enabled: pending only.
        g.inject(0, VTIMER_PPI).unwrap();
        assert_eq!(g.take_lr_write(0), None);
        assert_eq!(g.read(0, reg::ISPENDR, 4), 1 << 27);
        // Enabling delivers it.
        g.write(0, reg::IPRIORITYR + 27, 1, 0x80);
        enable(&mut g, 0, VTIMER_PPI);
        let w = g.take_lr_write(0).unwrap();
        assert_eq!(
            w,
            LrWrite {
                vcpu: 0,
                lr: 0,
                irq: 27,
                priority: 0x80,
                group: 0,
                source: 0
            }
        );
        assert_eq!(g.lr(0, 0), Some(27));
        // Raised again while in the LR: merged.
        g.inject(0, VTIMER_PPI).unwrap();
        assert_eq!(g.take_lr_write(0), None);
        assert_eq!(
            g.maintenance(0, 0),
            Ok(Completed {
                irq: 27,
                repended: false
            })
        );
        assert_eq!(g.lr(0, 0), None);
        assert_eq!(g.read(0, reg::ISPENDR, 4), 0);
        assert_eq!(g.maintenance(0, 0), Err(GicError::BadLr(0)));
        assert_eq!(g.maintenance(0, 99), Err(GicError::BadLr(99)));
        assert_eq!(g.maintenance(5, 0), Err(GicError::BadVcpu(5)));
    }

    #[test]
    fn list_registers_overflow_in_order() {
        let mut g = enabled_gic(1);
        for irq in 32..32 + 10 {
            enable(&mut g, 0, irq);
            g.inject(0, irq).unwrap();
        }
        let first: std::vec::Vec<_> = core::iter::from_fn(|| g.take_lr_write(0))
            .map(|w| (w.lr, w.irq))
            .collect();
        assert_eq!(first, [(0, 32), (1, 33), (2, 34), (3, 35)]);
        assert_eq!(g.waiting(0), 6);
        // Completing LR 2 lets the next waiting one in, in order.
        assert_eq!(g.maintenance(0, 2).unwrap().irq, 34);
        assert_eq!(g.take_lr_write(0).map(|w| (w.lr, w.irq)), Some((2, 36)));
        assert_eq!(g.take_lr_write(0), None);
        // The waiting ring is bounded.
        let mut g = enabled_gic(1);
        g.write(0, reg::ISENABLER + 4, 4, u32::MAX);
        g.write(0, reg::ISENABLER + 8, 4, u32::MAX);
        g.write(0, reg::ISENABLER + 12, 4, 1);
        for irq in 32..32 + 64 {
            g.inject(0, irq).unwrap();
        }
        assert_eq!(g.inject(0, 96), Err(GicError::Overflow(96)));
        assert_eq!(g.inject(0, 2000), Err(GicError::BadIrq(2000)));
        assert_eq!(g.inject(3, 40), Err(GicError::BadVcpu(3)));
    }

    #[test]
    fn level_interrupts_repend_while_high() {
        let mut g = enabled_gic(1);
        enable(&mut g, 0, 50);
        g.set_level(0, 50, true).unwrap();
        let w = g.take_lr_write(0).unwrap();
        assert_eq!(
            g.maintenance(0, w.lr),
            Ok(Completed {
                irq: 50,
                repended: true
            })
        );
        let w = g.take_lr_write(0).unwrap();
        g.set_level(0, 50, false).unwrap();
        assert_eq!(
            g.maintenance(0, w.lr),
            Ok(Completed {
                irq: 50,
                repended: false
            })
        );
        assert_eq!(g.take_lr_write(0), None);
        // Lowered before it reached an LR: withdrawn.
        g.write(0, reg::CTLR, 4, 0);
        g.set_level(0, 50, true).unwrap();
        g.set_level(0, 50, false).unwrap();
        g.write(0, reg::CTLR, 4, 1);
        assert_eq!(g.take_lr_write(0), None);
    }

    #[test]
    fn spi_routing_and_sgis() {
        let mut g = enabled_gic(2);
        enable(&mut g, 0, 40);
        g.write(0, reg::ITARGETSR + 40, 1, 0b10);
        g.inject(0, 40).unwrap();
        assert_eq!(g.take_lr_write(0), None);
        assert_eq!(g.take_lr_write(1).map(|w| w.irq), Some(40));
        // SGI 3 from vCPU 0 to "all but self".
        enable(&mut g, 1, 3);
        g.write(0, reg::SGIR, 4, 1 << 24 | 3);
        let w = g.take_lr_write(1).unwrap();
        assert_eq!((w.irq, w.source), (3, 0));
        assert_eq!(g.take_lr_write(0), None);
        assert_eq!(g.maintenance(1, w.lr).unwrap().irq, 3);
        assert_eq!(g.read(1, reg::ISPENDR, 4) & 1 << 3, 0);
    }

    proptest! {
        /// Arbitrary guest register traffic and injections never panic, and the LR shadows only
        /// hold interrupts that are enabled.
        #[test]
        fn arbitrary_traffic(ops in proptest::collection::vec((0u8..6, any::<u16>(), any::<u32>(), 0usize..6), 1..200)) {
            let mut g = Gic::new(2);
            for (op, a, b, v) in ops {
                match op {
                    0 => { let _ = g.read(v, u64::from(a), [1, 2, 4, 8][v % 4]); }
                    1 => g.write(v, u64::from(a) & 0xfff, [1, 4][v % 2], b),
                    2 => { let _ = g.inject(v, a % 200); }
                    3 => { let _ = g.set_level(v, a % 200, b & 1 == 1); }
                    4 => { let _ = g.maintenance(v, usize::from(a % 6)); }
                    _ => while let Some(w) = g.take_lr_write(v) {
                        prop_assert!(w.lr < NUM_LRS && usize::from(w.irq) < NUM_IRQS);
                    },
                }
            }
        }
    }
}
