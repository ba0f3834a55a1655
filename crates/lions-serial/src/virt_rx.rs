// SPDX-License-Identifier: BSD-2-Clause
//! The Rx virtualiser (`serial_virt_rx`): the driver's one input queue to the current client.
//!
//! ## Protocol
//!
//! - Input bytes go to the *current* client (initially 0). A full client queue drops the byte and
//!   counts it ([`VirtRx::drops`]).
//! - Switching input ([`SwitchMachine`]): the switch character (Ctrl-\ = 0x1c in the examples),
//!   then 1 to 4 decimal digits, then the terminate character (`\r`) makes that client current if
//!   it exists. The switch character twice passes one switch character through. Anything else
//!   (a number with no such client, a fifth digit, a terminate character without digits, any
//!   other byte) resets to normal, and the bytes of the sequence are dropped.
//! - Notifications: before switching, publish to the old client and notify it if it got bytes; at
//!   the end, the same for the current client. Notify the driver only if it asked (its queue was
//!   full and it waits for space).
//! - Misbehaving client: an impossible index marks it faulty ([`VirtRx::faulty`]); its bytes are
//!   dropped from then on, nothing panics.
//! - Restart (a component restarted with its regions intact, paper §5.2): the bytes waiting are
//!   in the queues and [`VirtRx::new`] takes them over as they are; [`VirtRx::resume`] then
//!   serves what arrived while it was down (its notifications were lost). Its private state is policy only (the client input goes to, and a switch
//!   sequence half typed): it starts afresh at the configured default client, and a half-typed
//!   switch sequence is lost.

use crate::Error;
use crate::config::SerialVirtRxConfig;
use crate::queue::{ClientQueues, SerialConsumer, SerialProducer, SerialQueueError, client_queues};
use lions_os::{Channel, ChannelSet, Handler, MAX_CLIENTS, Mapped};
use lions_queue::PushError;

/// Most digits in a client number.
pub const MAX_DIGITS: u8 = 4;

/// What to do with one input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Give this byte to the current client.
    Deliver(u8),
    /// Make this client current (already checked against the client count).
    Switch(usize),
    /// Nothing (the byte was part of, or ended, a switch sequence).
    Consume,
}

/// The input-switch state machine, free of queues (so it is tested on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchMachine {
    /// In a switch sequence: the number so far and its digits (0 right after the switch char).
    seq: Option<(u16, u8)>,
    switch: u8,
    terminate: u8,
    clients: usize,
}

impl SwitchMachine {
    /// A machine outside any switch sequence, for `clients` clients.
    pub fn new(switch: u8, terminate: u8, clients: usize) -> Self {
        Self {
            seq: None,
            switch,
            terminate,
            clients,
        }
    }

    /// Feed one byte.
    pub fn feed(&mut self, b: u8) -> Action {
        let digit = b.is_ascii_digit().then(|| u16::from(b - b'0'));
        let (next, action) = match (self.seq, digit) {
            (None, _) if b == self.switch => (Some((0, 0)), Action::Consume),
            (None, _) => (None, Action::Deliver(b)),
            (Some((_, 0)), _) if b == self.switch => (None, Action::Deliver(b)),
            (Some((v, d)), _) if b == self.terminate && d > 0 => {
                let known = Some(usize::from(v)).filter(|&c| c < self.clients);
                (None, known.map_or(Action::Consume, Action::Switch))
            }
            (Some((v, d)), Some(x)) if d < MAX_DIGITS => {
                (Some((v * 10 + x, d + 1)), Action::Consume)
            }
            _ => (None, Action::Consume),
        };
        self.seq = next;
        action
    }
}

/// The Rx virtualiser; see the module docs.
pub struct VirtRx<'a> {
    driver: SerialConsumer<'a>,
    driver_ch: Channel,
    /// The current client's queue, taken out of `clients` while it is current (`None`: faulty).
    current: Option<(SerialProducer<'a>, Channel)>,
    /// The other clients' queues.
    clients: ClientQueues<SerialProducer<'a>>,
    /// The current client's number.
    index: usize,
    machine: SwitchMachine,
    drops: u64,
    faulty: u64,
}

impl<'a> VirtRx<'a> {
    /// The virtualiser over the queues in `config`. A client whose queue already holds
    /// inconsistent indices starts out faulty; any other bad connection is an error.
    ///
    /// The token says the config's regions are mapped here for `'a` as claimed, and that this
    /// is the one component built from them.
    pub fn new(config: Mapped<'a, SerialVirtRxConfig>) -> Result<Self, SerialQueueError> {
        let config = config.config();
        let conns = config.clients();
        // SAFETY: the token: mapped here for `'a` as claimed, each shared only with its peer, and
        // this component makes the only handles on them (here and below).
        let (mut clients, faulty) =
            unsafe { client_queues(conns.iter(), SerialProducer::from_connection) }?;
        Ok(Self {
            // SAFETY: as above.
            driver: unsafe { SerialConsumer::from_connection(&config.driver) }?,
            driver_ch: config.driver.channel()?,
            current: clients[0].take(),
            clients,
            index: 0,
            machine: SwitchMachine::new(config.switch_char, config.terminate_num_char, conns.len()),
            drops: 0,
            faulty,
        })
    }

    /// Bytes dropped because the current client's queue was full (or it is faulty).
    pub fn drops(&self) -> u64 {
        self.drops
    }

    /// Clients found misbehaving (bit i = client i); their input is dropped.
    pub fn faulty(&self) -> u64 {
        self.faulty
    }

    /// Take over from a previous incarnation (a restarted component's `init`; see the module
    /// docs): serve the input that waits in the driver's queue.
    pub fn resume(&mut self) -> Result<(), Error> {
        self.notified(ChannelSet::EMPTY)
    }

    /// Phase 3 toward the current client: publish what it got and notify it if anything.
    fn flush(&mut self) -> Result<(), Error> {
        if let Some((q, ch)) = &mut self.current
            && q.publish() > 0
        {
            ch.notify()?;
        }
        Ok(())
    }

    /// The rest of `notified` (no or several characters, a switch sequence, a full or faulty
    /// client, a bad tail): out of line, so the one-character path keeps few registers.
    #[inline(never)]
    fn drain(&mut self) -> Result<(), Error> {
        self.driver.refresh()?;
        if let Some((q, _)) = &mut self.current
            && self.machine.seq.is_none()
        {
            self.driver.move_until(q, self.machine.switch);
        }
        if self.driver.avail_cached() > 0 {
            self.rx_bytes()?;
        }
        if self.driver.release() > 0 && self.driver.should_notify(true) {
            self.driver_ch.notify()?;
        }
        self.flush()
    }

    /// The input the fast path did not move (a switch sequence and what follows it, or bytes for
    /// a full or faulty client): the rest of what the driver's tail showed, byte by byte through
    /// the [`SwitchMachine`].
    #[inline(never)]
    fn rx_bytes(&mut self) -> Result<(), Error> {
        for _ in 0..self.driver.avail_cached() {
            let Some(b) = self.driver.pop()? else { break };
            match self.machine.feed(b) {
                Action::Deliver(b) => match self.current.as_mut().map(|(q, _)| q.push(b)) {
                    Some(Ok(())) => continue,
                    Some(Err(PushError::Peer(..))) => {
                        (self.current, self.faulty) = (None, self.faulty | 1 << (self.index % 64))
                    }
                    _ => {}
                },
                Action::Switch(next) => {
                    self.flush()?;
                    self.clients[self.index % MAX_CLIENTS] = self.current.take();
                    (self.current, self.index) = (self.clients[next % MAX_CLIENTS].take(), next);
                    continue;
                }
                Action::Consume => continue,
            }
            self.drops += 1;
        }
        Ok(())
    }
}

impl Handler for VirtRx<'_> {
    type Error = Error;

    /// `rx_return`: only the driver has a reason to notify; whoever did, its queue is drained (a
    /// client's notification costs one look at an empty queue). Fast path: outside a switch
    /// sequence, input goes straight from the driver's ring into the current client's up to a
    /// switch character or a full queue; the rest goes byte by byte (`rx_bytes`). Then phase 3
    /// toward the driver and the current client.
    fn notified(&mut self, _: ChannelSet) -> Result<(), Error> {
        // One character for the current client (a UART interrupt per keystroke): straight
        // through, the steps of `drain` with what they find already known. The driver's tail is
        // read once (`drain` reads it again, and reports a bad one): the driver notifies again
        // for anything it adds later.
        if self.driver.try_refresh()
            && let Some((q, ch)) = &mut self.current
            && self.machine.seq.is_none()
            && self.driver.move_one(q, self.machine.switch)
        {
            self.driver.release();
            if self.driver.should_notify(true) {
                self.driver_ch.notify()?;
            }
            q.publish();
            return Ok(ch.notify()?);
        }
        self.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SW: u8 = 0x1c;
    const CR: u8 = b'\r';

    fn run(m: &mut SwitchMachine, input: &[u8]) -> Vec<Action> {
        input.iter().map(|&b| m.feed(b)).collect()
    }

    #[test]
    fn switching() {
        let mut m = SwitchMachine::new(SW, CR, 12);
        assert_eq!(run(&mut m, b"a"), [Action::Deliver(b'a')]);
        assert_eq!(
            run(&mut m, b"\x1c11\r"),
            [
                Action::Consume,
                Action::Consume,
                Action::Consume,
                Action::Switch(11)
            ]
        );
        assert_eq!(m, SwitchMachine::new(SW, CR, 12), "back to normal");
        // Leading zeros count as digits: 0003 is client 3, 00003 is too long.
        assert_eq!(run(&mut m, b"\x1c0003\r").last(), Some(&Action::Switch(3)));
        assert_eq!(
            run(&mut m, b"\x1c00003\rx"),
            [
                Action::Consume,
                Action::Consume,
                Action::Consume,
                Action::Consume,
                Action::Consume,
                Action::Consume,
                Action::Deliver(b'\r'),
                Action::Deliver(b'x')
            ],
            "the fifth digit resets, what follows is ordinary input"
        );
        assert_eq!(
            run(&mut m, b"\x1c12\r"),
            [Action::Consume; 4],
            "no client 12 of 12"
        );
    }

    #[test]
    fn escapes_and_resets() {
        let mut m = SwitchMachine::new(SW, CR, 2);
        assert_eq!(
            run(&mut m, b"\x1c\x1c"),
            [Action::Consume, Action::Deliver(SW)],
            "doubled switch char passes one through"
        );
        assert_eq!(m, SwitchMachine::new(SW, CR, 2), "back to normal");
        assert_eq!(run(&mut m, b"\x1cq"), [Action::Consume; 2]);
        assert_eq!(run(&mut m, b"\x1c\r"), [Action::Consume; 2]);
        assert_eq!(
            run(&mut m, b"\x1c1\x1c"),
            [Action::Consume; 3],
            "a switch char inside the number resets"
        );
        assert_eq!(m, SwitchMachine::new(SW, CR, 2), "back to normal");
        assert_eq!(
            run(&mut m, b"\x1c1"),
            [Action::Consume; 2],
            "waits for the terminate char"
        );
        assert_eq!(m.feed(CR), Action::Switch(1));
    }

    #[test]
    fn odd_configs_do_not_panic() {
        // Switch char is a digit, terminate equals switch, no clients at all.
        for (sw, term, n) in [
            (b'5', b'\r', 3),
            (SW, SW, 3),
            (SW, CR, 0),
            (b'\r', b'\r', 1),
        ] {
            let mut m = SwitchMachine::new(sw, term, n);
            for b in 0..=255u8 {
                for _ in 0..6 {
                    if let Action::Switch(c) = m.feed(b) {
                        assert!(c < n);
                    }
                }
            }
        }
    }

    /// The reference: keep the bytes of an unfinished sequence and judge the whole sequence by
    /// its shape each time a byte arrives.
    fn model(input: &[u8], sw: u8, term: u8, clients: usize) -> Vec<Action> {
        let mut seq: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for &b in input {
            if seq.is_empty() {
                if b == sw {
                    seq.push(b);
                    out.push(Action::Consume);
                } else {
                    out.push(Action::Deliver(b));
                }
                continue;
            }
            seq.push(b);
            let body = &seq[1..];
            let (last, digits) = body
                .split_last()
                .map_or((None, &[][..]), |(l, d)| (Some(*l), d));
            let all_digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
            if body == [sw] {
                out.push(Action::Deliver(sw));
                seq.clear();
            } else if last == Some(term) && (1..=4).contains(&digits.len()) && all_digits(digits) {
                let n: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
                out.push(if n < clients {
                    Action::Switch(n)
                } else {
                    Action::Consume
                });
                seq.clear();
            } else if body.len() <= 4 && all_digits(body) {
                out.push(Action::Consume);
            } else {
                out.push(Action::Consume);
                seq.clear();
            }
        }
        out
    }

    /// Inputs rich in the interesting bytes.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => Just(SW),
            4 => Just(CR),
            6 => b'0'..=b'9',
            1 => any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn machine_matches_model(
            input in proptest::collection::vec(byte(), 0..64),
            clients in 0usize..=64,
        ) {
            let mut m = SwitchMachine::new(SW, CR, clients);
            prop_assert_eq!(run(&mut m, &input), model(&input, SW, CR, clients));
        }

        #[test]
        fn switch_char_is_a_digit(input in proptest::collection::vec(byte(), 0..64)) {
            // Switch '7': a digit right after it is a number, '7' twice passes one '7'.
            let mut m = SwitchMachine::new(b'7', CR, 10);
            prop_assert_eq!(run(&mut m, &input), model(&input, b'7', CR, 10));
        }
    }
}
