//! Civil dates for inspection schedules: days since 1970-01-01 in the proleptic Gregorian
//! calendar, `YYYY-MM-DD` text, and month and year arithmetic that clamps to the end of the
//! month (2024-01-31 plus one month is 2024-02-29; 2024-02-29 plus one year is 2025-02-28).
//! The conversions are Howard Hinnant's `days_from_civil` and `civil_from_days`.
//!
//! Due dates are calendar days where the equipment is, so an instant becomes a date with a UTC
//! offset: [`CHINA_UTC_OFFSET_MS`] (China Standard Time, no daylight saving) by default.

use std::fmt;

use serde::{Deserialize, Serialize};

/// UTC+8, China Standard Time.
pub const CHINA_UTC_OFFSET_MS: i64 = 8 * 3_600_000;

const DAY_MS: i64 = 86_400_000;

/// A calendar date, as days since 1970-01-01 (so it is serialized, in snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Date(i32);

/// Days from 1970-01-01 to `y-m-d`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// Years 1 to 9999 only: dates in registries, not astronomy.
    pub fn from_ymd(y: i64, m: u32, d: u32) -> Option<Date> {
        if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Date(days_from_civil(y, m, d) as i32))
    }

    /// Strictly `YYYY-MM-DD`, a real date.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = &s[r];
            part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
        };
        Date::from_ymd(i64::from(digits(0..4)?), digits(5..7)?, digits(8..10)?)
    }

    pub fn from_days(days: i64) -> Date {
        Date(days.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        i64::from(self.0)
    }

    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.days())
    }

    pub fn year(self) -> i64 {
        self.ymd().0
    }

    /// The date at `ts_ms` (ms since the epoch) where the clock is `offset_ms` ahead of UTC.
    pub fn from_ms(ts_ms: i64, offset_ms: i64) -> Date {
        Date::from_days(ts_ms.saturating_add(offset_ms).div_euclid(DAY_MS))
    }

    /// Midnight at the start of this date, as ms since the epoch, `offset_ms` ahead of UTC.
    pub fn start_ms(self, offset_ms: i64) -> i64 {
        self.days() * DAY_MS - offset_ms
    }

    pub fn add_days(self, days: i64) -> Date {
        Date::from_days(self.days() + days)
    }

    /// Whole days from `earlier` to `self` (negative when `earlier` is later).
    pub fn days_since(self, earlier: Date) -> i64 {
        self.days() - earlier.days()
    }

    /// `months` later (earlier when negative), the day clamped to the end of the month.
    pub fn add_months(self, months: i64) -> Date {
        let (y, m, d) = self.ymd();
        let index = y * 12 + i64::from(m) - 1 + months;
        let (y, m) = (index.div_euclid(12), (index.rem_euclid(12) + 1) as u32);
        Date::from_days(days_from_civil(y, m, d.min(days_in_month(y, m))))
    }

    pub fn add_years(self, years: i64) -> Date {
        self.add_months(years.saturating_mul(12))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn round_trips_every_day_of_four_centuries() {
        let start = d("1900-01-01").days();
        let mut expected = (1900, 1, 1);
        for days in start..start + 146_097 {
            let date = Date::from_days(days);
            assert_eq!(date.ymd(), expected, "{days}");
            assert_eq!(Date::from_ymd(expected.0, expected.1, expected.2), Some(date));
            let (y, m, dd) = expected;
            expected = if dd < days_in_month(y, m) {
                (y, m, dd + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn known_days_and_text() {
        assert_eq!(d("1970-01-01").days(), 0);
        assert_eq!(d("2000-03-01").days(), 11_017);
        assert_eq!(d("2026-11-27").days(), 20_784);
        assert_eq!(d("1969-12-31").days(), -1);
        assert_eq!(d("2024-02-29").to_string(), "2024-02-29");
        assert_eq!(Date::from_days(-1).to_string(), "1969-12-31");
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "24-01-01",
            "2024/01/01",
            "２０２４-01-01",
            "",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert_eq!(d("2000-02-29").year(), 2000);
    }

    #[test]
    fn months_and_years_clamp_to_the_end_of_the_month() {
        let cases = [
            ("2024-01-31", 1, "2024-02-29"),
            ("2023-01-31", 1, "2023-02-28"),
            ("2024-03-31", -1, "2024-02-29"),
            ("2024-10-31", 4, "2025-02-28"),
            ("2024-05-15", -17, "2022-12-15"),
            ("2024-12-01", 1, "2025-01-01"),
            ("2024-02-29", 12, "2025-02-28"),
            ("2024-02-29", 48, "2028-02-29"),
        ];
        for (from, months, want) in cases {
            assert_eq!(d(from).add_months(months).to_string(), want, "{from} + {months} months");
        }
        assert_eq!(d("2024-02-29").add_years(1), d("2025-02-28"));
        assert_eq!(d("2019-05-10").add_years(6), d("2025-05-10"));
        assert_eq!(d("2026-11-27").add_days(-30).to_string(), "2026-10-28");
        assert_eq!(d("2026-11-27").days_since(d("2026-10-28")), 30);
    }

    #[test]
    fn instants_become_dates_in_china_standard_time() {
        // 2026-11-26T16:00:00Z is midnight of the 27th in Beijing.
        let midnight = d("2026-11-27").start_ms(CHINA_UTC_OFFSET_MS);
        assert_eq!(midnight, 1_795_708_800_000);
        assert_eq!(Date::from_ms(midnight, CHINA_UTC_OFFSET_MS), d("2026-11-27"));
        assert_eq!(Date::from_ms(midnight - 1, CHINA_UTC_OFFSET_MS), d("2026-11-26"));
        assert_eq!(Date::from_ms(midnight, 0), d("2026-11-26"));
        assert_eq!(Date::from_ms(-1, 0), d("1969-12-31"));
    }
}
