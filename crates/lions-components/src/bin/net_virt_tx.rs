// SPDX-License-Identifier: BSD-2-Clause
//! `net_virt_tx`: the network Tx virtualiser ([`lions_net::VirtTx`]) with the shaping policy the
//! system chose.
//!
//! Config sections: `.net_virt_tx_config` (sdfgen's: the driver's Tx queues, and each client's Tx
//! queues with the data regions it may send from and their device addresses); `.net_virt_tx_policy`
//! ([`lions_net::NetTxPolicyConfig`], our own, written by the metaprogram with `lions_meta`'s
//! `net.tx_policy(...)`): in order, round-robin or strict priority, and per-client rate limits. A
//! system that writes no policy blob (nothing with its magic in that section) gets round-robin
//! ([`lions_net::NetTxPolicyConfig::policy_or_default`]). With rate limits the PD is also a timer
//! client (`.timer_client_config`): the limits' clock is the timer driver, and when the policy
//! holds a client back ([`lions_net::TxPolicy::wake_at`]) its [`lions_timer::Alarm`] is armed for
//! the instant the bucket has refilled; its expiry (on the timer channel) runs the virt again like
//! any other notification.
//!
//! The virt validates every client descriptor (bad ones go back to their client), cleans the
//! frame from the cache, translates it to a device address and hands it to the driver in the
//! order the policy gives.
#![cfg_attr(target_os = "none", no_std, no_main)]

use lions_net::{Chosen, NetTxPolicyConfig, NetVirtTxConfig, PlatformCache, TxPolicy, VirtTx};
use lions_os::startup_failed as fail;
use lions_os::{ChannelSet, Handler};
use lions_timer::{Alarm, TimerClient, TimerClientConfig};

lions_os::config!(static CONFIG: NetVirtTxConfig = ".net_virt_tx_config");
lions_os::config!(static POLICY: NetTxPolicyConfig = ".net_virt_tx_policy");
lions_os::config!(static TIMER: TimerClientConfig = ".timer_client_config");

/// The timer driver, if this PD is one of its clients.
fn timer() -> Option<TimerClient> {
    TIMER.get().ok().and_then(TimerClient::from_config)
}

/// The rate limits' clock: the timer driver's nanoseconds (0 if it cannot be read, which only
/// delays a limited client's refill).
fn now() -> u64 {
    timer().map_or(0, |t| t.time_now().unwrap_or(0))
}

/// The virt, and the alarm for its policy's next refill (if this PD is a timer client).
struct NetVirtTx {
    virt: VirtTx<'static, Chosen<fn() -> u64>>,
    alarm: Option<Alarm>,
}

impl Handler for NetVirtTx {
    type Error = lions_net::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.virt.notified(channels)?;
        if let Some(alarm) = &mut self.alarm {
            alarm.arm(self.virt.policy().wake_at())?;
        }
        Ok(())
    }
}

fn init() -> NetVirtTx {
    let config = CONFIG.mapped().unwrap_or_else(|e| fail(e));
    let policy = NetTxPolicyConfig::policy_or_default(POLICY.get(), now as fn() -> u64)
        .unwrap_or_else(|e| fail(e));
    let alarm = timer().map(TimerClient::alarm);
    if matches!(policy, Chosen::Limited(_)) && alarm.is_none() {
        fail("the Tx policy has rate limits but this PD is no timer client (.timer_client_config)");
    }
    let mut virt =
        VirtTx::new(config, policy, PlatformCache::default()).unwrap_or_else(|e| fail(e));
    if lions_os::incarnation() > 0 {
        // Restarted (or swapped in): rebuild what is at the driver from the driver's queues.
        virt.resume().unwrap_or_else(|e| fail(e));
    }
    NetVirtTx { virt, alarm }
}

lions_os::protection_domain!(init);
