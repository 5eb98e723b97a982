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
mod tests {
    use super::*;
    use crate::profile::{ByteOrder, DataType, Point};
    use std::collections::BTreeMap;

    fn profile(max_registers: u16, max_gap: u16, points: &[(Table, u16, DataType)]) -> Profile {
        Profile {
            name: "t".into(),
            kind: "test".into(),
            description: None,
            max_registers,
            max_bits: 2000,
            max_gap,
            points: points
                .iter()
                .enumerate()
                .map(|(i, &(table, address, data_type))| Point {
                    name: format!("p{i}"),
                    table,
                    address,
                    data_type,
                    order: ByteOrder::ABCD,
                    scale: 1.0,
                    offset: 0.0,
                    unit: None,
                    bits: BTreeMap::new(),
                    codes: BTreeMap::new(),
                })
                .collect(),
        }
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
        let pts =
            [(Holding, 0, U16), (Input, 1, U16), (Coil, 0, Bool), (Discrete, 0, Bool), (Coil, 1999, Bool)];
        let reqs = plan(&profile(125, 2000, &pts));
        assert_eq!(spans(&reqs), vec![(Coil, 0, 2000), (Discrete, 0, 1), (Input, 1, 1), (Holding, 0, 1)]);
    }

    #[test]
    fn max_registers_splits_requests_and_never_splits_a_point() {
        let pts = [(Holding, 0, F32), (Holding, 2, F32), (Holding, 4, F32)];
        assert_eq!(spans(&plan(&profile(1, 0, &[(Holding, 0, U16), (Holding, 1, U16)]))).len(), 2);
        assert_eq!(
            spans(&plan(&profile(2, 0, &pts))),
            vec![(Holding, 0, 2), (Holding, 2, 2), (Holding, 4, 2)]
        );
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
        let pts =
            [(Holding, 50, U32), (Holding, 7, U16), (Input, 3, F64), (Holding, 8, I16), (Holding, 51, U16)];
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
}
