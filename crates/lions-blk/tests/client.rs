// SPDX-License-Identifier: BSD-2-Clause
//! The client library: the asynchronous API against a hand-driven server (ids, out-of-order
//! completions, local checks, the in-flight bound, when the virt is notified), and the blocking
//! adaptor against a server running on another thread (chunking through a small data region,
//! FLUSH, BARRIER, device errors).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::sim::{BLK, Conn, res};
use lions_blk::{
    BlkClient, BlkRequester, BlkResponse, BlkServer, BlkStorageInfo, BlockingBlk, ClientError,
    Completion, QueuedBlk, RequestCode, ResponseStatus, StorageInfoPage, StorageInfoWriter,
};
use lions_os::runtime::{Backend, with_backend};
use lions_os::sim::Region;
use lions_os::{Channel, MessageInfo, Op, OsError, OsErrorKind};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use zerocopy::FromZeros;

const CH: Channel = Channel::new(5);

/// A backend that records notifications.
#[derive(Default)]
struct Fake {
    notes: RefCell<u32>,
}

impl Backend for Fake {
    fn pd_name(&self) -> &str {
        "client"
    }
    fn notify(&self, ch: Channel) -> Result<(), OsError> {
        assert_eq!(ch, CH);
        *self.notes.borrow_mut() += 1;
        Ok(())
    }
    fn irq_ack(&self, ch: Channel) -> Result<(), OsError> {
        Err(OsError::new(
            "client",
            Op::IrqAck,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn ppcall(&self, ch: Channel, _: MessageInfo) -> Result<MessageInfo, OsError> {
        Err(OsError::new(
            "client",
            Op::PpCall,
            Some(ch),
            OsErrorKind::NotPermitted,
        ))
    }
    fn mr(&self, _: usize) -> u64 {
        0
    }
    fn set_mr(&self, _: usize, _: u64) {}
}

fn client<'a>(conn: &Conn, data: &'a Region) -> BlkClient<'a> {
    // SAFETY: the regions outlive the client in each test; one requester per connection.
    unsafe {
        let q = BlkRequester::from_connection(&conn.res(5)).unwrap();
        let page = StorageInfoPage::from_region(&res(&conn.info)).unwrap();
        BlkClient::with_queues(q, CH, page, data.as_ptr(), data.len())
    }
}

fn publish_info(conn: &Conn, capacity: u64) {
    let mut info = BlkStorageInfo::new_zeroed();
    info.capacity = capacity;
    info.sector_size = 512;
    // SAFETY: the page outlives the writer; the only writer.
    let w = unsafe { StorageInfoWriter::from_region(&res(&conn.info)) }.unwrap();
    w.publish(&info);
}

#[test]
fn async_ids_out_of_order_checks_and_notifications() {
    let conn = Conn::new(4);
    let data = Region::new(8 * BLK);
    let mut c = client(&conn, &data);
    // SAFETY: the regions outlive the server; the only server.
    let mut virt = unsafe { BlkServer::from_connection(&conn.res(0)) }.unwrap();
    let fake = Fake::default();
    with_backend(&fake, || {
        assert_eq!(c.info(), None);
        assert_eq!(c.submit_flush(), Err(ClientError::NotReady));
        publish_info(&conn, 16);
        assert_eq!(c.info().unwrap().capacity, 16);
        for (block, count, offset) in [
            (0, 0, 0),
            (15, 2, 0),
            (0, 1, 100),
            (0, 1, 8 * BLK),
            (0, 9, 0),
        ] {
            assert_eq!(
                c.submit_read(block, count, offset),
                Err(ClientError::Range),
                "{block} {count} {offset}"
            );
        }
        assert_eq!(c.submit_read(15, 1, 7 * BLK), Ok(0));
        assert_eq!(c.submit_write(3, 2, 0), Ok(1));
        assert_eq!(c.submit_barrier(), Ok(2));
        assert_eq!(c.submit_flush(), Ok(3));
        assert_eq!(c.submit_flush(), Err(ClientError::Full), "four in flight");
        assert_eq!(c.in_flight(), 4);
        assert!(
            virt.request().unwrap().is_none(),
            "staged, not yet published"
        );
        c.publish().unwrap();
        assert_eq!(*fake.notes.borrow(), 1);
        let reqs: Vec<_> = (0..4).map(|_| virt.request().unwrap().unwrap()).collect();
        assert_eq!(reqs.iter().map(|r| r.id).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(
            (reqs[0].block_number, reqs[0].count, reqs[0].io_or_offset),
            (15, 1, 7 * 4096)
        );
        assert_eq!(reqs[2].code(), Ok(RequestCode::Barrier));
        for id in [3, 1, 0, 2] {
            let status = if id == 1 {
                ResponseStatus::ErrIo
            } else {
                ResponseStatus::Ok
            };
            virt.respond(BlkResponse::new(status, (id % 2) as u16, id))
                .unwrap();
        }
        virt.publish();
        let got: Vec<Completion> = std::iter::from_fn(|| c.poll().unwrap()).collect();
        assert_eq!(got.iter().map(|d| d.id).collect::<Vec<_>>(), [3, 1, 0, 2]);
        assert_eq!(got[1].status, ResponseStatus::ErrIo);
        assert_eq!(c.in_flight(), 0);
        c.publish().unwrap();
        assert_eq!(
            *fake.notes.borrow(),
            1,
            "slots handed back, nothing waiting: no notification"
        );
        // Slots handed back while requests wait (the virt held them for room): notify.
        c.submit_flush().unwrap();
        c.publish().unwrap();
        assert_eq!(*fake.notes.borrow(), 2);
        let r = virt.request().unwrap().unwrap();
        virt.respond(BlkResponse::new(ResponseStatus::Ok, 0, r.id))
            .unwrap();
        virt.publish();
        c.submit_flush().unwrap();
        c.publish().unwrap();
        assert_eq!(*fake.notes.borrow(), 3);
        assert_eq!(c.poll().unwrap().unwrap().id, 4);
        c.publish().unwrap();
        assert_eq!(
            *fake.notes.borrow(),
            4,
            "request 5 still waits in the queue"
        );
        // Data copies are bounds-checked.
        c.copy_to_data(7 * BLK, &[9; BLK]).unwrap();
        assert_eq!(
            c.copy_to_data(7 * BLK + 1, &[9; BLK]),
            Err(ClientError::Range)
        );
        let mut back = [0; 16];
        c.copy_from_data(8 * BLK - 16, &mut back).unwrap();
        assert_eq!(back, [9; 16]);
        assert_eq!(
            c.copy_from_data(usize::MAX, &mut back),
            Err(ClientError::Range)
        );
    });
}

/// A server thread that answers whatever arrives, each batch last request first, from an
/// in-memory disk whose block 40 is bad.
fn serve(conn: lions_blk::BlkConnectionResource, data: u64, disk: &mut [u8], stop: &AtomicBool) {
    // SAFETY: the regions outlive the thread (scoped); the only server.
    let mut q = unsafe { BlkServer::from_connection(&conn) }.unwrap();
    let mut batch = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        while let Some(r) = q.request().unwrap() {
            batch.push(r);
        }
        while let Some(r) = batch.pop() {
            let (at, len) = (r.block_number as usize * BLK, usize::from(r.count) * BLK);
            let mem = std::ptr::with_exposed_provenance_mut::<u8>((data + r.io_or_offset) as usize);
            let status = match r.code().unwrap() {
                _ if (r.block_number..r.block_number + u64::from(r.count)).contains(&40) => {
                    ResponseStatus::ErrIo
                }
                // SAFETY: the client checked the buffer lies in its data region.
                RequestCode::Read => unsafe {
                    std::ptr::copy_nonoverlapping(disk[at..].as_ptr(), mem, len);
                    ResponseStatus::Ok
                },
                // SAFETY: as above.
                RequestCode::Write => unsafe {
                    std::ptr::copy_nonoverlapping(mem, disk[at..].as_mut_ptr(), len);
                    ResponseStatus::Ok
                },
                RequestCode::Flush | RequestCode::Barrier => ResponseStatus::Ok,
            };
            let done = if status == ResponseStatus::Ok {
                r.count
            } else {
                0
            };
            q.respond(BlkResponse::new(status, done, r.id)).unwrap();
        }
        q.publish();
        std::hint::spin_loop();
    }
}

#[test]
fn blocking_adaptor_with_a_concurrent_server() {
    let conn = Conn::new(8);
    let data = Region::new(3 * BLK); // three blocks per chunk
    let mut disk = vec![0u8; 64 * BLK];
    let stop = AtomicBool::new(false);
    publish_info(&conn, 64);
    let (res0, data_addr) = (conn.res(0), common::sim::addr(&data));
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(res0, data_addr, &mut disk, &stop));
        let fake = Fake::default();
        with_backend(&fake, || {
            let mut b = BlockingBlk::new(client(&conn, &data));
            assert_eq!(b.wait_ready().unwrap().capacity, 64);
            assert_eq!(b.info().map(|i| i.capacity), Some(64));
            let text: Vec<u8> = (0..10 * BLK).map(|i| (i * 7 % 253) as u8).collect();
            b.write_blocks(20, &text).unwrap();
            b.flush().unwrap();
            b.barrier().unwrap();
            let mut back = vec![0u8; 10 * BLK];
            b.read_blocks(20, &mut back).unwrap();
            assert!(back == text, "ten blocks in chunks of three");
            assert_eq!(
                b.read_blocks(39, &mut back[..2 * BLK]),
                Err(ClientError::Status(ResponseStatus::ErrIo))
            );
            assert_eq!(
                b.read_blocks(63, &mut back[..2 * BLK]),
                Err(ClientError::Range)
            );
            assert_eq!(
                b.write_blocks(0, &back[..100]),
                Err(ClientError::Range),
                "not whole blocks"
            );
            b.read_blocks(0, &mut []).unwrap();
            assert_eq!(b.client().in_flight(), 0);
            // Every request was published with one notification, none for handing slots back.
            assert_eq!(*fake.notes.borrow(), 4 + 1 + 1 + 4 + 1);
        });
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
    });
    let want: Vec<u8> = (0..10 * BLK).map(|i| (i * 7 % 253) as u8).collect();
    assert!(disk[20 * BLK..30 * BLK] == want[..]);
}

/// Issue 12 item 5: a virt that stops answering (it faulted this client, or is gone) must not
/// hang the caller: every blocking wait gives up with `Stalled` after its patience, for
/// `BlockingBlk` and `QueuedBlk` alike, including the wait for the storage info.
#[test]
fn blocking_waits_give_up_when_the_virt_stops_answering() {
    let conn = Conn::new(8);
    let data = Region::new(4 * BLK);
    let fake = Fake::default();
    with_backend(&fake, || {
        let mut b = BlockingBlk::with_patience(client(&conn, &data), 50);
        assert_eq!(b.wait_ready(), Err(ClientError::Stalled), "never published");
        publish_info(&conn, 64);
        assert_eq!(b.wait_ready().unwrap().capacity, 64);
        // Nobody serves the queue: each call returns instead of spinning forever.
        let mut buf = vec![0u8; BLK];
        assert_eq!(b.read_blocks(0, &mut buf), Err(ClientError::Stalled));
        assert_eq!(b.write_blocks(0, &buf), Err(ClientError::Stalled));
        assert_eq!(b.flush(), Err(ClientError::Stalled));
        assert_eq!(b.barrier(), Err(ClientError::Stalled));

        let mut q = QueuedBlk::with_patience(b.into_inner(), 50);
        assert_eq!(q.read_blocks(0, &mut buf), Err(ClientError::Stalled));
        // A posted write returns at once; the flush that must wait for it gives up.
        assert_eq!(q.write_blocks(8, &buf), Ok(()));
        assert_eq!(q.flush(), Err(ClientError::Stalled));
        assert!(q.into_inner().is_err());
    });
}

#[test]
fn queued_io_with_a_concurrent_server() {
    let conn = Conn::new(16);
    let data = Region::new(8 * BLK); // eight slots
    let mut disk = vec![0u8; 64 * BLK];
    let stop = AtomicBool::new(false);
    publish_info(&conn, 64);
    let (res0, data_addr) = (conn.res(0), common::sim::addr(&data));
    let pattern = |seed: usize, n: usize| -> Vec<u8> {
        (0..n * BLK).map(|i| ((i + seed) * 7 % 253) as u8).collect()
    };
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(res0, data_addr, &mut disk, &stop));
        let fake = Fake::default();
        with_backend(&fake, || {
            let mut q = QueuedBlk::new(client(&conn, &data));
            assert_eq!(q.wait_ready().unwrap().capacity, 64);
            assert_eq!(q.max_blocks(), 8);
            // Posted writes: more blocks than slots, so later ones wait for room.
            let a = pattern(1, 20);
            q.write_blocks(0, &a).unwrap();
            // A rewrite of blocks possibly still out waits for the first write: the second wins.
            let b = pattern(2, 3);
            q.write_blocks(2, &b).unwrap();
            q.flush().unwrap();
            assert_eq!(q.outstanding(), 0);
            // Completions are taken when the virt notifies (`poll`), with no call waiting.
            q.write_blocks(30, &pattern(4, 2)).unwrap();
            let mut polls = 0;
            while q.outstanding() > 0 {
                q.poll().unwrap();
                polls += 1;
                assert!(polls < 10_000_000, "the server answers");
                std::hint::spin_loop();
            }
            let mut back = vec![0u8; 20 * BLK];
            q.read_blocks(0, &mut back).unwrap();
            let mut want = a.clone();
            want[2 * BLK..5 * BLK].copy_from_slice(&b);
            assert!(
                back == want,
                "twenty blocks in runs of eight, the rewrite last"
            );
            // A prefetch is taken by a read inside it; a write over a prefetch drops it.
            q.prefetch(8, 4).unwrap();
            let mut two = vec![0u8; 2 * BLK];
            q.read_blocks(9, &mut two).unwrap();
            assert!(two[..] == want[9 * BLK..11 * BLK]);
            q.prefetch(0, 4).unwrap();
            let c = pattern(3, 1);
            q.write_blocks(1, &c).unwrap();
            q.read_blocks(0, &mut two).unwrap();
            assert!(two[BLK..] == c[..], "the write, not the prefetched block");
            // Prefetch hints outside the device do nothing.
            q.prefetch(64, 4).unwrap();
            q.prefetch(62, 8).unwrap();
            // Device errors: a read fails at once, a posted write at the next call.
            assert_eq!(
                q.read_blocks(39, &mut two),
                Err(ClientError::Status(ResponseStatus::ErrIo))
            );
            q.write_blocks(40, &c).unwrap();
            assert_eq!(q.flush(), Err(ClientError::Status(ResponseStatus::ErrIo)));
            q.flush().unwrap();
            assert_eq!(q.read_blocks(63, &mut two), Err(ClientError::Range));
            assert_eq!(q.write_blocks(0, &two[..100]), Err(ClientError::Range));
            let c = q.into_inner().unwrap();
            assert_eq!(c.in_flight(), 0);
        });
        stop.store(true, Ordering::Relaxed);
        server.join().unwrap();
    });
}
