//! Meridian replica server: hosts the engine's protocol cores over QUIC with durable storage.
//!
//! ```text
//!   client ──QUIC (mTLS)──▶ transport ──▶ node: router ──▶ keyspace host (one task per core)
//!                              ▲                              │ Persist ──▶ storage thread ──▶ FileStorage
//!   peers ◀──QUIC, WanSocket───┘◀──────────── PeerSender ◀────┘ released effects after fsync
//! ```
//!
//! | module      | what it holds |
//! |-------------|---------------|
//! | `storage`   | `FileStorage`: append-only checksummed log, group commit, torn-tail scan |
//! | `tls`       | cluster CA, node/client certificates, mutual-TLS QUIC configs |
//! | `certs`     | the CA on disk: `certs init`, `issue` (nodes added later, rotation), `show` |
//! | `transport` | frames, `WanSocket` (WAN emulation), QUIC peer mesh and client streams |
//! | `wire`      | what travels in frames |
//! | `admin`     | operator requests on the client wire (`meridian status`, `member list`, `member add`, `member remove`) |
//! | `config`    | node TOML config |
//! | `config_check` | a cluster's node configs checked against each other (`meridian config check`) |
//! | `identity`  | the data directory's identity (cluster, node, incarnation): `--init`, `--rejoin` |
//! | `node`      | keyspace host loop and the replica process |
//! | `client`    | client library |
//! | `local_cluster` | local cluster generation (`meridian cluster up`) |
//! | `cluster_join` | a replica added to or removed from a local cluster (`cluster add`, `cluster remove`) |
//! | `launcher`  | replica processes: start, kill -9, restart, wait until serving |
//! | `process`   | whether a killed process has finished exiting (its ports are free) |
//! | `serve`     | run one replica until it fails or is told to stop |
//! | `metrics`   | histograms and the Prometheus endpoint |

pub mod admin;
pub mod certs;
pub mod client;
pub mod cluster_join;
pub mod config;
pub mod config_check;
pub mod identity;
pub mod keyspace_config;
pub mod launcher;
pub mod local_cluster;
pub mod member_change;
pub mod metrics;
pub mod node;
pub mod process;
pub mod serve;
pub mod storage;
pub mod tls;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod test_support;
