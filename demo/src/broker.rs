//! The embedded MQTT broker (rumqttd) of the demo. It keeps everything in memory: fine
//! for a demo on one machine, not for production (use Mosquitto or EMQX there).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// `preferred` if nothing listens there, else a free port on the same address.
pub fn pick_port(preferred: SocketAddr) -> std::io::Result<SocketAddr> {
    match TcpListener::bind(preferred) {
        Ok(l) => l.local_addr(),
        Err(_) => TcpListener::bind(SocketAddr::new(preferred.ip(), 0))?.local_addr(),
    }
}

/// Starts rumqttd on `listen` in a thread of its own and waits until it accepts connections.
pub fn start(listen: SocketAddr) -> Result<(), String> {
    let server = ServerSettings {
        name: "demo".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    // RouterConfig::default() is all zeros, which drops every client: fill it in.
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker: {e}");
            }
        })
        .map_err(|e| e.to_string())?;
    // start() reports a failed bind only in its logs: probe the port ourselves.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the embedded broker did not start listening on {listen}"))
}
