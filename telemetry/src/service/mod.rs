//! What every service binary of the project needs besides the contract (feature `service`):
//! the command line's version, logs and errors, the stop signal, and reading a config file
//! with environment overrides.

pub mod cli;
pub mod config_file;

pub use cli::{error_line, exit_code, init_logging, io_reason, readable, shutdown_signal, LogFormat};
pub use config_file::ConfigError;
