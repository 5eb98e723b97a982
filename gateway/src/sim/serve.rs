//! The simulator's shells: the same [`Simulator`] served as Modbus TCP ([`serve`]), as RTU
//! frames over TCP the way a DTU passes them through ([`serve_rtu_over_tcp`]), and as Modbus
//! RTU on a serial device ([`serve_serial`]; in tests one end of a socat pty pair). Framing,
//! CRC-16/MODBUS and request parsing are tokio-modbus's server codecs (features `tcp-server`,
//! `rtu-over-tcp-server`, `rtu-server`); the answers are [`Simulator::answer`]'s.
//!
//! On RTU a request for a unit no simulated device has gets no answer at all, as on a real
//! bus; Modbus TCP answers it with exception 11 (gateway target device failed to respond).
//! A dead unit ([`super::LineFaults`]) gets no answer on either; a slow one is answered after
//! its delay (here, so [`Simulator::answer`] stays pure). Every request is counted in
//! [`Simulator::counters`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_modbus::server::{rtu, rtu_over_tcp, tcp};
use tokio_modbus::{ExceptionCode, Response, SlaveRequest};
use tokio_serial::SerialStream;

use super::Simulator;
use crate::line::SerialFrame;

/// How the served line frames requests, which decides what an unknown unit gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Modbus TCP: the listener plays a TCP gateway in front of the devices.
    Mbap,
    /// RTU, serial or over TCP: a bus where only an addressed device talks.
    Rtu,
}

#[derive(Clone)]
struct Service {
    sim: Arc<Simulator>,
    framing: Framing,
}

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    /// `None`: send nothing.
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let now = self.sim.now_ms();
        let answer = match self.framing {
            Framing::Mbap => self.sim.answer_on_tcp(req.slave, &req.request, now),
            Framing::Rtu => self.sim.answer_on_bus(req.slave, &req.request, now),
        };
        let counters = self.sim.counters();
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match answer {
            Some(Ok(response)) => Ok(Some(response)),
            Some(Err(code)) => {
                counters.exceptions.fetch_add(1, Ordering::Relaxed);
                Err(code)
            }
            None => {
                tracing::debug!("unit {} does not answer: staying silent", req.slave);
                counters.unanswered.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        };
        let delay = self.sim.delay_for(req.slave);
        if delay.is_zero() {
            return Box::pin(std::future::ready(result));
        }
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            result
        })
    }
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves the simulator as Modbus TCP on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    sim: Arc<Simulator>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let server = tcp::Server::new(listener);
    let new_service = move |_peer: SocketAddr| Ok(Some(Service { sim: sim.clone(), framing: Framing::Mbap }));
    let on_connected = |stream: tokio::net::TcpStream, peer| {
        let new_service = new_service.clone();
        // Each answer goes out at once, also when several requests came together.
        let _ = stream.set_nodelay(true);
        async move { tcp::accept_tcp_connection(stream, peer, new_service) }
    };
    let on_error = |err| tracing::warn!("simulator connection: {err}");
    server.serve_until(&on_connected, on_error, stopped(shutdown)).await.map(|_| ())
}

/// Serves the simulator as RTU frames (unit, PDU, CRC; no MBAP header) on every TCP
/// connection to `listener`, as a device behind a transparent serial-to-TCP converter
/// would answer, until `shutdown` turns true.
pub async fn serve_rtu_over_tcp(
    listener: TcpListener,
    sim: Arc<Simulator>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let server = rtu_over_tcp::Server::new(listener);
    let new_service = move |_peer: SocketAddr| Ok(Some(Service { sim: sim.clone(), framing: Framing::Rtu }));
    let on_connected = |stream, peer| {
        let new_service = new_service.clone();
        async move { rtu_over_tcp::accept_tcp_connection(stream, peer, new_service) }
    };
    let on_error = |err| tracing::warn!("simulator connection (rtu over tcp): {err}");
    server.serve_until(&on_connected, on_error, stopped(shutdown)).await.map(|_| ())
}

/// A serial device opened for the simulator.
#[derive(Debug)]
pub struct SerialDevice {
    path: String,
    baud: u32,
    stream: SerialStream,
}

impl SerialDevice {
    /// Opens `path` at `baud`, 8N1 (pty pairs ignore the speed; real adapters honour it).
    pub fn open(path: &str, baud: u32) -> io::Result<SerialDevice> {
        let stream = open(path, baud)?;
        Ok(SerialDevice { path: path.to_string(), baud, stream })
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

fn open(path: &str, baud: u32) -> io::Result<SerialStream> {
    let frame = SerialFrame { baud, ..SerialFrame::default() };
    crate::transport::open_serial(path, &frame)
        .map_err(|e| io::Error::other(format!("open serial device {path}: {e}")))
}

/// How long to wait before opening the serial device again after it failed.
const REOPEN_AFTER: Duration = Duration::from_millis(200);

/// Serves the simulator as Modbus RTU on `port` until `shutdown` turns true. Requests are
/// answered one at a time, in order, as a bus of devices would. After an error on the device
/// (noise it could not resynchronise on, a hang-up) it is opened again; if that fails, the
/// error is returned.
pub async fn serve_serial(
    port: SerialDevice,
    sim: Arc<Simulator>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let service = Service { sim, framing: Framing::Rtu };
    let SerialDevice { path, baud, stream } = port;
    let mut stream = Some(stream);
    loop {
        let serial = match stream.take() {
            Some(s) => s,
            None => open(&path, baud)?,
        };
        let server = rtu::Server::new(serial);
        tokio::select! {
            result = server.serve_forever(service.clone()) => match result {
                Ok(()) => tracing::warn!("simulator on {path}: end of input; opening it again"),
                Err(e) => tracing::warn!("simulator on {path}: {e}; opening it again"),
            },
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
        tokio::select! {
            _ = tokio::time::sleep(REOPEN_AFTER) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}
