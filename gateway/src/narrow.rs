//! Narrowing down an illegal address: when a device refuses a request that carries several
//! points (Modbus exception 2, illegal data address, or 3, illegal data value), the request is
//! split in halves until the refused points (or the hole between two points that may not be
//! read across) are found. The device's [`DevicePlan`] remembers them: bad points are left out
//! of the plan and reported in every reading's `errors`; cuts keep requests from reading across
//! them. Bad points are probed again, alone, now and then, in case the firmware changed.
//!
//! Pure: [`Bisection`] says which request to try next and learns from each answer; the bus
//! ([`crate::bus`]) sends the requests. Time is a parameter.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::planner::{plan_around, Cut, ReadRequest};
use crate::profile::Profile;

/// How often a bad point is read again, alone, to see whether it came back.
pub const REPROBE_BAD_POINTS: Duration = Duration::from_secs(600);

/// Whether a Modbus exception code says "this request's shape is refused" (so splitting it
/// may help) rather than "the device is unwell".
pub fn is_narrowable(code: u8) -> bool {
    matches!(code, 2 | 3)
}

/// What came back for one request of a bisection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request was answered with data.
    Read,
    /// A narrowable exception: split further.
    Refused(String),
    /// Another exception: its points fail this poll, nothing is learnt.
    Failed(String),
}

/// What a bisection found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    /// Points the device refuses even alone, with the exception.
    pub bad: BTreeMap<usize, String>,
    /// Places no request may read across (two halves fine alone, refused together).
    pub cuts: BTreeSet<Cut>,
}

#[derive(Debug)]
struct Node {
    request: ReadRequest,
    parent: Option<usize>,
    /// Whether this node is the second half of its parent.
    right: bool,
    read: bool,
}

/// The splitting of one refused request, depth first, left half first.
#[derive(Debug)]
pub struct Bisection {
    nodes: Vec<Node>,
    todo: Vec<usize>,
    found: Narrowed,
}

impl Bisection {
    /// Starts narrowing `refused`, which the device answered with the narrowable exception `why`.
    pub fn new(profile: &Profile, refused: &ReadRequest, why: &str) -> Bisection {
        let mut b = Bisection {
            nodes: vec![Node { request: refused.clone(), parent: None, right: false, read: false }],
            todo: Vec::new(),
            found: Narrowed::default(),
        };
        b.refused(profile, 0, why);
        b
    }

    /// The next request to send, if any.
    pub fn next(&self) -> Option<&ReadRequest> {
        self.todo.last().map(|&i| &self.nodes[i].request)
    }

    /// Learns the outcome of the request [`Bisection::next`] gave.
    pub fn answer(&mut self, profile: &Profile, outcome: &Outcome) {
        let Some(i) = self.todo.pop() else { return };
        match outcome {
            Outcome::Read => {
                self.nodes[i].read = true;
                // Both halves fine alone though the whole was refused: the hole between them.
                if let Some(p) = self.nodes[i].parent {
                    let sibling =
                        self.nodes.iter().find(|n| n.parent == Some(p) && n.right != self.nodes[i].right);
                    if sibling.is_some_and(|s| s.read) {
                        let right =
                            if self.nodes[i].right { &self.nodes[i] } else { sibling.expect("sibling") };
                        self.found.cuts.insert((right.request.table, right.request.start as u32));
                    }
                }
            }
            Outcome::Refused(why) => self.refused(profile, i, why),
            Outcome::Failed(_) => {}
        }
    }

    pub fn finish(self) -> Narrowed {
        self.found
    }

    fn refused(&mut self, profile: &Profile, i: usize, why: &str) {
        let mut points = self.nodes[i].request.points.clone();
        if points.len() == 1 {
            self.found.bad.insert(points[0], why.to_string());
            return;
        }
        points.sort_by_key(|&p| (profile.points[p].address, profile.points[p].end()));
        let (left, right) = points.split_at(points.len() / 2);
        let table = self.nodes[i].request.table;
        for (half, is_right) in [(right, true), (left, false)] {
            self.nodes.push(Node {
                request: request_for(profile, table, half),
                parent: Some(i),
                right: is_right,
                read: false,
            });
            self.todo.push(self.nodes.len() - 1);
        }
    }
}

/// The smallest request of `table` that carries `points`.
fn request_for(profile: &Profile, table: crate::profile::Table, points: &[usize]) -> ReadRequest {
    let start = points.iter().map(|&p| profile.points[p].address).min().unwrap_or(0);
    let end = points.iter().map(|&p| profile.points[p].end()).max().unwrap_or(start as u32);
    ReadRequest { table, start, count: (end - start as u32 + 1) as u16, points: points.to_vec() }
}

/// A point the device refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPoint {
    pub why: String,
    pub next_probe: Instant,
}

/// A device's request plan with what narrowing has learnt.
#[derive(Clone, Debug)]
pub struct DevicePlan {
    pub requests: Vec<ReadRequest>,
    pub bad: BTreeMap<usize, BadPoint>,
    /// Cuts found between points (the hole between them may not be read).
    gap_cuts: BTreeSet<Cut>,
}

impl DevicePlan {
    pub fn new(profile: &Profile) -> DevicePlan {
        let mut plan = DevicePlan { requests: Vec::new(), bad: BTreeMap::new(), gap_cuts: BTreeSet::new() };
        plan.replan(profile);
        plan
    }

    /// A plan of `requests` (the device's planned ones) with nothing learnt yet.
    pub fn from_requests(requests: Vec<ReadRequest>) -> DevicePlan {
        DevicePlan { requests, bad: BTreeMap::new(), gap_cuts: BTreeSet::new() }
    }

    /// Takes in what a bisection found; true when the plan changed.
    pub fn learn(&mut self, profile: &Profile, found: Narrowed, now: Instant) -> bool {
        let before = self.requests.clone();
        for (point, why) in found.bad {
            self.bad.insert(point, BadPoint { why, next_probe: now + REPROBE_BAD_POINTS });
        }
        self.gap_cuts.extend(found.cuts);
        self.replan(profile);
        self.requests != before
    }

    /// Bad points due to be read again alone. When no point is left to read, all of them.
    pub fn probes_due(&self, now: Instant) -> Vec<usize> {
        let all = self.requests.is_empty();
        self.bad.iter().filter(|(_, b)| all || b.next_probe <= now).map(|(&p, _)| p).collect()
    }

    /// The outcome of reading bad point `point` alone: `None` when it was read (it is good
    /// again), else the exception. True when the plan changed.
    pub fn probed(&mut self, profile: &Profile, point: usize, refused: Option<String>, now: Instant) -> bool {
        match refused {
            Some(why) => {
                self.bad.insert(point, BadPoint { why, next_probe: now + REPROBE_BAD_POINTS });
                false
            }
            None => {
                self.bad.remove(&point);
                self.replan(profile);
                true
            }
        }
    }

    /// The single-point request that reads `point`.
    pub fn probe_request(profile: &Profile, point: usize) -> ReadRequest {
        request_for(profile, profile.points[point].table, &[point])
    }

    fn replan(&mut self, profile: &Profile) {
        let skip: BTreeSet<usize> = self.bad.keys().copied().collect();
        let mut cuts = self.gap_cuts.clone();
        for &p in &skip {
            let point = &profile.points[p];
            cuts.insert((point.table, point.address as u32));
            cuts.insert((point.table, point.end() + 1));
        }
        self.requests = plan_around(profile, &skip, &cuts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Table::Holding;

    fn boiler() -> Profile {
        Profile::built_in("boiler-ctl-v1").unwrap()
    }

    fn index(p: &Profile, name: &str) -> usize {
        p.points.iter().position(|pt| pt.name == name).unwrap()
    }

    /// Runs a bisection against a device that refuses any read covering one of `bad_addresses`.
    fn bisect(p: &Profile, refused: &ReadRequest, bad_addresses: &[u16]) -> (Narrowed, Vec<(u16, u16)>) {
        let mut b = Bisection::new(p, refused, "exception 2: illegal data address");
        let mut sent = Vec::new();
        while let Some(r) = b.next().cloned() {
            sent.push((r.start, r.count));
            let covers = bad_addresses.iter().any(|&a| a >= r.start && (a as u32) <= r.end());
            let outcome = if covers {
                Outcome::Refused("exception 2: illegal data address".into())
            } else {
                Outcome::Read
            };
            b.answer(p, &outcome);
        }
        (b.finish(), sent)
    }

    #[test]
    fn finds_the_refused_point_in_a_block() {
        let p = boiler();
        let plan = DevicePlan::new(&p);
        assert_eq!(plan.requests.len(), 1, "{:?}", plan.requests);
        let (found, sent) = bisect(&p, &plan.requests[0], &[104]);
        let level = index(&p, "water_level_mm");
        assert_eq!(found.bad, BTreeMap::from([(level, "exception 2: illegal data address".to_string())]));
        assert!(found.cuts.is_empty());
        // Six points: 3 | 3, then 1 | 2 on the refused side, then the single point.
        assert!(sent.len() <= 6, "{sent:?}");
    }

    #[test]
    fn a_learnt_plan_never_reads_the_bad_point_again() {
        let p = boiler();
        let now = Instant::now();
        let mut plan = DevicePlan::new(&p);
        let (found, _) = bisect(&p, &plan.requests[0].clone(), &[104]);
        assert!(plan.learn(&p, found, now));
        let spans: Vec<(u16, u16)> = plan.requests.iter().map(|r| (r.start, r.count)).collect();
        assert_eq!(spans, vec![(100, 4), (110, 11)]);
        assert!(plan.requests.iter().all(|r| !(r.start..=r.end() as u16).contains(&104)));
        let level = index(&p, "water_level_mm");
        assert!(plan.requests.iter().all(|r| !r.points.contains(&level)));
        assert!(plan.probes_due(now).is_empty());
        assert_eq!(plan.probes_due(now + REPROBE_BAD_POINTS), vec![level]);
        // Still refused: probed again later.
        assert!(!plan.probed(&p, level, Some("exception 2: illegal data address".into()), now));
        // Answered: back in the plan, one request again.
        assert!(plan.probed(&p, level, None, now));
        assert_eq!(plan.requests.len(), 1);
        assert!(plan.bad.is_empty());
    }

    #[test]
    fn a_refused_hole_between_good_points_becomes_a_cut() {
        let p = boiler();
        let plan = DevicePlan::new(&p);
        // An address in the gap between run_hours (110) and alarm_bits (120) is refused.
        let (found, _) = bisect(&p, &plan.requests[0], &[115]);
        assert!(found.bad.is_empty(), "{found:?}");
        assert_eq!(found.cuts, BTreeSet::from([(Holding, 120)]));
        let mut plan = plan;
        plan.learn(&p, found, Instant::now());
        for r in &plan.requests {
            assert!(!(r.start..=r.end() as u16).contains(&115), "{r:?}");
        }
    }

    #[test]
    fn several_bad_points_and_a_single_point_request() {
        let p = boiler();
        let plan = DevicePlan::new(&p);
        let (found, _) = bisect(&p, &plan.requests[0], &[100, 120]);
        let names: Vec<&str> = found.bad.keys().map(|&i| p.points[i].name.as_str()).collect();
        assert_eq!(names, vec!["pressure_mpa", "alarm_bits"]);
        let single = DevicePlan::probe_request(&p, index(&p, "run_hours"));
        assert_eq!((single.start, single.count), (110, 2));
        let b = Bisection::new(&p, &single, "exception 3: illegal data value");
        assert!(b.next().is_none(), "nothing to split");
        assert_eq!(b.finish().bad.len(), 1);
    }

    #[test]
    fn with_every_point_bad_every_poll_probes_them() {
        let p = boiler();
        let now = Instant::now();
        let mut plan = DevicePlan::new(&p);
        let all = (0..p.points.len()).map(|i| (i, "exception 2: illegal data address".to_string())).collect();
        plan.learn(&p, Narrowed { bad: all, cuts: BTreeSet::new() }, now);
        assert!(plan.requests.is_empty());
        assert_eq!(plan.probes_due(now).len(), p.points.len());
        assert!(is_narrowable(2) && is_narrowable(3) && !is_narrowable(4) && !is_narrowable(11));
    }

    #[test]
    fn other_exceptions_teach_nothing() {
        let p = boiler();
        let plan = DevicePlan::new(&p);
        let mut b = Bisection::new(&p, &plan.requests[0], "exception 2: illegal data address");
        while b.next().is_some() {
            b.answer(&p, &Outcome::Failed("exception 6: server device busy".into()));
        }
        assert_eq!(b.finish(), Narrowed::default());
    }
}
