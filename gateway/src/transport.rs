//! Opens a line as a [`Connection`]: a tokio-modbus client [`Context`], whatever its transport
//! (Modbus TCP, RTU on a serial port (tokio-serial), or RTU frames over a TCP connection to a
//! DTU), or, on a Modbus TCP line with `max_transactions` above 1, a [`PipelinedTcp`].
//! [`crate::poll`] reads through either.
//!
//! tokio-modbus has no timeouts (slowtec/tokio-modbus#113): every call is wrapped in one by
//! the caller, and after a timeout or a transport error the context is dropped, never reused,
//! because a late answer would be read as the next request's (#324).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_modbus::client::{rtu, tcp, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

use crate::line::{LineConfig, Link, Parity, SerialFrame};
use crate::pipelined::PipelinedTcp;
pub use crate::transport_error::TransportError;

/// An open line.
pub enum Connection {
    /// One request at a time, through tokio-modbus.
    Modbus(Context),
    /// Modbus TCP with several reads in flight.
    Pipelined(PipelinedTcp),
}

impl Connection {
    pub fn set_unit(&mut self, unit: u8) {
        match self {
            Connection::Modbus(ctx) => ctx.set_slave(Slave(unit)),
            Connection::Pipelined(p) => p.set_unit(unit),
        }
    }
}

/// Opens the line `link` of `line`: pipelined when it is Modbus TCP with `max_transactions`
/// above 1, through tokio-modbus otherwise.
pub async fn open(link: &Link, line: &LineConfig) -> Result<Connection, ConnectError> {
    match link {
        Link::Tcp { address } if line.max_transactions > 1 => {
            let fail = |cause| ConnectError { link: link.to_string(), cause };
            let stream = tcp_stream(address, line.timeout).await.map_err(fail)?;
            Ok(Connection::Pipelined(PipelinedTcp::new(stream, line.max_transactions as usize)))
        }
        _ => connect(link, line.timeout).await,
    }
}

/// A line that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("connect {link}: {cause}")]
pub struct ConnectError {
    /// The link as `tcp 127.0.0.1:502` or `rtu /dev/ttyUSB0 9600 8N1`.
    pub link: String,
    pub cause: TransportError,
}

/// Opens `link` through tokio-modbus within `limit` (TCP: name lookup and connect; a serial
/// port opens at once or fails). The context starts on unit 1; the poller sets each device's
/// unit.
pub async fn connect(link: &Link, limit: Duration) -> Result<Connection, ConnectError> {
    let fail = |cause| ConnectError { link: link.to_string(), cause };
    let ctx = match link {
        Link::Tcp { address } => tcp::attach_slave(tcp_stream(address, limit).await.map_err(fail)?, Slave(1)),
        Link::RtuOverTcp { address } => {
            rtu::attach_slave(tcp_stream(address, limit).await.map_err(fail)?, Slave(1))
        }
        Link::Rtu { port, frame } => {
            let stream = open_serial(port, frame).map_err(|e| fail(e.into()))?;
            rtu::attach_slave(stream, Slave(1))
        }
    };
    Ok(Connection::Modbus(ctx))
}

/// Resolves and connects `address` within `limit`, with Nagle off: requests are a few bytes
/// each and go out at once.
async fn tcp_stream(address: &str, limit: Duration) -> Result<TcpStream, TransportError> {
    let connect = async {
        let stream = TcpStream::connect(resolve(address).await?).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    };
    timeout(limit, connect).await.unwrap_or(Err(TransportError::Timeout(limit)))
}

/// Opens a serial port (exclusively) with `frame`'s settings and no flow control (RS-485 has
/// none), and discards whatever it had received before: noise while the settings changed, or
/// a late answer to a request that timed out on the connection before.
pub fn open_serial(port: &str, frame: &SerialFrame) -> Result<SerialStream, tokio_serial::Error> {
    let stream = serial_builder(port, frame).open_native_async()?;
    stream.clear(tokio_serial::ClearBuffer::Input)?;
    Ok(stream)
}

fn serial_builder(port: &str, frame: &SerialFrame) -> tokio_serial::SerialPortBuilder {
    let data_bits = match frame.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match frame.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match frame.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    tokio_serial::new(port, frame.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
}

async fn resolve(address: &str) -> Result<SocketAddr, TransportError> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    let resolve_error = |why: String| TransportError::Resolve { address: address.to_string(), why };
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| resolve_error(e.to_string()))?
        .next()
        .ok_or_else(|| resolve_error("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_name_the_link() {
        let link = Link::Rtu { port: "/nonexistent/tty-gw".into(), frame: SerialFrame::default() };
        let err = connect(&link, Duration::from_millis(100)).await.err().unwrap().to_string();
        assert!(err.starts_with("connect rtu /nonexistent/tty-gw 9600 8N1: serial port: "), "{err}");
        // A port nobody listens on: bind one, note it, close it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let link = Link::RtuOverTcp { address: addr.to_string() };
        let err = connect(&link, Duration::from_secs(1)).await.err().unwrap().to_string();
        assert!(err.starts_with(&format!("connect rtu-over-tcp {addr}: ")), "{err}");
    }
}
