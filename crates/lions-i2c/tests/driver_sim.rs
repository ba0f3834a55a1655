// SPDX-License-Identifier: BSD-2-Clause
//! The generic I²C driver loop on the sim backend over a recording device model: the bus
//! sequence of each command kind (segments, repeated starts, `RSTART` continuations, `WRRD`,
//! `STOP`), devices that finish at once or from their IRQ and move a few bytes per call, NACK and
//! timeout with the failing command's index, and recovery for the next transaction.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_i2c::{
    BusError, CmdFlags, DataAccess, I2cClientQueues, I2cCmd, I2cConnectionResource, I2cDevice,
    I2cDriver, I2cDriverConfig, I2cError, Progress, Step,
};
use lions_os::sim::{PdId, Region, Sim};
use lions_os::{Channel, ChannelSet, Handler, OsError, RegionResource};
use std::cell::RefCell;
use zerocopy::FromZeros;

const D_IRQ: u8 = 0;
const D_VIRT: u8 = 1;
const V_DRIVER: u8 = 0;
const V_CMD: u8 = 1;
const BASE: u64 = 0x1000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Start,
    RStart,
    Addr(u8, bool),
    Write(Vec<u8>),
    Read(usize, bool),
    Stop,
    Halt,
}

#[derive(Default)]
struct Bus {
    log: Vec<Op>,
    /// Every call is left pending until the IRQ.
    irq_mode: bool,
    /// At most this many bytes per call (0: all).
    chunk: usize,
    nack: Option<u8>,
    /// The IRQ that finishes this call number (counted from 1) reports a timeout.
    timeout_at: Option<usize>,
    calls: usize,
    /// What the pending call will do at the IRQ.
    pending: Option<Op>,
    /// Next byte a read returns.
    next: u8,
}

struct Dev<'a>(&'a RefCell<Bus>);

impl Dev<'_> {
    fn op(&mut self, op: Op) -> Step {
        let mut b = self.0.borrow_mut();
        b.calls += 1;
        let n = match &op {
            Op::Write(d) => d.len(),
            Op::Read(n, _) => *n,
            _ => 0,
        };
        let nack = matches!(op, Op::Addr(a, _) if Some(a) == b.nack);
        b.log.push(op.clone());
        if b.irq_mode {
            b.pending = Some(op);
            return Ok(Progress::Pending);
        }
        if nack {
            return Err(BusError::Nack);
        }
        Ok(Progress::Done(n))
    }
}

impl I2cDevice for Dev<'_> {
    fn start(&mut self) -> Step {
        self.op(Op::Start)
    }
    fn repeated_start(&mut self) -> Step {
        self.op(Op::RStart)
    }
    fn address(&mut self, a: u8, read: bool) -> Step {
        self.op(Op::Addr(a, read))
    }
    fn write(&mut self, data: &[u8]) -> Step {
        let chunk = self.0.borrow().chunk;
        let n = if chunk == 0 {
            data.len()
        } else {
            data.len().min(chunk)
        };
        self.op(Op::Write(data[..n].to_vec()))
    }
    fn read(&mut self, buf: &mut [u8], last: bool) -> Step {
        let chunk = self.0.borrow().chunk;
        let n = if chunk == 0 {
            buf.len()
        } else {
            buf.len().min(chunk)
        };
        let step = self.op(Op::Read(n, last && n == buf.len()))?;
        if step != Progress::Pending {
            let mut b = self.0.borrow_mut();
            for x in &mut buf[..n] {
                *x = b.next;
                b.next = b.next.wrapping_add(1);
            }
        }
        Ok(step)
    }
    fn stop(&mut self) -> Step {
        self.op(Op::Stop)
    }
    fn irq(&mut self, buf: &mut [u8]) -> Step {
        let mut b = self.0.borrow_mut();
        let op = b.pending.take().expect("IRQ without a pending call");
        if b.timeout_at == Some(b.calls) {
            return Err(BusError::Timeout);
        }
        match op {
            Op::Addr(a, _) if Some(a) == b.nack => Err(BusError::Nack),
            Op::Write(d) => Ok(Progress::Done(d.len())),
            Op::Read(n, _) => {
                for x in &mut buf[..n] {
                    *x = b.next;
                    b.next = b.next.wrapping_add(1);
                }
                Ok(Progress::Done(n))
            }
            _ => Ok(Progress::Done(0)),
        }
    }
    fn halt(&mut self) {
        self.0.borrow_mut().log.push(Op::Halt);
    }
}

/// The client data, at `BASE` in the driver's address space.
struct Mem<'a>(&'a RefCell<Vec<u8>>);

impl DataAccess for Mem<'_> {
    fn bytes(&mut self, ptr: u64, len: usize) -> Option<&mut [u8]> {
        let off = usize::try_from(ptr.checked_sub(BASE)?).ok()?;
        let v = self.0.as_ptr();
        // SAFETY: the test touches the buffer only between sim runs; the slice lives for one call.
        unsafe { (&mut *v).get_mut(off..off.checked_add(len)?) }
    }
}

struct World {
    req: Region,
    resp: Region,
    config: I2cDriverConfig,
    bus: RefCell<Bus>,
    mem: RefCell<Vec<u8>>,
    script: RefCell<Vec<Vec<I2cCmd>>>,
    responses: RefCell<Vec<(u64, u8, I2cError)>>,
}

impl World {
    fn new() -> Self {
        let (req, resp) = (Region::new(4096), Region::new(4096));
        let r = |r: &Region| RegionResource {
            vaddr: r.as_ptr().as_ptr().expose_provenance() as u64,
            size: 4096,
        };
        let mut config = I2cDriverConfig::new_zeroed();
        config.magic = *b"sDDF\x04";
        config.virt = I2cConnectionResource {
            req_queue: r(&req),
            resp_queue: r(&resp),
            num_buffers: 254,
            id: D_VIRT,
            _pad: [0; 5],
        };
        Self {
            req,
            resp,
            config,
            bus: RefCell::default(),
            mem: RefCell::new(vec![0; 4096]),
            script: RefCell::default(),
            responses: RefCell::default(),
        }
    }
}

/// Plays the virt: stages scripted transactions, records responses.
struct VirtPd<'a> {
    w: &'a World,
    q: I2cClientQueues<'a>,
}

impl Handler for VirtPd<'_> {
    type Error = OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        if set.contains(Channel::new(V_CMD)) {
            for t in self.w.script.borrow_mut().drain(..) {
                for c in t {
                    self.q.requests.stage(c).unwrap();
                }
            }
            self.q.requests.commit();
            Channel::new(V_DRIVER).notify()?;
            Channel::new(V_CMD).irq_ack()?;
        }
        while let Some(r) = self.q.responses.pop().unwrap() {
            let e = r.error().unwrap();
            self.w
                .responses
                .borrow_mut()
                .push((r.err_cmd, r.bus_address, e));
        }
        self.q.responses.release();
        Ok(())
    }
}

struct Rig<'a> {
    sim: Sim<'a>,
    w: &'a World,
    driver: PdId,
    virt: PdId,
}

impl<'a> Rig<'a> {
    fn new(w: &'a World) -> Self {
        let _ = (&w.req, &w.resp);
        let mut sim = Sim::new();
        let dev = Dev(&w.bus);
        // SAFETY: the regions live in `w`; one handle per role.
        let drv = I2cDriver::new(dev, Mem(&w.mem), mapped(&w.config), Channel::new(D_IRQ)).unwrap();
        let driver = sim.add_pd("i2c_driver", 200, false, drv);
        sim.irq(driver, D_IRQ).unwrap();
        // SAFETY: as above.
        let q = unsafe { I2cClientQueues::from_connection(&w.config.virt) }.unwrap();
        let virt = sim.add_pd("i2c_virt", 199, false, VirtPd { w, q });
        sim.channel(driver, D_VIRT, virt, V_DRIVER).unwrap();
        sim.irq(virt, V_CMD).unwrap();
        Self {
            sim,
            w,
            driver,
            virt,
        }
    }

    /// Send transactions and run, raising the device IRQ while a call is pending.
    fn send(&mut self, ts: Vec<Vec<I2cCmd>>) -> Vec<(u64, u8, I2cError)> {
        self.w.bus.borrow_mut().log.clear();
        *self.w.script.borrow_mut() = ts;
        self.sim.inject_irq(self.virt, V_CMD).unwrap();
        for _ in 0..10_000 {
            self.sim.run_until_idle(1000).unwrap();
            if self.w.bus.borrow().pending.is_none() {
                break;
            }
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
        std::mem::take(&mut self.w.responses.borrow_mut())
    }

    fn log(&self) -> Vec<Op> {
        self.w.bus.borrow().log.clone()
    }
}

fn hdr(n: u16, a: u8) -> I2cCmd {
    I2cCmd::header(n, a).unwrap()
}

fn body(off: u64, len: u8, flags: CmdFlags) -> I2cCmd {
    I2cCmd::body(BASE + off, len, flags).unwrap()
}

const R: CmdFlags = CmdFlags::READ;
const S: CmdFlags = CmdFlags::STOP;
const RS: CmdFlags = CmdFlags::RSTART;
const W: CmdFlags = CmdFlags::empty();

fn ok(a: u8) -> (u64, u8, I2cError) {
    (0, a, I2cError::Ok)
}

#[test]
fn write_then_read_is_one_segment_each_with_a_repeated_start() {
    let w = World::new();
    let mut rig = Rig::new(&w);
    w.mem.borrow_mut()[0] = 0x0e;
    let r = rig.send(vec![vec![hdr(2, 0x68), body(0, 1, W), body(16, 4, R | S)]]);
    assert_eq!(r, [ok(0x68)]);
    use Op::*;
    assert_eq!(
        rig.log(),
        [
            Start,
            Addr(0x68, false),
            Write(vec![0x0e]),
            RStart,
            Addr(0x68, true),
            Read(4, true),
            Stop
        ]
    );
    assert_eq!(w.mem.borrow()[16..20], [0, 1, 2, 3]);
}

#[test]
fn long_transfers_continue_across_commands_in_small_irq_driven_steps() {
    let w = World::new();
    let mut rig = Rig::new(&w);
    {
        let mut b = w.bus.borrow_mut();
        b.irq_mode = true;
        b.chunk = 8;
    }
    for (i, x) in w.mem.borrow_mut()[..300].iter_mut().enumerate() {
        *x = i as u8;
    }
    // A 300-byte write and a 300-byte read, each split at 255 as the client library does.
    let r = rig.send(vec![vec![
        hdr(4, 0x24),
        body(0, 255, W),
        body(255, 45, W | RS),
        body(1000, 255, R),
        body(1255, 45, R | RS | S),
    ]]);
    assert_eq!(r, [ok(0x24)]);
    let log = rig.log();
    let written: Vec<u8> = log
        .iter()
        .flat_map(|o| match o {
            Op::Write(d) => d.clone(),
            _ => vec![],
        })
        .collect();
    assert_eq!(written, (0..300).map(|i| i as u8).collect::<Vec<_>>());
    let reads: Vec<&Op> = log.iter().filter(|o| matches!(o, Op::Read(..))).collect();
    // 255 = 31 * 8 + 7, then 45 = 5 * 8 + 5.
    assert_eq!(reads.len(), 32 + 6);
    assert_eq!(
        *reads[31],
        Op::Read(7, false),
        "the continued read is not NACKed"
    );
    assert!(reads.iter().all(|o| **o != Op::Read(8, true)));
    assert_eq!(
        *reads[reads.len() - 1],
        Op::Read(5, true),
        "only the very last byte is NACKed"
    );
    let starts = log
        .iter()
        .filter(|o| matches!(o, Op::Start | Op::RStart | Op::Addr(..)))
        .count();
    assert_eq!(
        starts, 4,
        "one START + address per direction, none at the continuations"
    );
    assert_eq!(
        w.mem.borrow()[1000..1300],
        (0..300).map(|i| i as u8).collect::<Vec<_>>()[..]
    );
    assert_eq!(log.last(), Some(&Op::Stop));
}

#[test]
fn wrrd_writes_the_register_then_reads_and_stop_splits_segments() {
    let w = World::new();
    let mut rig = Rig::new(&w);
    w.mem.borrow_mut()[0] = 0x11;
    let r = rig.send(vec![
        vec![hdr(1, 0x68), body(0, 2, CmdFlags::WRRD)],
        vec![hdr(2, 0x50), body(8, 1, W | S), body(9, 1, W)],
    ]);
    assert_eq!(r, [ok(0x68), ok(0x50)]);
    use Op::*;
    assert_eq!(
        rig.log(),
        [
            Start,
            Addr(0x68, false),
            Write(vec![0x11]),
            RStart,
            Addr(0x68, true),
            Read(2, true),
            Stop,
            Start,
            Addr(0x50, false),
            Write(vec![0]),
            Stop,
            Start,
            Addr(0x50, false),
            Write(vec![0]),
            Stop
        ]
    );
    assert_eq!(w.mem.borrow()[..2], [0, 1], "read over the register byte");
}

#[test]
fn nack_and_timeout_report_the_failing_command_and_the_bus_recovers() {
    let w = World::new();
    let mut rig = Rig::new(&w);
    w.bus.borrow_mut().nack = Some(0x51);
    // The NACK comes at the third command's address (a new segment to another device is not
    // possible in one transaction, so make the whole transaction target 0x51 after a probe).
    let r = rig.send(vec![
        vec![hdr(2, 0x51), body(0, 1, W), body(1, 1, R)],
        vec![hdr(1, 0x50), body(0, 0, W)],
    ]);
    assert_eq!(r, [(1, 0x51, I2cError::Nack), ok(0x50)]);
    use Op::*;
    assert_eq!(
        rig.log(),
        [
            Start,
            Addr(0x51, false),
            Halt,
            Start,
            Addr(0x50, false),
            Stop
        ]
    );
    // A timeout from the IRQ on the 2nd command's data.
    {
        let mut b = w.bus.borrow_mut();
        b.nack = None;
        b.irq_mode = true;
        b.calls = 0;
        // Calls: Start, Addr, Write (cmd 1), RStart, Addr, Read (cmd 2) = call 6.
        b.timeout_at = Some(6);
    }
    let r = rig.send(vec![
        vec![hdr(2, 0x50), body(0, 1, W), body(1, 1, R | S)],
        vec![hdr(1, 0x50), body(0, 1, R)],
    ]);
    assert_eq!(r, [(2, 0x50, I2cError::Timeout), ok(0x50)]);
    let log = rig.log();
    assert_eq!(log[6], Halt);
    assert_eq!(log[7], Start, "the next transaction starts afresh");
}

#[test]
fn a_transaction_that_is_not_whole_is_refused() {
    let w = World::new();
    let mut rig = Rig::new(&w);
    let r = rig.send(vec![
        vec![hdr(0, 0x50)],
        vec![body(0, 1, W)],
        vec![hdr(1, 0x50), body(0, 1, R)],
    ]);
    assert_eq!(
        r,
        [
            (0, 0x50, I2cError::MalformedTransaction),
            (0, 0, I2cError::MalformedTransaction),
            ok(0x50)
        ]
    );
    // Out-of-range data is a bus error of that command, never a panic.
    let r = rig.send(vec![vec![hdr(2, 0x50), body(0, 1, W), body(5000, 4, R)]]);
    assert_eq!(r, [(2, 0x50, I2cError::Other)]);
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
