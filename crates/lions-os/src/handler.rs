// SPDX-License-Identifier: BSD-2-Clause
//! The `Handler` trait: a PD is a value that reacts to notifications, PPCs and child faults.

use crate::channel::{Channel, ChannelSet, Child, MessageInfo};

/// The event-driven body of a protection domain. Every backend calls these methods one at a time,
/// never concurrently, after the PD's `init` returned the handler.
pub trait Handler {
    /// What a failed event handler reports; the PD is then treated as faulted.
    type Error: core::fmt::Display;

    /// One or more channels were signalled (notifications coalesce: each channel appears once
    /// however many signals arrived).
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error>;

    /// A protected procedure call arrived on `channel`; the returned message is the reply.
    ///
    /// The default reports the call as unexpected: a PD that accepts PPCs must implement it.
    fn protected(
        &mut self,
        channel: Channel,
        msg: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let _ = msg;
        unexpected("protected procedure call", channel.index())
    }

    /// A child PD faulted; `Some(reply)` resumes it, `None` leaves it stopped.
    ///
    /// The default reports the fault as unexpected.
    fn fault(
        &mut self,
        child: Child,
        msg: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let _ = msg;
        unexpected("fault of child", child.0)
    }
}

/// An event the PD was not written to handle: a bug in the system description, so the PD faults.
/// A handler kept elsewhere (e.g. in a [`StaticSlot`](crate::cell::StaticSlot), built there in
/// place) serves through its reference, so `init` can return `&'static mut` instead of moving a
/// large handler onto the PD's stack.
impl<H: Handler + ?Sized> Handler for &mut H {
    type Error = H::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        (**self).notified(channels)
    }

    fn protected(
        &mut self,
        channel: Channel,
        msg: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        (**self).protected(channel, msg)
    }

    fn fault(
        &mut self,
        child: Child,
        msg: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        (**self).fault(child, msg)
    }
}

#[track_caller]
fn unexpected(what: &str, id: u8) -> ! {
    crate::runtime::with_pd_name(|pd| panic!("{pd}: unexpected {what} {id}"))
}

/// A handler that ignores notifications (for PDs that only serve or only start work in `init`).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullHandler;

impl Handler for NullHandler {
    type Error = core::convert::Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
}
