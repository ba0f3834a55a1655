// SPDX-License-Identifier: BSD-2-Clause
//! I²C workload: the I²C virtualiser alone, the bench playing the driver and two clients.
//!
//! Client `c` claims bus address `0x50 + c` by PPC at start (outside the measurement). A round:
//! the clients submit `batch` transactions between them (32: 16 each; 1: the clients take turns),
//! each the DS3231 time read, a header and two bodies: write the register number (1 byte), then
//! read 7 bytes with `STOP`; each client with transactions notifies and the virt runs an event
//! at once (it has the higher priority); the driver checks every transaction it receives (whole,
//! address, pointers translated into its mapping of that client's data region), answers each
//! and notifies: one more event; the clients check every response (address, `Ok`, in order). A
//! unit is one transaction: the cost of a round's events divided by its transactions.
//!
//! The I²C queues hold 254 slots, not a power of two, so the peers here write them in their C
//! layout by hand (request queue: `staged_active_tail` @0, `tail` @4, `head` @8, commands @16;
//! response queue: `tail` @0, `head` @4, responses @8; slot = index mod 254) instead of [`Ring`].
//!
//! [`Ring`]: crate::os::Ring

use crate::os::{Mem, Shim, event_fns, set};
use lions_i2c::queue::{BusRequest, CmdFlags, Command, I2cCmd, I2cError, I2cResponse};
use lions_i2c::{I2cConnectionResource, I2cVirt, I2cVirtConfig};
use lions_os::{Channel, ConfigClass, Handler, MessageInfo, sddf_magic};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Slots of every I²C queue.
const CAP: u32 = 254;
/// Bytes of each client's data region.
const DATA: u64 = 4096;
/// Where the driver maps the clients' data regions (region `c` at `DRIVER_DATA + c * DATA`).
const DRIVER_DATA: u64 = 0x7000_0000;
/// The first client's bus address.
const ADDRESS: u8 = 0x50;

event_fns!(
    /// One measured event of the I²C virtualiser.
    insns_i2c_virt,
    warm_i2c_virt,
    I2cVirt<'_>
);

/// A request queue and a response queue.
struct Conn {
    req: Mem,
    resp: Mem,
}

impl Conn {
    fn new() -> Self {
        Self {
            req: Mem::new(4096),
            resp: Mem::new(4096),
        }
    }

    fn res(&self, id: u8) -> I2cConnectionResource {
        I2cConnectionResource {
            req_queue: self.req.res(),
            resp_queue: self.resp.res(),
            num_buffers: 128,
            id,
            _pad: [0; 5],
        }
    }

    /// Produce `cmds` as one committed transaction (a C client's enqueue and commit).
    fn submit(&self, cmds: &[I2cCmd]) {
        let (tail, head) = (self.req.load32(4), self.req.load32(8));
        let n = u32::try_from(cmds.len()).expect("few commands");
        assert!(
            tail.wrapping_sub(head) + n < CAP,
            "bench peer: request queue full"
        );
        for (i, c) in (0u32..).zip(cmds) {
            let slot = (tail.wrapping_add(i) % CAP) as usize;
            self.req.write(16 + 16 * slot, c.as_bytes());
        }
        self.req.store32(0, tail.wrapping_add(n));
        self.req.store32(4, tail.wrapping_add(n));
    }

    /// Consume one request (the driver's side).
    fn next_request(&self) -> Option<I2cCmd> {
        let (tail, head) = (self.req.load32(4), self.req.load32(8));
        (tail != head).then(|| {
            let mut c = I2cCmd::new_zeroed();
            self.req
                .read(16 + 16 * (head % CAP) as usize, c.as_mut_bytes());
            self.req.store32(8, head.wrapping_add(1));
            c
        })
    }

    /// Produce one response (the driver's side).
    fn answer(&self, r: I2cResponse) {
        let (tail, head) = (self.resp.load32(0), self.resp.load32(4));
        assert!(
            tail.wrapping_sub(head) + 1 < CAP,
            "bench peer: response queue full"
        );
        self.resp
            .write(8 + 16 * (tail % CAP) as usize, r.as_bytes());
        self.resp.store32(0, tail.wrapping_add(1));
    }

    /// Consume one response (a client's side).
    fn next_response(&self) -> Option<I2cResponse> {
        let (tail, head) = (self.resp.load32(0), self.resp.load32(4));
        (tail != head).then(|| {
            let mut bytes = [0u8; 16];
            self.resp.read(8 + 16 * (head % CAP) as usize, &mut bytes);
            self.resp.store32(4, head.wrapping_add(1));
            I2cResponse::read_from_bytes(&bytes).expect("16 bytes")
        })
    }
}

/// The DS3231 time read at offset `off` of a client's data region mapped at `vaddr`.
fn time_read(address: u8, vaddr: u64, off: u64) -> [I2cCmd; 3] {
    [
        I2cCmd::header(2, address).expect("header"),
        I2cCmd::body(vaddr + off, 1, CmdFlags::empty()).expect("write"),
        I2cCmd::body(vaddr + off + 1, 7, CmdFlags::READ | CmdFlags::STOP).expect("read"),
    ]
}

/// The virt with two clients; `batch` transactions per round between them.
pub fn virt(shim: &Shim, units: u64, warmup: u64, batch: u64) -> u64 {
    let driver = Conn::new();
    let clients = [Conn::new(), Conn::new()];
    let data = [Mem::new(DATA as usize), Mem::new(DATA as usize)];
    let mut cfg = Box::new(I2cVirtConfig::new_zeroed());
    cfg.magic = sddf_magic(ConfigClass::I2c);
    cfg.num_clients = 2;
    cfg.driver = driver.res(0);
    for c in 0..2 {
        cfg.clients[c].conn = clients[c].res(c as u8 + 1);
        cfg.clients[c].data_size = DATA;
        cfg.clients[c].client_data_vaddr = data[c].addr();
        cfg.clients[c].driver_data_vaddr = DRIVER_DATA + c as u64 * DATA;
    }
    // SAFETY: every region named in `cfg` is a live `Mem` of this frame, outliving `virt`; the
    // bench touches them only between events, as the peers.
    // (These are the bench's own memories, which no mapping table knows: `assume`.)
    let mut virt = I2cVirt::new(unsafe { lions_os::Mapped::assume(&cfg) }).expect("I2cVirt::new");
    for c in 0..2u8 {
        lions_os::set_mr(0, u64::from(ADDRESS + c));
        let claim = MessageInfo::new(BusRequest::Claim as u64, 1);
        let reply = virt.protected(Channel::new(c + 1), claim);
        assert_eq!(reply.map(|r| r.label()).ok(), Some(0), "client {c}: claim");
    }
    let (warm, measured) = (warmup.div_ceil(batch), units.div_ceil(batch));
    let (mut seq, mut sent, mut done) = (0u64, [0u64; 2], [0u64; 2]);
    for round in 0..warm + measured {
        if round == warm {
            shim.reset();
        }
        let measure = round >= warm;
        let run = |v: &mut I2cVirt<'_>, ch: u8| {
            if measure {
                insns_i2c_virt(v, set(&[ch]));
            } else {
                warm_i2c_virt(v, set(&[ch]));
            }
        };
        let mut round_sent = [0u64; 2];
        for _ in 0..batch {
            let c = (seq % 2) as usize;
            let off = (sent[c] % 64) * 8;
            clients[c].submit(&time_read(ADDRESS + c as u8, data[c].addr(), off));
            (sent[c], round_sent[c], seq) = (sent[c] + 1, round_sent[c] + 1, seq + 1);
        }
        // Each client with transactions notifies (I²C producers always do).
        for (ch, &n) in (1u8..).zip(&round_sent) {
            if n > 0 {
                run(&mut virt, ch);
            }
        }
        // Driver: every transaction whole, for an owner, translated; answer each.
        let mut answered = 0;
        while let Some(h) = driver.next_request() {
            let Ok(Command::Header { batch_len, address }) = h.decode() else {
                panic!("a body where a header belongs");
            };
            let c = usize::from(address - ADDRESS);
            assert!(
                c < 2 && batch_len == 2,
                "transaction {address:#x}/{batch_len}"
            );
            let base = DRIVER_DATA + c as u64 * DATA;
            for (len, read) in [(1, false), (7, true)] {
                let b = driver.next_request().expect("a whole transaction");
                let Ok(Command::Body { ptr, len: l, flags }) = b.decode() else {
                    panic!("a header where a body belongs");
                };
                assert!((base..base + DATA).contains(&ptr), "client {c}: {ptr:#x}");
                assert_eq!((l, flags.contains(CmdFlags::READ)), (len, read));
            }
            driver.answer(I2cResponse::new(0, address, I2cError::Ok));
            answered += 1;
        }
        assert_eq!(answered, batch, "the virt passed on another number");
        run(&mut virt, 0);
        // Clients: every response theirs and Ok.
        for (c, conn) in clients.iter().enumerate() {
            while let Some(r) = conn.next_response() {
                assert_eq!(r.bus_address, ADDRESS + c as u8, "client {c}: address");
                assert_eq!(r.error(), Ok(I2cError::Ok), "client {c}: error");
                done[c] += 1;
            }
        }
        assert_eq!(done, sent, "transactions without a response");
    }
    assert_eq!(virt.faulty(), 0);
    measured * batch
}
