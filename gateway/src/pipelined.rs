//! A Modbus TCP connection that has up to `max_transactions` reads in flight at once: a
//! device's requests go out in one write and the answers, in whatever order they come, are
//! matched by transaction id ([`crate::mbap`]). Fewer round trips per poll (one instead of one
//! per request, which matters on a cellular link) and fewer system calls and wake-ups. Only
//! for endpoints that take several requests at once, which the Modbus TCP implementation guide
//! allows (V1.0b, 4.2.1) but not every device does.
//!
//! A device whose TCP stack delays small segments (Nagle's algorithm) holds its second answer
//! until the first is acknowledged, and Linux delays that acknowledgement while it waits for
//! data to send with it (up to 40 ms). So when the rest of a batch has not come
//! [`HELD_BACK_AFTER`] after a part of it, the connection acknowledges at once
//! (`TCP_QUICKACK`) from then on whenever answers are missing; a peer that sends each answer
//! at once never costs that system call.
//!
//! As with tokio-modbus, after a timeout or a malformed answer the connection is dropped, never
//! reused: a late answer could otherwise be taken for a later request's.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::mbap::{self, FrameError, Reply};
use crate::planner::ReadRequest;
use crate::transport_error::TransportError;

/// How long after a part of a batch's answers the rest may take before the peer is taken to
/// be waiting for our acknowledgement.
pub const HELD_BACK_AFTER: Duration = Duration::from_millis(2);

pub struct PipelinedTcp {
    stream: TcpStream,
    /// The peer has been seen holding answers back until acknowledged.
    ack_at_once: bool,
    window: usize,
    unit: u8,
    next_tid: u16,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl PipelinedTcp {
    /// `window` (at least 1): the most reads in flight at once.
    pub fn new(stream: TcpStream, window: usize) -> PipelinedTcp {
        PipelinedTcp {
            stream,
            ack_at_once: false,
            window: window.max(1),
            unit: 1,
            next_tid: 0,
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn set_unit(&mut self, unit: u8) {
        self.unit = unit;
    }

    /// Sends `reqs` (at most [`PipelinedTcp::window`]) in one write and waits for their answers,
    /// each within `limit` of the one before (or of the write). Returns the answers in request
    /// order, up to the first that did not come, and then why it did not.
    pub async fn read_all(
        &mut self,
        reqs: &[ReadRequest],
        limit: Duration,
    ) -> (Vec<Reply>, Option<TransportError>) {
        debug_assert!(reqs.len() <= self.window);
        let first_tid = self.next_tid;
        self.next_tid = self.next_tid.wrapping_add(reqs.len() as u16);
        self.tx.clear();
        for (i, r) in reqs.iter().enumerate() {
            mbap::encode_read(
                &mut self.tx,
                first_tid.wrapping_add(i as u16),
                self.unit,
                r.table,
                r.start,
                r.count,
            );
        }
        let mut answers: Vec<Option<Reply>> = vec![None; reqs.len()];
        let failure = match timeout(limit, self.stream.write_all(&self.tx)).await {
            Err(_) => Some(TransportError::Timeout(limit)),
            Ok(Err(e)) => Some(e.into()),
            Ok(Ok(())) => self.collect(reqs, first_tid, &mut answers, limit).await.err(),
        };
        // Without a failure every request has its answer.
        (answers.into_iter().map_while(|a| a).collect(), failure)
    }

    /// Reads until every request of the batch starting at `first_tid` has its answer.
    async fn collect(
        &mut self,
        reqs: &[ReadRequest],
        first_tid: u16,
        answers: &mut [Option<Reply>],
        limit: Duration,
    ) -> Result<(), TransportError> {
        let mut missing = reqs.len();
        while missing > 0 {
            while let Some(frame) = mbap::take_frame(&mut self.rx)? {
                let i = frame.tid.wrapping_sub(first_tid) as usize;
                let Some(req) = reqs.get(i) else {
                    return Err(FrameError(format!(
                        "answer to transaction {}, which is not in flight",
                        frame.tid
                    ))
                    .into());
                };
                if frame.unit != self.unit {
                    return Err(FrameError(format!(
                        "unit {} answered transaction {} (asked of unit {})",
                        frame.unit, frame.tid, self.unit
                    ))
                    .into());
                }
                if answers[i].is_some() {
                    return Err(FrameError(format!("transaction {} answered twice", frame.tid)).into());
                }
                answers[i] = Some(mbap::decode_read(&frame.pdu, req.table, req.count)?);
                missing -= 1;
            }
            if missing == 0 {
                break;
            }
            let partly_answered = missing < reqs.len();
            if partly_answered && !self.ack_at_once {
                match timeout(HELD_BACK_AFTER, self.stream.read_buf(&mut self.rx)).await {
                    Ok(read) => {
                        received(read)?;
                        continue;
                    }
                    Err(_) => self.ack_at_once = true,
                }
            }
            if partly_answered && self.ack_at_once {
                quick_ack(&self.stream);
            }
            match timeout(limit, self.stream.read_buf(&mut self.rx)).await {
                Err(_) => return Err(TransportError::Timeout(limit)),
                Ok(read) => received(read)?,
            }
        }
        Ok(())
    }
}

fn received(read: std::io::Result<usize>) -> Result<(), TransportError> {
    match read {
        Err(e) => Err(e.into()),
        Ok(0) => {
            Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the device closed the connection")
                .into())
        }
        Ok(_) => Ok(()),
    }
}

/// Acknowledges what has arrived now rather than with our next request (best effort).
fn quick_ack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}
