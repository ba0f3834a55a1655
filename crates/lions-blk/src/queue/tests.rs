// SPDX-License-Identifier: BSD-2-Clause
//! Layout, code conversion and handle tests of the blk queues.
#![allow(clippy::unwrap_used)]

use super::*;
use core::mem::offset_of;
use lions_os::RegionResource;
use lions_queue::{CapacityError, IndexField};
use zerocopy::IntoBytes;

#[test]
fn request_layout_matches_c() {
    // u32 code; u64 needs 8-alignment: 4 → 8; u64 at 16; u16 at 24; u32 needs 4: 26 → 28; 32.
    assert_eq!(size_of::<BlkRequest>(), 32);
    assert_eq!(align_of::<BlkRequest>(), 8);
    assert_eq!(offset_of!(BlkRequest, code), 0);
    assert_eq!(offset_of!(BlkRequest, _pad0), 4);
    assert_eq!(offset_of!(BlkRequest, io_or_offset), 8);
    assert_eq!(offset_of!(BlkRequest, block_number), 16);
    assert_eq!(offset_of!(BlkRequest, count), 24);
    assert_eq!(offset_of!(BlkRequest, _pad1), 26);
    assert_eq!(offset_of!(BlkRequest, id), 28);
}

#[test]
fn response_layout_matches_c() {
    // u32 status; u16 at 4; u32 needs 4: 6 → 8; 12, alignment 4.
    assert_eq!(size_of::<BlkResponse>(), 12);
    assert_eq!(align_of::<BlkResponse>(), 4);
    assert_eq!(offset_of!(BlkResponse, status), 0);
    assert_eq!(offset_of!(BlkResponse, success_count), 4);
    assert_eq!(offset_of!(BlkResponse, _pad), 6);
    assert_eq!(offset_of!(BlkResponse, id), 8);
}

#[test]
fn queue_header_layouts_match_c() {
    // Request queue: u32 head, u32 tail, bool plugged at 8; the 8-aligned blk_req_t array at 16.
    assert_eq!(size_of::<BlkReqQueue>(), 16);
    assert_eq!(offset_of!(BlkReqQueue, head), 0);
    assert_eq!(offset_of!(BlkReqQueue, tail), 4);
    assert_eq!(offset_of!(BlkReqQueue, plugged), 8);
    assert_eq!(offset_of!(BlkReqQueue, _pad), 9);
    assert_eq!(BlkReqQueue::ENTRIES_OFFSET, 16);
    // Response queue: u32 head, u32 tail; the 4-aligned blk_resp_t array at 8.
    assert_eq!(size_of::<BlkRespQueue>(), 8);
    assert_eq!(offset_of!(BlkRespQueue, head), 0);
    assert_eq!(offset_of!(BlkRespQueue, tail), 4);
    assert_eq!(BlkRespQueue::ENTRIES_OFFSET, 8);
}

#[test]
fn request_codes_convert() {
    let all = [
        RequestCode::Read,
        RequestCode::Write,
        RequestCode::Flush,
        RequestCode::Barrier,
    ];
    for (raw, code) in all.into_iter().enumerate() {
        let raw = u32::try_from(raw).unwrap();
        assert_eq!(code as u32, raw);
        assert_eq!(RequestCode::try_from(raw), Ok(code));
        assert_eq!(code.has_buffer(), raw < 2);
    }
    for bad in [4, 5, 0x100, u32::MAX] {
        assert_eq!(RequestCode::try_from(bad), Err(UnknownRequestCode(bad)));
    }
    let mut r = BlkRequest::new(RequestCode::Flush, 0, 0, 0, 9);
    assert_eq!(r.code(), Ok(RequestCode::Flush));
    r.code = 77;
    assert_eq!(r.code(), Err(UnknownRequestCode(77)));
}

#[test]
fn response_statuses_convert() {
    let all = [
        ResponseStatus::Ok,
        ResponseStatus::ErrUnspec,
        ResponseStatus::ErrInvalidParam,
        ResponseStatus::ErrIo,
        ResponseStatus::ErrNoDevice,
    ];
    for (raw, status) in all.into_iter().enumerate() {
        let raw = u32::try_from(raw).unwrap();
        assert_eq!(status as u32, raw);
        assert_eq!(ResponseStatus::try_from(raw), Ok(status));
    }
    for bad in [5, 6, 0xffff, u32::MAX] {
        assert_eq!(
            ResponseStatus::try_from(bad),
            Err(UnknownResponseStatus(bad))
        );
    }
    let mut r = BlkResponse::new(ResponseStatus::ErrIo, 3, 1);
    assert_eq!(r.status(), Ok(ResponseStatus::ErrIo));
    r.status = 5;
    assert_eq!(r.status(), Err(UnknownResponseStatus(5)));
}

/// Owned, 8-aligned stand-ins for the request and response regions.
struct Regions {
    req: Vec<u64>,
    resp: Vec<u64>,
}

impl Regions {
    fn new() -> Self {
        Self {
            req: vec![0; 512],
            resp: vec![0; 512],
        }
    }

    fn req_header(&self) -> &BlkReqQueue {
        // SAFETY: 8-aligned, larger than the header, all-zero is valid.
        unsafe { &*self.req.as_ptr().cast::<BlkReqQueue>() }
    }

    fn resp_header(&self) -> &BlkRespQueue {
        // SAFETY: as above.
        unsafe { &*self.resp.as_ptr().cast::<BlkRespQueue>() }
    }

    fn ptrs(&mut self) -> (NonNull<u8>, NonNull<u8>) {
        (
            NonNull::new(self.req.as_mut_ptr().cast()).unwrap(),
            NonNull::new(self.resp.as_mut_ptr().cast()).unwrap(),
        )
    }

    fn pair(&mut self, cap: u16) -> (BlkRequester<'static>, BlkServer<'static>) {
        let (q, r) = self.ptrs();
        // SAFETY: the buffers outlive the handles in each test; one handle per role.
        unsafe {
            (
                BlkRequester::new(q, 4096, r, 4096, cap).unwrap(),
                BlkServer::new(q, 4096, r, 4096, cap).unwrap(),
            )
        }
    }
}

#[test]
fn round_trip_out_of_order() {
    let mut m = Regions::new();
    let (mut client, mut driver) = m.pair(8);
    for id in 0..3u32 {
        client
            .submit(BlkRequest::new(
                RequestCode::Read,
                u64::from(id) * 4096,
                100 + u64::from(id),
                1,
                id,
            ))
            .unwrap();
    }
    assert_eq!(
        driver.request().unwrap(),
        None,
        "staged requests are invisible"
    );
    assert!(
        client.publish().unwrap(),
        "published requests: always notify"
    );
    assert!(!client.publish().unwrap(), "nothing new: no notification");
    assert_eq!(client.in_flight(), 3);
    // The entries sit at offset 16 in the C layout: request 1's id at 16 + 32 + 28.
    let bytes = m.req.as_bytes();
    assert_eq!(&bytes[16 + 32 + 28..16 + 32 + 32], &1u32.to_le_bytes());
    assert_eq!(&bytes[16 + 32 + 16..16 + 32 + 24], &101u64.to_le_bytes());
    let reqs: Vec<_> = core::iter::from_fn(|| driver.request().unwrap()).collect();
    assert_eq!(reqs.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(reqs.iter().all(|r| r.code() == Ok(RequestCode::Read)));
    // Complete out of order.
    for id in [2, 0, 1] {
        driver
            .respond(BlkResponse::new(ResponseStatus::Ok, 1, id))
            .unwrap();
    }
    assert!(driver.publish());
    assert_eq!(
        m.req_header().head.load(Ordering::Relaxed),
        3,
        "request slots handed back"
    );
    // Response 0's id at offset 8 + 8 in the response region.
    assert_eq!(&m.resp.as_bytes()[16..20], &2u32.to_le_bytes());
    let ids: Vec<_> = core::iter::from_fn(|| client.response().unwrap())
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [2, 0, 1]);
    assert_eq!(client.in_flight(), 0);
    assert!(
        !client.publish().unwrap(),
        "releasing responses needs no notification"
    );
    assert_eq!(m.resp_header().head.load(Ordering::Relaxed), 3);
}

#[test]
fn in_flight_is_bounded_by_capacity() {
    let mut m = Regions::new();
    let (mut client, mut driver) = m.pair(4);
    for id in 0..4 {
        client
            .submit(BlkRequest::new(RequestCode::Write, 0, 0, 1, id))
            .unwrap();
    }
    client.publish().unwrap();
    while driver.request().unwrap().is_some() {}
    driver.publish();
    // The request queue is empty again, but four answers are owed: a fifth could overflow the
    // response queue.
    let fifth = BlkRequest::new(RequestCode::Flush, 0, 0, 0, 4);
    assert_eq!(client.submit(fifth), Err(PushError::Full(fifth)));
    for id in 0..4 {
        driver
            .respond(BlkResponse::new(ResponseStatus::Ok, 1, id))
            .unwrap();
    }
    assert!(matches!(
        driver.respond(BlkResponse::new(ResponseStatus::Ok, 0, 9)),
        Err(PushError::Full(_))
    ));
    driver.publish();
    assert!(client.response().unwrap().is_some());
    client.submit(fifth).unwrap();
}

#[test]
fn indices_wrap_in_u32() {
    let mut m = Regions::new();
    for (h, t) in [
        (&m.req_header().head, &m.req_header().tail),
        (&m.resp_header().head, &m.resp_header().tail),
    ] {
        h.store(u32::MAX - 1, Ordering::Relaxed);
        t.store(u32::MAX - 1, Ordering::Relaxed);
    }
    let (mut client, mut driver) = m.pair(4);
    let mut next = 0u32;
    for _ in 0..5 {
        while client
            .submit(BlkRequest::new(
                RequestCode::Read,
                0,
                u64::from(next),
                1,
                next,
            ))
            .is_ok()
        {
            next += 1;
        }
        assert_eq!(client.in_flight(), 4);
        client.publish().unwrap();
        let mut got = Vec::new();
        while let Some(r) = driver.request().unwrap() {
            got.push(r.id);
            driver
                .respond(BlkResponse::new(ResponseStatus::Ok, r.count, r.id))
                .unwrap();
        }
        assert_eq!(
            got,
            (next - 4..next).collect::<Vec<_>>(),
            "FIFO across the wrap"
        );
        driver.publish();
        while client.response().unwrap().is_some() {}
        client.publish().unwrap();
    }
    assert!(
        m.req_header().tail.load(Ordering::Relaxed) < 100,
        "the tail wrapped"
    );
}

#[test]
fn misbehaving_peer_is_reported() {
    let mut m = Regions::new();
    let (mut client, mut driver) = m.pair(4);
    // A client claiming five requests in a four-entry queue.
    m.req_header().tail.store(5, Ordering::Relaxed);
    let e = driver.request().unwrap_err();
    assert_eq!((e.field, e.value), (IndexField::Tail, 5));
    // A driver claiming responses it never wrote beyond capacity.
    m.resp_header().tail.store(u32::MAX, Ordering::Relaxed);
    let e = client.response().unwrap_err();
    assert_eq!(e.field, IndexField::Tail);
    // A driver moving the request head past what was ever published.
    m.req_header().head.store(2, Ordering::Relaxed);
    assert_eq!(client.req.free().unwrap_err().field, IndexField::Head);
}

#[test]
fn plug_is_advisory_and_visible() {
    let mut m = Regions::new();
    let (client, driver) = m.pair(4);
    assert!(!driver.is_plugged());
    client.plug();
    assert!(driver.is_plugged());
    assert_eq!(m.req.as_bytes()[8], 1, "plugged is the byte at offset 8");
    client.unplug();
    assert!(!driver.is_plugged());
}

#[test]
fn regions_and_capacities_are_checked() {
    let mut m = Regions::new();
    let (q, r) = m.ptrs();
    // SAFETY: live buffers; each call fails or makes the only handle of its role.
    unsafe {
        assert_eq!(
            BlkServer::new(q, 4096, r, 4096, 6).err(),
            Some(QueueError::Region(RegionError::Capacity(
                CapacityError::NotPowerOfTwo(6)
            )))
        );
        assert_eq!(
            BlkServer::new(q, 4096, r, 4096, 0).err(),
            Some(QueueError::Region(RegionError::Capacity(
                CapacityError::Zero
            )))
        );
        // 16 + 4 × 32 = 144 and 8 + 4 × 12 = 56.
        assert_eq!(
            BlkServer::new(q, 143, r, 4096, 4).err(),
            Some(QueueError::Region(RegionError::TooSmall {
                needed: 144,
                have: 143
            }))
        );
        assert_eq!(
            BlkRequester::new(q, 144, r, 55, 4).err(),
            Some(QueueError::Region(RegionError::TooSmall {
                needed: 56,
                have: 55
            }))
        );
        assert!(BlkRequester::new(q, 144, r, 56, 4).is_ok());
        let odd = NonNull::new(q.as_ptr().add(4)).unwrap();
        assert_eq!(
            BlkRequester::new(odd, 1000, r, 1000, 4).err(),
            Some(QueueError::Region(RegionError::Misaligned))
        );
    }
}

#[test]
fn from_connection_uses_config_addresses() {
    let mut m = Regions::new();
    let (q, r) = m.ptrs();
    let conn = BlkConnectionResource {
        storage_info: RegionResource { vaddr: 0, size: 0 },
        req_queue: RegionResource {
            vaddr: q.as_ptr().expose_provenance() as u64,
            size: 4096,
        },
        resp_queue: RegionResource {
            vaddr: r.as_ptr().expose_provenance() as u64,
            size: 4096,
        },
        num_buffers: 16,
        id: 1,
        _pad: [0; 5],
    };
    // SAFETY: the connection describes the live buffers; one handle per role.
    let (mut client, mut driver) = unsafe {
        (
            BlkRequester::from_connection(&conn).unwrap(),
            BlkServer::from_connection(&conn).unwrap(),
        )
    };
    assert_eq!(client.req.capacity().slots(), 16);
    client
        .submit(BlkRequest::new(RequestCode::Barrier, 0, 0, 0, 42))
        .unwrap();
    client.publish().unwrap();
    assert_eq!(driver.request().unwrap().map(|r| r.id), Some(42));
    let mut bad = conn;
    bad.resp_queue.vaddr = 0;
    // SAFETY: fails before touching memory.
    let refused = unsafe { BlkServer::from_connection(&bad) }.err();
    assert_eq!(refused, Some(QueueError::Unmapped));
}

#[test]
fn restarted_requester_counts_what_it_sees() {
    let mut m = Regions::new();
    {
        let (mut client, mut driver) = m.pair(8);
        for id in 0..3 {
            client
                .submit(BlkRequest::new(RequestCode::Read, 0, 0, 1, id))
                .unwrap();
        }
        client.publish().unwrap();
        let r = driver.request().unwrap().unwrap();
        driver
            .respond(BlkResponse::new(ResponseStatus::Ok, 1, r.id))
            .unwrap();
        driver.publish();
    }
    let (client, _driver) = m.pair(8);
    assert_eq!(
        client.in_flight(),
        3,
        "two requests queued plus one answer unread"
    );
}
