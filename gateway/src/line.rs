//! A `[[line]]` of `gateway.toml`: one physical line and how to reach it. Modbus TCP to a
//! device or a TCP gateway, Modbus RTU on a serial port (RS-485), or RTU frames through a
//! transparent serial-to-TCP converter (a DTU). [`LineConfig::link`] checks the keys against
//! the transport and gives the runtime [`Link`]; [`rtu_silent_interval`] is the RTU default
//! pause between frames. Pure: no I/O.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Modbus TCP (MBAP framing) to a device or a Modbus TCP gateway.
    Tcp,
    /// Modbus RTU on a local serial port.
    Rtu,
    /// Modbus RTU frames over a TCP connection to a serial-to-Ethernet converter (DTU).
    RtuOverTcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Rtu => "rtu",
            Transport::RtuOverTcp => "rtu-over-tcp",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

impl Parity {
    pub fn name(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

pub const DEFAULT_BAUD: u32 = 9600;
pub const DEFAULT_DATA_BITS: u8 = 8;
pub const DEFAULT_STOP_BITS: u8 = 1;

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    pub name: String,
    pub transport: Transport,
    /// `host:port` of the TCP peer (`tcp`, `rtu-over-tcp`).
    #[serde(default)]
    pub address: Option<String>,
    /// Serial device, e.g. `/dev/ttyUSB0` (`rtu`).
    #[serde(default)]
    pub port: Option<String>,
    /// Serial speed (`rtu`; default 9600).
    #[serde(default)]
    pub baud: Option<u32>,
    /// `none`, `even` or `odd` (`rtu`; default none).
    #[serde(default)]
    pub parity: Option<Parity>,
    /// Data bits per character (`rtu`; default 8, which Modbus RTU uses).
    #[serde(default)]
    pub data_bits: Option<u8>,
    /// 1 or 2 (`rtu`; default 1).
    #[serde(default)]
    pub stop_bits: Option<u8>,
    /// Longest wait for one response.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Pause before each request on the line. Default: 3.5 character times on `rtu`, none
    /// otherwise (see [`LineConfig::effective_silent_interval`]).
    #[serde(default, with = "humantime_serde")]
    pub silent_interval: Option<Duration>,
    /// Reads in flight at once on a `tcp` line (Modbus TCP transaction ids); 1, the default,
    /// waits for each answer. Only for endpoints that take several requests at once.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: u16,
}

fn default_max_transactions() -> u16 {
    1
}

/// The most `max_transactions` may be.
pub const MAX_TRANSACTIONS: u16 = 16;

/// The character framing of a serial line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialFrame {
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

impl SerialFrame {
    /// Bits on the wire per character: start, data, parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        1 + self.data_bits as u32 + u32::from(self.parity != Parity::None) + self.stop_bits as u32
    }
}

impl Default for SerialFrame {
    fn default() -> Self {
        SerialFrame {
            baud: DEFAULT_BAUD,
            parity: Parity::None,
            data_bits: DEFAULT_DATA_BITS,
            stop_bits: DEFAULT_STOP_BITS,
        }
    }
}

impl fmt::Display for SerialFrame {
    /// `9600 8N1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        write!(f, "{} {}{p}{}", self.baud, self.data_bits, self.stop_bits)
    }
}

/// How a line is reached, once its keys are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Tcp { address: String },
    Rtu { port: String, frame: SerialFrame },
    RtuOverTcp { address: String },
}

impl Link {
    pub fn transport(&self) -> Transport {
        match self {
            Link::Tcp { .. } => Transport::Tcp,
            Link::Rtu { .. } => Transport::Rtu,
            Link::RtuOverTcp { .. } => Transport::RtuOverTcp,
        }
    }

    /// The `transport` key and the keys that go with it, as `gateway.toml` lines.
    pub fn toml_keys(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
        let transport = self.transport().name();
        match self {
            Link::Tcp { address } | Link::RtuOverTcp { address } => {
                format!("transport = \"{transport}\"\naddress = {}\n", quote(address))
            }
            Link::Rtu { port, frame } => format!(
                "transport = \"rtu\"\nport = {}\nbaud = {}\nparity = \"{}\"\ndata_bits = {}\nstop_bits = {}\n",
                quote(port),
                frame.baud,
                frame.parity.name(),
                frame.data_bits,
                frame.stop_bits
            ),
        }
    }
}

impl fmt::Display for Link {
    /// `tcp 127.0.0.1:502`, `rtu /dev/ttyUSB0 9600 8N1`, `rtu-over-tcp 10.0.0.9:4001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Tcp { address } | Link::RtuOverTcp { address } => {
                write!(f, "{} {address}", self.transport().name())
            }
            Link::Rtu { port, frame } => write!(f, "rtu {port} {frame}"),
        }
    }
}

/// The Modbus RTU inter-frame gap: 3.5 character times at the line's speed, or the fixed
/// 1.75 ms the Modbus serial line spec (V1.02, 2.5.1.1) sets above 19200 baud. Rounded up to
/// the microsecond.
pub fn rtu_silent_interval(frame: &SerialFrame) -> Duration {
    if frame.baud > 19_200 {
        return Duration::from_micros(1750);
    }
    let baud = frame.baud.max(1) as u64;
    let micros = (35 * frame.bits_per_char() as u64 * 1_000_000).div_ceil(10 * baud);
    Duration::from_micros(micros)
}

impl LineConfig {
    /// The serial framing, with defaults for keys not given.
    pub fn serial_frame(&self) -> SerialFrame {
        SerialFrame {
            baud: self.baud.unwrap_or(DEFAULT_BAUD),
            parity: self.parity.unwrap_or_default(),
            data_bits: self.data_bits.unwrap_or(DEFAULT_DATA_BITS),
            stop_bits: self.stop_bits.unwrap_or(DEFAULT_STOP_BITS),
        }
    }

    /// The pause before each request: `silent_interval` when given, else 3.5 character times
    /// on `rtu` and none on the TCP transports (a DTU keeps its own serial timing).
    pub fn effective_silent_interval(&self) -> Duration {
        match (self.silent_interval, self.transport) {
            (Some(d), _) => d,
            (None, Transport::Rtu) => rtu_silent_interval(&self.serial_frame()),
            (None, _) => Duration::ZERO,
        }
    }

    /// The runtime link, or every problem with the line's keys, each named by key
    /// (`port is required for transport rtu`); the caller prefixes the line's path.
    pub fn link(&self) -> Result<Link, Vec<String>> {
        let transport = self.transport.name();
        let mut problems = Vec::new();
        let serial_keys = [
            ("port", self.port.is_some()),
            ("baud", self.baud.is_some()),
            ("parity", self.parity.is_some()),
            ("data_bits", self.data_bits.is_some()),
            ("stop_bits", self.stop_bits.is_some()),
        ];
        if !(1..=MAX_TRANSACTIONS).contains(&self.max_transactions) {
            problems
                .push(format!("max_transactions {} must be 1 to {MAX_TRANSACTIONS}", self.max_transactions));
        } else if self.max_transactions > 1 && self.transport != Transport::Tcp {
            problems.push(format!(
                "max_transactions does not apply to transport {transport} (only to tcp: RTU frames carry no \
                 transaction id)"
            ));
        }
        match self.transport {
            Transport::Tcp | Transport::RtuOverTcp => {
                for (key, _) in serial_keys.iter().filter(|(_, given)| *given) {
                    problems.push(format!("{key} does not apply to transport {transport} (only to rtu)"));
                }
                match &self.address {
                    None => problems.push(format!("address is required for transport {transport}")),
                    Some(a) => {
                        if let Err(why) = check_host_port(a) {
                            problems.push(format!("address `{a}` {why}"));
                        }
                    }
                }
            }
            Transport::Rtu => {
                if self.address.is_some() {
                    problems.push("address does not apply to transport rtu (it takes port)".into());
                }
                match self.port.as_deref() {
                    None => problems.push("port is required for transport rtu".into()),
                    Some("") => problems.push("port must not be empty".into()),
                    Some(_) => {}
                }
                let frame = self.serial_frame();
                if frame.baud == 0 {
                    problems.push("baud must be above zero".into());
                }
                if !(5..=8).contains(&frame.data_bits) {
                    problems.push(format!("data_bits {} must be 5 to 8", frame.data_bits));
                }
                if !(1..=2).contains(&frame.stop_bits) {
                    problems.push(format!("stop_bits {} must be 1 or 2", frame.stop_bits));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(match self.transport {
            Transport::Tcp => Link::Tcp { address: self.address.clone().unwrap_or_default() },
            Transport::RtuOverTcp => Link::RtuOverTcp { address: self.address.clone().unwrap_or_default() },
            Transport::Rtu => {
                Link::Rtu { port: self.port.clone().unwrap_or_default(), frame: self.serial_frame() }
            }
        })
    }
}

/// `host:port` with a non-empty host and a numeric port (`[::1]:502` for IPv6).
fn check_host_port(address: &str) -> Result<(), &'static str> {
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("must be host:port");
    };
    if host.is_empty() || host == "[]" {
        return Err("has no host (host:port)");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("must put an IPv6 host in brackets ([::1]:502)");
    }
    port.parse::<u16>().map(|_| ()).map_err(|_| "has a port that is not a number from 0 to 65535")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(keys: &str) -> LineConfig {
        toml::from_str(&format!("name = \"l\"\n{keys}")).unwrap()
    }

    #[test]
    fn each_transport_gives_its_link() {
        let tcp = line("transport = \"tcp\"\naddress = \"127.0.0.1:502\"");
        assert_eq!(tcp.link(), Ok(Link::Tcp { address: "127.0.0.1:502".into() }));
        let dtu = line("transport = \"rtu-over-tcp\"\naddress = \"dtu.local:4001\"");
        assert_eq!(dtu.link(), Ok(Link::RtuOverTcp { address: "dtu.local:4001".into() }));
        let rtu = line("transport = \"rtu\"\nport = \"/dev/ttyUSB0\"");
        assert_eq!(
            rtu.link(),
            Ok(Link::Rtu { port: "/dev/ttyUSB0".into(), frame: SerialFrame::default() }),
            "defaults: 9600 8N1"
        );
        let rtu = line(
            "transport = \"rtu\"\nport = \"/dev/ttyS1\"\nbaud = 19200\nparity = \"even\"\n\
             data_bits = 8\nstop_bits = 2",
        );
        let Ok(Link::Rtu { frame, .. }) = rtu.link() else { panic!("{:?}", rtu.link()) };
        assert_eq!(frame, SerialFrame { baud: 19200, parity: Parity::Even, data_bits: 8, stop_bits: 2 });
        assert_eq!(frame.to_string(), "19200 8E2");
    }

    #[test]
    fn keys_that_do_not_fit_the_transport_are_refused() {
        let problems = line("transport = \"tcp\"\nport = \"/dev/ttyUSB0\"\nbaud = 9600").link().unwrap_err();
        assert_eq!(
            problems,
            vec![
                "port does not apply to transport tcp (only to rtu)",
                "baud does not apply to transport tcp (only to rtu)",
                "address is required for transport tcp",
            ]
        );
        let problems =
            line("transport = \"rtu\"\naddress = \"127.0.0.1:502\"\nparity = \"odd\"").link().unwrap_err();
        assert_eq!(
            problems,
            vec![
                "address does not apply to transport rtu (it takes port)",
                "port is required for transport rtu"
            ]
        );
        let problems = line("transport = \"rtu-over-tcp\"\nstop_bits = 1").link().unwrap_err();
        assert_eq!(
            problems,
            vec![
                "stop_bits does not apply to transport rtu-over-tcp (only to rtu)",
                "address is required for transport rtu-over-tcp"
            ]
        );
    }

    #[test]
    fn bad_values_are_named() {
        let problems = line("transport = \"rtu\"\nport = \"\"\nbaud = 0\ndata_bits = 9\nstop_bits = 3")
            .link()
            .unwrap_err();
        assert_eq!(
            problems,
            vec![
                "port must not be empty",
                "baud must be above zero",
                "data_bits 9 must be 5 to 8",
                "stop_bits 3 must be 1 or 2"
            ]
        );
        for (address, why) in [
            ("localhost", "must be host:port"),
            (":502", "has no host (host:port)"),
            ("h:port", "has a port that is not a number from 0 to 65535"),
            ("::1:502", "must put an IPv6 host in brackets ([::1]:502)"),
        ] {
            let problems = line(&format!("transport = \"tcp\"\naddress = \"{address}\"")).link().unwrap_err();
            assert_eq!(problems, vec![format!("address `{address}` {why}")]);
        }
        assert!(line("transport = \"tcp\"\naddress = \"[::1]:502\"").link().is_ok());
        let err = toml::from_str::<LineConfig>("name = \"l\"\ntransport = \"rtu\"\nparity = \"mark\"");
        assert!(err.unwrap_err().to_string().contains("mark"));
    }

    #[test]
    fn max_transactions_is_for_modbus_tcp_only_and_bounded() {
        let tcp = line("transport = \"tcp\"\naddress = \"127.0.0.1:502\"\nmax_transactions = 8");
        assert!(tcp.link().is_ok());
        assert_eq!(tcp.max_transactions, 8);
        assert_eq!(line("transport = \"tcp\"\naddress = \"h:502\"").max_transactions, 1, "the default");
        for (keys, why) in [
            ("transport = \"tcp\"\naddress = \"h:502\"\nmax_transactions = 0", "max_transactions 0 must be 1 to 16"),
            ("transport = \"tcp\"\naddress = \"h:502\"\nmax_transactions = 17", "max_transactions 17 must be 1 to 16"),
            (
                "transport = \"rtu-over-tcp\"\naddress = \"h:4001\"\nmax_transactions = 2",
                "max_transactions does not apply to transport rtu-over-tcp (only to tcp: RTU frames carry no \
                 transaction id)",
            ),
        ] {
            assert_eq!(line(keys).link().unwrap_err(), vec![why.to_string()], "{keys}");
        }
    }

    #[test]
    fn rtu_silent_interval_is_three_and_a_half_characters() {
        let frame = |baud, parity, stop_bits| SerialFrame { baud, parity, data_bits: 8, stop_bits };
        // 10 bits a character (8N1) at 9600 baud: 3.5 × 10 / 9600 s = 3645.8 µs.
        assert_eq!(rtu_silent_interval(&frame(9600, Parity::None, 1)), Duration::from_micros(3646));
        // 11 bits (8E1, the spec's default framing): 4010.4 µs.
        assert_eq!(rtu_silent_interval(&frame(9600, Parity::Even, 1)), Duration::from_micros(4011));
        assert_eq!(rtu_silent_interval(&frame(9600, Parity::None, 2)), Duration::from_micros(4011));
        assert_eq!(rtu_silent_interval(&frame(1200, Parity::None, 1)), Duration::from_micros(29167));
        assert_eq!(rtu_silent_interval(&frame(19200, Parity::Even, 1)), Duration::from_micros(2006));
        // Above 19200 baud the spec fixes it at 1.75 ms.
        assert_eq!(rtu_silent_interval(&frame(38400, Parity::None, 1)), Duration::from_micros(1750));
        assert_eq!(rtu_silent_interval(&frame(115200, Parity::Even, 1)), Duration::from_micros(1750));
    }

    #[test]
    fn silent_interval_defaults_by_transport() {
        let rtu = line("transport = \"rtu\"\nport = \"/dev/ttyUSB0\"");
        assert_eq!(rtu.effective_silent_interval(), Duration::from_micros(3646));
        let rtu = line("transport = \"rtu\"\nport = \"/dev/ttyUSB0\"\nsilent_interval = \"5ms\"");
        assert_eq!(rtu.effective_silent_interval(), Duration::from_millis(5));
        let rtu = line("transport = \"rtu\"\nport = \"/dev/ttyUSB0\"\nsilent_interval = \"0ms\"");
        assert_eq!(rtu.effective_silent_interval(), Duration::ZERO);
        let tcp = line("transport = \"tcp\"\naddress = \"127.0.0.1:502\"");
        assert_eq!(tcp.effective_silent_interval(), Duration::ZERO);
        let dtu = line("transport = \"rtu-over-tcp\"\naddress = \"127.0.0.1:4001\"");
        assert_eq!(dtu.effective_silent_interval(), Duration::ZERO);
    }

    #[test]
    fn a_link_writes_keys_that_parse_back() {
        for link in [
            Link::Tcp { address: "127.0.0.1:502".into() },
            Link::RtuOverTcp { address: "[::1]:4001".into() },
            Link::Rtu {
                port: "/tmp/a \"b\"/gw".into(),
                frame: SerialFrame { baud: 4800, parity: Parity::Odd, data_bits: 7, stop_bits: 2 },
            },
        ] {
            let parsed = line(&link.toml_keys());
            assert_eq!(parsed.link(), Ok(link.clone()), "{}", link.toml_keys());
        }
        assert_eq!(
            Link::Rtu { port: "/dev/ttyUSB0".into(), frame: SerialFrame::default() }.to_string(),
            "rtu /dev/ttyUSB0 9600 8N1"
        );
    }
}
