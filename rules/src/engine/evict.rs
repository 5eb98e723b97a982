//! Forgetting idle devices, so that memory follows the devices that report rather than every id
//! ever seen. [`Engine::tick`] sweeps the devices once a minute of host time; a device idle for
//! the configured time (no reading, by the host's clock, see `DeviceState::active_at`) is
//! forgotten unless forgetting it could lose an alert:
//!
//! - it has an alert pending or firing (an acknowledged one too: acknowledgements belong to
//!   firing alerts);
//! - its kind has a `no_data` rule: an idle device's no-data alert fires `after` its last data
//!   and then keeps it; until then, or while its gateway's `gateway_no_data` alert speaks for
//!   it, forgetting it would lose that alert for good;
//! - it has an inspection alert (its messages name the device's gateway).
//!
//! A device kept idle that long drops its window samples once they are older than every window
//! of its kind. A device that comes back after being forgotten starts afresh, as a new one.
//! The maintenance signal the inspection rules saw from a forgotten device is forgotten with
//! it, unless the device is in the registry (bounded by the registry).

use std::time::Duration;

use super::{DeviceState, Engine};
use crate::alert::Ts;
use crate::window::Series;

/// How often the devices are swept, in host time.
const SWEEP_EVERY_MS: i64 = 60_000;

#[derive(Debug, Default)]
pub(super) struct Eviction {
    /// None: devices are never forgotten.
    idle_ms: Option<i64>,
    last_sweep: Option<Ts>,
}

/// What the sweep does with one idle device.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Kept, but its window samples are of no use any more.
    Trim,
    Forget,
}

impl Engine {
    /// Forget devices idle for `after` (none: never, the default). Configuration, not state.
    pub fn set_evict_idle_after(&mut self, after: Option<Duration>) {
        self.eviction.idle_ms =
            after.filter(|d| !d.is_zero()).map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    }

    /// Devices whose state the engine holds.
    pub fn tracked_devices(&self) -> usize {
        self.devices.len()
    }

    fn verdict(&self, id: &str, d: &DeviceState, now: Ts, idle_ms: i64) -> Verdict {
        let idle = now.saturating_sub(d.active_at);
        if idle < idle_ms {
            return Verdict::Keep;
        }
        let plan = self.plans.get(&*d.kind);
        let kept = !d.alerts.is_empty()
            || plan.is_some_and(|p| !p.no_data.is_empty())
            || self.schedules.has_alerts(id);
        if !kept {
            return Verdict::Forget;
        }
        let longest = plan.map_or(0, |p| p.windows.iter().map(|w| w.1).max().unwrap_or(0));
        match idle >= longest && d.windows.iter().any(|w| !w.is_empty()) {
            true => Verdict::Trim,
            false => Verdict::Keep,
        }
    }

    /// At most once a minute of host time: forgets the idle devices that can go. Returns how
    /// many were forgotten.
    pub(super) fn evict_idle(&mut self, now: Ts) -> usize {
        let Some(idle_ms) = self.eviction.idle_ms else { return 0 };
        if self.eviction.last_sweep.is_some_and(|l| now.saturating_sub(l) < SWEEP_EVERY_MS) {
            return 0;
        }
        self.eviction.last_sweep = Some(now);
        let mut forget = Vec::new();
        let mut trim = Vec::new();
        for (id, d) in &self.devices {
            match self.verdict(id, d, now, idle_ms) {
                Verdict::Keep => {}
                Verdict::Trim => trim.push(id.clone()),
                Verdict::Forget => forget.push(id.clone()),
            }
        }
        for id in &trim {
            if let Some(d) = self.devices.get_mut(id) {
                d.windows = vec![Series::default(); d.windows.len()].into();
            }
        }
        for id in &forget {
            self.devices.remove(id);
            if self.registry.get(id).is_none() {
                self.schedules.forget(id);
            }
        }
        if !forget.is_empty() {
            if self.devices.len() < self.devices.capacity() / 4 {
                self.devices.shrink_to_fit();
            }
            self.gateways.retain(|_, g| !g.alerts.is_empty());
            self.names.forget_unused();
        }
        self.stats.devices_evicted += forget.len() as u64;
        forget.len()
    }
}

#[cfg(test)]
mod tests;
