// SPDX-License-Identifier: BSD-2-Clause
//! [`RpcClient`]: a sans-IO ONC RPC client for one TCP connection.
//!
//! The client never touches a socket. The caller:
//!
//! 1. starts calls with [`RpcClient::call`] (an xid comes back; up to `max_in_flight` calls may
//!    be outstanding at once);
//! 2. sends what [`RpcClient::transmit_queue`] holds and reports it with
//!    [`RpcClient::transmitted`];
//! 3. feeds every byte it reads to [`RpcClient::receive`] and takes completed replies, matched
//!    to their calls by xid and in whatever order the server answered, from
//!    [`RpcClient::poll_reply`];
//! 4. when the connection drops, opens a new one and calls [`RpcClient::reconnected`]: every
//!    call still unanswered is queued again, whole, with its xid (the server's duplicate request
//!    cache recognises retransmissions), and any partial reply is discarded.
//!
//! A reply whose xid is not outstanding (a late duplicate) is dropped and counted; a reply that
//! cannot be parsed at all is dropped and counted; a stream that breaks the record marking is an
//! error after which the caller reconnects. Buffers are bounded: a record above `max_record`
//! bytes is refused before it is buffered.

use crate::record::{FrameError, RecordReader, begin_record, end_record};
use crate::rpc::{Auth, RpcError, decode_reply, encode_call, reply_xid};
use crate::xdr::Encoder;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// What a client is built with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Credential for every call.
    pub auth: Auth,
    /// First xid (choose a different one per boot so a restarted client's xids do not hit the
    /// server's duplicate request cache).
    pub first_xid: u32,
    /// Most calls outstanding at once.
    pub max_in_flight: usize,
    /// Largest reply record accepted.
    pub max_record: usize,
}

/// Why a call could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// `max_in_flight` calls are outstanding.
    Full,
    /// The encoded call is too large for one record.
    TooLarge,
}

/// A reply matched to its call.
#[derive(Debug)]
pub struct Reply {
    /// The call's xid.
    pub xid: u32,
    /// The tag given to [`RpcClient::call`].
    pub tag: u64,
    record: Vec<u8>,
}

impl Reply {
    /// The procedure's results, or why the server gave none.
    pub fn result(&self) -> Result<&[u8], RpcError> {
        decode_reply(&self.record).1
    }
}

#[derive(Debug)]
struct Pending {
    xid: u32,
    tag: u64,
    /// The call's whole record (header included), kept for retransmission.
    record: Vec<u8>,
}

/// Counters of what the client discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Replies with an xid not outstanding.
    pub unmatched: u64,
    /// Records that were not parseable replies.
    pub malformed: u64,
    /// Calls queued again after a reconnect.
    pub retransmitted: u64,
}

/// A sans-IO ONC RPC client for one (re)connectable TCP stream.
#[derive(Debug)]
pub struct RpcClient {
    auth: Auth,
    next_xid: u32,
    max_in_flight: usize,
    pending: Vec<Pending>,
    out: Vec<u8>,
    out_sent: usize,
    reader: RecordReader,
    ready: VecDeque<Reply>,
    stats: Stats,
}

impl RpcClient {
    /// A client with no calls outstanding.
    pub fn new(config: Config) -> Self {
        RpcClient {
            auth: config.auth,
            next_xid: config.first_xid,
            max_in_flight: config.max_in_flight.max(1),
            pending: Vec::new(),
            out: Vec::new(),
            out_sent: 0,
            reader: RecordReader::new(config.max_record),
            ready: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Start a call of `proc` in `prog` version `vers`, arguments written by `args`; `tag` comes
    /// back with the reply. Returns the xid.
    pub fn call(
        &mut self,
        prog: u32,
        vers: u32,
        proc: u32,
        tag: u64,
        args: impl FnOnce(&mut Encoder<'_>),
    ) -> Result<u32, CallError> {
        if self.pending.len() >= self.max_in_flight {
            return Err(CallError::Full);
        }
        let xid = self.next_xid;
        let mut record = Vec::new();
        let start = begin_record(&mut record);
        {
            let mut e = Encoder::new(&mut record);
            encode_call(&mut e, xid, prog, vers, proc, &self.auth);
            args(&mut e);
        }
        if !end_record(&mut record, start) {
            return Err(CallError::TooLarge);
        }
        self.next_xid = self.next_xid.wrapping_add(1);
        self.out.extend_from_slice(&record);
        self.pending.push(Pending { xid, tag, record });
        Ok(xid)
    }

    /// Calls outstanding.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Whether a call can be started now.
    pub fn can_call(&self) -> bool {
        self.pending.len() < self.max_in_flight
    }

    /// Bytes waiting to be sent.
    pub fn transmit_queue(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// `n` bytes of [`transmit_queue`](Self::transmit_queue) were sent.
    pub fn transmitted(&mut self, n: usize) {
        self.out_sent = (self.out_sent + n).min(self.out.len());
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
    }

    /// Feed bytes read from the connection. All of `data` is consumed unless the stream is
    /// broken (then reconnect).
    pub fn receive(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        while !data.is_empty() {
            let (used, record) = self.reader.push(data)?;
            data = &data[used..];
            if let Some(record) = record {
                self.complete(record);
            }
        }
        Ok(())
    }

    fn complete(&mut self, record: Vec<u8>) {
        let Ok(xid) = reply_xid(&record) else {
            self.stats.malformed += 1;
            return;
        };
        match self.pending.iter().position(|p| p.xid == xid) {
            // Delivered even if malformed: the caller learns why from `Reply::result`.
            Some(i) => {
                let p = self.pending.swap_remove(i);
                self.ready.push_back(Reply {
                    xid,
                    tag: p.tag,
                    record,
                });
            }
            None => match decode_reply(&record).1 {
                Err(RpcError::NotReply(_) | RpcError::Xdr(_)) => self.stats.malformed += 1,
                _ => self.stats.unmatched += 1,
            },
        }
    }

    /// The next completed reply.
    pub fn poll_reply(&mut self) -> Option<Reply> {
        self.ready.pop_front()
    }

    /// Give up on call `xid` (its reply, if one comes, will be dropped). Returns its tag.
    pub fn cancel(&mut self, xid: u32) -> Option<u64> {
        let i = self.pending.iter().position(|p| p.xid == xid)?;
        Some(self.pending.swap_remove(i).tag)
    }

    /// The connection was replaced by a new one: discard partial input and queue every
    /// outstanding call again, in xid order.
    pub fn reconnected(&mut self) {
        self.reader.reset();
        self.out.clear();
        self.out_sent = 0;
        self.pending
            .sort_by_key(|p| p.xid.wrapping_sub(self.next_xid));
        for p in &self.pending {
            self.out.extend_from_slice(&p.record);
            self.stats.retransmitted += 1;
        }
    }

    /// What was discarded so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::Decoder;

    fn client() -> RpcClient {
        RpcClient::new(Config {
            auth: Auth::None,
            first_xid: 100,
            max_in_flight: 2,
            max_record: 1024,
        })
    }

    fn reply(xid: u32, result: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let s = begin_record(&mut v);
        Encoder::new(&mut v)
            .u32(xid)
            .u32(1)
            .u32(0)
            .u32(0)
            .u32(0)
            .u32(0)
            .u32(result);
        assert!(end_record(&mut v, s));
        v
    }

    #[test]
    fn out_of_order_replies_match_by_xid() {
        let mut c = client();
        let a = c.call(1, 1, 1, 7, |e| {
            e.u32(5);
        });
        let b = c.call(1, 1, 2, 8, |_| {});
        assert_eq!((a, b), (Ok(100), Ok(101)));
        assert_eq!(c.call(1, 1, 3, 9, |_| {}), Err(CallError::Full));
        let sent = c.transmit_queue().to_vec();
        c.transmitted(sent.len());
        // Second call's record starts after the first's.
        let first_len =
            4 + (u32::from_be_bytes([sent[0], sent[1], sent[2], sent[3]]) & 0x7fff_ffff) as usize;
        assert_eq!(Decoder::new(&sent[first_len + 4..]).u32(), Ok(101));
        let mut input = reply(101, 42);
        input.extend(reply(100, 41));
        input.extend(reply(100, 0)); // duplicate: dropped
        c.receive(&input).unwrap();
        let r = c.poll_reply().unwrap();
        assert_eq!((r.xid, r.tag, r.result()), (101, 8, Ok(&[0, 0, 0, 42][..])));
        let r = c.poll_reply().unwrap();
        assert_eq!((r.xid, r.tag), (100, 7));
        assert!(c.poll_reply().is_none());
        assert_eq!(c.stats().unmatched, 1);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn reconnect_retransmits_unanswered_calls() {
        let mut c = client();
        c.call(1, 1, 1, 0, |_| {}).unwrap();
        c.call(1, 1, 1, 0, |_| {}).unwrap();
        let first = c.transmit_queue().to_vec();
        c.transmitted(10);
        // Half a reply, then the connection drops.
        c.receive(&reply(100, 1)[..6]).unwrap();
        c.reconnected();
        assert_eq!(c.transmit_queue(), &first[..]);
        c.transmitted(first.len());
        c.receive(&reply(100, 1)).unwrap();
        assert_eq!(c.poll_reply().map(|r| r.xid), Some(100));
        c.reconnected();
        // Only the unanswered call goes again.
        assert_eq!(Decoder::new(&c.transmit_queue()[4..]).u32(), Ok(101));
        assert_eq!(c.stats().retransmitted, 3);
    }
}
