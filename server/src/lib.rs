//! Meridian replica server: hosts the engine's protocol cores over QUIC with durable storage.
//!
//! ```text
//!  storage   FileStorage: append-only checksummed log, group commit, torn-tail scan
//!  tls       cluster CA, node/client certificates, mutual-TLS QUIC configs
//!  transport QUIC peer links and client streams, frames, WAN emulation
//! ```

pub mod config;
pub mod metrics;
pub mod node;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod test_support;
