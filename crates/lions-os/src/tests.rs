// SPDX-License-Identifier: BSD-2-Clause
//! Runtime dispatch, deferred-action and config-cell tests against a recording backend.

use crate::runtime::{Backend, defer, take_deferred, try_with_backend, with_backend};
use crate::*;
use std::cell::RefCell;

#[derive(Default)]
struct Recorder {
    name: &'static str,
    allowed: ChannelSet,
    log: RefCell<Vec<String>>,
    mrs: RefCell<[u64; 4]>,
    failed: RefCell<Vec<String>>,
}

impl Backend for Recorder {
    fn pd_name(&self) -> &str {
        self.name
    }
    fn deferred_failed(&self, error: OsError) {
        self.failed.borrow_mut().push(error.to_string());
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        if !self.allowed.contains(ch) {
            return Err(OsError::new(
                self.name,
                Op::Notify,
                Some(ch),
                OsErrorKind::NotPermitted,
            ));
        }
        self.log.borrow_mut().push(format!("notify {}", ch.index()));
        Ok(())
    }
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        self.log.borrow_mut().push(format!("ack {}", ch.index()));
        Ok(())
    }
    fn ppcall(&self, ch: Channel, msg: MessageInfo) -> Result<MessageInfo, OsError> {
        let mr0 = self.mr(0);
        self.log.borrow_mut().push(format!(
            "ppc {} label {} mr0 {mr0}",
            ch.index(),
            msg.label()
        ));
        self.set_mr(0, mr0 * 2);
        Ok(MessageInfo::new(7, 1))
    }
    fn mr(&self, i: usize) -> u64 {
        self.mrs.borrow().get(i).copied().unwrap_or(0)
    }
    fn set_mr(&self, i: usize, value: u64) {
        if let Some(m) = self.mrs.borrow_mut().get_mut(i) {
            *m = value;
        }
    }
}

fn rec(name: &'static str, allowed: &[u8]) -> Recorder {
    Recorder {
        name,
        allowed: allowed.iter().map(|&i| Channel::new(i)).collect(),
        ..Default::default()
    }
}

#[test]
fn operations_reach_the_installed_backend_and_are_checked() {
    let r = rec("client0", &[1]);
    with_backend(&r, || {
        Channel::new(1).notify().unwrap();
        let e = Channel::new(5).notify().unwrap_err();
        assert_eq!(
            e.to_string(),
            "client0: notify on channel 5: not permitted by the system description"
        );
        set_mr(0, 21);
        let reply = Channel::new(2).pp_call(MessageInfo::new(3, 1)).unwrap();
        assert_eq!((reply.label(), get_mr(0)), (7, 42));
        assert_eq!(pd_name(), "client0");
    });
    assert_eq!(*r.log.borrow(), ["notify 1", "ppc 2 label 3 mr0 21"]);
    let e = Channel::new(1).notify().unwrap_err();
    assert_eq!(
        e.kind,
        OsErrorKind::NoBackend,
        "outside a PD nothing is sent"
    );
}

#[test]
fn one_deferred_slot_second_deferral_sends_the_first() {
    let r = rec("virt", &[1, 2, 3]);
    with_backend(&r, || {
        Channel::new(1).deferred_notify().unwrap();
        assert!(r.log.borrow().is_empty(), "deferred, not sent");
        Channel::new(2).deferred_irq_ack().unwrap();
        assert_eq!(
            *r.log.borrow(),
            ["notify 1"],
            "the second deferral performs the first at once"
        );
        assert_eq!(take_deferred(), Some(Deferred::IrqAck(Channel::new(2))));
        assert_eq!(take_deferred(), None);
        defer(Deferred::Notify(Channel::new(3))).unwrap();
    });
    assert_eq!(
        *r.log.borrow(),
        ["notify 1", "notify 3"],
        "left-over deferral is performed at the end"
    );
}

#[test]
fn nested_backends_keep_their_own_slot() {
    let outer = rec("caller", &[1]);
    let inner = rec("server", &[4]);
    with_backend(&outer, || {
        Channel::new(1).deferred_notify().unwrap();
        with_backend(&inner, || {
            assert_eq!(pd_name(), "server");
            assert_eq!(
                take_deferred(),
                None,
                "the caller's deferral is not visible to the callee"
            );
            Channel::new(4).deferred_notify().unwrap();
        });
        assert_eq!(pd_name(), "caller");
        assert_eq!(take_deferred(), Some(Deferred::Notify(Channel::new(1))));
    });
    assert_eq!(*inner.log.borrow(), ["notify 4"]);
    assert!(outer.log.borrow().is_empty());
}

/// A deferred action that fails after the closure returned (no event loop to report to) is not
/// dropped: `with_backend` hands it to the backend, `try_with_backend` returns it.
#[test]
fn a_deferred_action_failing_outside_an_event_loop_is_reported() {
    let r = rec("a", &[]);
    with_backend(&r, || Channel::new(5).deferred_notify().unwrap());
    assert_eq!(r.failed.borrow().len(), 1, "reported to the backend");
    assert!(r.failed.borrow()[0].contains("notify"), "{:?}", r.failed);
    let ((), out) = try_with_backend(&r, || Channel::new(5).deferred_notify().unwrap());
    assert_eq!(out.unwrap_err().kind, OsErrorKind::NotPermitted);
    assert_eq!(r.failed.borrow().len(), 1, "returned, not reported twice");
    let ((), out) = try_with_backend(&r, || {});
    assert!(out.is_ok(), "nothing deferred");
}

#[test]
fn backend_is_restored_when_a_handler_panics() {
    let r = rec("a", &[]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        with_backend(&r, || panic!("boom"));
    }));
    assert!(caught.is_err());
    assert_eq!(pd_name(), "?");
}

#[test]
fn unexpected_ppc_faults_with_the_pd_named() {
    let r = rec("timer_client", &[]);
    let msg = with_backend(&r, || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = NullHandler.protected(Channel::new(9), MessageInfo::default());
        }))
    })
    .unwrap_err();
    let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert_eq!(text, "timer_client: unexpected protected procedure call 9");
}

crate::config!(static RESOURCES: DeviceResources = ".device_resources");

#[test]
fn unwritten_config_section_is_an_error() {
    assert_eq!(
        RESOURCES.get().err(),
        Some(ConfigError::BadMagic {
            config: "device_resources_t"
        })
    );
}
