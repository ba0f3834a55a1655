// SPDX-License-Identifier: BSD-2-Clause
//! The client library as an embedded-hal `I2c` (blocking and async) inside a sim PD. Its wait
//! function plays virt and driver at once: it takes the committed transaction from the queue,
//! checks its shape, runs it against a register-file device model (write: register pointer then
//! data; read: from the pointer, auto-incrementing) and answers. Checked: the command encoding of
//! every operation sequence (kinds, 255-byte splits, `RSTART`, `STOP`), the data round trip,
//! NACK mapped to `ErrorKind::NoAcknowledge`, oversize refusals, claim and release by PPC.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use embedded_hal::i2c::{Error as _, ErrorKind, I2c as _, NoAcknowledgeSource, Operation};
use lions_i2c::client::{ClientError, I2cClient};
use lions_i2c::{
    BusReply, BusRequest, CmdFlags, Command, I2cClientConfig, I2cConnectionResource, I2cError,
    I2cResponse, I2cServerQueues,
};
use lions_os::sim::{End, Region, Sim};
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, RegionResource, get_mr};
use std::cell::RefCell;
use std::rc::Rc;

const DEV: u8 = 0x50;

/// The model: 512 registers, a pointer, and the bodies of every transaction seen.
#[derive(Default)]
struct Model {
    regs: Vec<u8>,
    ptr: usize,
    seen: Vec<Vec<(usize, u8, CmdFlags)>>,
}

/// Run every committed transaction against the model (as virt + driver would).
fn serve(q: &mut I2cServerQueues<'_>, m: &mut Model, base: u64) {
    while let Some(h) = q.requests.pop().unwrap() {
        let Ok(Command::Header { batch_len, address }) = h.decode() else {
            panic!("not a header: {h:?}");
        };
        let mut bodies = Vec::new();
        let mut error = I2cError::Ok;
        let mut first_write = true;
        for i in 0..batch_len {
            let Ok(Command::Body { ptr, len, flags }) = q.requests.pop().unwrap().unwrap().decode()
            else {
                panic!("not a body");
            };
            let off = usize::try_from(ptr - base).unwrap();
            bodies.push((off, len, flags));
            if address != DEV {
                if error == I2cError::Ok {
                    error = I2cError::Nack;
                    let _ = i;
                }
                continue;
            }
            let p = (base + off as u64) as usize as *mut u8;
            for k in 0..usize::from(len) {
                // SAFETY: the test's data region, checked by the client to hold the range.
                unsafe {
                    let b = p.add(k);
                    if flags.contains(CmdFlags::READ) {
                        *b = m.regs[m.ptr % 512];
                        m.ptr += 1;
                    } else if first_write && !flags.contains(CmdFlags::RSTART) && k == 0 {
                        m.ptr = usize::from(*b);
                    } else {
                        m.regs[m.ptr % 512] = *b;
                        m.ptr += 1;
                    }
                }
            }
            if !flags.contains(CmdFlags::READ) && len > 0 {
                first_write = false;
            }
            if flags.contains(CmdFlags::READ) {
                first_write = true;
            }
        }
        m.seen.push(bodies);
        let index = if error == I2cError::Ok { 0 } else { 1 };
        q.responses
            .push(I2cResponse::new(index, address, error))
            .unwrap();
    }
    q.requests.release();
    q.responses.publish();
}

/// The virt's PPC side: claims of any address but 0x7f succeed.
struct Virt;

impl Handler for Virt {
    type Error = core::convert::Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
    fn protected(&mut self, _: Channel, m: MessageInfo) -> Result<MessageInfo, Self::Error> {
        let ok = BusRequest::try_from(m.label()).is_ok() && get_mr(0) != 0x7f;
        let r = if ok {
            BusReply::Success
        } else {
            BusReply::Failure
        };
        Ok(MessageInfo::new(r as u64, 0))
    }
}

type Client = I2cClient<'static, Box<dyn FnMut()>>;
/// A test body: the client, and the model's serve step (for the async test's poll loop).
type Body = Box<dyn FnMut(&mut Client, &mut dyn FnMut())>;

struct ClientPd {
    client: Client,
    serve: Rc<dyn Fn()>,
    body: Rc<RefCell<Option<Body>>>,
}

impl Handler for ClientPd {
    type Error = lions_os::OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), Self::Error> {
        if set.contains(Channel::new(1)) {
            if let Some(mut f) = self.body.borrow_mut().take() {
                let serve = self.serve.clone();
                f(&mut self.client, &mut || serve());
            }
            Channel::new(1).irq_ack()?;
        }
        Ok(())
    }
}

/// Run `f` inside a client PD over a fresh world; returns the model afterwards.
fn with_client(f: impl FnMut(&mut Client, &mut dyn FnMut()) + 'static) -> Model {
    let leak = |r: Region| -> &'static Region { Box::leak(Box::new(r)) };
    let (req, resp, data) = (
        leak(Region::new(4096)),
        leak(Region::new(4096)),
        leak(Region::new(1024)),
    );
    let rr = |r: &Region, size: u64| RegionResource {
        vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
        size,
    };
    let mut cfg = <I2cClientConfig as zerocopy::FromZeros>::new_zeroed();
    cfg.magic = *b"sDDF\x04";
    cfg.virt = I2cConnectionResource {
        req_queue: rr(req, 4096),
        resp_queue: rr(resp, 4096),
        num_buffers: 254,
        id: 0,
        _pad: [0; 5],
    };
    cfg.data = rr(data, 1024);
    let cfg: &'static I2cClientConfig = Box::leak(Box::new(cfg));
    let model = Rc::new(RefCell::new(Model {
        regs: (0..512).map(|i| i as u8).collect(),
        ..Model::default()
    }));
    // SAFETY: leaked regions; one serving handle (used only from the wait function).
    let server = RefCell::new(unsafe { I2cServerQueues::from_connection(&cfg.virt) }.unwrap());
    let m = model.clone();
    let base = cfg.data.vaddr;
    let step: Rc<dyn Fn()> =
        Rc::new(move || serve(&mut server.borrow_mut(), &mut m.borrow_mut(), base));
    let s2 = step.clone();
    let wait: Box<dyn FnMut()> = Box::new(move || s2());
    let client = I2cClient::new(mapped(cfg)).unwrap().with_wait(wait);
    let mut sim = Sim::new();
    let virt = sim.add_pd("i2c_virt", 199, false, Virt);
    let body: Rc<RefCell<Option<Body>>> = Rc::new(RefCell::new(Some(Box::new(f))));
    let pd = sim.add_pd(
        "client",
        1,
        false,
        ClientPd {
            client,
            serve: step,
            body: body.clone(),
        },
    );
    sim.channel_with(End::new(pd, 0).pp(), End::new(virt, 0))
        .unwrap();
    sim.irq(pd, 1).unwrap();
    sim.inject_irq(pd, 1).unwrap();
    sim.run_until_idle(100).unwrap();
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());
    assert!(body.borrow().is_none(), "the test body did not run");
    drop(sim);
    Rc::try_unwrap(model).ok().unwrap().into_inner()
}

#[test]
fn operations_map_onto_one_transaction_and_data_round_trips() {
    let m = with_client(|c, _| {
        c.claim(DEV).unwrap();
        // write_read: register 0x10, then 4 bytes.
        let mut buf = [0u8; 4];
        c.write_read(DEV, &[0x10], &mut buf).unwrap();
        assert_eq!(buf, [0x10, 0x11, 0x12, 0x13]);
        // Write two registers at 0x20, read them back through a transaction of three operations.
        c.write(DEV, &[0x20, 0xaa, 0xbb]).unwrap();
        let mut two = [0u8; 2];
        c.transaction(
            DEV,
            &mut [
                Operation::Write(&[0x20]),
                Operation::Read(&mut two[..1]),
                Operation::Read(&mut [0u8; 0]),
            ],
        )
        .unwrap();
        assert_eq!(two[0], 0xaa);
        // A 300-byte read from 0: split at 255, the rest continues with RSTART.
        let mut big = [0u8; 300];
        c.write_read(DEV, &[0], &mut big).unwrap();
        let mut want: Vec<u8> = (0..300).map(|i| i as u8).collect();
        want[0x20..0x22].copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(big[..], want[..]);
        c.release(DEV).unwrap();
    });
    let r = CmdFlags::READ;
    let (rs, s) = (CmdFlags::RSTART, CmdFlags::STOP);
    let e = CmdFlags::empty();
    assert_eq!(m.seen[0], [(0, 1, e), (1, 4, r | s)]);
    assert_eq!(m.seen[1], [(0, 3, e | s)]);
    // The empty read merges into the one before it: no command.
    assert_eq!(m.seen[2], [(0, 1, e), (1, 1, r | s)]);
    assert_eq!(m.seen[3], [(0, 1, e), (1, 255, r), (256, 45, r | rs | s)]);
}

#[test]
fn errors_map_onto_embedded_hal_kinds() {
    with_client(|c, _| {
        assert_eq!(c.claim(0x7f), Err(ClientError::Claim));
        let e = c.write(0x51, &[1]).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::NoAcknowledge(NoAcknowledgeSource::Unknown)
        );
        assert_eq!(
            e,
            ClientError::Transaction {
                error: I2cError::Nack,
                command: 1
            }
        );
        // More than the 1 KiB data region, and more than 251 bodies.
        assert_eq!(c.write(DEV, &[0u8; 1025]), Err(ClientError::TooLarge));
        let mut ops: Vec<Operation<'_>> = (0..126)
            .flat_map(|_| [Operation::Write(&[1u8][..]), Operation::Read(&mut [])])
            .collect();
        assert_eq!(c.transaction(DEV, &mut ops), Err(ClientError::TooLarge));
        assert_eq!(
            ClientError::Transaction {
                error: I2cError::UnpermittedAddr,
                command: 0
            }
            .kind(),
            ErrorKind::Other
        );
        // The client still works.
        let mut b = [0u8; 1];
        c.write_read(DEV, &[5], &mut b).unwrap();
        assert_eq!(b, [5]);
    });
}

#[test]
fn async_transactions_complete_through_polling() {
    let m = with_client(|c, step| {
        let mut buf = [0u8; 3];
        let r = {
            let mut fut = core::pin::pin!(embedded_hal_async::i2c::I2c::write_read(
                c,
                DEV,
                &[0x40],
                &mut buf
            ));
            let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
            // The first poll submits and finds no answer (the model has not run).
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            let mut polls = 1;
            step();
            loop {
                polls += 1;
                if let core::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                    break r;
                }
                assert!(polls < 3, "never completed");
            }
        };
        r.unwrap();
        assert_eq!(buf, [0x40, 0x41, 0x42]);
    });
    assert_eq!(m.seen.len(), 1);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
