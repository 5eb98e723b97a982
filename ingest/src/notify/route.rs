//! Routing: which receivers an alert transition goes to, and the group it joins at each.

use telemetry::AlertMessage;

use super::config::{GroupLabel, RouteConfig};

pub struct Router {
    routes: Vec<RouteConfig>,
}

fn matches(allowed: &[String], value: Option<&str>) -> bool {
    allowed.is_empty() || value.is_some_and(|v| allowed.iter().any(|a| a == v))
}

impl Router {
    pub fn new(routes: &[RouteConfig]) -> Router {
        Router { routes: routes.to_vec() }
    }

    /// `(receiver, group key)` pairs for an alert, each receiver once (its first route wins).
    pub fn route(&self, alert: &AlertMessage, town: Option<&str>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for route in &self.routes {
            let matched = route.statuses.contains(&alert.status)
                && matches(&route.severities, Some(&alert.severity))
                && matches(&route.kinds, Some(&alert.kind))
                && matches(&route.towns, town);
            if !matched {
                continue;
            }
            let key = group_key(&route.group_by, alert, town);
            for receiver in &route.receivers {
                if !out.iter().any(|(r, _)| r == receiver) {
                    out.push((receiver.clone(), key.clone()));
                }
            }
            if !route.continue_matching {
                break;
            }
        }
        out
    }
}

/// `gateway=gw-7,rule=elevator.no_data,status=firing`: the labels in the route's order.
pub fn group_key(labels: &[GroupLabel], alert: &AlertMessage, town: Option<&str>) -> String {
    let mut key = String::new();
    for label in labels {
        let (name, value) = match label {
            GroupLabel::Gateway => ("gateway", alert.gateway.as_str()),
            GroupLabel::Rule => ("rule", alert.rule.as_str()),
            GroupLabel::Status => ("status", alert.status.as_str()),
            GroupLabel::Device => ("device", alert.device.as_str()),
            GroupLabel::Town => ("town", town.unwrap_or("")),
            GroupLabel::Kind => ("kind", alert.kind.as_str()),
            GroupLabel::Severity => ("severity", alert.severity.as_str()),
        };
        if !key.is_empty() {
            key.push(',');
        }
        key.push_str(name);
        key.push('=');
        key.push_str(value);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::test_alert;
    use telemetry::AlertStatus;

    fn route(receivers: &[&str]) -> RouteConfig {
        RouteConfig { receivers: receivers.iter().map(|r| r.to_string()).collect(), ..RouteConfig::default() }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_matching_route_wins_unless_it_continues() {
        let critical_elevators = RouteConfig {
            severities: strings(&["critical"]),
            kinds: strings(&["elevator"]),
            towns: strings(&["东城街道"]),
            ..route(&["duty"])
        };
        let everything = route(&["archive"]);
        let trapped = test_alert("elevator.trapped", "elev-1", "gw-1", AlertStatus::Firing);
        let mut warning = trapped.clone();
        warning.severity = "warning".into();

        let router = Router::new(&[critical_elevators.clone(), everything.clone()]);
        let cases: &[(&AlertMessage, Option<&str>, &[&str])] = &[
            (&trapped, Some("东城街道"), &["duty"]),
            (&trapped, Some("南城街道"), &["archive"]),
            (&trapped, None, &["archive"]),
            (&warning, Some("东城街道"), &["archive"]),
        ];
        for (alert, town, expected) in cases {
            let got: Vec<String> = router.route(alert, *town).into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, strings(expected), "{} {town:?}", alert.severity);
        }

        let continuing = RouteConfig { continue_matching: true, ..critical_elevators };
        let router = Router::new(&[continuing, everything]);
        let got: Vec<String> = router.route(&trapped, Some("东城街道")).into_iter().map(|(r, _)| r).collect();
        assert_eq!(got, strings(&["duty", "archive"]));
    }

    #[test]
    fn statuses_default_to_firing_resolved_and_acknowledged() {
        let router = Router::new(&[route(&["duty"])]);
        for (status, routed) in [
            (AlertStatus::Firing, true),
            (AlertStatus::Resolved, true),
            (AlertStatus::Acknowledged, true),
            (AlertStatus::Pending, false),
            (AlertStatus::Silenced, false),
        ] {
            let alert = test_alert("r", "d", "g", status);
            assert_eq!(!router.route(&alert, None).is_empty(), routed, "{status:?}");
        }
    }

    #[test]
    fn a_receiver_named_by_two_routes_gets_the_alert_once() {
        let first =
            RouteConfig { continue_matching: true, group_by: vec![GroupLabel::Device], ..route(&["duty"]) };
        let router = Router::new(&[first, route(&["duty", "archive"])]);
        let alert = test_alert("r", "elev-9", "gw-1", AlertStatus::Firing);
        assert_eq!(
            router.route(&alert, None),
            vec![
                ("duty".to_string(), "device=elev-9".to_string()),
                ("archive".to_string(), "gateway=gw-1,rule=r,status=firing".to_string())
            ]
        );
    }

    #[test]
    fn group_keys_follow_the_labels_given() {
        let alert = test_alert("boiler.over_pressure", "b-1", "gw-2", AlertStatus::Resolved);
        let all = [
            GroupLabel::Town,
            GroupLabel::Kind,
            GroupLabel::Severity,
            GroupLabel::Device,
            GroupLabel::Status,
        ];
        assert_eq!(
            group_key(&all, &alert, Some("东城街道")),
            "town=东城街道,kind=elevator,severity=critical,device=b-1,status=resolved"
        );
        assert_eq!(group_key(&[], &alert, None), "");
    }
}
