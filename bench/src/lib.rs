//! Meridian's benchmark driver: reproduces cross-region latency comparisons of EPaxos,
//! Multi-Paxos and Dynamo mode on real ping-matrix topologies, in the deterministic
//! simulator or on real server processes.
//!
//! ```text
//!  CLI ─▶ protocols × workloads ─▶ backend (sim | cluster) ─▶ RunStats ─▶ report (table, JSON, SVG)
//!                                       ▲ optimum: the best latency the topology allows
//! ```

pub mod backend;
pub mod history;
pub mod optimum;
pub mod protocols;
pub mod report;
pub mod runner;
pub mod stats;
pub mod timeline;
pub mod workload;
