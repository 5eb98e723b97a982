use super::*;
use crate::profile::{DataType, Point};
use proptest::prelude::*;

fn profile(max_registers: u16, max_gap: u16, points: &[(Table, u16, DataType)]) -> Profile {
    let points = points
        .iter()
        .enumerate()
        .map(|(i, &(table, address, data_type))| Point::new(&format!("p{i}"), table, address, data_type))
        .collect();
    let mut p = Profile::new("t", "test", points);
    p.max_registers = max_registers;
    p.max_gap = max_gap;
    p
}

fn spans(reqs: &[ReadRequest]) -> Vec<(Table, u16, u16)> {
    reqs.iter().map(|r| (r.table, r.start, r.count)).collect()
}

use DataType::*;
use Table::*;

#[test]
fn contiguous_points_share_one_request() {
    let p = profile(125, 0, &[(Holding, 0, U16), (Holding, 1, F32), (Holding, 3, U16)]);
    assert_eq!(spans(&plan(&p)), vec![(Holding, 0, 4)]);
}

#[test]
fn gaps_are_filled_only_up_to_max_gap() {
    let pts = [(Holding, 0, U16), (Holding, 3, U16), (Holding, 10, U16)];
    assert_eq!(spans(&plan(&profile(125, 2, &pts))), vec![(Holding, 0, 4), (Holding, 10, 1)]);
    assert_eq!(spans(&plan(&profile(125, 6, &pts))), vec![(Holding, 0, 11)]);
    assert_eq!(plan(&profile(125, 0, &pts)).len(), 3);
}

#[test]
fn tables_never_mix_and_bits_use_their_own_limit() {
    let pts = [(Holding, 0, U16), (Input, 1, U16), (Coil, 0, Bool), (Discrete, 0, Bool), (Coil, 1999, Bool)];
    let reqs = plan(&profile(125, 2000, &pts));
    assert_eq!(spans(&reqs), vec![(Coil, 0, 2000), (Discrete, 0, 1), (Input, 1, 1), (Holding, 0, 1)]);
}

#[test]
fn max_registers_splits_requests_and_never_splits_a_point() {
    let pts = [(Holding, 0, F32), (Holding, 2, F32), (Holding, 4, F32)];
    assert_eq!(spans(&plan(&profile(1, 0, &[(Holding, 0, U16), (Holding, 1, U16)]))).len(), 2);
    assert_eq!(spans(&plan(&profile(2, 0, &pts))), vec![(Holding, 0, 2), (Holding, 2, 2), (Holding, 4, 2)]);
    assert_eq!(spans(&plan(&profile(5, 0, &pts))), vec![(Holding, 0, 4), (Holding, 4, 2)]);
    let far = [(Holding, 0, U16), (Holding, 124, U16), (Holding, 125, U16)];
    assert_eq!(spans(&plan(&profile(125, 200, &far))), vec![(Holding, 0, 125), (Holding, 125, 1)]);
}

#[test]
fn skipped_points_and_cuts_split_requests() {
    let pts = [(Holding, 100, F32), (Holding, 102, U16), (Holding, 104, U16), (Holding, 110, U32)];
    let p = profile(64, 8, &pts);
    assert_eq!(spans(&plan(&p)), vec![(Holding, 100, 12)]);
    let skip = BTreeSet::from([2]);
    let none = BTreeSet::new();
    // Without the point at 104 the gap would still be read across it.
    assert_eq!(spans(&plan_around(&p, &skip, &none)), vec![(Holding, 100, 12)]);
    let cuts = BTreeSet::from([(Holding, 104), (Holding, 105)]);
    assert_eq!(spans(&plan_around(&p, &skip, &cuts)), vec![(Holding, 100, 3), (Holding, 110, 2)]);
    // A cut in another table changes nothing.
    let other = BTreeSet::from([(Input, 104)]);
    assert_eq!(spans(&plan_around(&p, &BTreeSet::new(), &other)), vec![(Holding, 100, 12)]);
    assert!(crosses_cut(&cuts, Holding, 100, 104));
    assert!(!crosses_cut(&cuts, Holding, 104, 104), "a request starting at a cut does not cross it");
    assert!(!crosses_cut(&cuts, Holding, 100, 103));
}

#[test]
fn every_point_is_carried_by_exactly_one_request_that_covers_it() {
    let pts = [(Holding, 50, U32), (Holding, 7, U16), (Input, 3, F64), (Holding, 8, I16), (Holding, 51, U16)];
    let p = profile(10, 3, &pts);
    let reqs = plan(&p);
    let mut carried: Vec<usize> = reqs.iter().flat_map(|r| r.points.clone()).collect();
    carried.sort();
    assert_eq!(carried, vec![0, 1, 2, 3, 4]);
    for r in &reqs {
        assert!(r.count <= 10);
        for &i in &r.points {
            let pt = &p.points[i];
            assert!(pt.table == r.table && pt.address >= r.start && pt.end() <= r.end(), "{i} in {r:?}");
        }
    }
}

/// A request as the brute force sees it: a range of one table and the points fully inside it.
struct Candidate {
    carried: u32,
}

/// Every request that may be sent for `p`'s points: a range of one table within the table's
/// limit, starting at a point's first address and ending at a point's last, whose holes (runs
/// of addresses no point carried by it covers) are no longer than `max_gap`.
fn candidates(p: &Profile) -> Vec<Candidate> {
    let mut out = Vec::new();
    for a in &p.points {
        for b in &p.points {
            let (start, end) = (a.address as u32, b.end());
            if a.table != b.table || end < start {
                continue;
            }
            let limit = if a.table.is_bits() { p.max_bits } else { p.max_registers } as u32;
            if end - start + 1 > limit {
                continue;
            }
            let inside: Vec<usize> = (0..p.points.len())
                .filter(|&i| {
                    let q = &p.points[i];
                    q.table == a.table && q.address as u32 >= start && q.end() <= end
                })
                .collect();
            let covered = |addr: u32| {
                inside.iter().any(|&i| (p.points[i].address as u32..=p.points[i].end()).contains(&addr))
            };
            let mut hole = 0u32;
            let mut ok = true;
            for addr in start..=end {
                hole = if covered(addr) { 0 } else { hole + 1 };
                ok &= hole <= p.max_gap as u32;
            }
            if ok && !inside.is_empty() {
                out.push(Candidate { carried: inside.iter().fold(0, |m, &i| m | 1 << i) });
            }
        }
    }
    out
}

/// The fewest requests that carry every point: breadth first over the sets carried so far.
fn brute_force_minimum(p: &Profile) -> usize {
    let all = (1u32 << p.points.len()) - 1;
    let cands = candidates(p);
    let mut seen = vec![false; all as usize + 1];
    let mut frontier = vec![0u32];
    seen[0] = true;
    for depth in 0.. {
        if frontier.contains(&all) {
            return depth;
        }
        let mut next = Vec::new();
        for &m in &frontier {
            for c in &cands {
                let n = m | c.carried;
                if !seen[n as usize] {
                    seen[n as usize] = true;
                    next.push(n);
                }
            }
        }
        assert!(!next.is_empty(), "some point no request can carry");
        frontier = next;
    }
    unreachable!()
}

/// The greedy plan is valid: each request within its table's limit, no hole longer than
/// `max_gap`, and every point carried by exactly one request that covers it.
fn check_valid(p: &Profile, reqs: &[ReadRequest]) {
    let mut carried: Vec<usize> = reqs.iter().flat_map(|r| r.points.clone()).collect();
    carried.sort();
    assert_eq!(carried, (0..p.points.len()).collect::<Vec<_>>());
    for r in reqs {
        let limit = if r.table.is_bits() { p.max_bits } else { p.max_registers };
        assert!(r.count <= limit, "{r:?} over {limit}");
        for addr in r.start as u32..=r.end() {
            let hole_from = (r.start as u32..=addr).rev().take_while(|a| {
                !r.points.iter().any(|&i| (p.points[i].address as u32..=p.points[i].end()).contains(a))
            });
            assert!(hole_from.count() <= p.max_gap as usize, "{r:?}: hole before {addr}");
        }
        for &i in &r.points {
            let q = &p.points[i];
            assert!(q.table == r.table && q.address >= r.start && q.end() <= r.end(), "{i} in {r:?}");
        }
    }
}

fn assert_minimal(p: &Profile) {
    let reqs = plan(p);
    check_valid(p, &reqs);
    assert_eq!(reqs.len(), brute_force_minimum(p), "{:?}", spans(&reqs));
}

#[test]
fn minimal_on_awkward_maps() {
    // Scattered points, one table.
    assert_minimal(&profile(
        125,
        3,
        &[(Holding, 0, U16), (Holding, 9, U16), (Holding, 13, U32), (Holding, 40, U16)],
    ));
    // Mixed tables at the same addresses.
    assert_minimal(&profile(
        8,
        2,
        &[
            (Holding, 0, U16),
            (Input, 0, U32),
            (Coil, 0, Bool),
            (Discrete, 5, Bool),
            (Input, 3, U16),
            (Holding, 3, F32),
        ],
    ));
    // Limits of 1, 2 and 125 registers.
    assert_minimal(&profile(1, 5, &[(Holding, 0, U16), (Holding, 1, U16), (Holding, 2, I16)]));
    assert_eq!(plan(&profile(1, 5, &[(Holding, 0, U16), (Holding, 1, U16), (Holding, 2, I16)])).len(), 3);
    assert_minimal(&profile(
        2,
        0,
        &[(Holding, 0, U16), (Holding, 1, F32), (Holding, 3, U16), (Holding, 4, U16)],
    ));
    let far = [(Holding, 0, U16), (Holding, 120, U64), (Holding, 124, U16), (Holding, 125, U16)];
    assert_minimal(&profile(125, 200, &far));
    assert_eq!(spans(&plan(&profile(125, 200, &far))), vec![(Holding, 0, 125), (Holding, 125, 1)]);
    // Wide types are never split: a u64 that would cross the limit starts a request of its own.
    let wide = [(Holding, 0, U16), (Holding, 1, U64), (Holding, 5, F64)];
    assert_eq!(spans(&plan(&profile(4, 0, &wide))), vec![(Holding, 0, 1), (Holding, 1, 4), (Holding, 5, 4)]);
    assert_minimal(&profile(4, 0, &wide));
    assert_minimal(&profile(5, 0, &wide));
}

#[test]
fn gaps_just_below_at_and_above_max_gap() {
    for max_gap in [0u16, 1, 4, 10] {
        for hole in [max_gap.saturating_sub(1), max_gap, max_gap + 1] {
            let pts = [(Holding, 10, U16), (Holding, 11 + hole, F32)];
            let reqs = plan(&profile(125, max_gap, &pts));
            let joined = hole <= max_gap;
            assert_eq!(reqs.len(), if joined { 1 } else { 2 }, "hole {hole}, max_gap {max_gap}");
            assert_minimal(&profile(125, max_gap, &pts));
        }
    }
}

#[test]
fn point_groups_plan_only_their_points() {
    let p = profile(125, 8, &[(Holding, 0, U16), (Holding, 2, U16), (Holding, 4, U16), (Input, 0, U16)]);
    assert_eq!(spans(&plan_points(&p, &[0, 2])), vec![(Holding, 0, 5)]);
    assert_eq!(plan_points(&p, &[0, 2])[0].points, vec![0, 2]);
    assert_eq!(spans(&plan_points(&p, &[1, 3])), vec![(Input, 0, 1), (Holding, 2, 1)]);
    assert!(plan_points(&p, &[]).is_empty());
}

fn small_point() -> impl Strategy<Value = (Table, u16, DataType)> {
    let table = proptest::sample::select(vec![Holding, Input, Coil]);
    let t = proptest::sample::select(vec![U16, U32, F32, U64, Bitfield]);
    (table, 0u16..40, t)
        .prop_map(|(table, address, t)| (table, address, if table.is_bits() { Bool } else { t }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The greedy plan needs no more requests than the least an exhaustive search finds, on
    /// random small maps (up to 8 points, overlaps and mixed tables included).
    #[test]
    fn greedy_is_minimal(
        points in proptest::collection::vec(small_point(), 1..=8),
        max_registers in proptest::sample::select(vec![1u16, 2, 3, 4, 5, 8, 125]),
        max_bits in proptest::sample::select(vec![1u16, 2, 3, 2000]),
        max_gap in 0u16..6,
    ) {
        let mut p = profile(max_registers, max_gap, &points);
        p.max_bits = max_bits;
        // A point wider than the limit is a profile error; leave such points out.
        p.points.retain(|q| q.width() <= if q.table.is_bits() { max_bits } else { max_registers });
        prop_assume!(!p.points.is_empty());
        let reqs = plan(&p);
        check_valid(&p, &reqs);
        prop_assert_eq!(reqs.len(), brute_force_minimum(&p), "{:?}", spans(&reqs));
    }
}
