// SPDX-License-Identifier: BSD-2-Clause
//! Property tests: the record-marking framer under arbitrary fragmentation and read splits, the
//! client matching shuffled replies, and every decoder fed random, truncated and corrupted
//! server input (an error value, never a panic; proptest reports a panic as a failure).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use lions_nfs::client::{Config, RpcClient};
use lions_nfs::nfs3::{self, FileHandle};
use lions_nfs::record::{LAST_FRAGMENT, RecordReader};
use lions_nfs::rpc::{self, Auth};
use lions_nfs::xdr::Encoder;
use lions_nfs::{mount, portmap};
use proptest::prelude::*;

/// Encode `records` with each split into fragments at the given fractions.
fn stream(records: &[(Vec<u8>, Vec<usize>)]) -> Vec<u8> {
    let mut s = Vec::new();
    for (rec, cuts) in records {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (rec.len() + 1)).collect();
        cuts.push(rec.len());
        cuts.sort_unstable();
        let mut start = 0;
        for (i, &c) in cuts.iter().enumerate() {
            let last = i + 1 == cuts.len();
            let len = (c - start) as u32 | if last { LAST_FRAGMENT } else { 0 };
            s.extend_from_slice(&len.to_be_bytes());
            s.extend_from_slice(&rec[start..c]);
            start = c;
        }
    }
    s
}

fn records() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<usize>)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<usize>(), 0..4),
        ),
        0..8,
    )
}

/// Feed `s` to a reader in pieces of the given sizes; the records it yields.
fn reassemble(s: &[u8], splits: &[usize], max: usize) -> Result<Vec<Vec<u8>>, ()> {
    let mut r = RecordReader::new(max);
    let mut out = Vec::new();
    let mut rest = s;
    let mut i = 0;
    while !rest.is_empty() {
        let n = (splits.get(i).copied().unwrap_or(usize::MAX) % 64 + 1).min(rest.len());
        i += 1;
        let mut piece = &rest[..n];
        rest = &rest[n..];
        while !piece.is_empty() {
            let (used, rec) = r.push(piece).map_err(drop)?;
            assert!(used <= piece.len() && (used > 0 || piece.is_empty()));
            piece = &piece[used..];
            out.extend(rec);
        }
    }
    Ok(out)
}

/// A reply record for `xid` with `results`.
fn reply(xid: u32, results: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    Encoder::new(&mut v)
        .u32(xid)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0);
    v.extend_from_slice(results);
    v
}

/// Valid result bodies for the decoders (from a model server), to corrupt.
fn valid_bodies() -> Vec<Vec<u8>> {
    let fattr = |e: &mut Encoder<'_>| {
        e.u32(1)
            .u32(0o644)
            .u32(1)
            .u32(0)
            .u32(0)
            .u64(10)
            .u64(4096)
            .u32(0)
            .u32(0)
            .u64(1)
            .u64(2);
        for _ in 0..6 {
            e.u32(3);
        }
    };
    let mut out = Vec::new();
    let mut v = Vec::new();
    let mut e = Encoder::new(&mut v);
    e.u32(0);
    fattr(&mut e);
    out.push(v);
    // LOOKUP OK
    let mut v = Vec::new();
    let mut e = Encoder::new(&mut v);
    e.u32(0).opaque(&[7; 28]).bool(true);
    fattr(&mut e);
    e.bool(false);
    out.push(v);
    // READ OK
    let mut v = Vec::new();
    let mut e = Encoder::new(&mut v);
    e.u32(0).bool(true);
    fattr(&mut e);
    e.u32(5).bool(true).opaque(b"hello");
    out.push(v);
    // WRITE OK (wcc with both halves)
    let mut v = Vec::new();
    let mut e = Encoder::new(&mut v);
    e.u32(0)
        .bool(true)
        .u64(1)
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(1)
        .bool(true);
    fattr(&mut e);
    e.u32(5).u32(2).fixed_opaque(&[9; 8]);
    out.push(v);
    // READDIRPLUS OK, two entries
    let mut v = Vec::new();
    let mut e = Encoder::new(&mut v);
    e.u32(0).bool(false).fixed_opaque(&[1; 8]);
    for n in [&b"a"[..], b"bb"] {
        e.bool(true).u64(1).opaque(n).u64(2).bool(true);
        fattr(&mut e);
        e.bool(true).opaque(&[3; 8]);
    }
    e.bool(false).bool(true);
    out.push(v);
    // MNT OK
    let mut v = Vec::new();
    Encoder::new(&mut v)
        .u32(0)
        .opaque(&[5; 16])
        .u32(2)
        .u32(0)
        .u32(1);
    out.push(v);
    out
}

/// Every decoder on `b`: each returns, none panics.
fn decode_all(b: &[u8]) {
    let _ = nfs3::decode_getattr(b);
    let _ = nfs3::decode_setattr(b);
    let _ = nfs3::decode_lookup(b);
    let _ = nfs3::decode_access(b);
    let _ = nfs3::decode_read(b);
    let _ = nfs3::decode_write(b);
    let _ = nfs3::decode_create(b);
    let _ = nfs3::decode_remove(b);
    let _ = nfs3::decode_rename(b);
    let _ = nfs3::decode_commit(b);
    let _ = nfs3::decode_fsstat(b);
    let _ = nfs3::decode_fsinfo(b);
    if let Ok(l) = nfs3::decode_readdir(b) {
        let _ = l.entries().count();
    }
    if let Ok(l) = nfs3::decode_readdirplus(b) {
        let _ = l.entries().count();
    }
    let _ = mount::decode_mnt(b);
    let _ = portmap::decode_getport(b);
    let _ = rpc::decode_reply(b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn framer_reassembles_any_fragmentation_and_split(recs in records(), splits in proptest::collection::vec(any::<usize>(), 0..200)) {
        let s = stream(&recs);
        let got = reassemble(&s, &splits, 300).unwrap();
        let want: Vec<Vec<u8>> = recs.into_iter().map(|(r, _)| r).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framer_refuses_records_over_its_limit(recs in records(), splits in proptest::collection::vec(any::<usize>(), 0..200), max in 0usize..300) {
        let s = stream(&recs);
        let fits = recs.iter().all(|(r, _)| r.len() <= max);
        match reassemble(&s, &splits, max) {
            Ok(got) => {
                prop_assert!(fits);
                prop_assert_eq!(got.len(), recs.len());
            }
            Err(()) => prop_assert!(!fits),
        }
    }

    #[test]
    fn client_matches_shuffled_replies_split_anywhere(
        n in 1usize..20,
        order in Just(()).prop_perturb(|_, mut rng| { let mut v: Vec<usize> = (0..20).collect(); for i in (1..v.len()).rev() { let j = rng.random_range(0..=i); v.swap(i, j); } v }),
        splits in proptest::collection::vec(any::<usize>(), 0..100),
    ) {
        let mut c = RpcClient::new(Config { auth: Auth::None, first_xid: u32::MAX - 5, max_in_flight: 20, max_record: 1024 });
        let xids: Vec<u32> = (0..n).map(|i| c.call(1, 1, 1, i as u64, |_| {}).unwrap()).collect();
        let recs: Vec<(Vec<u8>, Vec<usize>)> = order.iter().filter(|&&i| i < n)
            .map(|&i| (reply(xids[i], &(i as u32).to_be_bytes()), vec![])).collect();
        let s = stream(&recs);
        let mut rest = &s[..];
        let mut k = 0;
        while !rest.is_empty() {
            let m = (splits.get(k).copied().unwrap_or(7) % 50 + 1).min(rest.len());
            k += 1;
            c.receive(&rest[..m]).unwrap();
            rest = &rest[m..];
        }
        let mut seen = 0;
        while let Some(r) = c.poll_reply() {
            prop_assert_eq!(r.xid, xids[r.tag as usize]);
            prop_assert_eq!(r.result().unwrap(), &(r.tag as u32).to_be_bytes()[..]);
            seen += 1;
        }
        prop_assert_eq!(seen, n);
        prop_assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn decoders_total_on_random_bytes(b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..400)) {
        decode_all(&b);
    }

    #[test]
    fn decoders_total_on_corrupted_replies(which in 0usize..6, cut in any::<usize>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        let mut b = valid_bodies()[which].clone();
        for (at, x) in flips {
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= x;
            }
        }
        let cut = cut % (b.len() + 1);
        decode_all(&b[..cut]);
        decode_all(&b);
    }

    #[test]
    fn client_survives_random_streams(s in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut c = RpcClient::new(Config { auth: Auth::None, first_xid: 0, max_in_flight: 4, max_record: 512 });
        for _ in 0..4 {
            c.call(1, 1, 1, 0, |_| {}).unwrap();
        }
        // Either the stream breaks the framing (reconnect) or every record was handled.
        if c.receive(&s).is_ok() {
            while let Some(r) = c.poll_reply() {
                let _ = r.result();
            }
        }
        c.reconnected();
        prop_assert!(c.in_flight() <= 4);
    }
}

#[test]
fn valid_bodies_decode() {
    let b = valid_bodies();
    assert_eq!(nfs3::decode_getattr(&b[0]).unwrap().size, 10);
    assert_eq!(
        nfs3::decode_lookup(&b[1]).unwrap().fh,
        FileHandle::new(&[7; 28]).unwrap()
    );
    assert_eq!(nfs3::decode_read(&b[2]).unwrap().data, b"hello");
    assert_eq!(nfs3::decode_write(&b[3]).unwrap().verf, [9; 8]);
    let l = nfs3::decode_readdirplus(&b[4]).unwrap();
    assert_eq!(
        l.entries().map(|e| e.name.to_vec()).collect::<Vec<_>>(),
        [b"a".to_vec(), b"bb".to_vec()]
    );
    assert!(mount::decode_mnt(&b[5]).unwrap().1);
}
