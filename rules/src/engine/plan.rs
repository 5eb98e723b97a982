//! What the rules need for one equipment kind, worked out once at its first reading: which rules
//! apply, which points keep a window and for how long, which aggregates to compute, whether any
//! condition reads `device`.

use crate::rule_file::{Rule, RuleType};
use crate::window::Func;

/// One aggregate to compute per reading, bound under `variable`.
#[derive(Debug)]
pub(super) struct PlannedAggregate {
    pub variable: String,
    /// Index into [`KindPlan::windows`].
    pub window: usize,
    pub func: Func,
    pub window_ms: i64,
}

#[derive(Debug, Default)]
pub(super) struct KindPlan {
    /// Rules stepped at each reading of the kind, in file order: threshold, fault_code, bits
    /// and no_data (which a reading resolves).
    pub rules: Vec<usize>,
    /// The no_data rules among them, which `tick` fires.
    pub no_data: Vec<usize>,
    /// gateway_no_data rules that count readings of the kind.
    pub gateway: Vec<usize>,
    /// Inspection rules whose `signal` each reading is checked against (maintenance seen).
    pub signals: Vec<usize>,
    /// Fault rules with an `inhibit_when`, one per distinct condition: evaluated per reading.
    pub inhibits: Vec<usize>,
    /// Points with a window series, and the longest window any rule of the kind needs.
    pub windows: Vec<(String, i64)>,
    /// Per window: the spacing its samples are thinned to when only `delta` and `rate` read it
    /// ([`crate::window::THINNED_SAMPLES`]); 0 keeps every sample.
    pub spacing: Vec<i64>,
    /// Sorted by variable name, for [`crate::expr::Bindings`].
    pub aggregates: Vec<PlannedAggregate>,
    pub reads_device: bool,
}

impl KindPlan {
    pub fn new(rules: &[Rule], kind: &str) -> KindPlan {
        let mut plan = KindPlan::default();
        for (i, rule) in rules.iter().enumerate().filter(|(_, r)| r.applies_to(kind)) {
            match rule.rule_type {
                RuleType::GatewayNoData { .. } => plan.gateway.push(i),
                RuleType::NoData { .. } => {
                    plan.rules.push(i);
                    plan.no_data.push(i);
                }
                RuleType::Inspection(ref r) => {
                    if r.signal.is_some() {
                        plan.signals.push(i);
                    }
                }
                _ => plan.rules.push(i),
            }
            if let (Some(c), true) = (&rule.lifecycle.inhibit_when, rule.is_fault()) {
                let seen = |&j: &usize| {
                    rules[j].lifecycle.inhibit_when.as_ref().is_some_and(|o| o.source == c.source)
                };
                if !plan.inhibits.iter().any(seen) {
                    plan.inhibits.push(i);
                }
            }
            plan.reads_device |= rule.reads_device();
            for a in rule.aggregates() {
                let window = match plan.windows.iter().position(|(p, _)| *p == a.point) {
                    Some(w) => {
                        plan.windows[w].1 = plan.windows[w].1.max(a.window_ms);
                        w
                    }
                    None => {
                        plan.windows.push((a.point.clone(), a.window_ms));
                        plan.windows.len() - 1
                    }
                };
                let variable = a.variable();
                if !plan.aggregates.iter().any(|p| p.variable == variable) {
                    plan.aggregates.push(PlannedAggregate {
                        variable,
                        window,
                        func: a.func,
                        window_ms: a.window_ms,
                    });
                }
            }
        }
        plan.aggregates.sort_by(|a, b| a.variable.cmp(&b.variable));
        plan.spacing = (0..plan.windows.len())
            .map(|w| {
                let mut funcs = plan.aggregates.iter().filter(|a| a.window == w).map(|a| a.func);
                match funcs.all(|f| matches!(f, Func::Delta | Func::Rate)) {
                    true => plan.windows[w].1 / crate::window::THINNED_SAMPLES,
                    false => 0,
                }
            })
            .collect();
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleSet;

    #[test]
    fn keeps_the_longest_window_per_point_and_each_aggregate_once() {
        let set = RuleSet::parse(
            "r.toml",
            r#"
[[rule]]
id = "a"
kinds = ["water_meter"]
when = "delta(forward_total_m3, '1h') > 2.0 && avg(flow_m3h, '5m') > 1.0"
severity = "info"
summary = "a"

[[rule]]
id = "b"
kinds = ["*"]
when = "delta(forward_total_m3, '10m') > 1.0 || delta(forward_total_m3, '1h') > 3.0"
severity = "info"
summary = "b"

[[rule]]
id = "c"
kinds = ["boiler"]
when = "device.id == 'x' && max(pressure_mpa, '1m') > 1.0"
severity = "info"
summary = "c"

[[rule]]
id = "gw"
kinds = ["*"]
type = "gateway_no_data"
after = "2m"
severity = "info"
summary = "gw"
"#,
        )
        .unwrap();
        let plan = KindPlan::new(&set.rules, "water_meter");
        assert_eq!(plan.rules, [0, 1]);
        assert_eq!(plan.gateway, [3]);
        assert_eq!(
            plan.windows,
            [("flow_m3h".to_string(), 300_000), ("forward_total_m3".to_string(), 3_600_000)]
        );
        let names: Vec<&str> = plan.aggregates.iter().map(|a| a.variable.as_str()).collect();
        assert_eq!(
            names,
            ["@avg(flow_m3h,300000)", "@delta(forward_total_m3,3600000)", "@delta(forward_total_m3,600000)"]
        );
        assert!(!plan.reads_device);
        assert!(KindPlan::new(&set.rules, "boiler").reads_device);
    }
}
