//! Message templates: `"{device.id} trapped at floor {floor}"`. A placeholder names a point of
//! the reading, a `device.` attribute, or a value the rule type adds (`{code}`, `{code_name}`,
//! `{after}`); `{{` and `}}` are literal braces.

use std::collections::BTreeMap;

use telemetry::{Reading, Value};

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field(String),
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
                    parts.push(Part::Field(name.to_string()));
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
            Part::Field(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Renders with the reading's values and the device's attributes; a name with no value
    /// renders as `?`.
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
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(name) => {
                    let value = match name.strip_prefix("device.") {
                        Some("id") => Some(reading.device.clone()),
                        Some("kind") => Some(reading.kind.clone()),
                        Some("gateway") => Some(reading.gateway.clone()),
                        Some(attr) => attributes.and_then(|a| a.get(attr)).map(Value::to_string),
                        None => match extra.iter().find(|(n, _)| n == name) {
                            Some((_, v)) => Some(v.to_string()),
                            None => reading.values.get(name).map(Value::to_string),
                        },
                    };
                    out.push_str(value.as_deref().unwrap_or("?"));
                }
            }
        }
        out
    }
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
        let t = Template::parse("{code_name} ({code}) {pressure_mpa}").unwrap();
        assert_eq!(t.render_with(&r, None, &[("code", "5"), ("code_name", "trapped")]), "trapped (5) 1.3");
    }

    #[test]
    fn rejects_unbalanced_and_bad_placeholders() {
        assert_eq!(Template::parse("a {b").unwrap_err().0, 2);
        assert!(Template::parse("a } b").unwrap_err().1.contains("without"));
        assert!(Template::parse("{a b}").unwrap_err().1.contains("not a point name"));
        assert!(Template::parse("{}").is_err());
    }
}
