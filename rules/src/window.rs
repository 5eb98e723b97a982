//! Windowed aggregates over a device's recent readings: `avg(point, "5m")`, `max`, `min`,
//! `delta` and `rate` (per second) in conditions.
//!
//! At parse time [`rewrite`] replaces each such call in a condition's syntax tree with a variable
//! named after it (`@avg(pressure_mpa,300000)`); the engine keeps a [`Series`] of recent samples
//! per device and point, computes each aggregate once per reading and binds it under that name,
//! so CEL only ever sees a number. An aggregate has a value only when the series reaches back
//! over its whole window and the reading itself carries the point: data that stops never moves
//! an alert through a shrinking window.

use std::collections::VecDeque;

use cel::common::ast::{EntryExpr, Expr, LiteralValue};
use cel::IdedExpr;

/// Most samples kept per device and point. A window that would need more (an hour of readings
/// every 0.1 s) loses its oldest samples and so has no value: rules over it change nothing.
pub const MAX_SAMPLES: usize = 10_000;

/// A series only `delta` and `rate` read keeps about this many samples per window, however
/// often readings come: those two need only the window's first and last sample, so the samples
/// in between are thinned to one per `window / THINNED_SAMPLES`. The window's first sample is
/// then at most that late (10 s of an hour): `delta` over an hour of a meter that reads every
/// second covers 59 min 50 s to 60 min, and `rate` divides by the span it covers.
pub const THINNED_SAMPLES: i64 = 360;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Avg,
    Max,
    Min,
    /// Newest minus oldest sample in the window.
    Delta,
    /// `delta` per second between those two samples.
    Rate,
}

impl Func {
    pub const ALL: [Func; 5] = [Func::Avg, Func::Max, Func::Min, Func::Delta, Func::Rate];

    pub fn as_str(self) -> &'static str {
        match self {
            Func::Avg => "avg",
            Func::Max => "max",
            Func::Min => "min",
            Func::Delta => "delta",
            Func::Rate => "rate",
        }
    }

    fn parse(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// One aggregate a condition needs: `func(point, window)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aggregate {
    pub func: Func,
    pub point: String,
    pub window_ms: i64,
}

impl Aggregate {
    /// The variable the call is replaced with; `@` keeps it apart from every point name.
    pub fn variable(&self) -> String {
        format!("@{}({},{})", self.func.as_str(), self.point, self.window_ms)
    }
}

/// Replaces every window call in `expr` with its variable and adds the aggregate to `found`.
/// A malformed call gives the id of its node and what is wrong.
pub fn rewrite(expr: &mut IdedExpr, found: &mut Vec<Aggregate>) -> Result<(), (u64, String)> {
    let id = expr.id;
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(func) = Func::parse(&call.func_name) {
                let usage = || {
                    format!("`{0}` takes a point name and a window: {0}(pressure_mpa, \"5m\")", func.as_str())
                };
                let (point, window) = match (&call.target, call.args.as_slice()) {
                    (None, [point, window]) => (point, window),
                    _ => return Err((id, usage())),
                };
                let Expr::Ident(point) = &point.expr else {
                    return Err((id, usage()));
                };
                let Expr::Literal(LiteralValue::String(window)) = &window.expr else {
                    return Err((id, usage()));
                };
                let window_ms = match humantime::parse_duration(window.inner()) {
                    Ok(d) if !d.is_zero() => d.as_millis().min(i64::MAX as u128) as i64,
                    Ok(_) => {
                        return Err((id, format!("`{}`: the window must be longer than 0", func.as_str())))
                    }
                    Err(e) => {
                        return Err((id, format!("`{}`: window `{}`: {e}", func.as_str(), window.inner())))
                    }
                };
                let aggregate = Aggregate { func, point: point.clone(), window_ms };
                expr.expr = Expr::Ident(aggregate.variable());
                found.push(aggregate);
                return Ok(());
            }
            if let Some(target) = &mut call.target {
                rewrite(target, found)?;
            }
            call.args.iter_mut().try_for_each(|a| rewrite(a, found))
        }
        Expr::Comprehension(c) => {
            for e in [&mut c.iter_range, &mut c.accu_init, &mut c.loop_cond, &mut c.loop_step, &mut c.result]
            {
                rewrite(e, found)?;
            }
            Ok(())
        }
        Expr::List(list) => list.elements.iter_mut().try_for_each(|e| rewrite(e, found)),
        Expr::Map(map) => map.entries.iter_mut().try_for_each(|e| match &mut e.expr {
            EntryExpr::StructField(f) => rewrite(&mut f.value, found),
            EntryExpr::MapEntry(m) => {
                rewrite(&mut m.key, found)?;
                rewrite(&mut m.value, found)
            }
        }),
        Expr::Struct(s) => s.entries.iter_mut().try_for_each(|e| match &mut e.expr {
            EntryExpr::StructField(f) => rewrite(&mut f.value, found),
            EntryExpr::MapEntry(m) => {
                rewrite(&mut m.key, found)?;
                rewrite(&mut m.value, found)
            }
        }),
        Expr::Select(s) => rewrite(&mut s.operand, found),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Ok(()),
    }
}

/// One point's recent samples of one device, oldest first, with strictly increasing times.
#[derive(Clone, Debug, Default)]
pub struct Series {
    samples: VecDeque<(i64, f64)>,
}

impl Series {
    /// Appends a sample newer than all held (others are ignored) and forgets what no window of
    /// up to `keep_ms` needs any more: it keeps one sample at or before `ts - keep_ms`, which
    /// shows the series reaches back over the whole window.
    pub fn push(&mut self, ts: i64, value: f64, keep_ms: i64) {
        self.push_spaced(ts, value, keep_ms, 0);
    }

    /// [`Series::push`], keeping the samples before the newest at least `spacing_ms` apart: the
    /// newest is replaced while it is closer than that to the one before it.
    pub fn push_spaced(&mut self, ts: i64, value: f64, keep_ms: i64, spacing_ms: i64) {
        if self.samples.back().is_some_and(|&(t, _)| ts <= t) {
            return;
        }
        let n = self.samples.len();
        if spacing_ms > 0 && n >= 2 && self.samples[n - 1].0 - self.samples[n - 2].0 < spacing_ms {
            self.samples.pop_back();
        }
        let len = self.samples.len();
        if len == self.samples.capacity() && spacing_ms > 0 {
            // A thinned series holds at most about `keep / spacing` samples: grow to that
            // exactly rather than doubling past it (a third more memory per series).
            let most = usize::try_from(keep_ms / spacing_ms).unwrap_or(MAX_SAMPLES).saturating_add(3);
            let want = (len * 2).max(4).min(most.max(len + 1)).min(MAX_SAMPLES + 1);
            self.samples.reserve_exact(want - len);
        }
        self.samples.push_back((ts, value));
        let start = ts.saturating_sub(keep_ms);
        while self.samples.len() >= 2 && self.samples[1].0 <= start {
            self.samples.pop_front();
        }
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// The samples held, oldest first: (time, value).
    pub fn samples(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.samples.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The aggregate over the samples in `[ts - window_ms, ts]`, if the series reaches back to
    /// the window's start; `delta` and `rate` need two samples in the window.
    pub fn aggregate(&self, func: Func, window_ms: i64, ts: i64) -> Option<f64> {
        let start = ts.saturating_sub(window_ms);
        if self.samples.front()?.0 > start {
            return None;
        }
        let mut in_window =
            self.samples.iter().rev().skip_while(|&&(t, _)| t > ts).take_while(|&&(t, _)| t >= start);
        let &(newest_t, newest) = in_window.next()?;
        let (mut count, mut sum, mut min, mut max) = (1u32, newest, newest, newest);
        let (mut oldest_t, mut oldest) = (newest_t, newest);
        for &(t, v) in in_window {
            count += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
            (oldest_t, oldest) = (t, v);
        }
        match func {
            Func::Avg => Some(sum / f64::from(count)),
            Func::Max => Some(max),
            Func::Min => Some(min),
            Func::Delta if count >= 2 => Some(newest - oldest),
            Func::Rate if newest_t > oldest_t => {
                Some((newest - oldest) * 1000.0 / (newest_t - oldest_t) as f64)
            }
            Func::Delta | Func::Rate => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(samples: &[(i64, f64)], keep_ms: i64) -> Series {
        let mut s = Series::default();
        for &(t, v) in samples {
            s.push(t, v, keep_ms);
        }
        s
    }

    #[test]
    fn aggregates_need_the_whole_window() {
        let s = series(&[(0, 1.0), (1_000, 2.0), (2_000, 4.0), (3_000, 7.0)], 2_000);
        // [1000, 3000]: 2, 4, 7; the sample at 0 was dropped, the one at 1000 shows coverage.
        assert_eq!(s.len(), 3);
        assert_eq!(s.aggregate(Func::Avg, 2_000, 3_000), Some(13.0 / 3.0));
        assert_eq!(s.aggregate(Func::Max, 2_000, 3_000), Some(7.0));
        assert_eq!(s.aggregate(Func::Min, 2_000, 3_000), Some(2.0));
        assert_eq!(s.aggregate(Func::Delta, 2_000, 3_000), Some(5.0));
        assert_eq!(s.aggregate(Func::Rate, 2_000, 3_000), Some(2.5));
        assert_eq!(s.aggregate(Func::Avg, 2_500, 3_000), None, "not seen for 2.5 s yet");
        assert_eq!(s.aggregate(Func::Delta, 500, 3_000), None, "one sample in the window");
        assert_eq!(s.aggregate(Func::Max, 500, 3_000), Some(7.0));
    }

    #[test]
    fn late_samples_are_ignored_and_memory_is_bounded() {
        let mut s = series(&[(0, 1.0), (2_000, 2.0)], 60_000);
        s.push(1_000, 9.0, 60_000);
        s.push(2_000, 9.0, 60_000);
        assert_eq!(s.aggregate(Func::Max, 2_000, 2_000), Some(2.0));
        let mut s = Series::default();
        for t in 0..(MAX_SAMPLES as i64 + 50) {
            s.push(t, 1.0, i64::MAX / 2);
        }
        assert_eq!(s.len(), MAX_SAMPLES);
    }

    #[test]
    fn thinned_series_stay_small_and_keep_delta_and_rate_close() {
        let hour = 3_600_000;
        let spacing = hour / THINNED_SAMPLES;
        let (mut exact, mut thin) = (Series::default(), Series::default());
        // A meter counting 0.001 m³ a second, read every second for two hours.
        for s in 0..7_200i64 {
            let (t, v) = (s * 1_000, s as f64 * 0.001);
            exact.push(t, v, hour);
            thin.push_spaced(t, v, hour, spacing);
        }
        assert!(exact.len() > 3_600);
        assert!(thin.len() <= THINNED_SAMPLES as usize + 2, "{} samples", thin.len());
        assert!(thin.samples.capacity() <= THINNED_SAMPLES as usize + 3, "{}", thin.samples.capacity());
        let now = 7_199_000;
        let want = exact.aggregate(Func::Delta, hour, now).unwrap();
        let got = thin.aggregate(Func::Delta, hour, now).unwrap();
        assert!((want - got).abs() <= 0.001 * (spacing / 1_000) as f64 + 1e-9, "{want} vs {got}");
        let rate = thin.aggregate(Func::Rate, hour, now).unwrap();
        assert!((rate - 0.001).abs() < 1e-9, "rate over the span held: {rate}");
        assert_eq!(thin.aggregate(Func::Delta, 2 * hour, now), None, "still needs the whole window");
    }

    #[test]
    fn rewrites_window_calls_into_variables() {
        let program =
            cel::Program::compile("avg(p, '5m') > 1.2 && [rate(q, \"1s\")].all(x, x > 0.0)").unwrap();
        let mut expr = program.expression().clone();
        let mut found = Vec::new();
        rewrite(&mut expr, &mut found).unwrap();
        assert_eq!(
            found.iter().map(Aggregate::variable).collect::<Vec<_>>(),
            ["@avg(p,300000)", "@rate(q,1000)"]
        );
        for bad in ["avg(p) > 1.0", "max(p + 1, '5m') > 1.0", "min(p, 5) > 1.0", "x.delta(p, '1m') > 0.0"] {
            let program = cel::Program::compile(bad).unwrap();
            let err = rewrite(&mut program.expression().clone(), &mut Vec::new()).unwrap_err();
            assert!(err.1.contains("takes a point name and a window"), "{bad}: {err:?}");
        }
        let program = cel::Program::compile("avg(p, '5 parsecs') > 1.0").unwrap();
        let err = rewrite(&mut program.expression().clone(), &mut Vec::new()).unwrap_err();
        assert!(err.1.starts_with("`avg`: window `5 parsecs`"), "{err:?}");
    }
}
