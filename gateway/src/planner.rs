//! Request planner: turns a profile's points into the fewest Modbus read requests within the
//! model's limits, reading across holes of unused addresses only up to `max_gap`.
//!
//! Per table, points are sorted by address and a request is extended greedily while the next
//! point still fits. Greedy is minimal here: any feasible request covers a run of consecutive
//! points, a sub-run of a feasible run is feasible, so always taking the longest first run can
//! never need more requests than another cover. The same holds with points left out and with
//! cuts (places no request may read across, learnt by narrowing down an illegal address; see
//! [`crate::narrow`]): [`plan_around`].

use std::collections::BTreeSet;

use crate::profile::{Profile, Table};

/// A place no request may read across: between `address - 1` and `address` of `table`.
pub type Cut = (Table, u32);

/// One read request of a device's poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// Indexes into the profile's points that this request carries.
    pub points: Vec<usize>,
}

impl ReadRequest {
    pub fn end(&self) -> u32 {
        self.start as u32 + self.count as u32 - 1
    }
}

/// Plans the requests for one poll of a device of this profile.
pub fn plan(profile: &Profile) -> Vec<ReadRequest> {
    plan_around(profile, &BTreeSet::new(), &BTreeSet::new())
}

/// Plans the requests that read exactly `points` (one point group of a device).
pub fn plan_points(profile: &Profile, points: &[usize]) -> Vec<ReadRequest> {
    let keep: BTreeSet<usize> = points.iter().copied().collect();
    let skip = (0..profile.points.len()).filter(|i| !keep.contains(i)).collect();
    plan_around(profile, &skip, &BTreeSet::new())
}

/// Plans the requests for the points not in `skip`, none of them reading across a cut.
pub fn plan_around(profile: &Profile, skip: &BTreeSet<usize>, cuts: &BTreeSet<Cut>) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..profile.points.len()).filter(|i| !skip.contains(i)).collect();
    order.sort_by_key(|&i| (profile.points[i].table, profile.points[i].address, profile.points[i].end()));
    let mut requests: Vec<ReadRequest> = Vec::new();
    for i in order {
        let p = &profile.points[i];
        let limit = if p.table.is_bits() { profile.max_bits } else { profile.max_registers } as u32;
        if let Some(last) = requests.last_mut() {
            let gap = p.address as i64 - last.end() as i64 - 1;
            let new_end = last.end().max(p.end());
            if last.table == p.table
                && gap <= profile.max_gap as i64
                && new_end - (last.start as u32) < limit
                && !crosses_cut(cuts, p.table, last.start, new_end)
            {
                last.count = (new_end - last.start as u32 + 1) as u16;
                last.points.push(i);
                continue;
            }
        }
        requests.push(ReadRequest { table: p.table, start: p.address, count: p.width(), points: vec![i] });
    }
    requests
}

/// Whether reading `start..=end` of `table` would read across one of `cuts`.
pub fn crosses_cut(cuts: &BTreeSet<Cut>, table: Table, start: u16, end: u32) -> bool {
    end > start as u32 && cuts.range((table, start as u32 + 1)..=(table, end)).next().is_some()
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
