// SPDX-License-Identifier: BSD-2-Clause
//! Channels, channel sets, children and message info: the vocabulary of a Microkit PD.

/// Highest channel index (Microkit: channels 0..=61; badge bits 62 and 63 mark faults and PPCs).
pub const MAX_CHANNEL: u8 = 61;

/// Most message registers a message can carry (seL4 `seL4_MsgMaxLength`).
pub const MAX_MESSAGE_REGISTERS: usize = 120;

/// One of this PD's channels, by the id the system description gave it in this PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    index: u8,
}

impl Channel {
    /// Channel `index`. Panics at compile time when used in a const with an index above 61; use
    /// [`Channel::try_new`] for ids that come from data.
    pub const fn new(index: u8) -> Self {
        assert!(index <= MAX_CHANNEL, "channel index above 61");
        Self { index }
    }

    /// Channel `index`, or `None` above 61.
    pub const fn try_new(index: u8) -> Option<Self> {
        if index <= MAX_CHANNEL {
            Some(Self { index })
        } else {
            None
        }
    }

    /// The id.
    pub const fn index(self) -> u8 {
        self.index
    }

    /// Signal the PD at the other end (it sees this channel's id in its own numbering).
    #[inline]
    pub fn notify(self) -> Result<(), crate::OsError> {
        crate::runtime::notify(self)
    }

    /// Signal at the end of the current event (one slot: deferring a second action performs the
    /// first at once).
    #[inline]
    pub fn deferred_notify(self) -> Result<(), crate::OsError> {
        crate::runtime::defer(crate::Deferred::Notify(self))
    }

    /// Acknowledge the IRQ delivered on this channel so the next one can arrive.
    #[inline]
    pub fn irq_ack(self) -> Result<(), crate::OsError> {
        crate::runtime::irq_ack(self)
    }

    /// Acknowledge at the end of the current event.
    #[inline]
    pub fn deferred_irq_ack(self) -> Result<(), crate::OsError> {
        crate::runtime::defer(crate::Deferred::IrqAck(self))
    }

    /// Protected procedure call into the PD at the other end; message registers carry the
    /// arguments and the results.
    pub fn pp_call(self, msg: MessageInfo) -> Result<MessageInfo, crate::OsError> {
        crate::runtime::ppcall(self, msg)
    }
}

impl core::fmt::Display for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "channel {}", self.index)
    }
}

/// A set of channels, as one notification wake-up delivers them (bit n = channel n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// From a badge word; bits above [`MAX_CHANNEL`] are dropped.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & ((1 << (MAX_CHANNEL as u64 + 1)) - 1))
    }

    /// The badge word.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether `ch` is in the set.
    pub const fn contains(self, ch: Channel) -> bool {
        self.0 & (1 << ch.index) != 0
    }

    /// The set with `ch` added.
    #[must_use]
    pub const fn with(self, ch: Channel) -> Self {
        Self(self.0 | (1 << ch.index))
    }

    /// Add `ch`.
    pub fn insert(&mut self, ch: Channel) {
        self.0 |= 1 << ch.index;
    }

    /// Whether no channel is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of channels in the set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The channels, lowest id first.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            // `trailing_zeros` of a non-zero u64 is at most 63, so it fits a u8.
            #[allow(clippy::cast_possible_truncation)]
            let i = bits.trailing_zeros() as u8;
            bits &= bits - 1;
            Some(Channel { index: i })
        })
    }
}

impl core::fmt::Display for ChannelSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{{")?;
        for (i, ch) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}", ch.index)?;
        }
        write!(f, "}}")
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<T: IntoIterator<Item = Channel>>(iter: T) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

/// A child PD, by the id the system description gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child(pub u8);

/// A message's label and the number of message registers it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct MessageInfo {
    label: u64,
    count: u8,
}

impl MessageInfo {
    /// Largest label (seL4 labels are 52 bits on 64-bit kernels).
    pub const MAX_LABEL: u64 = (1 << 52) - 1;

    /// A message; the label is truncated to 52 bits and the count capped at
    /// [`MAX_MESSAGE_REGISTERS`], as the kernel would.
    pub const fn new(label: u64, count: usize) -> Self {
        let count = if count > MAX_MESSAGE_REGISTERS {
            MAX_MESSAGE_REGISTERS
        } else {
            count
        };
        // `count <= 120` fits a u8.
        #[allow(clippy::cast_possible_truncation)]
        Self {
            label: label & Self::MAX_LABEL,
            count: count as u8,
        }
    }

    /// The label.
    pub const fn label(self) -> u64 {
        self.label
    }

    /// Number of message registers.
    pub const fn count(self) -> usize {
        self.count as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_set_ops() {
        let s: ChannelSet = [Channel::new(3), Channel::new(0), Channel::new(61)]
            .into_iter()
            .collect();
        assert_eq!(s.len(), 3);
        assert!(s.contains(Channel::new(61)) && !s.contains(Channel::new(1)));
        assert_eq!(
            s.iter().map(Channel::index).collect::<Vec<_>>(),
            vec![0, 3, 61]
        );
        assert_eq!(s.to_string(), "{0, 3, 61}");
        assert_eq!(
            ChannelSet::from_bits(u64::MAX).len(),
            62,
            "fault and PPC bits are not channels"
        );
        assert_eq!(Channel::try_new(62), None);
    }

    #[test]
    fn message_info_limits() {
        let m = MessageInfo::new(u64::MAX, 500);
        assert_eq!(m.label(), MessageInfo::MAX_LABEL);
        assert_eq!(m.count(), MAX_MESSAGE_REGISTERS);
    }
}
