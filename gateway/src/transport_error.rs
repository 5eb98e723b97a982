//! Why a line could not be talked on, whichever way it is opened ([`crate::transport`] through
//! tokio-modbus, or [`crate::pipelined`]).

use std::time::Duration;

use crate::mbap::FrameError;

/// Why we could not talk on a line: reconnect (the device did not say no, see
/// [`crate::bus::poll_device`] for Modbus exceptions).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    #[error("resolve {address}: {why}")]
    Resolve { address: String, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("serial port: {0}")]
    Serial(#[from] tokio_serial::Error),
    #[error("{0}")]
    Modbus(#[from] tokio_modbus::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
}
