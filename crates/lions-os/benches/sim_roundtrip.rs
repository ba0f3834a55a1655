// SPDX-License-Identifier: BSD-2-Clause
//! Cost of the sim backend: a notify round trip (A notifies B, B notifies A: two scheduler steps)
//! and a PPC round trip (call, `protected`, reply with one message register), against a peer in
//! the same run: the two handler calls made directly through `&mut dyn Handler`, no scheduler.
//!
//! `cargo bench -p lions-os --features sim --bench sim_roundtrip`; prints the median ns per round
//! trip over 1000 samples of 100 round trips.

use lions_os::sim::Sim;
use lions_os::{Channel, ChannelSet, Handler, MessageInfo, get_mr, set_mr};
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

const SAMPLES: usize = 1000;
const PER_SAMPLE: usize = 100;

fn median_ns(mut run: impl FnMut()) -> f64 {
    for _ in 0..SAMPLES / 10 {
        run(); // warm-up
    }
    let mut ns: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_nanos() as f64 / PER_SAMPLE as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

/// Notifies channel 1 on every wake-up.
struct Bounce(u64);

impl Handler for Bounce {
    type Error = lions_os::OsError;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.0 += channels.bits();
        Channel::new(1).notify()
    }
}

/// Makes `PER_SAMPLE` PPCs per wake-up (an IRQ).
struct Client;

impl Handler for Client {
    type Error = lions_os::OsError;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        for i in 0..PER_SAMPLE as u64 {
            set_mr(0, i);
            let reply = Channel::new(1).pp_call(MessageInfo::new(1, 1))?;
            black_box((reply, get_mr(0)));
        }
        Channel::new(0).irq_ack()
    }
}

struct Server;

impl Handler for Server {
    type Error = Infallible;
    fn notified(&mut self, _: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }
    fn protected(&mut self, _: Channel, msg: MessageInfo) -> Result<MessageInfo, Self::Error> {
        set_mr(0, get_mr(0) + 1);
        Ok(msg)
    }
}

/// A handler that only counts (for the direct-call peer).
struct Count(u64);

impl Handler for Count {
    type Error = Infallible;
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.0 += channels.bits();
        Ok(())
    }
}

fn main() {
    let mut sim = Sim::new();
    let a = sim.add_pd("a", 10, false, Bounce(0));
    let b = sim.add_pd("b", 10, false, Bounce(0));
    sim.channel(a, 1, b, 1).expect("channel");
    sim.init(a, || Channel::new(1).notify());
    sim.start();
    let notify = median_ns(|| {
        for _ in 0..2 * PER_SAMPLE {
            black_box(sim.step());
        }
    });

    let mut sim = Sim::new();
    let c = sim.add_pd("client", 10, false, Client);
    let s = sim.add_pd("server", 20, true, Server);
    sim.channel_with(
        lions_os::sim::End::new(c, 1).pp(),
        lions_os::sim::End::new(s, 1),
    )
    .expect("channel");
    sim.irq(c, 0).expect("irq");
    sim.start();
    let ppc = median_ns(|| {
        sim.inject_irq(c, 0).expect("inject");
        black_box(sim.step());
    });
    assert!(sim.faults().is_empty(), "{:?}", sim.faults());

    let (mut x, mut y) = (Count(0), Count(0));
    let x: &mut dyn Handler<Error = Infallible> = black_box(&mut x);
    let y: &mut dyn Handler<Error = Infallible> = black_box(&mut y);
    let direct = median_ns(|| {
        for _ in 0..PER_SAMPLE {
            let _ = x.notified(black_box(ChannelSet::from_bits(2)));
            let _ = y.notified(black_box(ChannelSet::from_bits(2)));
        }
    });

    println!("sim notify round trip (2 steps): {notify:8.1} ns median");
    println!("sim PPC round trip (1 MR):       {ppc:8.1} ns median");
    println!("peer: 2 direct dyn handler calls: {direct:8.1} ns median");
    println!(
        "ratio notify/peer {:.1}x, ppc/peer {:.1}x",
        notify / direct,
        ppc / direct
    );
}
