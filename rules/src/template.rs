//! Message templates: `"{device.id} trapped at floor {floor}"`. A placeholder names a point of
//! the reading, a `device.` attribute, or a value the rule type adds (`{code}`, `{code_name}`,
//! `{after}`); `{{` and `}}` are literal braces.
//!
//! A float is shown to its point's decimals ([`crate::number`]): those a profile gives
//! ([`Template::set_decimals`]), else those of the unit the template writes after it
//! (`{pressure_mpa} MPa`: 2). A `device.` attribute the registry has no value for is left out
//! with its separator (`{device.name} ({device.registration_code}, {device.town})` without a
//! registration code: `演示 elevator 1 (东城街道)`); a missing point shows as `?`.

use std::collections::BTreeMap;

use telemetry::{Reading, Value};

use crate::number::{decimals_for_unit, format_float, unit_after, DEFAULT_DECIMALS};

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
}

#[derive(Clone, Debug, PartialEq)]
struct Field {
    name: String,
    /// From the unit written after the placeholder.
    unit_decimals: Option<u8>,
    /// From the point's profile; wins over the unit's.
    profile_decimals: Option<u8>,
}

impl Field {
    fn decimals(&self) -> u8 {
        self.profile_decimals.or(self.unit_decimals).unwrap_or(DEFAULT_DECIMALS)
    }
}

/// Separators that go with a left-out attribute: the one after it, else the one before it.
const SEPARATORS: &[&str] = &[", ", ",", "，", "、", "; ", "；", " / "];

/// What a placeholder rendered to.
enum Piece {
    Text(String),
    Missing,
}

fn show(value: &Value, decimals: u8) -> String {
    match value {
        Value::Float(f) => format_float(*f, decimals),
        v => v.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template; an error gives the byte offset of the problem and what it is.
    pub fn parse(source: &str) -> Result<Template, (usize, String)> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let rest = &source[i + 1..];
                    let end = rest
                        .find('}')
                        .ok_or((i, "`{` is never closed (write `{{` for a brace)".to_string()))?;
                    let name = rest[..end].trim();
                    let valid = !name.is_empty()
                        && name.split('.').all(telemetry::codec::is_point_name)
                        && name.split('.').count() <= 2;
                    if !valid {
                        return Err((i, format!("`{{{name}}}` is not a point name or `device.` attribute")));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    let unit_decimals = unit_after(&rest[end + 1..]).and_then(decimals_for_unit);
                    parts.push(Part::Field(Field {
                        name: name.to_string(),
                        unit_decimals,
                        profile_decimals: None,
                    }));
                    for _ in 0..end + 1 {
                        chars.next();
                    }
                }
                '}' => return Err((i, "`}` without `{` (write `}}` for a brace)".to_string())),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// The names of its placeholders, in order (`device.id`, `floor`, …).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Shows the point `name` to `decimals` decimals (its profile's `decimals`), whatever
    /// unit the template writes after it.
    pub fn set_decimals(&mut self, name: &str, decimals: u8) {
        for part in &mut self.parts {
            if let Part::Field(f) = part {
                if f.name == name {
                    f.profile_decimals = Some(decimals);
                }
            }
        }
    }

    /// Renders with the reading's values and the device's attributes; a point with no value
    /// renders as `?`, an attribute with none is left out.
    pub fn render(&self, reading: &Reading, attributes: Option<&BTreeMap<String, Value>>) -> String {
        self.render_with(reading, attributes, &[])
    }

    /// Renders like [`Template::render`], with `extra` named values that come before the
    /// reading's points (`code`, `code_name` of a fault-code rule).
    pub fn render_with(
        &self,
        reading: &Reading,
        attributes: Option<&BTreeMap<String, Value>>,
        extra: &[(&str, &str)],
    ) -> String {
        let pieces = self.parts.iter().map(|part| match part {
            Part::Text(t) => Piece::Text(t.clone()),
            Part::Field(f) => {
                let name = f.name.as_str();
                Piece::Text(match name.strip_prefix("device.") {
                    Some("id") => reading.device.clone(),
                    Some("kind") => reading.kind.clone(),
                    Some("gateway") => reading.gateway.clone(),
                    Some(attr) => match attributes.and_then(|a| a.get(attr)) {
                        Some(Value::Text(t)) if t.trim().is_empty() => return Piece::Missing,
                        Some(v) => show(v, f.decimals()),
                        None => return Piece::Missing,
                    },
                    None => match extra.iter().find(|(n, _)| *n == name) {
                        Some((_, v)) => v.to_string(),
                        None => {
                            reading.values.get(name).map_or_else(|| "?".into(), |v| show(v, f.decimals()))
                        }
                    },
                })
            }
        });
        join(pieces)
    }
}

/// The rendered pieces with each left-out attribute's separator gone, then brackets left
/// empty and the spaces around them.
fn join(pieces: impl Iterator<Item = Piece>) -> String {
    let mut out = String::new();
    let mut drop_separator = false;
    let mut pieces = pieces.peekable();
    while let Some(piece) = pieces.next() {
        match piece {
            Piece::Text(t) => {
                let t = match drop_separator {
                    true => SEPARATORS.iter().find_map(|s| t.strip_prefix(s)).unwrap_or(&t),
                    false => &t,
                };
                out.push_str(t);
                drop_separator = false;
            }
            Piece::Missing => {
                let next_has_one = matches!(pieces.peek(), Some(Piece::Text(t)) if SEPARATORS.iter().any(|s| t.starts_with(s)));
                if next_has_one {
                    drop_separator = true;
                } else if let Some(s) = SEPARATORS.iter().find(|s| out.ends_with(**s)) {
                    out.truncate(out.len() - s.len());
                }
            }
        }
    }
    for empty in [" ()", "()", " （）", "（）"] {
        out = out.replace(empty, "");
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_points_device_fields_and_literal_braces() {
        let t =
            Template::parse("{device.id} 超压 {pressure_mpa} MPa > {device.rated} {{ok}} {missing}").unwrap();
        let r = Reading::new("gw", "b1", "boiler", 1, 1, 1).with_value("pressure_mpa", 1.3);
        let attrs = BTreeMap::from([("rated".to_string(), Value::Float(1.25))]);
        assert_eq!(t.render(&r, Some(&attrs)), "b1 超压 1.3 MPa > 1.25 {ok} ?");
        let t = Template::parse("{pressure_mpa}").unwrap();
        assert_eq!(t.render(&r, None), "1.3");
        let t = Template::parse("{code_name} ({code}) {pressure_mpa}").unwrap();
        assert_eq!(t.render_with(&r, None, &[("code", "5"), ("code_name", "trapped")]), "trapped (5) 1.3");
    }

    #[test]
    fn floats_show_their_unit_s_or_profile_s_decimals() {
        let r = Reading::new("gw", "w1", "water_meter", 1, 1, 1)
            .with_value("flow_m3h", 1.3826844)
            .with_value("pressure_mpa", 0.851007)
            .with_value("temp_c", 21.04999)
            .with_value("ratio", 0.123456)
            .with_value("floor", 7i64);
        let t = Template::parse("{flow_m3h} m³/h, {pressure_mpa} MPa; {temp_c} °C {ratio} floor {floor}")
            .unwrap();
        assert_eq!(t.render(&r, None), "1.38 m³/h, 0.85 MPa; 21 °C 0.123 floor 7");
        let mut t = Template::parse("{pressure_mpa} MPa {ratio}").unwrap();
        t.set_decimals("pressure_mpa", 3);
        t.set_decimals("ratio", 1);
        assert_eq!(t.render(&r, None), "0.851 MPa 0.1");
    }

    #[test]
    fn a_missing_attribute_is_left_out_with_its_separator() {
        let t = Template::parse("{device.name} ({device.registration_code}, {device.town}) overdue").unwrap();
        let r = Reading::new("gw", "e1", "elevator", 1, 1, 1);
        let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, Value> {
            pairs.iter().map(|(k, v)| (k.to_string(), Value::Text(v.to_string()))).collect()
        };
        let all = attrs(&[("name", "演示 elevator 1"), ("registration_code", "3110"), ("town", "东城街道")]);
        assert_eq!(t.render(&r, Some(&all)), "演示 elevator 1 (3110, 东城街道) overdue");
        let no_code = attrs(&[("name", "演示 elevator 1"), ("registration_code", ""), ("town", "东城街道")]);
        assert_eq!(t.render(&r, Some(&no_code)), "演示 elevator 1 (东城街道) overdue");
        let no_town = attrs(&[("name", "演示 elevator 1"), ("registration_code", "3110")]);
        assert_eq!(t.render(&r, Some(&no_town)), "演示 elevator 1 (3110) overdue");
        let name_only = attrs(&[("name", "演示 elevator 1")]);
        assert_eq!(t.render(&r, Some(&name_only)), "演示 elevator 1 overdue");
        assert_eq!(t.render(&r, None), "overdue");
    }

    #[test]
    fn rejects_unbalanced_and_bad_placeholders() {
        assert_eq!(Template::parse("a {b").unwrap_err().0, 2);
        assert!(Template::parse("a } b").unwrap_err().1.contains("without"));
        assert!(Template::parse("{a b}").unwrap_err().1.contains("not a point name"));
        assert!(Template::parse("{}").is_err());
    }
}
