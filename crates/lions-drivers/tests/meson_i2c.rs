// SPDX-License-Identifier: BSD-2-Clause
//! The Meson I²C controller driver (`lions_drivers::i2c::meson`) under the generic I²C driver
//! loop on the sim backend, against the controller's register model with a DS3231 model on its
//! bus: write, read (longer than the 8-byte FIFO), write-then-read and `WRRD`, a NACK and a
//! timeout each answered with the failing command's index and the bus released, spurious IRQs
//! while a list is still busy, and polled completion.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_drivers::i2c::meson::{Completion, MesonI2c};
use lions_drivers::i2c::meson_model::{MesonModel, Wire};
use lions_drivers::i2c::model::{Ds3231Model, I2cTarget, ModelBus};
use lions_drivers::mmio::Mmio;
use lions_i2c::{
    CmdFlags, DataAccess, I2cClientQueues, I2cCmd, I2cConnectionResource, I2cDriver,
    I2cDriverConfig, I2cError,
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
const RTC: u8 = 0x68;

type Model = MesonModel<Ds3231Model, Picky>;

/// A target at 0x50 that does not acknowledge the byte 0xff.
struct Picky;

impl I2cTarget for Picky {
    fn address(&self) -> u8 {
        0x50
    }
    fn start(&mut self, _: bool) {}
    fn write(&mut self, byte: u8) -> bool {
        byte != 0xff
    }
    fn read(&mut self) -> u8 {
        0
    }
    fn stop(&mut self) {}
}

/// The controller's registers, shared with the test.
struct Regs<'a>(&'a RefCell<Model>);

impl Mmio for Regs<'_> {
    fn read32(&mut self, offset: usize) -> u32 {
        self.0.borrow_mut().read32(offset)
    }
    fn write32(&mut self, offset: usize, value: u32) {
        self.0.borrow_mut().write32(offset, value);
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
    model: RefCell<Model>,
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
        let bus = ModelBus::new(Ds3231Model::new(), Picky);
        Self {
            req,
            resp,
            config,
            model: RefCell::new(MesonModel::new(bus)),
            mem: RefCell::new(vec![0; 4096]),
            script: RefCell::default(),
            responses: RefCell::default(),
        }
    }
}

/// Plays the virt: commits scripted transactions, records responses.
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
            let mut rs = self.w.responses.borrow_mut();
            rs.push((r.err_cmd, r.bus_address, e));
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
    fn new(w: &'a World, completion: Completion) -> Self {
        let _ = (&w.req, &w.resp);
        let mut sim = Sim::new();
        let dev = MesonI2c::new(Regs(&w.model), completion, 166_666_666, 100_000);
        // SAFETY: the regions live in `w`; one handle per role.
        let token = unsafe { lions_os::Mapped::check(&w.config) }.unwrap();
        let drv = I2cDriver::new(dev, Mem(&w.mem), token, Channel::new(D_IRQ)).unwrap();
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

    /// Send transactions and run, delivering the controller's IRQ whenever it rises; returns the
    /// responses and what the bus saw.
    fn send(&mut self, ts: Vec<Vec<I2cCmd>>) -> (Vec<(u64, u8, I2cError)>, Vec<Wire>) {
        self.w.model.borrow_mut().clear_wire();
        *self.w.script.borrow_mut() = ts;
        self.sim.inject_irq(self.virt, V_CMD).unwrap();
        for _ in 0..10_000 {
            self.sim.run_until_idle(1000).unwrap();
            let mut m = self.w.model.borrow_mut();
            let irq = m.take_irq() || {
                m.elapse();
                m.take_irq()
            };
            if !irq && !m.busy() {
                break;
            }
            drop(m);
            if !irq {
                continue;
            }
            self.sim.inject_irq(self.driver, D_IRQ).unwrap();
        }
        assert!(self.sim.faults().is_empty(), "{:?}", self.sim.faults());
        let wire = self.w.model.borrow().wire().to_vec();
        (std::mem::take(&mut self.w.responses.borrow_mut()), wire)
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
const W: CmdFlags = CmdFlags::empty();

fn ok(a: u8) -> (u64, u8, I2cError) {
    (0, a, I2cError::Ok)
}

/// Every completion mode the tests run in: at once by IRQ, IRQ with spurious early IRQs, polled.
fn modes() -> [(Completion, u32); 3] {
    [
        (Completion::Irq, 0),
        (Completion::Irq, 3),
        (Completion::Poll(10), 4),
    ]
}

fn world(busy_reads: u32) -> World {
    let w = World::new();
    w.model.borrow_mut().busy_reads = busy_reads;
    w
}

#[test]
fn a_write_sets_registers_through_the_fifo() {
    for (mode, busy) in modes() {
        let w = world(busy);
        let mut rig = Rig::new(&w, mode);
        // Register 0x07 (alarm 1) onwards, 10 bytes: more than the FIFO holds.
        let data = [0x07, 0x11, 0x22, 0x33, 0x44, 0x15, 0x23, 0x59, 0x12, 0x80];
        w.mem.borrow_mut()[..10].copy_from_slice(&data);
        let (r, wire) = rig.send(vec![vec![hdr(1, RTC), body(0, 10, W | S)]]);
        assert_eq!(r, [ok(RTC)], "{mode:?}");
        let mut want = vec![Wire::Start, Wire::Addr(RTC, false, true)];
        want.extend(data.iter().map(|&b| Wire::Write(b, true)));
        want.push(Wire::Stop);
        assert_eq!(wire, want, "{mode:?}");
        let regs = *w.model.borrow_mut().bus().first().registers();
        assert_eq!(regs[7..16], data[1..], "{mode:?}");
        assert!(!w.model.borrow().held());
    }
}

#[test]
fn a_long_read_spans_fifo_loads_and_nacks_only_its_last_byte() {
    for (mode, busy) in modes() {
        let w = world(busy);
        let mut rig = Rig::new(&w, mode);
        {
            let mut m = w.model.borrow_mut();
            let regs = m.bus().first().registers_mut();
            for (i, r) in regs.iter_mut().enumerate().take(12) {
                *r = 0x40 + i as u8;
            }
        }
        // Point at register 0 first, then read 12 bytes in a second transaction.
        let (r, wire) = rig.send(vec![
            vec![hdr(1, RTC), body(0, 1, W | S)],
            vec![hdr(1, RTC), body(16, 12, R | S)],
        ]);
        assert_eq!(r, [ok(RTC), ok(RTC)], "{mode:?}");
        let want: Vec<u8> = (0x40..0x4c).collect();
        assert_eq!(w.mem.borrow()[16..28], want[..], "{mode:?}");
        let reads: Vec<bool> = wire
            .iter()
            .filter_map(|w| match w {
                Wire::Read(_, nack) => Some(*nack),
                _ => None,
            })
            .collect();
        assert_eq!(reads.len(), 12, "{wire:?}");
        assert!(reads[..11].iter().all(|n| !n) && reads[11], "{wire:?}");
    }
}

#[test]
fn write_then_read_and_wrrd_use_a_repeated_start() {
    for (mode, busy) in modes() {
        let w = world(busy);
        let mut rig = Rig::new(&w, mode);
        w.model.borrow_mut().bus().first().registers_mut()[0x0e] = 0x5a;
        w.mem.borrow_mut()[0] = 0x0e;
        w.mem.borrow_mut()[8] = 0x0e;
        let (r, wire) = rig.send(vec![
            vec![hdr(2, RTC), body(0, 1, W), body(1, 2, R | S)],
            vec![hdr(1, RTC), body(8, 2, CmdFlags::WRRD)],
        ]);
        assert_eq!(r, [ok(RTC), ok(RTC)], "{mode:?}");
        let status = w.model.borrow_mut().bus().first().registers()[0x0f];
        assert_eq!(w.mem.borrow()[1..3], [0x5a, status], "{mode:?}");
        assert_eq!(
            w.mem.borrow()[8..10],
            [0x5a, status],
            "WRRD reads over its register byte"
        );
        let segment = [
            Wire::Start,
            Wire::Addr(RTC, false, true),
            Wire::Write(0x0e, true),
            Wire::RepeatedStart,
            Wire::Addr(RTC, true, true),
            Wire::Read(0x5a, false),
            Wire::Read(status, true),
            Wire::Stop,
        ];
        assert_eq!(wire[..8], segment, "{mode:?}");
        assert_eq!(wire[8..], segment, "{mode:?}");
    }
}

#[test]
fn a_nack_is_reported_at_its_command_and_the_bus_is_released() {
    for (mode, busy) in modes() {
        let w = world(busy);
        let mut rig = Rig::new(&w, mode);
        // Nobody at 0x51: the address is not acknowledged (command 1).
        let (r, wire) = rig.send(vec![vec![hdr(1, 0x51), body(0, 1, W | S)]]);
        assert_eq!(r, [(1, 0x51, I2cError::Nack)], "{mode:?}");
        assert_eq!(
            wire,
            [Wire::Start, Wire::Addr(0x51, false, false), Wire::Stop],
            "{mode:?}: halted with a STOP"
        );
        assert!(!w.model.borrow().held());
        assert!(
            !w.model.borrow().busy(),
            "{mode:?}: the halt waited for its STOP"
        );
        // 0x50 does not acknowledge 0xff: the 2nd body (a new segment) fails at its second byte,
        // nothing after it is sent.
        w.mem.borrow_mut()[..4].copy_from_slice(&[0x12, 0x00, 0xff, 0x01]);
        let (r, wire) = rig.send(vec![vec![hdr(2, 0x50), body(0, 1, W), body(1, 3, W | S)]]);
        assert_eq!(r, [(2, 0x50, I2cError::Nack)], "{mode:?}");
        assert_eq!(
            wire[2..],
            [
                Wire::Write(0x12, true),
                Wire::RepeatedStart,
                Wire::Addr(0x50, false, true),
                Wire::Write(0x00, true),
                Wire::Write(0xff, false),
                Wire::Stop
            ],
            "{mode:?}"
        );
        assert!(!w.model.borrow().held());
        // The bus works afterwards.
        w.mem.borrow_mut()[0] = 0;
        let (r, _) = rig.send(vec![vec![hdr(1, RTC), body(0, 1, W | S)]]);
        assert_eq!(r, [ok(RTC)], "{mode:?}");
    }
}

#[test]
fn a_stuck_bus_times_out_when_polled_and_the_driver_recovers() {
    let w = world(2);
    let mut rig = Rig::new(&w, Completion::Poll(50));
    w.model.borrow_mut().stuck = true;
    let (r, _) = rig.send(vec![vec![hdr(2, RTC), body(0, 1, W), body(1, 2, R | S)]]);
    assert_eq!(r, [(1, RTC, I2cError::Timeout)]);
    w.model.borrow_mut().stuck = false;
    w.mem.borrow_mut()[0] = 0x11;
    let (r, wire) = rig.send(vec![vec![hdr(1, RTC), body(0, 1, CmdFlags::WRRD)]]);
    assert_eq!(r, [ok(RTC)]);
    assert_eq!(wire[0], Wire::Start);
    assert!(!wire.contains(&Wire::Violation), "{wire:?}");
}

#[test]
fn with_irqs_a_stuck_bus_leaves_the_call_pending_without_a_timer() {
    let w = world(0);
    let mut rig = Rig::new(&w, Completion::Irq);
    w.model.borrow_mut().stuck = true;
    let (r, _) = rig.send(vec![vec![hdr(1, RTC), body(0, 1, W | S)]]);
    assert!(r.is_empty(), "no answer without an IRQ: {r:?}");
    // A spurious IRQ while it is still busy changes nothing.
    rig.sim.inject_irq(rig.driver, D_IRQ).unwrap();
    rig.sim.run_until_idle(1000).unwrap();
    assert!(w.responses.borrow().is_empty());
}
