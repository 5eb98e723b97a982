//! CEL conditions. A condition is parsed once; its window calls (`avg(p, "5m")`, see
//! [`crate::window`]) are replaced by variables at parse time. Per reading the engine builds one
//! [`Bindings`]: the reading's values, the `device` map (`id`, `kind`, `gateway`, registry
//! attributes) and the window aggregates, looked up by name without copying the reading, and
//! evaluates every rule of the reading's kind against it, in a child scope of one shared root
//! context that holds the helper functions.
//!
//! Conditions within the subset rule files use are also compiled (see [`compile`]) and evaluated
//! straight on the bindings; the interpreter evaluates the rest, and answers whenever the compiled
//! tree cannot.

mod compile;
#[cfg(test)]
mod differential_tests;

use std::sync::OnceLock;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::common::types::{CelBool, CelDouble, CelInt, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, IdedExpr, Program};
use telemetry::{Reading, Value};

use crate::window::{self, Aggregate};

/// A parsed condition and its source text.
#[derive(Debug)]
pub struct Condition {
    pub source: String,
    /// The syntax tree, window calls replaced by their variables.
    expression: Box<IdedExpr>,
    /// The top-level variables it reads, found once at parse time.
    variables: Vec<String>,
    /// The window aggregates it reads, sorted, without repeats.
    aggregates: Vec<Aggregate>,
    /// The compiled form, when the condition is within the compiled subset.
    compiled: Option<compile::Node>,
}

/// A syntax error, positioned inside the expression (1-based; the column counts characters).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// 1-based line and character column of byte `offset` in `source`.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    (line, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
}

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, SyntaxError> {
        let program = Program::compile(source).map_err(|errors| {
            let first = errors.errors.first();
            SyntaxError {
                line: first.map_or(1, |e| e.pos.0.max(1) as usize),
                column: first.map_or(1, |e| e.pos.1.max(1) as usize),
                message: first.map_or_else(|| errors.to_string(), |e| e.msg.clone()),
            }
        })?;
        let mut expression = Box::new(program.expression().clone());
        let mut aggregates = Vec::new();
        if let Err((id, message)) = window::rewrite(&mut expression, &mut aggregates) {
            // The parser places a call at its `(`; point at the function's name instead.
            let at = program.source_info().offset_for(id).map_or(0, |(start, _)| start as usize);
            let name_start = source
                .get(..at)
                .unwrap_or_default()
                .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                .len();
            let (line, column) = line_col(source, name_start);
            return Err(SyntaxError { line, column, message });
        }
        aggregates.sort();
        aggregates.dedup();
        let variables = expression.references().variables().into_iter().map(str::to_string).collect();
        let compiled = compile::compile(&expression);
        Ok(Condition { source: source.to_string(), expression, variables, aggregates, compiled })
    }

    /// The top-level variables the condition reads (point names, and `device`); points read only
    /// through a window function are not among them.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The window aggregates the condition reads.
    pub fn aggregates(&self) -> &[Aggregate] {
        &self.aggregates
    }

    /// Whether the condition is evaluated without the interpreter (when it can be).
    pub fn is_compiled(&self) -> bool {
        self.compiled.is_some()
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

/// What the conditions of one reading see: built once per reading, shared by all its rules.
pub struct Bindings<'a> {
    reading: &'a Reading,
    attributes: Option<&'a BTreeMap<String, Value>>,
    with_device: bool,
    /// The interpreter's `device` map, built on first use.
    device: OnceLock<Option<Box<dyn Val>>>,
    /// Window aggregates by variable name, sorted by name.
    aggregates: &'a [(&'a str, f64)],
}

impl<'a> Bindings<'a> {
    /// `with_device`: build the `device` map (only when a condition reads it).
    pub fn new(
        reading: &'a Reading,
        attributes: Option<&'a BTreeMap<String, Value>>,
        with_device: bool,
        aggregates: &'a [(&'a str, f64)],
    ) -> Self {
        Bindings { reading, attributes, with_device, device: OnceLock::new(), aggregates }
    }

    /// The `device` map for the interpreter: `id`, `kind`, `gateway`, then the attributes.
    fn device(&self) -> Option<&dyn Val> {
        let device = self.device.get_or_init(|| {
            if !self.with_device {
                return None;
            }
            let reading = self.reading;
            let mut device: HashMap<cel::objects::Key, cel::Value> = HashMap::new();
            device.insert("id".into(), cel::Value::String(Arc::new(reading.device.clone())));
            device.insert("kind".into(), cel::Value::String(Arc::new(reading.kind.clone())));
            device.insert("gateway".into(), cel::Value::String(Arc::new(reading.gateway.clone())));
            for (k, v) in self.attributes.into_iter().flatten() {
                device.insert(k.as_str().into(), to_cel(v));
            }
            Box::<dyn Val>::try_from(cel::Value::from(device)).ok()
        });
        device.as_deref()
    }
}

impl std::fmt::Debug for Bindings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings").field("device", &self.reading.device).finish_non_exhaustive()
    }
}

impl VariableResolver for Bindings<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        if name.starts_with('@') {
            let i = self.aggregates.binary_search_by(|(n, _)| (*n).cmp(name)).ok()?;
            return Some(CowVal::owned(CelDouble::from(self.aggregates[i].1)));
        }
        if name == "device" {
            if let Some(device) = self.device() {
                return Some(CowVal::Borrowed(device));
            }
        }
        Some(match self.reading.values.get(name)? {
            Value::Bool(b) => CowVal::owned(CelBool::from(*b)),
            Value::Int(i) => CowVal::owned(CelInt::from(*i)),
            Value::Float(x) => CowVal::owned(CelDouble::from(*x)),
            Value::Text(s) => CowVal::owned(CelString::from(s.as_str())),
        })
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

/// A child scope of `root` that reads its variables from `bindings`.
fn scope<'a>(root: &'a Context<'a, 'a>, bindings: &'a Bindings<'a>) -> Context<'a, 'a> {
    let mut scope = root.new_inner_scope();
    scope.set_variable_resolver(bindings);
    scope
}

impl Evaluator {
    pub fn new() -> Self {
        let mut root = Context::default();
        // bit(x, n): is bit n of the integer x set? For alarm words read from Modbus registers.
        root.add_function("bit", |x: i64, n: i64| (0..64).contains(&n) && (x >> n) & 1 == 1)
            .expect("`bit` is not a CEL standard function");
        Evaluator { root }
    }

    /// Evaluates `condition` over what `bindings` holds: compiled when it can be, else by the
    /// interpreter.
    pub fn eval(&self, condition: &Condition, bindings: &Bindings<'_>) -> Result<bool, EvalError> {
        match self.eval_compiled(condition, bindings) {
            Some(answer) => answer,
            None => self.interpret(condition, bindings),
        }
    }

    /// As [`Evaluator::eval`], without the error: `None` when the condition gives no answer. No
    /// error text is built unless the interpreter has to answer.
    pub fn check(&self, condition: &Condition, bindings: &Bindings<'_>) -> Option<bool> {
        match condition.compiled.as_ref().and_then(|c| c.answer(bindings)) {
            Some(answer) => answer,
            None => self.interpret(condition, bindings).ok(),
        }
    }

    /// The compiled form's answer; `None` when the condition is not compiled or the compiled form
    /// leaves this evaluation to the interpreter.
    pub fn eval_compiled(
        &self,
        condition: &Condition,
        bindings: &Bindings<'_>,
    ) -> Option<Result<bool, EvalError>> {
        condition.compiled.as_ref()?.run(bindings)
    }

    /// Evaluates `condition` with the CEL interpreter.
    pub fn interpret(&self, condition: &Condition, bindings: &Bindings<'_>) -> Result<bool, EvalError> {
        match cel::Value::resolve(&condition.expression, &scope(&self.root, bindings)) {
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
        let r = reading();
        let b = Bindings::new(&r, Some(&attrs), true, &[]);
        for (src, want) in cases {
            let c = Condition::parse(src).unwrap();
            assert_eq!(e.eval(&c, &b), Ok(want), "{src}");
        }
    }

    #[test]
    fn missing_values_and_non_booleans_are_errors_not_answers() {
        let e = Evaluator::new();
        let r = reading();
        let b = Bindings::new(&r, None, false, &[]);
        let c = Condition::parse("load_kg > 100").unwrap();
        assert!(matches!(e.eval(&c, &b), Err(EvalError::Execution(_))));
        let c = Condition::parse("pressure_mpa * 2.0").unwrap();
        assert!(matches!(e.eval(&c, &b), Err(EvalError::NotBoolean(_))));
        let c = Condition::parse("avg(pressure_mpa, '1m') > 1.0").unwrap();
        assert!(matches!(e.eval(&c, &b), Err(EvalError::Execution(_))), "no aggregate bound");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = Condition::parse("a > > 1").unwrap_err();
        assert_eq!((err.line, err.column), (1, 5));
        assert!(err.message.contains("extraneous input"), "{}", err.message);
        assert_eq!(Condition::parse("pressure > device.x").unwrap().variables().len(), 2);
        let err = Condition::parse("a > 1 &&\n  max(a + 1, '5m') > 2").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3), "{err:?}");
    }

    #[test]
    fn window_aggregates_are_bound_as_variables() {
        let c = Condition::parse("avg(pressure_mpa, '5m') > 1.2 && rate(pressure_mpa, '1m') < 0.0").unwrap();
        let names: Vec<String> = c.aggregates().iter().map(|a| a.variable()).collect();
        assert_eq!(names, ["@avg(pressure_mpa,300000)", "@rate(pressure_mpa,60000)"]);
        assert!(c.variables().is_empty(), "{:?}", c.variables());
        let r = reading();
        let aggregates = [(names[0].as_str(), 1.25), (names[1].as_str(), -0.01)];
        assert_eq!(Evaluator::new().eval(&c, &Bindings::new(&r, None, false, &aggregates)), Ok(true));
    }
}
