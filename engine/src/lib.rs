//! Meridian's engine: sans-IO replication protocol cores and the tools that test them.
//!
//! ```text
//!   layer 0  id · time · command · request         plain values, no behaviour beyond them
//!   layer 1  protocol · timer · quorum · state_machine   the contract every core implements
//!            session (exactly-once execution)
//!            storage (trait, in-memory model, record framing)
//!            topology                               regions, RTT matrix, placement
//!            transfer                               chunked snapshot transfer between replicas
//!            configuration                          epochs, voters and learners, slot schedule
//!   layer 2  multipaxos · epaxos · tempo · dynamo  protocol cores (import layers 0-1 only)
//!   layer 3  sim · check                            deterministic simulator, history checkers
//!            test_host (tests only)                 a minimal host for the cores' unit tests
//! ```
//!
//! A core is a deterministic state machine: the host (the simulator here, the QUIC server
//! in `meridian-server`) feeds it inputs stamped with `now` and drains its outputs. See
//! [`protocol`] for the contract and the ordering rule that makes durability structural,
//! and `docs/design.md` for the design as a whole.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod check;
pub mod command;
pub mod configuration;
pub mod dynamo;
pub mod epaxos;
pub(crate) mod hashed;
pub mod id;
pub mod key_map;
#[cfg(test)]
pub(crate) mod model_check;
pub mod multipaxos;
#[cfg(test)]
mod peer_input_test;
pub mod protocol;
pub mod quorum;
pub mod request;
pub mod session;
pub mod sim;
pub mod state_machine;
pub mod storage;
pub mod tempo;
#[cfg(test)]
pub(crate) mod test_host;
pub mod time;
pub mod timer;
pub mod topology;
pub mod transfer;

pub use command::{Command, CommandResult, Key, Value};
pub use id::{ClientId, NodeId, RequestId};
pub use protocol::{CommitPath, Effect, Member, Membership, Metrics, Outbox, Output, Protocol};
pub use request::{ClientReply, ClientRequest, Consistency, Level, RequestError, Response};
pub use time::Time;
