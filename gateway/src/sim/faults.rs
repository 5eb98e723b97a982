//! Faults of the line itself, for testing the gateway's fault isolation: units that never
//! answer (a timeout on TCP and RTU alike), units that refuse reads covering an address
//! (exception 2), and units that answer late. [`LineFaults`] is what the `gateway sim`
//! options `--dead-units 3,5`, `--illegal-address 3:104` and `--slow-units 4:300ms` give.
//!
//! Dead and refusing units are decided by the pure [`super::Simulator`]; delays are waited out
//! by the serve shells ([`super::serve`]), which also count what they answered
//! ([`SimCounters`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Units that misbehave on the simulated line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineFaults {
    /// Units that never answer.
    pub dead_units: BTreeSet<u8>,
    /// `(unit, address)`: the unit answers exception 2 to any read of holding or input
    /// registers that covers the address.
    pub illegal_addresses: BTreeSet<(u8, u16)>,
    /// Units that answer only after this long.
    pub slow_units: BTreeMap<u8, Duration>,
}

impl LineFaults {
    pub fn is_empty(&self) -> bool {
        self.dead_units.is_empty() && self.illegal_addresses.is_empty() && self.slow_units.is_empty()
    }

    /// Whether `unit` refuses a register read of `start..=end`.
    pub fn refuses(&self, unit: u8, start: u16, end: u32) -> bool {
        self.illegal_addresses
            .range((unit, 0)..=(unit, u16::MAX))
            .any(|&(_, a)| a >= start && a as u32 <= end)
    }
}

/// `3:104` (unit 3, address 104).
pub fn parse_unit_address(s: &str) -> Result<(u8, u16), String> {
    let (unit, address) =
        s.trim().split_once(':').ok_or_else(|| format!("`{s}`: expected UNIT:ADDRESS, e.g. 3:104"))?;
    let unit = parse_unit(unit)?;
    let address =
        address.trim().parse().map_err(|_| format!("`{s}`: address `{address}` is not 0 to 65535"))?;
    Ok((unit, address))
}

/// `4:300ms` (unit 4 answers 300 ms late).
pub fn parse_unit_delay(s: &str) -> Result<(u8, Duration), String> {
    let (unit, delay) =
        s.trim().split_once(':').ok_or_else(|| format!("`{s}`: expected UNIT:DELAY, e.g. 4:300ms"))?;
    let unit = parse_unit(unit)?;
    let delay =
        humantime::parse_duration(delay.trim()).map_err(|e| format!("`{s}`: delay `{delay}`: {e}"))?;
    Ok((unit, delay))
}

/// A unit id, 1 to 247.
pub fn parse_unit(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(u) if (1..=247).contains(&u) => Ok(u),
        _ => Err(format!("unit `{s}` must be 1 to 247")),
    }
}

/// What the serve shells answered, for tests and logs.
#[derive(Debug, Default)]
pub struct SimCounters {
    pub requests: AtomicU64,
    /// Requests answered with an exception.
    pub exceptions: AtomicU64,
    /// Requests left unanswered (dead units, unknown units on RTU).
    pub unanswered: AtomicU64,
}

impl SimCounters {
    pub fn exceptions(&self) -> u64 {
        self.exceptions.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_options() {
        assert_eq!(parse_unit_address("3:104"), Ok((3, 104)));
        assert_eq!(parse_unit_delay("4:300ms"), Ok((4, Duration::from_millis(300))));
        assert_eq!(parse_unit(" 5 "), Ok(5));
        for bad in ["3", "0:1", "248:1", "x:1", "3:70000"] {
            assert!(parse_unit_address(bad).is_err(), "{bad}");
        }
        assert!(parse_unit_delay("4:soon").unwrap_err().contains("delay `soon`"));
    }

    #[test]
    fn refuses_reads_that_cover_the_address() {
        let f = LineFaults { illegal_addresses: BTreeSet::from([(3, 104)]), ..LineFaults::default() };
        assert!(f.refuses(3, 100, 120));
        assert!(f.refuses(3, 104, 104));
        assert!(!f.refuses(3, 100, 103));
        assert!(!f.refuses(3, 105, 110));
        assert!(!f.refuses(4, 100, 120));
        assert!(LineFaults::default().is_empty() && !f.is_empty());
    }
}
