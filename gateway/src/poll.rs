//! One poll of one device: every request of its plan, one at a time after the line's silent
//! interval and the model's `pause_between_requests`, each waiting at most the line's timeout
//! (on a pipelined line with no pause to keep, the plan's requests go out together and their
//! answers are then taken in the same order). Values are decoded into the reading;
//! a Modbus exception marks that request's points in the reading's `errors`, and an illegal
//! address in a request of several points is narrowed down on the spot ([`crate::narrow`]) so
//! the other points still arrive. A timeout or transport error ends the poll: the caller must
//! drop the connection (a late answer would be taken for the next request's).

use std::collections::VecDeque;
use std::time::Duration;

use telemetry::Reading;
use tokio::time::{timeout, Instant};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::Reader;
use tokio_modbus::ExceptionCode;

use crate::config::{Device, LineConfig};
use crate::mbap::Reply;
use crate::narrow::{is_narrowable, Bisection, DevicePlan, Outcome};
use crate::pipelined::PipelinedTcp;
use crate::planner::ReadRequest;
use crate::profile::Table;
use crate::register::{decode_into, Sink};
use crate::transport::{Connection, TransportError};

/// What one request came back with.
enum Answer {
    Data(Vec<u16>),
    /// The device answered with a Modbus exception: the link is fine, the points are not.
    Exception {
        code: u8,
        why: String,
    },
    /// We could not talk: timeout or transport error. The connection must be dropped.
    Transport(TransportError),
}

/// A poll that stopped because we could not talk to the device; the connection must be
/// dropped. (A Modbus exception is not one: it goes into the reading's `errors`.)
#[derive(Debug, thiserror::Error)]
#[error("device {device} (unit {unit}) on line {line}: {table} {start}..{end}: {cause}")]
pub struct PollError {
    pub device: String,
    pub unit: u8,
    pub line: String,
    pub table: &'static str,
    pub start: u16,
    pub end: u32,
    pub cause: TransportError,
}

/// What went wrong during one poll, for the device's health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollTally {
    pub exceptions: u64,
    /// The last exception, with the device and the request it answered
    /// (`device boiler-1 (unit 3) on line l: holding 100..120: exception 2: …`).
    pub last_exception: Option<String>,
}

impl Answer {
    /// `exception 2: illegal data address`, as the wire contract spells it.
    fn exception(code: ExceptionCode) -> Answer {
        let code_number = u8::from(code);
        let name = code.to_string().to_lowercase();
        Answer::Exception { code: code_number, why: format!("exception {code_number}: {name}") }
    }

    fn from_reply(reply: Reply) -> Answer {
        match reply {
            Reply::Words(words) => Answer::Data(words),
            Reply::Exception(code) => Answer::exception(ExceptionCode::new(code)),
        }
    }
}

/// The answers to `reqs`, in order: one batch of up to the connection's window at a time,
/// up to and including the first that did not come.
async fn read_pipelined(p: &mut PipelinedTcp, reqs: &[ReadRequest], limit: Duration) -> VecDeque<Answer> {
    let mut answers = VecDeque::with_capacity(reqs.len());
    for batch in reqs.chunks(p.window()) {
        let (replies, failure) = p.read_all(batch, limit).await;
        answers.extend(replies.into_iter().map(Answer::from_reply));
        if let Some(cause) = failure {
            answers.push_back(Answer::Transport(cause));
            break;
        }
    }
    answers
}

async fn read(conn: &mut Connection, req: &ReadRequest, limit: Duration) -> Answer {
    match conn {
        Connection::Modbus(ctx) => read_one(ctx, req, limit).await,
        Connection::Pipelined(p) => read_pipelined(p, std::slice::from_ref(req), limit)
            .await
            .pop_front()
            .unwrap_or_else(|| Answer::Transport(TransportError::Timeout(limit))),
    }
}

async fn read_one(ctx: &mut Context, req: &ReadRequest, limit: Duration) -> Answer {
    let bits = |v: Vec<bool>| v.into_iter().map(u16::from).collect::<Vec<_>>();
    let result = match req.table {
        Table::Coil => {
            timeout(limit, ctx.read_coils(req.start, req.count)).await.map(|r| r.map(|r| r.map(bits)))
        }
        Table::Discrete => timeout(limit, ctx.read_discrete_inputs(req.start, req.count))
            .await
            .map(|r| r.map(|r| r.map(bits))),
        Table::Input => timeout(limit, ctx.read_input_registers(req.start, req.count)).await,
        Table::Holding => timeout(limit, ctx.read_holding_registers(req.start, req.count)).await,
    };
    match result {
        Ok(Ok(Ok(words))) => Answer::Data(words),
        Ok(Ok(Err(code))) => Answer::exception(code),
        Ok(Err(e)) => Answer::Transport(e.into()),
        Err(_) => Answer::Transport(TransportError::Timeout(limit)),
    }
}

/// Reads every planned request of `device` into `reading`: values decoded, Modbus exceptions
/// as point errors. A transport error or timeout stops the poll and is returned: the caller
/// must drop the connection. What narrowing learns here is forgotten after the poll; the bus
/// keeps it per device ([`poll_planned`]).
pub async fn poll_device(
    conn: &mut Connection,
    line: &LineConfig,
    device: &Device,
    reading: &mut Reading,
) -> Result<(), PollError> {
    let mut plan = DevicePlan::from_requests(device.plan.clone());
    poll_planned(conn, line, device, &mut plan, reading, &mut PollTally::default()).await
}

/// A poll's view of the line and the device, for messages and requests.
struct Poller<'a> {
    conn: &'a mut Connection,
    line: &'a LineConfig,
    device: &'a Device,
    silent: Duration,
}

impl Poller<'_> {
    async fn read(&mut self, req: &ReadRequest) -> Answer {
        if !self.silent.is_zero() {
            tokio::time::sleep(self.silent).await;
        }
        read(self.conn, req, self.line.timeout).await
    }

    fn failure(&self, req: &ReadRequest, cause: TransportError) -> PollError {
        let d = &self.device.config;
        PollError {
            device: d.id.clone(),
            unit: d.unit,
            line: self.line.name.clone(),
            table: req.table.name(),
            start: req.start,
            end: req.end(),
            cause,
        }
    }

    /// `device elev-1 (unit 3) on line tcp-1: holding 100..120`
    fn context(&self, req: &ReadRequest) -> String {
        let d = &self.device.config;
        format!(
            "device {} (unit {}) on line {}: {} {}..{}",
            d.id,
            d.unit,
            self.line.name,
            req.table.name(),
            req.start,
            req.end()
        )
    }

    fn exception(&self, tally: &mut PollTally, req: &ReadRequest, why: &str) {
        tally.exceptions += 1;
        tally.last_exception = Some(format!("{}: {why}", self.context(req)));
        tracing::warn!("{} ({}): {why}", self.context(req), self.names(req));
    }

    fn names(&self, req: &ReadRequest) -> String {
        req.points.iter().map(|&i| self.device.profile.points[i].name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// [`poll_device`] with the device's [`DevicePlan`]: narrowing's findings are kept in it, bad
/// points are probed when due and reported in `errors` on every poll, and `tally` counts the
/// exceptions. Values go to `reading`: a [`Reading`] or the bus's [`crate::values::Values`].
pub async fn poll_planned(
    conn: &mut Connection,
    line: &LineConfig,
    device: &Device,
    plan: &mut DevicePlan,
    reading: &mut impl Sink,
    tally: &mut PollTally,
) -> Result<(), PollError> {
    conn.set_unit(device.config.unit);
    let profile = &device.profile;
    let silent = line.effective_silent_interval() + device.profile.pause_between_requests;
    // A pause to keep between requests rules out sending them together.
    let mut sent_together = match conn {
        Connection::Pipelined(p) if silent.is_zero() && p.window() > 1 => {
            read_pipelined(p, &plan.requests, line.timeout).await
        }
        _ => VecDeque::new(),
    };
    let mut p = Poller { conn, line, device, silent };
    for req in plan.requests.clone() {
        let answer = match sent_together.pop_front() {
            Some(answer) => answer,
            None => p.read(&req).await,
        };
        match answer {
            Answer::Data(words) => decode_into(profile, &req, &words, reading),
            Answer::Transport(cause) => return Err(p.failure(&req, cause)),
            Answer::Exception { code, why } => {
                p.exception(tally, &req, &why);
                if !is_narrowable(code) {
                    for &i in &req.points {
                        reading.error(&profile.points[i].name, why.clone());
                    }
                    continue;
                }
                let mut bisection = Bisection::new(profile, &req, &why);
                while let Some(sub) = bisection.next().cloned() {
                    let outcome = match p.read(&sub).await {
                        Answer::Data(words) => {
                            decode_into(profile, &sub, &words, reading);
                            Outcome::Read
                        }
                        Answer::Transport(cause) => return Err(p.failure(&sub, cause)),
                        Answer::Exception { code, why } => {
                            p.exception(tally, &sub, &why);
                            if is_narrowable(code) {
                                Outcome::Refused(why)
                            } else {
                                for &i in &sub.points {
                                    reading.error(&profile.points[i].name, why.clone());
                                }
                                Outcome::Failed(why)
                            }
                        }
                    };
                    bisection.answer(profile, &outcome);
                }
                let found = bisection.finish();
                for (&i, why) in &found.bad {
                    let single = DevicePlan::probe_request(profile, i);
                    tracing::warn!(
                        "{} ({}): {why}; not read any more (probed again every {:?})",
                        p.context(&single),
                        profile.points[i].name,
                        crate::narrow::REPROBE_BAD_POINTS
                    );
                }
                for (table, address) in &found.cuts {
                    tracing::warn!(
                        "{}: refused across address {address} of {}; requests no longer read across it",
                        p.context(&req),
                        table.name()
                    );
                }
                if plan.learn(profile, found, Instant::now()) {
                    tracing::info!("device {}: requests now {}", device.config.id, describe(&plan.requests));
                }
            }
        }
    }
    for i in plan.probes_due(Instant::now()) {
        let single = DevicePlan::probe_request(profile, i);
        match p.read(&single).await {
            Answer::Data(words) => {
                decode_into(profile, &single, &words, reading);
                plan.probed(profile, i, None, Instant::now());
                tracing::info!(
                    "{} ({}): answered again; back in the plan: {}",
                    p.context(&single),
                    profile.points[i].name,
                    describe(&plan.requests)
                );
            }
            Answer::Exception { why, .. } => {
                tracing::debug!("{} ({}): still refused: {why}", p.context(&single), profile.points[i].name);
                plan.probed(profile, i, Some(why), Instant::now());
            }
            Answer::Transport(cause) => return Err(p.failure(&single, cause)),
        }
    }
    for (&i, bad) in &plan.bad {
        reading.error_unless_known(&profile.points[i].name, || bad.why.clone());
    }
    Ok(())
}

/// `holding 100+4, holding 110+11`
pub fn describe(requests: &[ReadRequest]) -> String {
    let parts: Vec<String> =
        requests.iter().map(|r| format!("{} {}+{}", r.table.name(), r.start, r.count)).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}
