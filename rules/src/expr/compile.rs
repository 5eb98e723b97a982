//! Conditions compiled to a small tree evaluated directly on the reading's values, the device
//! attributes and the window aggregates, without a `cel::Context` per evaluation.
//!
//! It covers what rule files use: literals, points, `device.x`, `has(device.x)`, aggregates,
//! `! - && || ?:`, comparisons, arithmetic, `in` over list literals and `bit(x, n)`. A condition
//! with anything else is not compiled and the interpreter evaluates it. At run time, whatever the
//! tree does not model exactly (uint or string arithmetic, overflow, type mismatches) gives
//! [`Fail::Other`], and the interpreter then answers for that evaluation, so results and errors
//! are the interpreter's.

use std::cmp::Ordering;
use std::sync::Arc;

use cel::common::ast::{operators, CallExpr, Expr, LiteralValue, SelectExpr};
use cel::{ExecutionError, IdedExpr};
use telemetry::Value;

use super::{Bindings, EvalError};

/// Names the interpreter resolves to types when no variable has them.
const TYPE_NAMES: [&str; 11] =
    ["bool", "bytes", "double", "int", "list", "map", "null_type", "optional_type", "string", "type", "uint"];

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    Lit(Lit),
    /// A reading value.
    Point(String),
    /// A pre-bound window aggregate (`@avg(p,300000)`).
    Aggregate(String),
    /// `device.field`; `qualified` is `device.field`, which a reading value of that name shadows.
    DeviceField {
        qualified: String,
        field: String,
    },
    /// `has(device.field)`.
    HasDeviceField(String),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<(Node, Node)>),
    Or(Box<(Node, Node)>),
    Cond(Box<(Node, Node, Node)>),
    Cmp(Cmp, Box<(Node, Node)>),
    Arith(Arith, Box<(Node, Node)>),
    In(Box<Node>, Vec<Node>),
    Bit(Box<(Node, Node)>),
}

/// Compiles `expr`, or `None` when it uses anything outside the subset.
pub(super) fn compile(expr: &IdedExpr) -> Option<Node> {
    Some(match &expr.expr {
        Expr::Literal(l) => Node::Lit(match l {
            LiteralValue::Null => Lit::Null,
            LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
            LiteralValue::Int(i) => Lit::Int(*i.inner()),
            LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
            LiteralValue::Double(d) => Lit::Double(*d.inner()),
            LiteralValue::String(s) => Lit::Str(s.inner().to_string()),
            LiteralValue::Bytes(_) => return None,
        }),
        Expr::Ident(name) if name.starts_with('@') => Node::Aggregate(name.clone()),
        Expr::Ident(name) if name == "device" || TYPE_NAMES.contains(&name.as_str()) => return None,
        Expr::Ident(name) => Node::Point(name.clone()),
        Expr::Select(select) => return compile_select(select),
        Expr::Call(call) if call.target.is_none() => return compile_call(call),
        _ => return None,
    })
}

fn compile_select(select: &SelectExpr) -> Option<Node> {
    if !matches!(&select.operand.expr, Expr::Ident(name) if name == "device") {
        return None;
    }
    let field = select.field.clone();
    Some(if select.test {
        Node::HasDeviceField(field)
    } else {
        Node::DeviceField { qualified: format!("device.{field}"), field }
    })
}

fn compile_call(call: &CallExpr) -> Option<Node> {
    let pair = |args: &[IdedExpr]| Some(Box::new((compile(&args[0])?, compile(&args[1])?)));
    let name = call.func_name.as_str();
    Some(match call.args.as_slice() {
        [c, t, f] if name == operators::CONDITIONAL => {
            Node::Cond(Box::new((compile(c)?, compile(t)?, compile(f)?)))
        }
        [x] if name == operators::LOGICAL_NOT => Node::Not(Box::new(compile(x)?)),
        [x] if name == operators::NEGATE => Node::Neg(Box::new(compile(x)?)),
        [x, list] if name == operators::IN => {
            let Expr::List(list) = &list.expr else { return None };
            if !list.optional_indices.is_empty() {
                return None;
            }
            let elements = list.elements.iter().map(compile).collect::<Option<_>>()?;
            Node::In(Box::new(compile(x)?), elements)
        }
        args @ [_, _] => match name {
            operators::LOGICAL_AND => Node::And(pair(args)?),
            operators::LOGICAL_OR => Node::Or(pair(args)?),
            operators::EQUALS => Node::Cmp(Cmp::Eq, pair(args)?),
            operators::NOT_EQUALS => Node::Cmp(Cmp::Ne, pair(args)?),
            operators::LESS => Node::Cmp(Cmp::Lt, pair(args)?),
            operators::LESS_EQUALS => Node::Cmp(Cmp::Le, pair(args)?),
            operators::GREATER => Node::Cmp(Cmp::Gt, pair(args)?),
            operators::GREATER_EQUALS => Node::Cmp(Cmp::Ge, pair(args)?),
            operators::ADD => Node::Arith(Arith::Add, pair(args)?),
            operators::SUBSTRACT => Node::Arith(Arith::Sub, pair(args)?),
            operators::MULTIPLY => Node::Arith(Arith::Mul, pair(args)?),
            operators::DIVIDE => Node::Arith(Arith::Div, pair(args)?),
            operators::MODULO => Node::Arith(Arith::Rem, pair(args)?),
            "bit" => Node::Bit(pair(args)?),
            _ => return None,
        },
        _ => return None,
    })
}

/// A value during evaluation; strings borrow the condition or the bindings.
#[derive(Debug, Clone, Copy, PartialEq)]
enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
}

/// Why the tree gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail<'a> {
    /// A name nothing binds: a point missing from the reading, an aggregate without a value.
    Undeclared(&'a str),
    /// `device.x` on a device without `x`.
    NoKey(&'a str),
    /// Anything else: the interpreter answers.
    Other,
}

type R<'a> = Result<V<'a>, Fail<'a>>;

fn value(v: &Value) -> V<'_> {
    match v {
        Value::Bool(b) => V::Bool(*b),
        Value::Int(i) => V::Int(*i),
        Value::Float(x) => V::Double(*x),
        Value::Text(s) => V::Str(s),
    }
}

/// The `device` map's entry `field`: registry attributes win over `id`, `kind` and `gateway`.
fn device_field<'a>(b: &'a Bindings<'_>, field: &str) -> Option<V<'a>> {
    if let Some(v) = b.attributes.and_then(|a| a.get(field)) {
        return Some(value(v));
    }
    Some(V::Str(match field {
        "id" => &b.reading.device,
        "kind" => &b.reading.kind,
        "gateway" => &b.reading.gateway,
        _ => return None,
    }))
}

fn to_bool<'a>(r: R<'a>) -> Result<bool, Fail<'a>> {
    match r? {
        V::Bool(b) => Ok(b),
        _ => Err(Fail::Other),
    }
}

/// The right side of `&&` / `||`. Its error is the answer, unless the left side gave
/// [`Fail::Other`]: that may be a value which decides without the right side.
fn right<'a>(left: Result<bool, Fail<'a>>, right: R<'a>) -> R<'a> {
    match (left, right) {
        (Err(Fail::Other), Err(_)) => Err(Fail::Other),
        (_, right) => right,
    }
}

/// Numeric order across int, uint and double, as CEL has it; `None` for NaN or non-numbers.
fn compare_numbers(a: V, b: V) -> Option<Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(&y)),
        (V::UInt(x), V::UInt(y)) => Some(x.cmp(&y)),
        (V::Int(x), V::UInt(y)) => Some(u64::try_from(x).map_or(Ordering::Less, |x| x.cmp(&y))),
        (V::UInt(x), V::Int(y)) => Some(i64::try_from(x).map_or(Ordering::Greater, |x| x.cmp(&y))),
        (V::Int(x), V::Double(y)) => (x as f64).partial_cmp(&y),
        (V::UInt(x), V::Double(y)) => (x as f64).partial_cmp(&y),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(y as f64)),
        (V::Double(x), V::UInt(y)) => x.partial_cmp(&(y as f64)),
        (V::Double(x), V::Double(y)) => x.partial_cmp(&y),
        _ => None,
    }
}

fn equals(a: V, b: V) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        _ => compare_numbers(a, b) == Some(Ordering::Equal),
    }
}

fn compare<'a>(a: V, b: V) -> Result<Ordering, Fail<'a>> {
    match (a, b) {
        (V::Bool(x), V::Bool(y)) => Ok(x.cmp(&y)),
        (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
        _ => compare_numbers(a, b).ok_or(Fail::Other),
    }
}

fn arith<'a>(op: Arith, a: V<'a>, b: V<'a>) -> R<'a> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => match op {
            Arith::Add => x.checked_add(y),
            Arith::Sub => x.checked_sub(y),
            Arith::Mul => x.checked_mul(y),
            Arith::Div => x.checked_div(y),
            Arith::Rem => x.checked_rem(y),
        }
        .map(V::Int)
        .ok_or(Fail::Other),
        (V::Double(x), V::Double(y)) => match op {
            Arith::Add => Ok(V::Double(x + y)),
            Arith::Sub => Ok(V::Double(x - y)),
            Arith::Mul => Ok(V::Double(x * y)),
            Arith::Div => Ok(V::Double(x / y)),
            Arith::Rem => Err(Fail::Other),
        },
        _ => Err(Fail::Other),
    }
}

impl Node {
    fn eval<'a>(&'a self, b: &'a Bindings<'_>) -> R<'a> {
        match self {
            Node::Lit(l) => Ok(match l {
                Lit::Null => V::Null,
                Lit::Bool(x) => V::Bool(*x),
                Lit::Int(x) => V::Int(*x),
                Lit::UInt(x) => V::UInt(*x),
                Lit::Double(x) => V::Double(*x),
                Lit::Str(s) => V::Str(s),
            }),
            Node::Point(name) => b.reading.values.get(name).map(value).ok_or(Fail::Undeclared(name)),
            Node::Aggregate(name) => match b.aggregates.binary_search_by(|(n, _)| (*n).cmp(name)) {
                Ok(i) => Ok(V::Double(b.aggregates[i].1)),
                Err(_) => Err(Fail::Undeclared(name)),
            },
            Node::DeviceField { qualified, field } => {
                if let Some(v) = b.reading.values.get(qualified) {
                    return Ok(value(v));
                }
                if !b.with_device {
                    return Err(Fail::Other);
                }
                device_field(b, field).ok_or(Fail::NoKey(field))
            }
            Node::HasDeviceField(field) if b.with_device => Ok(V::Bool(device_field(b, field).is_some())),
            Node::HasDeviceField(_) => Err(Fail::Other),
            Node::Not(x) => match x.eval(b)? {
                V::Bool(x) => Ok(V::Bool(!x)),
                _ => Err(Fail::Other),
            },
            Node::Neg(x) => match x.eval(b)? {
                V::Int(x) => x.checked_neg().map(V::Int).ok_or(Fail::Other),
                V::Double(x) => Ok(V::Double(-x)),
                _ => Err(Fail::Other),
            },
            // As the interpreter: the right side's error wins; else an error on the left is
            // absorbed when the right side decides.
            Node::And(p) => {
                let left = to_bool(p.0.eval(b));
                if left == Ok(false) {
                    return Ok(V::Bool(false));
                }
                match (left, right(left, p.1.eval(b))?) {
                    (Ok(true), V::Bool(r)) => Ok(V::Bool(r)),
                    (Err(_), V::Bool(false)) => Ok(V::Bool(false)),
                    (Err(e), V::Bool(_)) => Err(e),
                    _ => Err(Fail::Other),
                }
            }
            Node::Or(p) => {
                let left = to_bool(p.0.eval(b));
                if left == Ok(true) {
                    return Ok(V::Bool(true));
                }
                match (left, right(left, p.1.eval(b))?) {
                    (Ok(false), V::Bool(r)) => Ok(V::Bool(r)),
                    (Err(_), V::Bool(true)) => Ok(V::Bool(true)),
                    (Err(e), V::Bool(_)) => Err(e),
                    _ => Err(Fail::Other),
                }
            }
            Node::Cond(t) => {
                if to_bool(t.0.eval(b))? {
                    t.1.eval(b)
                } else {
                    t.2.eval(b)
                }
            }
            Node::Cmp(op, p) => {
                let (x, y) = (p.0.eval(b)?, p.1.eval(b)?);
                Ok(V::Bool(match op {
                    Cmp::Eq => equals(x, y),
                    Cmp::Ne => !equals(x, y),
                    Cmp::Lt => compare(x, y)? == Ordering::Less,
                    Cmp::Le => compare(x, y)? != Ordering::Greater,
                    Cmp::Gt => compare(x, y)? == Ordering::Greater,
                    Cmp::Ge => compare(x, y)? != Ordering::Less,
                }))
            }
            Node::Arith(op, p) => {
                let (x, y) = (p.0.eval(b)?, p.1.eval(b)?);
                arith(*op, x, y)
            }
            Node::In(x, list) => {
                let x = x.eval(b)?;
                let mut found = false;
                for e in list {
                    found |= equals(x, e.eval(b)?);
                }
                Ok(V::Bool(found))
            }
            Node::Bit(p) => match (p.0.eval(b)?, p.1.eval(b)?) {
                (V::Int(x), V::Int(n)) => Ok(V::Bool((0..64).contains(&n) && (x >> n) & 1 == 1)),
                _ => Err(Fail::Other),
            },
        }
    }

    /// The condition's answer without the error's text: `Some(None)` for no answer, `None` when
    /// the interpreter has to give it.
    #[inline]
    pub(super) fn answer(&self, b: &Bindings<'_>) -> Option<Option<bool>> {
        match self.eval(b) {
            Ok(V::Bool(x)) => Some(Some(x)),
            Ok(_) | Err(Fail::Undeclared(_) | Fail::NoKey(_)) => Some(None),
            Err(Fail::Other) => None,
        }
    }

    /// The condition's answer, or `None` when the interpreter has to give it.
    pub(super) fn run(&self, b: &Bindings<'_>) -> Option<Result<bool, EvalError>> {
        let execution = |e: ExecutionError| Some(Err(EvalError::Execution(e.to_string())));
        match self.eval(b) {
            Ok(V::Bool(x)) => Some(Ok(x)),
            Ok(other) => {
                let other = match other {
                    V::Null => cel::Value::Null,
                    V::Int(x) => cel::Value::Int(x),
                    V::UInt(x) => cel::Value::UInt(x),
                    V::Double(x) => cel::Value::Float(x),
                    V::Str(s) => cel::Value::String(Arc::new(s.to_string())),
                    V::Bool(_) => unreachable!("answered above"),
                };
                Some(Err(EvalError::NotBoolean(format!("{other:?}"))))
            }
            Err(Fail::Undeclared(name)) => {
                execution(ExecutionError::UndeclaredReference(Arc::new(name.into())))
            }
            Err(Fail::NoKey(field)) => execution(ExecutionError::NoSuchKey(Arc::new(field.into()))),
            Err(Fail::Other) => None,
        }
    }
}
