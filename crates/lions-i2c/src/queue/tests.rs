// SPDX-License-Identifier: BSD-2-Clause
//! Layouts, encodings, commit and queue set-up of the I²C wire format.

#![allow(clippy::unwrap_used)]

use super::*;
use core::mem::offset_of;
use lions_queue::HandleError;

impl I2cCmd {
    /// Whether the `HEAD` bit is set (no other check).
    fn is_header(&self) -> bool {
        self.flag_mask & CmdFlags::HEAD.bits() != 0
    }
}

impl Command {
    /// The raw command.
    fn encode(&self) -> Result<I2cCmd, CmdError> {
        match *self {
            Self::Header { batch_len, address } => I2cCmd::header(batch_len, address),
            Self::Body { ptr, len, flags } => I2cCmd::body(ptr, len, flags),
        }
    }
}

#[test]
fn layouts_match_c() {
    // i2c_cmd_t: payload @0 (8), data_len @8, flag_mask @9, size 16.
    assert_eq!(size_of::<I2cCmd>(), 16);
    assert_eq!(align_of::<I2cCmd>(), 8);
    assert_eq!(offset_of!(I2cCmd, payload), 0);
    assert_eq!(offset_of!(I2cCmd, data_len), 8);
    assert_eq!(offset_of!(I2cCmd, flag_mask), 9);
    assert_eq!(offset_of!(I2cCmd, _pad), 10);
    // i2c_response_t: err_cmd @0, bus_address @8, error @12, size 16.
    assert_eq!(size_of::<I2cResponse>(), 16);
    assert_eq!(offset_of!(I2cResponse, err_cmd), 0);
    assert_eq!(offset_of!(I2cResponse, bus_address), 8);
    assert_eq!(offset_of!(I2cResponse, _pad), 9);
    assert_eq!(offset_of!(I2cResponse, error), 12);
    // Request queue: staged_active_tail @0, ctrl.tail @4, ctrl.head @8, cmds @16.
    assert_eq!(size_of::<I2cRequestQueue>(), 12);
    assert_eq!(offset_of!(I2cRequestQueue, staged_active_tail), 0);
    assert_eq!(offset_of!(I2cRequestQueue, tail), 4);
    assert_eq!(offset_of!(I2cRequestQueue, head), 8);
    assert_eq!(<I2cRequestQueue as QueueHeader>::ENTRIES_OFFSET, 16);
    assert_eq!(I2cRequestQueue::BYTES, 4080);
    // Response queue: ctrl.tail @0, ctrl.head @4, responses @8.
    assert_eq!(size_of::<I2cResponseQueue>(), 8);
    assert_eq!(offset_of!(I2cResponseQueue, tail), 0);
    assert_eq!(offset_of!(I2cResponseQueue, head), 4);
    assert_eq!(<I2cResponseQueue as QueueHeader>::ENTRIES_OFFSET, 8);
    assert_eq!(I2cResponseQueue::BYTES, 4072);
    assert_eq!(I2C_QUEUE_CAPACITY, (4096 - 32) / 16);
}

#[test]
fn commands_encode_and_decode() {
    let h = I2cCmd::header(0x0102, 0x50).unwrap();
    assert_eq!(
        h.as_bytes(),
        &[0x02, 0x01, 0x50, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        h.decode(),
        Ok(Command::Header {
            batch_len: 0x102,
            address: 0x50
        })
    );
    assert!(h.is_header());
    let b = I2cCmd::body(0x2000_0010, 255, CmdFlags::READ | CmdFlags::STOP).unwrap();
    assert_eq!(b.flag_mask, 10);
    assert_eq!(
        b.decode(),
        Ok(Command::Body {
            ptr: 0x2000_0010,
            len: 255,
            flags: CmdFlags::READ | CmdFlags::STOP
        })
    );
    for c in [
        Command::Header {
            batch_len: 0,
            address: 0x7f,
        },
        Command::Body {
            ptr: u64::MAX,
            len: 0,
            flags: CmdFlags::all() - CmdFlags::HEAD,
        },
    ] {
        assert_eq!(c.encode().unwrap().decode(), Ok(c));
    }
    assert_eq!(
        I2cCmd::header(1, 0x80),
        Err(CmdError::AddressOutOfRange(0x80))
    );
    assert_eq!(
        I2cCmd::body(0, 1, CmdFlags::HEAD),
        Err(CmdError::BodyHasHead)
    );
    let mut raw = b;
    raw.flag_mask = 0x20;
    assert_eq!(raw.decode(), Err(CmdError::UnknownFlags(0x20)));
    raw.flag_mask = 0x80 | 2;
    assert_eq!(raw.decode(), Err(CmdError::UnknownFlags(0x82)));
    let mut raw = h;
    raw.flag_mask |= CmdFlags::READ.bits();
    assert_eq!(raw.decode(), Err(CmdError::HeaderFlags(CmdFlags::READ)));
    let mut raw = h;
    raw.payload = u64::from_ne_bytes([1, 0, 0xff, 0, 0, 0, 0, 0]);
    assert_eq!(raw.decode(), Err(CmdError::AddressOutOfRange(0xff)));
    assert_eq!(CmdFlags::from_bits(0x1f), Some(CmdFlags::all()));
    assert_eq!(
        [
            CmdFlags::HEAD,
            CmdFlags::READ,
            CmdFlags::WRRD,
            CmdFlags::STOP,
            CmdFlags::RSTART
        ]
        .map(|f| f.bits()),
        [1, 2, 4, 8, 16]
    );
}

#[test]
fn errors_and_labels_convert() {
    let all = [
        (-1, I2cError::Queue),
        (0, I2cError::Ok),
        (1, I2cError::MalformedTransaction),
        (2, I2cError::MalformedHeader),
        (3, I2cError::UnpermittedAddr),
        (4, I2cError::Timeout),
        (5, I2cError::Nack),
        (6, I2cError::NoRead),
        (7, I2cError::BadSeq),
        (8, I2cError::Other),
    ];
    for (raw, e) in all {
        assert_eq!(I2cError::try_from(raw), Ok(e));
        assert_eq!(e as i32, raw);
        let r = I2cResponse::new(3, 0x50, e);
        assert_eq!(r.error(), Ok(e));
    }
    assert_eq!(I2cError::try_from(9), Err(UnknownValue(9)));
    assert_eq!(I2cError::try_from(-2), Err(UnknownValue(-2)));
    let r = I2cResponse {
        error: 42,
        ..I2cResponse::new(0, 0, I2cError::Ok)
    };
    assert_eq!(r.error(), Err(UnknownValue(42)));
    let r = I2cResponse::new(7, 0x68, I2cError::Nack);
    assert_eq!(
        r.as_bytes(),
        &[7, 0, 0, 0, 0, 0, 0, 0, 0x68, 0, 0, 0, 5, 0, 0, 0]
    );

    assert_eq!(BusRequest::try_from(1), Ok(BusRequest::Claim));
    assert_eq!(BusRequest::try_from(2), Ok(BusRequest::Release));
    assert!(BusRequest::try_from(0).is_err() && BusRequest::try_from(3).is_err());
    assert_eq!(BusRequest::try_from(u64::MAX), Err(UnknownValue(i64::MAX)));
    assert_eq!(BusReply::try_from(0), Ok(BusReply::Success));
    assert_eq!(BusReply::try_from(1), Ok(BusReply::Failure));
    assert!(BusReply::try_from(2).is_err());
    assert_eq!(BusRequest::Release as u64, 2);
    assert_eq!(BusReply::Failure as u64, 1);
}

/// One 4 KiB, 8-aligned region.
struct Page {
    ptr: NonNull<u8>,
    _mem: Vec<u64>,
}

impl Page {
    fn new() -> Self {
        let mut mem = vec![0u64; 512];
        let ptr = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        Self { ptr, _mem: mem }
    }

    fn word(&self, byte: usize) -> &AtomicU32 {
        assert!(byte.is_multiple_of(4) && byte < 16);
        // SAFETY: inside the page, 4-aligned, accessed only atomically by the test and the ring.
        unsafe { self.ptr.add(byte).cast::<AtomicU32>().as_ref() }
    }

    fn bytes(&self, at: usize, n: usize) -> Vec<u8> {
        // SAFETY: inside the page; the peers are quiescent while the test reads.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(at), n).to_vec() }
    }
}

fn connect<'r>(req: &'r Page, resp: &'r Page) -> (I2cClientQueues<'r>, I2cServerQueues<'r>) {
    // SAFETY: the pages outlive the handles; one handle per role per queue.
    unsafe {
        let c = I2cClientQueues::new(req.ptr, 4096, resp.ptr, 4096).unwrap();
        let s = I2cServerQueues::new(req.ptr, 4096, resp.ptr, 4096).unwrap();
        (c, s)
    }
}

fn body(i: u64) -> I2cCmd {
    I2cCmd::body(0x2000_0000 + i, 1, CmdFlags::READ).unwrap()
}

#[test]
fn ring_across_the_u32_wrap_with_commit_and_abort() {
    let (req, resp) = (Page::new(), Page::new());
    let start = u32::MAX - 9; // ten indices before the wrap
    for w in [0, 4, 8] {
        req.word(w).store(start, Ordering::Relaxed);
    }
    let (mut client, mut server) = connect(&req, &resp);
    // Staged commands are invisible; the mirror follows the staged tail.
    client
        .requests
        .stage_transaction(0x50, &[body(0), body(1)])
        .unwrap();
    assert_eq!(client.requests.staged(), 3);
    assert_eq!(req.word(0).load(Ordering::Relaxed), start.wrapping_add(3));
    assert_eq!(server.requests.pop().unwrap(), None);
    client.requests.abort();
    assert_eq!(
        req.word(0).load(Ordering::Relaxed),
        start,
        "abort rewinds the mirror"
    );
    // Only the ten indices up to u32::MAX may be live: the window never straddles the wrap.
    assert_eq!(client.requests.free().unwrap(), 10);
    assert_eq!(
        client.requests.stage_transaction(0x50, &[body(0); 10]),
        Err(TransactionError::Full {
            needed: 11,
            free: 10
        })
    );
    assert_eq!(
        client.requests.staged(),
        0,
        "a refused transaction stages nothing"
    );
    client
        .requests
        .stage_transaction(0x50, &[body(0), body(1), body(2)])
        .unwrap();
    client
        .requests
        .stage_transaction(0x51, &[body(3), body(4), body(5), body(6), body(7)])
        .unwrap();
    assert_eq!(client.requests.commit(), 10);
    assert_eq!(req.word(4).load(Ordering::Relaxed), 0, "the tail wrapped");
    assert_eq!(
        req.word(0).load(Ordering::Relaxed),
        0,
        "the mirror follows the commit"
    );
    // The last command (index u32::MAX) sits in slot u32::MAX % 254, as a C peer computes.
    let slot = usize::try_from(u32::MAX % 254).unwrap();
    assert_eq!(req.bytes(16 + slot * 16, 16), body(7).as_bytes());
    assert_eq!(client.requests.free().unwrap(), 0);
    // The server drains both transactions in order and answers.
    let mut got = Vec::new();
    while let Some(c) = server.requests.pop().unwrap() {
        got.push(c.decode().unwrap());
    }
    server.requests.release();
    assert_eq!(got.len(), 10);
    assert_eq!(
        got[0],
        Command::Header {
            batch_len: 3,
            address: 0x50
        }
    );
    assert_eq!(
        got[4],
        Command::Header {
            batch_len: 5,
            address: 0x51
        }
    );
    server
        .responses
        .push(I2cResponse::new(0, 0x50, I2cError::Ok))
        .unwrap();
    server
        .responses
        .push(I2cResponse::new(2, 0x51, I2cError::Nack))
        .unwrap();
    assert_eq!(
        server.responses.publish(),
        2,
        "nonzero: the server notifies"
    );
    assert_eq!(
        client.responses.pop().unwrap().unwrap().error(),
        Ok(I2cError::Ok)
    );
    let r = client.responses.pop().unwrap().unwrap();
    assert_eq!(
        (r.err_cmd, r.bus_address, r.error()),
        (2, 0x51, Ok(I2cError::Nack))
    );
    client.responses.release();
    // Past the wrap (empty ring at index 0) all 253 usable slots are free; 254 never are.
    assert_eq!(client.requests.free().unwrap(), 253);
    let full: Vec<_> = (0..252).map(body).collect();
    client.requests.stage_transaction(0x10, &full).unwrap();
    assert_eq!(client.requests.free().unwrap(), 0);
    assert!(matches!(
        client.requests.stage(body(0)),
        Err(PushError::Full(_))
    ));
    assert_eq!(client.requests.commit(), 253);
    let (t, h) = (
        req.word(4).load(Ordering::Relaxed),
        req.word(8).load(Ordering::Relaxed),
    );
    assert_eq!(
        t.wrapping_sub(h) + 1,
        254,
        "C's full condition holds exactly"
    );
    let mut n = 0;
    while server.requests.pop().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 253);
}

#[test]
fn bad_transactions_stage_nothing() {
    let (req, resp) = (Page::new(), Page::new());
    let (mut client, _server) = connect(&req, &resp);
    let hdr = I2cCmd::header(1, 0x50).unwrap();
    assert_eq!(
        client.requests.stage_transaction(0x50, &[body(0), hdr]),
        Err(TransactionError::Cmd(CmdError::BodyHasHead))
    );
    let mut bad = body(0);
    bad.flag_mask = 0x40;
    assert_eq!(
        client.requests.stage_transaction(0x50, &[bad]),
        Err(TransactionError::Cmd(CmdError::UnknownFlags(0x40)))
    );
    assert_eq!(
        client.requests.stage_transaction(0x90, &[]),
        Err(TransactionError::Cmd(CmdError::AddressOutOfRange(0x90)))
    );
    assert_eq!(client.requests.staged(), 0);
    assert_eq!(client.requests.commit(), 0);
}

#[test]
fn corrupt_indices_are_peer_errors() {
    let (req, resp) = (Page::new(), Page::new());
    {
        let (mut client, mut server) = connect(&req, &resp);
        client.requests.stage_transaction(0x50, &[body(0)]).unwrap();
        client.requests.commit();
        // A lying client claims 300 requests.
        req.word(4).store(300, Ordering::Relaxed);
        assert!(server.requests.pop().is_err());
        // A lying server moves the request head past the tail.
        req.word(8).store(7, Ordering::Relaxed);
        assert!(matches!(
            client.requests.stage_transaction(0x50, &[body(0); 252]),
            Err(TransactionError::Peer(_))
        ));
        assert!(client.requests.free().is_err());
        // A lying server claims 254 responses in a 253-usable ring.
        resp.word(0).store(254, Ordering::Relaxed);
        assert!(client.responses.pop().is_err());
    }
    // Setting up over such memory fails without panicking.
    // SAFETY: fresh handles over test pages; the old ones are dropped.
    let r = unsafe { I2cServerQueues::new(req.ptr, 4096, resp.ptr, 4096) };
    assert!(matches!(r, Err(QueueError::Handle(HandleError::Peer(_)))));
    // SAFETY: as above; the region is too small.
    let r = unsafe { I2cServerQueues::new(req.ptr, 4000, resp.ptr, 4096) };
    assert!(matches!(
        r,
        Err(QueueError::Region(RegionError::TooSmall { .. }))
    ));
    let conn = <I2cConnectionResource as zerocopy::FromZeros>::new_zeroed();
    // SAFETY: nothing is mapped; nothing is dereferenced.
    let r = unsafe { I2cClientQueues::from_connection(&conn) };
    assert!(matches!(r, Err(QueueError::Unmapped)));
}
