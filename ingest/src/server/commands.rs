//! The console's commands, served by the writer between batches: reads of the engine's state,
//! lifecycle changes (acknowledge, silence) and inspection records. A change is answered only
//! once its transitions are written, published and saved with the engine's state.

use std::sync::Arc;

use tokio::sync::watch;

use super::writer::{Batch, Writer};
use crate::console::api::ApiError;
use crate::console::{Command, Event, InspectionRecord, WriterSide};
use crate::pipeline::Pipeline;

/// The next command, or never when the console is off.
pub(super) async fn next_command(side: &mut Option<WriterSide>) -> Option<Command> {
    match side {
        Some(s) => s.commands.recv().await,
        None => std::future::pending().await,
    }
}

impl Writer {
    /// Serves the commands held back during a write, then those waiting.
    pub(super) async fn serve_waiting(
        &mut self,
        pipeline: &mut Pipeline,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        while let Some(cmd) = self.held.pop_front() {
            self.serve(pipeline, cmd, shutdown).await;
        }
        while let Some(cmd) = self.console.as_mut().and_then(|s| s.commands.try_recv().ok()) {
            self.serve(pipeline, cmd, shutdown).await;
        }
    }

    /// While a write waits for the TSDB: reads are answered at once; changes wait for the write
    /// to finish (and are dropped if their caller stopped waiting, so a change the API
    /// reported as failed is never made later).
    pub(super) fn serve_during_write(&mut self, pipeline: &Pipeline, cmd: Command) {
        match cmd {
            Command::Read(read) => read(pipeline),
            other => self.held.push_back(other),
        }
    }

    pub(super) async fn serve(
        &mut self,
        pipeline: &mut Pipeline,
        cmd: Command,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        match cmd {
            Command::Read(read) => read(pipeline),
            Command::Change(_, reply) if reply.is_closed() => {}
            Command::RecordInspection(_, reply) if reply.is_closed() => {}
            Command::Change(change, reply) => {
                let result = change(pipeline, telemetry::now_ms());
                if let Ok(alerts) = &result {
                    self.send_out(pipeline, alerts.clone(), shutdown).await;
                    self.save_state(pipeline);
                }
                let _ = reply.send(result);
            }
            Command::RecordInspection(record, reply) => {
                let result = self.record_inspection(pipeline, record, shutdown).await;
                let _ = reply.send(result);
            }
        }
    }

    /// Writes and publishes transitions made outside a batch of readings.
    pub(super) async fn send_out(
        &mut self,
        pipeline: &Pipeline,
        alerts: Vec<telemetry::AlertMessage>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        if alerts.is_empty() {
            return;
        }
        let mut lines = String::new();
        for a in &alerts {
            crate::line_protocol::push_alert(&mut lines, a);
        }
        let mut batch = Batch { chunks: vec![(String::new(), lines)], alerts, ..Batch::default() };
        if self.write(pipeline, &mut batch, shutdown).await {
            self.publish(pipeline, &mut batch).await;
        }
        self.update_metrics(pipeline, 0);
    }

    /// Keeps the record, applies it to the registry in force, and lets the inspection rules
    /// and the overdue rate see it at once.
    async fn record_inspection(
        &mut self,
        pipeline: &mut Pipeline,
        record: InspectionRecord,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ApiError> {
        let registry = pipeline
            .registry()
            .cloned()
            .ok_or_else(|| ApiError::new(axum::http::StatusCode::CONFLICT, "no registry is configured"))?;
        if registry.get(&record.device).is_none() {
            return Err(ApiError::not_found(format!("device `{}` is not in the registry", record.device)));
        }
        let state = self.state.as_mut().ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::CONFLICT, "alert state is off ([state] enabled = false)")
        })?;
        state
            .record_inspection(&record)
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let updated = crate::registry::with_records(&registry, std::slice::from_ref(&record));
        self.records.push(record);
        pipeline.set_registry(Arc::new(updated), self.cfg.registry.reject_unknown_devices);
        let (alerts, _) = pipeline.tick(telemetry::now_ms());
        self.send_out(pipeline, alerts, shutdown).await;
        self.write_overdue_rate(pipeline, shutdown).await;
        self.save_state(pipeline);
        Ok(())
    }

    /// Pushes an alert transition to the console's live view.
    pub(super) fn push_event(&self, alert: &telemetry::AlertMessage, town: &str) {
        let Some(side) = &self.console else { return };
        let mut json = serde_json::to_value(alert).unwrap_or_default();
        if let Some(o) = json.as_object_mut() {
            o.insert("town".into(), town.into());
        }
        let _ = side.events.send(Event::Alert(json.to_string()));
    }

    /// Pushes the rules' status to the console after a reload.
    pub(super) fn push_rules_status(&self) {
        let Some(side) = &self.console else { return };
        let status = crate::console::views::rules_status(&self.hooks.metrics);
        let _ = side.events.send(Event::Rules(serde_json::to_string(&status).unwrap_or_default()));
    }
}
