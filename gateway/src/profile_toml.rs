//! Writes a [`Profile`] as the TOML `Profile::parse` reads: what `gateway import-csv` and the
//! load benchmark's synthetic profiles produce. Keys at their default are left out.

use std::fmt::Write as _;

use crate::profile::{fmt_duration, ByteOrder, DataType, Point, Profile};

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A float TOML reads back as the same float (always with a point or an exponent).
fn float(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// `{ 0 = "a", 5 = "b" }`
fn inline<K: std::fmt::Display>(entries: impl Iterator<Item = (K, String)>) -> String {
    let parts: Vec<String> = entries.map(|(k, v)| format!("{k} = {}", quote(&v))).collect();
    format!("{{ {} }}", parts.join(", "))
}

/// The profile as TOML, after `comment` (each line prefixed with `# `).
pub fn to_toml(profile: &Profile, comment: &str) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        let _ = writeln!(out, "# {line}");
    }
    let _ = writeln!(out, "kind = {}", quote(&profile.kind));
    if let Some(d) = &profile.description {
        let _ = writeln!(out, "description = {}", quote(d));
    }
    let defaults = Profile::new("", "", Vec::new());
    if profile.max_registers != defaults.max_registers {
        let _ = writeln!(out, "max_registers = {}", profile.max_registers);
    }
    if profile.max_bits != defaults.max_bits {
        let _ = writeln!(out, "max_bits = {}", profile.max_bits);
    }
    if profile.max_gap != 0 {
        let _ = writeln!(out, "max_gap = {}", profile.max_gap);
    }
    for (key, pause) in [
        ("pause_between_requests", profile.pause_between_requests),
        ("pause_after_connect", profile.pause_after_connect),
    ] {
        if !pause.is_zero() {
            let _ = writeln!(out, "{key} = {}", quote(&fmt_duration(pause)));
        }
    }
    for p in &profile.points {
        out.push('\n');
        point(&mut out, p);
    }
    out
}

fn point(out: &mut String, p: &Point) {
    let _ = writeln!(out, "[[point]]\nname = {}", quote(&p.name));
    let _ = writeln!(out, "table = \"{}\"\naddress = {}", p.table.name(), p.address);
    let _ = writeln!(out, "type = \"{}\"", p.data_type.name());
    if p.order != ByteOrder::ABCD {
        let _ = writeln!(out, "order = \"{}\"", p.order.name());
    }
    if let Some(n) = p.length {
        let _ = writeln!(out, "length = {n}");
    }
    if p.scale != 1.0 {
        let _ = writeln!(out, "scale = {}", float(p.scale));
    }
    if p.offset != 0.0 {
        let _ = writeln!(out, "offset = {}", float(p.offset));
    }
    if let Some(u) = &p.unit {
        let _ = writeln!(out, "unit = {}", quote(u));
    }
    if let Some(d) = p.decimals {
        let _ = writeln!(out, "decimals = {d}");
    }
    if let (DataType::Bitfield, Some(f)) = (p.data_type, p.field) {
        let _ = writeln!(out, "bits = \"{f}\"");
    } else if !p.bits.is_empty() {
        let _ = writeln!(out, "bits = {}", inline(p.bits.iter().map(|(k, v)| (k, v.clone()))));
    }
    if !p.codes.is_empty() {
        let _ = writeln!(out, "codes = {}", inline(p.codes.iter().map(|(k, v)| (k, v.clone()))));
    }
    if let Some(i) = p.interval {
        let _ = writeln!(out, "interval = {}", quote(&fmt_duration(i)));
    }
    if let Some(d) = &p.description {
        let _ = writeln!(out, "description = {}", quote(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::BUILT_IN;

    #[test]
    fn every_built_in_profile_is_written_back_as_itself() {
        for (name, _) in BUILT_IN {
            let p = Profile::built_in(name).unwrap();
            let text = to_toml(&p, &format!("{name}\nwritten back"));
            assert!(text.starts_with(&format!("# {name}\n# written back\n")), "{text}");
            let again = Profile::parse(name, "written", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(again, p, "{text}");
        }
        assert_eq!(float(2.0), "2.0");
        assert_eq!(float(0.001), "0.001");
        assert_eq!(float(1e-7), "1e-7");
    }

    #[test]
    fn a_point_s_decimals_are_read_checked_and_written_back() {
        let text =
            "kind = \"boiler\"\n[[point]]\nname = \"p\"\ntable = \"holding\"\naddress = 1\ntype = \"u16\"\n\
                    unit = \"MPa\"\ndecimals = 3\n";
        let p = Profile::parse("x", "x.toml", text).unwrap();
        assert_eq!(p.points[0].decimals, Some(3));
        let back = to_toml(&p, "x");
        assert!(back.contains("decimals = 3\n"), "{back}");
        assert_eq!(Profile::parse("x", "x.toml", &back).unwrap(), p);
        let err = Profile::parse("x", "x.toml", &text.replace("= 3", "= 12")).unwrap_err().to_string();
        assert!(err.contains("decimals = 12 must be 0 to 9"), "{err}");
    }
}
