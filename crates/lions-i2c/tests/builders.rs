// SPDX-License-Identifier: BSD-2-Clause
//! The I²C virtualiser on the sim backend with every config built by the config builders
//! (`I2cVirtConfig::new(..).with_client(..)`, `I2cConnectionResource::new`) and its queues in
//! `lions_os::sim::Region`s named by `Region::resource`, with the virt run through
//! `lions_os::sim::Shared`: two clients claim addresses by PPC and submit transactions; the driver
//! sees each one whole, with the client's data pointers translated into its own mapping; each
//! client gets its answer, and a transaction on an unclaimed address never reaches the driver.
#![allow(clippy::unwrap_used)]

use lions_i2c::{
    BusReply, BusRequest, CmdFlags, Command, I2cClientQueues, I2cCmd, I2cConnectionResource,
    I2cError, I2cResponse, I2cServerQueues, I2cVirt, I2cVirtConfig,
};
use lions_os::sim::{End, Region, Shared, Sim};
use lions_os::{
    Channel, ChannelSet, Config, Handler, MessageInfo, OsError, RegionResource, set_mr,
};
use std::cell::RefCell;

const V_DRIVER: u8 = 0;
const D_VIRT: u8 = 1;
const C_VIRT: u8 = 0;
const C_CMD: u8 = 1;
/// Client data regions: at `CLIENT_BASE` in each client, `DRIVER_BASE + c * 0x10000` in the
/// driver (nobody dereferences them here).
const CLIENT_BASE: u64 = 0x2000_0000;
const DRIVER_BASE: u64 = 0x3000_0000;

struct Pair {
    req: Region,
    resp: Region,
}

impl Pair {
    fn new() -> Self {
        Self {
            req: Region::new(Region::PAGE),
            resp: Region::new(Region::PAGE),
        }
    }

    fn conn(&self, id: u8) -> I2cConnectionResource {
        I2cConnectionResource::new(self.req.resource(), self.resp.resource(), 254, id)
    }
}

/// The scripted driver: answers every transaction with `Ok`, recording what it saw.
struct DriverPd<'a> {
    q: I2cServerQueues<'a>,
    seen: &'a RefCell<Vec<(u8, Vec<Command>)>>,
}

impl Handler for DriverPd<'_> {
    type Error = OsError;
    fn notified(&mut self, _: ChannelSet) -> Result<(), OsError> {
        while let Some(h) = self.q.requests.pop().unwrap() {
            let Ok(Command::Header { batch_len, address }) = h.decode() else {
                panic!("driver got a non-header first: {h:?}");
            };
            let bodies = (0..batch_len)
                .map(|_| self.q.requests.pop().unwrap().unwrap().decode().unwrap())
                .collect();
            self.seen.borrow_mut().push((address, bodies));
            let ok = I2cResponse::new(0, address, I2cError::Ok);
            self.q.responses.push(ok).unwrap();
        }
        self.q.requests.release();
        if self.q.responses.publish() > 0 {
            Channel::new(D_VIRT).notify()?;
        }
        Ok(())
    }
}

/// A client: on its command IRQ claims `claim` by PPC, then submits `send`; collects replies.
struct ClientPd<'a> {
    q: I2cClientQueues<'a>,
    claim: u8,
    send: Vec<I2cCmd>,
    claim_reply: Option<u64>,
    responses: Vec<(u8, I2cError)>,
}

impl Handler for ClientPd<'_> {
    type Error = OsError;
    fn notified(&mut self, set: ChannelSet) -> Result<(), OsError> {
        if set.contains(Channel::new(C_CMD)) {
            set_mr(0, self.claim.into());
            let label = BusRequest::Claim as u64;
            let reply = Channel::new(C_VIRT).pp_call(MessageInfo::new(label, 1))?;
            self.claim_reply = Some(reply.label());
            for c in self.send.drain(..) {
                self.q.requests.stage(c).unwrap();
            }
            self.q.requests.commit();
            Channel::new(C_VIRT).notify()?;
            Channel::new(C_CMD).irq_ack()?;
        }
        while let Some(r) = self.q.responses.pop().unwrap() {
            self.responses.push((r.bus_address, r.error().unwrap()));
        }
        self.q.responses.release();
        Ok(())
    }
}

fn write(off: u64, len: u8) -> I2cCmd {
    I2cCmd::body(CLIENT_BASE + off, len, CmdFlags::STOP).unwrap()
}

#[test]
fn built_configs_carry_a_whole_subsystem() {
    let driver = Pair::new();
    let clients = [Pair::new(), Pair::new()];
    let data = RegionResource {
        vaddr: CLIENT_BASE,
        size: 0x1000,
    };
    let mut config = I2cVirtConfig::new(driver.conn(V_DRIVER));
    for (c, p) in clients.iter().enumerate() {
        let id = u8::try_from(c + 1).unwrap();
        config = config
            .with_client(p.conn(id), data, DRIVER_BASE + c as u64 * 0x10000)
            .unwrap();
    }
    config.check().unwrap();
    let seen = RefCell::new(Vec::new());

    let virt = RefCell::new(I2cVirt::new(mapped(&config)).unwrap());
    // SAFETY: as above.
    let dq = unsafe { I2cServerQueues::from_connection(&driver.conn(0)) }.unwrap();
    let mut cells = Vec::new();
    let plans = [
        (0x50, vec![I2cCmd::header(1, 0x50).unwrap(), write(0x10, 4)]),
        // Client 1 claims 0x68 but sends to 0x50, which client 0 owns: refused by the virt.
        (0x68, vec![I2cCmd::header(1, 0x50).unwrap(), write(0, 1)]),
    ];
    for (p, (claim, send)) in clients.iter().zip(plans) {
        // SAFETY: as above.
        let q = unsafe { I2cClientQueues::from_connection(&p.conn(0)) }.unwrap();
        cells.push(RefCell::new(ClientPd {
            q,
            claim,
            send,
            claim_reply: None,
            responses: Vec::new(),
        }));
    }

    let mut sim = Sim::new();
    let d = sim.add_pd("i2c_driver", 200, false, DriverPd { q: dq, seen: &seen });
    let v = sim.add_pd("i2c_virt", 199, false, Shared::new(&virt));
    sim.channel(d, D_VIRT, v, V_DRIVER).unwrap();
    let pds: Vec<_> = cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            let pd = sim.add_pd(&format!("client{c}"), 1, false, Shared::new(cell));
            let id = u8::try_from(c + 1).unwrap();
            sim.channel_with(End::new(pd, C_VIRT).pp(), End::new(v, id))
                .unwrap();
            sim.irq(pd, C_CMD).unwrap();
            pd
        })
        .collect();
    for pd in pds {
        sim.inject_irq(pd, C_CMD).unwrap();
        sim.run_until_idle(10_000).unwrap();
    }
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());

    let ok = BusReply::Success as u64;
    assert_eq!(cells[0].borrow().claim_reply, Some(ok));
    assert_eq!(cells[1].borrow().claim_reply, Some(ok));
    // Only client 0's transaction reached the driver, its pointer in the driver's mapping.
    assert_eq!(
        *seen.borrow(),
        vec![(
            0x50,
            vec![Command::Body {
                ptr: DRIVER_BASE + 0x10,
                len: 4,
                flags: CmdFlags::STOP
            }]
        )]
    );
    assert_eq!(cells[0].borrow().responses, vec![(0x50, I2cError::Ok)]);
    assert_eq!(
        cells[1].borrow().responses,
        vec![(0x50, I2cError::UnpermittedAddr)]
    );
}

/// `config`'s token, checked against the sim's mapping table.
fn mapped<C: lions_os::Regions>(config: &C) -> lions_os::Mapped<'_, C> {
    // SAFETY: each test builds one component per config (a restarted one after the first is
    // dropped) and plays the peers through the far ends only.
    unsafe { lions_os::Mapped::check(config) }.unwrap_or_else(|e| panic!("{e}"))
}
