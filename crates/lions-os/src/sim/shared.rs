// SPDX-License-Identifier: BSD-2-Clause
//! Test helpers for building subsystems under [`Sim`](super::Sim): a handler the test keeps a
//! reference to ([`Shared`]), and [`RegionResource`]s for a simulated [`Region`].
//!
//! [`Sim::add_pd`](super::Sim::add_pd) takes its handler by value, so a test that wants to look at
//! a component while the simulator runs it (read a counter, call a method such as a virtualiser's
//! `init`, check what a driver's device model saw) puts the component in a [`RefCell`] it owns and
//! hands the simulator a [`Shared`] that borrows it. The simulator runs one handler at a time and
//! never re-enters one (a PPC goes to a strictly higher-priority PD), so the borrow is never
//! contested while the test code itself is not inside `Sim::step`.

use super::Region;
#[cfg(test)]
use crate::OsError;
use crate::RegionResource;
use crate::{Channel, ChannelSet, Child, DeviceRegionResource, Handler, MessageInfo};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

/// A [`Handler`] that runs the handler inside a [`RefCell`] the test keeps: `Shared::new(&cell)`
/// (the cell outlives the simulator) or `Shared::new(rc.clone())` (an `Rc<RefCell<H>>`, for a rig
/// that owns both the simulator and the component).
///
/// ```
/// use lions_os::sim::{Shared, Sim};
/// use lions_os::{ChannelSet, Handler};
/// use std::cell::RefCell;
///
/// #[derive(Default)]
/// struct Counter(u32);
/// impl Handler for Counter {
///     type Error = lions_os::OsError;
///     fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
///         self.0 += 1;
///         Ok(())
///     }
/// }
///
/// let counter = RefCell::new(Counter::default());
/// let mut sim = Sim::new();
/// let pd = sim.add_pd("counter", 100, false, Shared::new(&counter));
/// sim.irq(pd, 0).unwrap();
/// sim.start();
/// sim.inject_irq(pd, 0).unwrap();
/// sim.run_until_idle(10).unwrap();
/// assert_eq!(counter.borrow().0, 1);
/// ```
#[derive(Clone)]
pub struct Shared<C>(C);

impl<C> Shared<C> {
    /// Run the handler in `cell` (a `&RefCell<H>`, `Rc<RefCell<H>>`, ...) as a PD; the caller keeps
    /// its own reference.
    pub fn new(cell: C) -> Self {
        Self(cell)
    }

    /// The reference to the cell.
    pub fn cell(&self) -> &C {
        &self.0
    }
}

impl<C> fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shared(..)")
    }
}

/// Why a [`Shared`] handler failed: the inner handler's error, or the cell was already borrowed
/// (the test held a `borrow_mut` across a `Sim::step`).
#[derive(Debug)]
pub enum SharedError<E> {
    /// The inner handler's error.
    Inner(E),
    /// The cell was borrowed elsewhere when the PD was scheduled.
    Busy,
}

impl<E: fmt::Display> fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner(e) => e.fmt(f),
            Self::Busy => f.write_str("handler cell already borrowed by the test"),
        }
    }
}

impl<H: Handler, C: Deref<Target = RefCell<H>>> Shared<C> {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut H) -> Result<R, H::Error>,
    ) -> Result<R, SharedError<H::Error>> {
        let mut h = self.0.try_borrow_mut().map_err(|_| SharedError::Busy)?;
        f(&mut h).map_err(SharedError::Inner)
    }
}

impl<H: Handler, C: Deref<Target = RefCell<H>>> Handler for Shared<C> {
    type Error = SharedError<H::Error>;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.with(|h| h.notified(channels))
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        self.with(|h| h.protected(channel, msg))
    }

    fn fault(
        &mut self,
        child: Child,
        msg: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        self.with(|h| h.fault(child, msg))
    }
}

impl Region {
    /// The whole region as this (simulated) PD maps it: the [`RegionResource`] a config holds.
    pub fn resource(&self) -> RegionResource {
        self.slice(0, self.len() as u64)
    }

    /// `size` bytes at `offset` as a [`RegionResource`] (several queues or buffers carved from one
    /// region).
    ///
    /// # Panics
    /// If the slice does not lie within the region.
    pub fn slice(&self, offset: u64, size: u64) -> RegionResource {
        let end = offset.checked_add(size);
        assert!(
            end.is_some_and(|e| e <= self.len() as u64),
            "slice {offset}+{size} outside a region of {} bytes",
            self.len()
        );
        // In range: checked just above, and the region's length fits `usize`.
        #[allow(clippy::cast_possible_truncation)]
        let vaddr = self.at(offset as usize).as_ptr().expose_provenance() as u64;
        RegionResource { vaddr, size }
    }

    /// The whole region as a device region whose device-visible address is `io_addr` (the sim has
    /// no IOMMU: a device model uses the `vaddr`).
    pub fn device_resource(&self, io_addr: u64) -> DeviceRegionResource {
        DeviceRegionResource {
            region: self.resource(),
            io_addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Sim;

    struct Echo(u32);
    impl Handler for Echo {
        type Error = OsError;
        fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
            self.0 += 1;
            set.iter().try_for_each(|ch| ch.irq_ack())
        }
        fn protected(&mut self, _: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
            self.0 += 10;
            Ok(msg)
        }
    }

    #[test]
    fn the_test_keeps_the_handler() {
        let cell = RefCell::new(Echo(0));
        let mut sim = Sim::new();
        let pd = sim.add_pd("echo", 10, false, Shared::new(&cell));
        sim.irq(pd, 3).unwrap();
        sim.start();
        sim.inject_irq(pd, 3).unwrap();
        sim.run_until_idle(10).unwrap();
        assert_eq!(cell.borrow().0, 1);
        cell.borrow_mut().0 = 5;
        sim.inject_irq(pd, 3).unwrap();
        sim.run_until_idle(10).unwrap();
        assert_eq!(cell.borrow().0, 6);
        assert!(sim.faults().is_empty());
    }

    #[test]
    fn an_rc_cell_works_too() {
        let cell = std::rc::Rc::new(RefCell::new(Echo(0)));
        let mut sim = Sim::new();
        let pd = sim.add_pd("echo", 10, false, Shared::new(cell.clone()));
        sim.irq(pd, 1).unwrap();
        sim.start();
        sim.inject_irq(pd, 1).unwrap();
        sim.run_until_idle(10).unwrap();
        drop(sim);
        assert_eq!(std::rc::Rc::into_inner(cell).unwrap().into_inner().0, 1);
    }

    #[test]
    fn a_held_borrow_faults_the_pd_and_says_why() {
        let cell = RefCell::new(Echo(0));
        let mut sim = Sim::new();
        let pd = sim.add_pd("echo", 10, false, Shared::new(&cell));
        sim.irq(pd, 0).unwrap();
        sim.start();
        let held = cell.borrow_mut();
        sim.inject_irq(pd, 0).unwrap();
        sim.run_until_idle(10).unwrap();
        drop(held);
        assert!(sim.is_faulted(pd));
        let faults = sim.faults();
        assert!(
            format!("{faults:?}").contains("already borrowed"),
            "{faults:?}"
        );
    }

    #[test]
    fn region_resources_point_into_the_region() {
        let r = Region::new(3 * Region::PAGE);
        let whole = r.resource();
        assert_eq!(whole.size, 3 * Region::PAGE as u64);
        let (ptr, len) = whole.as_raw_parts().unwrap();
        assert_eq!(ptr, r.as_ptr());
        assert_eq!(len, r.len());
        let s = r.slice(4096, 100);
        assert_eq!(s.vaddr, whole.vaddr + 4096);
        assert_eq!(s.size, 100);
        let d = r.device_resource(0x8000_0000);
        assert_eq!(d.region, whole);
        assert_eq!(d.io_addr, 0x8000_0000);
    }

    #[test]
    #[should_panic(expected = "outside a region")]
    fn a_slice_past_the_end_panics() {
        let r = Region::new(1);
        let _ = r.slice(4000, 200);
    }
}
