// SPDX-License-Identifier: BSD-2-Clause
//! The Microkit backend and event loop against a fake kernel that records every system call and
//! plays a script of received messages.

use super::abi::{BADGE_FAULT, BADGE_PPC, Cptr, cap, encode_info};
use super::board::current::IRQ_ACK_IRQ;
use super::pd::{Kernel, MicrokitPd, PdInfo, Received, serve};
use crate::runtime::{Backend, Deferred, defer, with_backend};
use crate::*;
use std::cell::RefCell;
use std::collections::VecDeque;

/// One system call as the fake saw it (message registers as far as the message's length).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sys {
    Send(Cptr, u64),
    Call(Cptr, u64, Vec<u64>),
    Recv,
    ReplyRecv(u64, Vec<u64>),
    NbSendRecv(Cptr, u64),
}

/// A message the script delivers: badge, info word, message registers.
type Msg = (u64, u64, Vec<u64>);

/// Channel whose notification ends a test (the handler fails on it).
const END: u8 = 61;

#[derive(Default)]
struct Fake {
    log: RefCell<Vec<Sys>>,
    script: RefCell<VecDeque<Msg>>,
    call_replies: RefCell<VecDeque<(u64, Vec<u64>)>>,
    mrs: RefCell<Vec<u64>>,
}

impl Fake {
    fn new(script: Vec<Msg>) -> Self {
        Self {
            script: RefCell::new(script.into()),
            mrs: RefCell::new(vec![0; MAX_MESSAGE_REGISTERS]),
            ..Self::default()
        }
    }

    fn sent_mrs(&self, info: u64) -> Vec<u64> {
        let n = usize::try_from(info & 0x7f).unwrap();
        self.mrs.borrow()[..n].to_vec()
    }

    fn deliver(&self) -> Received {
        let (badge, info, mrs) =
            self.script
                .borrow_mut()
                .pop_front()
                .unwrap_or((1 << END, 0, vec![]));
        self.mrs.borrow_mut()[..mrs.len()].copy_from_slice(&mrs);
        Received { badge, info }
    }
}

impl Kernel for Fake {
    fn send(&self, dest: Cptr, info: u64) {
        self.log.borrow_mut().push(Sys::Send(dest, info));
    }
    fn call(&self, dest: Cptr, info: u64) -> u64 {
        let mrs = self.sent_mrs(info);
        self.log.borrow_mut().push(Sys::Call(dest, info, mrs));
        let (reply, mrs) = self
            .call_replies
            .borrow_mut()
            .pop_front()
            .unwrap_or_default();
        self.mrs.borrow_mut()[..mrs.len()].copy_from_slice(&mrs);
        reply
    }
    fn recv(&self, src: Cptr, reply: Cptr) -> Received {
        assert_eq!((src, reply), (cap::INPUT, cap::REPLY));
        self.log.borrow_mut().push(Sys::Recv);
        self.deliver()
    }
    fn reply_recv(&self, src: Cptr, info: u64, reply: Cptr) -> Received {
        assert_eq!((src, reply), (cap::INPUT, cap::REPLY));
        let mrs = self.sent_mrs(info);
        self.log.borrow_mut().push(Sys::ReplyRecv(info, mrs));
        self.deliver()
    }
    fn nb_send_recv(&self, dest: Cptr, info: u64, src: Cptr, reply: Cptr) -> Received {
        assert_eq!((src, reply), (cap::INPUT, cap::REPLY));
        self.log.borrow_mut().push(Sys::NbSendRecv(dest, info));
        self.deliver()
    }
    fn mr(&self, i: usize) -> u64 {
        self.mrs.borrow()[i]
    }
    fn set_mr(&self, i: usize, value: u64) {
        self.mrs.borrow_mut()[i] = value;
    }
}

fn bits(channels: &[u8]) -> u64 {
    channels.iter().fold(0, |m, &c| m | (1 << c))
}

fn info(name: &str, notify: &[u8], pps: &[u8], irqs: &[u8]) -> PdInfo {
    PdInfo {
        notifications: bits(notify),
        pps: bits(pps),
        irqs: bits(irqs),
        ..PdInfo::named(name)
    }
}

const IRQ_ACK: u64 = IRQ_ACK_IRQ << 12;

/// A handler that logs what it sees and does what it is told.
#[derive(Default)]
struct Probe {
    seen: Vec<String>,
    /// Deferred on every notification.
    defer: Option<Deferred>,
    /// The reply to a fault.
    fault_reply: Option<MessageInfo>,
}

impl Handler for Probe {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(Channel::new(END)) {
            return Err("end of script");
        }
        self.seen.push(format!("notified {channels}"));
        if let Some(d) = self.defer {
            defer(d).map_err(|_| "defer")?;
        }
        Ok(())
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, Self::Error> {
        let args: Vec<u64> = (0..msg.count()).map(get_mr).collect();
        self.seen.push(format!(
            "protected {} label {:#x} {args:?}",
            ch.index(),
            msg.label()
        ));
        if let Some(d) = self.defer {
            defer(d).map_err(|_| "defer")?;
        }
        set_mr(0, args.iter().sum());
        Ok(MessageInfo::new(msg.label() + 1, 1))
    }

    fn fault(
        &mut self,
        child: Child,
        msg: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        self.seen
            .push(format!("fault {} label {}", child.0, msg.label()));
        Ok(self.fault_reply)
    }
}

/// Run `pd` with `init` until the script ends: the failure that ended it, and the kernel's log.
fn run(pd: &MicrokitPd<Fake>, init: impl FnOnce() -> Probe) -> (String, Vec<Sys>) {
    let failure = serve(pd, init);
    (failure.to_string(), pd.kernel().log.borrow().clone())
}

#[test]
fn init_then_every_irq_acked_then_deferred_notify_folded_into_nb_send_recv() {
    let pd = MicrokitPd::new(Fake::new(vec![]), info("drv", &[1], &[], &[2, 5]));
    let (end, log) = run(&pd, || {
        Channel::new(1).notify().unwrap();
        Channel::new(1).deferred_notify().unwrap();
        Probe::default()
    });
    assert_eq!(
        log,
        vec![
            Sys::Send(cap::NOTIFICATION + 1, 0),
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
            Sys::Call(cap::IRQ_HANDLER + 5, IRQ_ACK, vec![]),
            Sys::NbSendRecv(cap::NOTIFICATION + 1, 0),
        ]
    );
    assert_eq!(end, "notified({61}) failed: end of script");
}

#[test]
fn passive_pd_reports_to_the_monitor_once_after_performing_its_deferred_action() {
    let mut i = info("server", &[1], &[], &[]);
    i.passive = true;
    let script = vec![(bits(&[3]), 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), i);
    let (_, log) = run(&pd, || {
        Channel::new(1).deferred_notify().unwrap();
        Probe::default()
    });
    assert_eq!(
        log,
        vec![
            Sys::Send(cap::NOTIFICATION + 1, 0),
            Sys::NbSendRecv(cap::MONITOR_EP, 0),
            Sys::Recv,
        ]
    );
}

#[test]
fn ppc_is_answered_with_reply_recv_carrying_the_reply_registers() {
    let args = vec![1, 2, 3, 4, 5, 6];
    let script = vec![(BADGE_PPC | 4, (0x50 << 12) | 6, args)];
    let pd = MicrokitPd::new(Fake::new(script), info("pong", &[], &[], &[]));
    let (end, log) = run(&pd, Probe::default);
    assert_eq!(
        log,
        vec![Sys::Recv, Sys::ReplyRecv((0x51 << 12) | 1, vec![21])]
    );
    assert_eq!(end, "notified({61}) failed: end of script");
}

#[test]
fn handler_sees_every_event_decoded() {
    let script = vec![
        (BADGE_PPC | 4, (0x50 << 12) | 6, vec![1, 2, 3, 4, 5, 6]),
        (bits(&[0, 7]), 0, vec![]),
        (0, 0, vec![]), // A receive with no badge bits: nothing to deliver.
        (BADGE_FAULT | 9, 5 << 12, vec![]),
    ];
    let pd = MicrokitPd::new(Fake::new(script), info("p", &[], &[], &[]));
    let probe = RefCell::new(Vec::new());
    with_backend(&pd, || {
        let mut h = Probe::default();
        let mut lp = microkit::EventLoop::start(&pd);
        for _ in 0..4 {
            lp.step(&mut h).unwrap();
        }
        *probe.borrow_mut() = h.seen;
    });
    assert_eq!(
        *probe.borrow(),
        vec![
            "protected 4 label 0x50 [1, 2, 3, 4, 5, 6]",
            "notified {0, 7}",
            "fault 9 label 5",
        ]
    );
}

#[test]
fn deferred_action_with_a_reply_pending_is_performed_before_reply_recv() {
    let script = vec![(BADGE_PPC | 2, 0x50 << 12, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("pong", &[3], &[], &[]));
    serve(&pd, || Probe {
        defer: Some(Deferred::Notify(Channel::new(3))),
        ..Probe::default()
    });
    assert_eq!(
        *pd.kernel().log.borrow(),
        vec![
            Sys::Recv,
            Sys::Send(cap::NOTIFICATION + 3, 0),
            Sys::ReplyRecv((0x51 << 12) | 1, vec![0]),
        ]
    );
}

#[test]
fn deferred_irq_ack_is_folded_and_a_second_deferral_performs_the_first_at_once() {
    let script = vec![(bits(&[2]), 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("drv", &[1], &[], &[2]));
    serve(&pd, Probe::default);
    with_backend(&pd, || {
        Channel::new(1).deferred_notify().unwrap();
        Channel::new(2).deferred_irq_ack().unwrap();
        let _started = microkit::EventLoop::start(&pd);
    });
    let log = pd.kernel().log.borrow().clone();
    // serve: the start-up ack, Recv (channel 2), Recv (end). Then the second installation: the
    // first deferral performed at once when the second arrived, the start-up ack, and the
    // pending IRQ ack performed when `with_backend` returned.
    assert_eq!(
        log,
        vec![
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
            Sys::Recv,
            Sys::Recv,
            Sys::Send(cap::NOTIFICATION + 1, 0),
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
        ]
    );

    // In the loop, the IRQ ack rides on the receive.
    let script = vec![(bits(&[2]), 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("drv", &[], &[], &[2]));
    serve(&pd, || Probe {
        defer: Some(Deferred::IrqAck(Channel::new(2))),
        ..Probe::default()
    });
    assert_eq!(
        *pd.kernel().log.borrow(),
        vec![
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
            Sys::Recv,
            Sys::NbSendRecv(cap::IRQ_HANDLER + 2, IRQ_ACK),
        ]
    );
}

#[test]
fn a_refused_deferred_action_is_not_sent() {
    let script = vec![(bits(&[0]), 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("c", &[], &[], &[]));
    serve(&pd, || Probe {
        defer: Some(Deferred::Notify(Channel::new(3))),
        ..Probe::default()
    });
    assert_eq!(*pd.kernel().log.borrow(), vec![Sys::Recv, Sys::Recv]);
}

#[test]
fn fault_reply_resumes_the_child_only_when_given() {
    let script = vec![(BADGE_FAULT | 1, 0, vec![]), (BADGE_FAULT | 1, 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("parent", &[], &[], &[]));
    serve(&pd, || Probe {
        fault_reply: Some(MessageInfo::new(0, 0)),
        ..Probe::default()
    });
    assert_eq!(
        *pd.kernel().log.borrow(),
        vec![
            Sys::Recv,
            Sys::ReplyRecv(0, vec![]),
            Sys::ReplyRecv(0, vec![])
        ]
    );
    let script = vec![(BADGE_FAULT | 1, 0, vec![])];
    let pd = MicrokitPd::new(Fake::new(script), info("parent", &[], &[], &[]));
    serve(&pd, Probe::default);
    assert_eq!(*pd.kernel().log.borrow(), vec![Sys::Recv, Sys::Recv]);
}

#[test]
fn rights_come_from_the_patched_masks() {
    let pd = MicrokitPd::new(Fake::new(vec![]), info("client", &[0], &[1], &[2]));
    with_backend(&pd, || {
        let refused = |r: Result<(), OsError>, op| {
            let e = r.unwrap_err();
            assert_eq!(
                (e.op, e.kind, e.pd()),
                (op, OsErrorKind::NotPermitted, "client")
            );
        };
        refused(Channel::new(1).notify(), Op::Notify);
        refused(Channel::new(0).irq_ack(), Op::IrqAck);
        refused(
            Channel::new(0).pp_call(MessageInfo::new(1, 0)).map(|_| ()),
            Op::PpCall,
        );
        assert!(
            pd.kernel().log.borrow().is_empty(),
            "nothing reached the kernel"
        );

        Channel::new(0).notify().unwrap();
        Channel::new(2).irq_ack().unwrap();
        pd.kernel()
            .call_replies
            .borrow_mut()
            .extend([((3 << 12) | 2, vec![7, 8])]);
        for i in 0..6 {
            set_mr(i, 10 + i as u64);
        }
        let reply = Channel::new(1).pp_call(MessageInfo::new(9, 6)).unwrap();
        assert_eq!((reply.label(), reply.count()), (3, 2));
        assert_eq!((get_mr(0), get_mr(1), get_mr(2)), (7, 8, 12));
        // The kernel reports a failed acknowledgement as the reply's label.
        pd.kernel()
            .call_replies
            .borrow_mut()
            .push_back((2 << 12, vec![]));
        let e = Channel::new(2).irq_ack().unwrap_err();
        assert_eq!(e.kind, OsErrorKind::Failed);
        assert_eq!(e.to_string(), "client: irq_ack on channel 2: failed");
    });
    assert_eq!(
        *pd.kernel().log.borrow(),
        vec![
            Sys::Send(cap::NOTIFICATION, 0),
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
            Sys::Call(
                cap::ENDPOINT + 1,
                encode_info(MessageInfo::new(9, 6)),
                (10..16).collect()
            ),
            Sys::Call(cap::IRQ_HANDLER + 2, IRQ_ACK, vec![]),
        ]
    );
}

#[test]
fn message_registers_are_bounded_and_names_are_cut_at_nul() {
    let pd = MicrokitPd::new(Fake::new(vec![]), PdInfo::named("serial_virt_tx"));
    pd.set_mr(MAX_MESSAGE_REGISTERS, 5);
    assert_eq!(pd.mr(MAX_MESSAGE_REGISTERS), 0);
    pd.set_mr(MAX_MESSAGE_REGISTERS - 1, 5);
    assert_eq!(pd.mr(MAX_MESSAGE_REGISTERS - 1), 5);
    assert_eq!(pd.pd_name(), "serial_virt_tx");
    assert_eq!(PdInfo::named(&"x".repeat(80)).name().len(), 64);
    let mut bad = PdInfo::named("");
    bad.name[0] = 0xff;
    assert_eq!(bad.name(), "?");
}

#[test]
fn failures_name_the_event() {
    use super::abi::Event;
    let f = |event| {
        microkit::HandlerFailure {
            event,
            error: "boom",
        }
        .to_string()
    };
    assert_eq!(
        f(Event::Ppc(Channel::new(3))),
        "protected(channel 3) failed: boom"
    );
    assert_eq!(f(Event::Fault(Child(2))), "fault(child 2) failed: boom");
    assert_eq!(
        f(Event::Notified(ChannelSet::EMPTY.with(Channel::new(4)))),
        "notified({4}) failed: boom"
    );
}
