//! The library's error type: each variant says what the user can do.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot bind the admin server to {addr}: {source}; change admin.listen or free the port"
    )]
    AdminBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the Kafka client: {0}; check kafka.properties")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot start the Kafka pump thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(std::io::Error),
}

impl Error {
    /// Process exit code: 64 (EX_USAGE) for configuration problems, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) | Error::AdminBind { .. } => crate::EXIT_CONFIG,
            Error::Kafka(rdkafka::error::KafkaError::ClientConfig(..)) => crate::EXIT_CONFIG,
            _ => 1,
        }
    }
}
