// SPDX-License-Identifier: BSD-2-Clause
//! The Microkit/seL4 numbers a PD works with: capability slots, system call numbers, the message
//! info word and the badge. Plain data and arithmetic, tested on the host.

use crate::channel::{Channel, ChannelSet, Child, MessageInfo};

/// A capability address (`seL4_CPtr`) in the PD's CSpace, as the Microkit tool lays it out.
pub type Cptr = u64;

/// Capability slots of a Microkit PD.
pub mod cap {
    use super::Cptr;

    /// The PD's input: its endpoint if it serves PPCs or has children, else its notification.
    pub const INPUT: Cptr = 1;
    /// The fault endpoint.
    pub const FAULT_EP: Cptr = 2;
    /// The PD's own VSpace.
    pub const VSPACE: Cptr = 3;
    /// The reply object (Recv, ReplyRecv, NBSendRecv).
    pub const REPLY: Cptr = 4;
    /// The monitor's endpoint (a passive PD reports the end of `init` there).
    pub const MONITOR_EP: Cptr = 5;
    /// Arm SMC (if the system description enables it).
    pub const ARM_SMC: Cptr = 7;
    /// Notification of the peer on channel `ch` is at `NOTIFICATION + ch`.
    pub const NOTIFICATION: Cptr = 10;
    /// Endpoint of the peer on channel `ch` (PPC) is at `ENDPOINT + ch`.
    pub const ENDPOINT: Cptr = 74;
    /// IRQ handler of channel `ch` is at `IRQ_HANDLER + ch`.
    pub const IRQ_HANDLER: Cptr = 138;
    /// TCB of child `id` is at `CHILD_TCB + id`.
    pub const CHILD_TCB: Cptr = 202;
}

// The per-channel slot ranges (channels 0..=61) do not overlap.
const _: () = {
    assert!(cap::NOTIFICATION + 61 < cap::ENDPOINT);
    assert!(cap::ENDPOINT + 61 < cap::IRQ_HANDLER);
    assert!(cap::IRQ_HANDLER + 61 < cap::CHILD_TCB);
};

/// aarch64 MCS system call numbers (`x7`).
pub mod sys {
    /// `seL4_Call`.
    pub const CALL: i64 = -1;
    /// `seL4_ReplyRecv`.
    pub const REPLY_RECV: i64 = -2;
    /// `seL4_NBSendRecv`.
    pub const NB_SEND_RECV: i64 = -3;
    /// `seL4_NBSendWait`.
    pub const NB_SEND_WAIT: i64 = -4;
    /// `seL4_Send` (and `seL4_Signal`, a Send of an empty message to a notification).
    pub const SEND: i64 = -5;
    /// `seL4_NBSend`.
    pub const NB_SEND: i64 = -6;
    /// `seL4_Recv`.
    pub const RECV: i64 = -7;
    /// `seL4_NBRecv`.
    pub const NB_RECV: i64 = -8;
    /// `seL4_Wait`.
    pub const WAIT: i64 = -9;
    /// `seL4_NBWait`.
    pub const NB_WAIT: i64 = -10;
    /// `seL4_Yield`.
    pub const YIELD: i64 = -11;
    /// `seL4_DebugPutChar` (debug kernels only).
    pub const DEBUG_PUT_CHAR: i64 = -12;
    /// `seL4_DebugHalt` (debug kernels only).
    pub const DEBUG_HALT: i64 = -14;
}

/// Badge bit of a PPC (the low 6 bits are the channel).
pub const BADGE_PPC: u64 = 1 << 63;
/// Badge bit of a child's fault (the low 8 bits are the child id).
pub const BADGE_FAULT: u64 = 1 << 62;

/// Message registers that travel in CPU registers (`x2`–`x5`); the rest live in the IPC buffer.
pub const MRS_IN_REGISTERS: usize = 4;

/// The message info word: `label << 12 | caps_unwrapped << 9 | extra_caps << 7 | length`. A PD
/// sends no capabilities, so those fields are 0.
pub const fn encode_info(msg: MessageInfo) -> u64 {
    (msg.label() << 12) | (msg.count() as u64 & 0x7f)
}

/// The label and length of a message info word the kernel delivered.
pub const fn decode_info(word: u64) -> MessageInfo {
    // The length field is 7 bits, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    MessageInfo::new(word >> 12, (word & 0x7f) as usize)
}

/// What a receive delivered, decoded from its badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A protected procedure call on a channel.
    Ppc(Channel),
    /// A fault of a child PD.
    Fault(Child),
    /// Notifications (and IRQs) on these channels.
    Notified(ChannelSet),
    /// A PPC badge naming no channel (62 or 63): never made by the Microkit tool.
    Invalid(u64),
}

/// Decode a badge as libmicrokit does: the fault bit first, then the PPC bit, else notifications.
pub const fn decode_badge(badge: u64) -> Event {
    if badge & BADGE_FAULT != 0 {
        // Masked to 8 bits.
        #[allow(clippy::cast_possible_truncation)]
        return Event::Fault(Child((badge & 0xff) as u8));
    }
    if badge & BADGE_PPC != 0 {
        // Masked to 6 bits.
        #[allow(clippy::cast_possible_truncation)]
        return match Channel::try_new((badge & 0x3f) as u8) {
            Some(ch) => Event::Ppc(ch),
            None => Event::Invalid(badge),
        };
    }
    Event::Notified(ChannelSet::from_bits(badge))
}

/// Byte offset of message register `i` in the IPC buffer (after the 8-byte tag).
pub const fn ipc_mr_offset(i: usize) -> usize {
    8 + 8 * i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_word_layout() {
        assert_eq!(encode_info(MessageInfo::new(0, 0)), 0);
        assert_eq!(encode_info(MessageInfo::new(31, 0)), 31 << 12);
        assert_eq!(encode_info(MessageInfo::new(0x50, 5)), (0x50 << 12) | 5);
        let w = encode_info(MessageInfo::new(MessageInfo::MAX_LABEL, 120));
        assert_eq!(w >> 12, MessageInfo::MAX_LABEL);
        assert_eq!(w & 0xfff, 120, "no capability bits");
        // Capability fields the kernel may set on a received word are not part of the length.
        let m = decode_info((7 << 12) | (1 << 9) | (3 << 7) | 2);
        assert_eq!((m.label(), m.count()), (7, 2));
        for (label, count) in [(0, 0), (1, 1), (0x51, 4), (1 << 40, 119)] {
            let m = MessageInfo::new(label, count);
            assert_eq!(decode_info(encode_info(m)), m);
        }
    }

    #[test]
    fn badges() {
        assert_eq!(
            decode_badge(BADGE_PPC | 5),
            Event::Ppc(Channel::new(5)),
            "PPC"
        );
        assert_eq!(decode_badge(BADGE_FAULT | 200), Event::Fault(Child(200)));
        assert_eq!(
            decode_badge(BADGE_FAULT | BADGE_PPC | 3),
            Event::Fault(Child(3)),
            "the fault bit wins, as in libmicrokit"
        );
        assert_eq!(decode_badge(BADGE_PPC | 62), Event::Invalid(BADGE_PPC | 62));
        let set = [0u8, 7, 61].into_iter().map(Channel::new).collect();
        assert_eq!(
            decode_badge((1 << 0) | (1 << 7) | (1 << 61)),
            Event::Notified(set)
        );
        assert_eq!(decode_badge(0), Event::Notified(ChannelSet::EMPTY));
    }

    #[test]
    fn slots_and_offsets() {
        assert_eq!(cap::NOTIFICATION + 61, 71);
        assert_eq!(ipc_mr_offset(0), 8);
        assert_eq!(ipc_mr_offset(4), 40);
    }
}
