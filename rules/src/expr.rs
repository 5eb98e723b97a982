//! CEL conditions. A condition is parsed once; each evaluation binds the reading's values as
//! top-level variables and `device` as a map (`id`, `kind`, `gateway`, and registry attributes)
//! in a child scope of one shared root context that holds the helper functions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::{Context, Program};
use telemetry::{Reading, Value};

/// A parsed condition and its source text.
#[derive(Debug)]
pub struct Condition {
    pub source: String,
    program: Program,
    /// The top-level variables it reads, found once at parse time.
    variables: Vec<String>,
}

/// A syntax error, positioned inside the expression (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, SyntaxError> {
        match Program::compile(source) {
            Ok(program) => {
                let variables = program.references().variables().into_iter().map(str::to_string).collect();
                Ok(Condition { source: source.to_string(), program, variables })
            }
            Err(errors) => {
                let first = errors.errors.first();
                Err(SyntaxError {
                    line: first.map_or(1, |e| e.pos.0.max(1) as usize),
                    column: first.map_or(1, |e| e.pos.1.max(1) as usize),
                    message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
                })
            }
        }
    }

    /// The top-level variables the condition reads (point names, and `device`).
    pub fn variables(&self) -> &[String] {
        &self.variables
    }
}

/// Why a condition gave no answer. The engine leaves the alert as it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Execution(String),
    #[error("the condition gave {0}, not a boolean")]
    NotBoolean(String),
}

/// The shared root context with the helper functions.
pub struct Evaluator {
    root: Context<'static, 'static>,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Evaluator")
    }
}

fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Float(f) => cel::Value::Float(*f),
        Value::Text(s) => cel::Value::String(Arc::new(s.clone())),
    }
}

impl Evaluator {
    pub fn new() -> Self {
        let mut root = Context::default();
        // bit(x, n): is bit n of the integer x set? For alarm words read from Modbus registers.
        root.add_function("bit", |x: i64, n: i64| (0..64).contains(&n) && (x >> n) & 1 == 1)
            .expect("`bit` is not a CEL standard function");
        Evaluator { root }
    }

    /// Evaluates `condition` over `reading` and the device's attributes.
    pub fn eval(
        &self,
        condition: &Condition,
        reading: &Reading,
        attributes: Option<&BTreeMap<String, Value>>,
    ) -> Result<bool, EvalError> {
        let mut scope = self.root.new_inner_scope();
        for name in &condition.variables {
            if name == "device" {
                let mut device: HashMap<cel::objects::Key, cel::Value> = HashMap::new();
                device.insert("id".into(), cel::Value::String(Arc::new(reading.device.clone())));
                device.insert("kind".into(), cel::Value::String(Arc::new(reading.kind.clone())));
                device.insert("gateway".into(), cel::Value::String(Arc::new(reading.gateway.clone())));
                for (k, v) in attributes.into_iter().flatten() {
                    device.insert(k.as_str().into(), to_cel(v));
                }
                scope.add_variable_from_value("device", device);
            } else if let Some(v) = reading.values.get(name) {
                scope.add_variable_from_value(name.as_str(), to_cel(v));
            }
        }
        match condition.program.execute(&scope) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBoolean(format!("{other:?}"))),
            Err(e) => Err(EvalError::Execution(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        Reading::new("gw", "b1", "boiler", 1, 1, 1000)
            .with_value("pressure_mpa", 1.3)
            .with_value("alarm_bits", 0b100)
            .with_value("over_pressure", true)
    }

    #[test]
    fn evaluates_values_device_attributes_and_bits() {
        let e = Evaluator::new();
        let attrs = BTreeMap::from([("rated_pressure_mpa".to_string(), Value::Float(1.25))]);
        let cases = [
            ("pressure_mpa > device.rated_pressure_mpa", true),
            ("pressure_mpa > 1.5", false),
            ("bit(alarm_bits, 2) && !bit(alarm_bits, 0)", true),
            ("over_pressure", true),
            ("device.kind == 'boiler' && device.id == 'b1'", true),
            ("alarm_bits == 4", true),
        ];
        for (src, want) in cases {
            let c = Condition::parse(src).unwrap();
            assert_eq!(e.eval(&c, &reading(), Some(&attrs)), Ok(want), "{src}");
        }
    }

    #[test]
    fn missing_values_and_non_booleans_are_errors_not_answers() {
        let e = Evaluator::new();
        let c = Condition::parse("load_kg > 100").unwrap();
        assert!(matches!(e.eval(&c, &reading(), None), Err(EvalError::Execution(_))));
        let c = Condition::parse("pressure_mpa * 2.0").unwrap();
        assert!(matches!(e.eval(&c, &reading(), None), Err(EvalError::NotBoolean(_))));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = Condition::parse("a > > 1").unwrap_err();
        assert_eq!((err.line, err.column), (1, 5));
        assert!(err.message.contains("extraneous input"), "{}", err.message);
        assert_eq!(Condition::parse("pressure > device.x").unwrap().variables().len(), 2);
    }
}
