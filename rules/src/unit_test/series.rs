//! Series notation, after Prometheus's promtool: one value per step, separated by spaces.
//!
//! | written | expands to |
//! |---|---|
//! | `1.3` `5` `true` `0b101` | one value (float, integer, boolean, binary integer) |
//! | `_` | no value at that step |
//! | `a x N`, `axN` | `a`, then `N` more of it: `1x3` is `1 1 1 1` |
//! | `a+bxN`, `a-bxN` | `a`, then `N` more, each `b` above (below) the last: `1+2x3` is `1 3 5 7` |
//! | `_xN` | `N` steps with no value |

use telemetry::Value;

/// Most values one series may expand to.
pub const MAX_STEPS: usize = 1_000_000;

/// A problem at a byte offset of the notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotationError {
    pub offset: usize,
    pub message: String,
}

fn scalar(s: &str) -> Option<Value> {
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    if let Some(bin) = digits.strip_prefix("0b") {
        return i64::from_str_radix(bin, 2).ok().map(|v| Value::Int(sign * v));
    }
    if !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Int(i));
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
}

/// `a+b` or `a-b`: the start and the step, split at a sign that is not the first character and
/// not an exponent's.
fn stepped(s: &str) -> Option<(Value, Value)> {
    let bytes = s.as_bytes();
    let at = (1..bytes.len())
        .rev()
        .find(|&i| matches!(bytes[i], b'+' | b'-') && !matches!(bytes[i - 1], b'e' | b'E'))?;
    let start = scalar(&s[..at])?;
    let step = scalar(&s[at..])?;
    match (&start, &step) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => Some((start, step)),
        _ => None,
    }
}

fn nth(start: &Value, step: &Value, k: i64) -> Value {
    match (start, step) {
        (Value::Int(a), Value::Int(b)) => Value::Int(a + b * k),
        (a, b) => {
            let x = a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0) * k as f64;
            // 1.0+0.1x3 should read 1.3, not 1.3000000000000003.
            Value::Float((x * 1e9).round() / 1e9)
        }
    }
}

/// Expands `notation` into one optional value per step.
pub fn parse(notation: &str) -> Result<Vec<Option<Value>>, NotationError> {
    let mut out: Vec<Option<Value>> = Vec::new();
    let mut offset = 0;
    for token in notation.split_whitespace() {
        let at = offset + notation[offset..].find(token).unwrap_or(0);
        offset = at + token.len();
        let err = |message: String| NotationError { offset: at, message };
        let bad =
            || err(format!("`{token}` is not a value (a number, true, false, _), `a x N` or `a+b x N`"));
        // `x14` after a value repeats it, so `false x14` reads as `falsex14`.
        let (base, more) = match token.rfind('x') {
            Some(i) if token[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < token.len() => {
                let n: usize = token[i + 1..].parse().map_err(|_| bad())?;
                (&token[..i], Some(n))
            }
            _ => (token, None),
        };
        match (base, more) {
            ("", Some(n)) => {
                let last = out
                    .last()
                    .cloned()
                    .ok_or_else(|| err(format!("`{token}` repeats no value before it")))?;
                out.extend(std::iter::repeat_n(last, n.min(MAX_STEPS + 1)));
            }
            ("_", Some(n)) => out.extend(std::iter::repeat_n(None, n.min(MAX_STEPS + 1))),
            ("_", None) => out.push(None),
            (base, more) => {
                let (start, step) = match (scalar(base), more) {
                    (Some(v), _) => (v, None),
                    (None, Some(_)) => stepped(base).map(|(a, b)| (a, Some(b))).ok_or_else(bad)?,
                    (None, None) => return Err(bad()),
                };
                let n = more.unwrap_or(0).min(MAX_STEPS + 1);
                match step {
                    None => out.extend(std::iter::repeat_n(Some(start), n + 1)),
                    Some(step) => out.extend((0..=n as i64).map(|k| Some(nth(&start, &step, k)))),
                }
            }
        }
        if out.len() > MAX_STEPS {
            return Err(NotationError {
                offset: at,
                message: format!("a series may have at most {MAX_STEPS} steps"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<Option<Value>> {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    #[test]
    fn expands_like_promtool() {
        let f = |x: f64| Some(Value::Float(x));
        let i = |x: i64| Some(Value::Int(x));
        assert_eq!(values("1.0 1.0 1.3x2 1.0"), [f(1.0), f(1.0), f(1.3), f(1.3), f(1.3), f(1.0)]);
        assert_eq!(values("-2+4x3"), [i(-2), i(2), i(6), i(10)]);
        assert_eq!(values(" 1-2x4"), [i(1), i(-1), i(-3), i(-5), i(-7)]);
        assert_eq!(values("1.0+0.1x3"), [f(1.0), f(1.1), f(1.2), f(1.3)]);
        assert_eq!(values("1e3 2.5e-1+1e-1x1"), [f(1000.0), f(0.25), f(0.35)]);
        assert_eq!(values("5 _x2 _ 0b101x1"), [i(5), None, None, None, i(5), i(5)]);
        let b = Some(Value::Bool(false));
        assert_eq!(values("false x2"), [b.clone(), b.clone(), b.clone()]);
        assert_eq!(values("falsex2"), values("false x2"));
        assert_eq!(values("true x0 _ x1"), [Some(Value::Bool(true)), None, None]);
        assert_eq!(values(""), []);
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = parse("1 2 1.3y4").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("`1.3y4` is not a value"), "{e:?}");
        assert_eq!(parse("x3").unwrap_err().offset, 0);
        assert!(parse("true+1x2").is_err());
        assert!(parse("1x99999999").unwrap_err().message.contains("at most"));
    }
}
