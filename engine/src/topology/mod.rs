//! Cross-region topologies: regions, RTT matrix, replica and client placement.
//!
//! ```text
//!   topologies/*.toml ──include_str!──▶ builtin(name) ─┐
//!   any .toml file ─────read─────────▶ load(path) ────┼─▶ parse ─▶ Topology ─▶ membership()
//!                                      resolve(either) ┘   (validate)          rtt_ms / one_way_us
//! ```
//!
//! A topology is a list of regions (each with a replica count, a client-site count and an
//! in-region RTT) and a complete, symmetric matrix of round-trip times between regions, in
//! milliseconds, with a jitter per link. Replicas get ids `NodeId(0..)` region by region,
//! in file order. Hosts turn RTTs into one-way delays as RTT / 2 ([`Topology::one_way_us`]),
//! with the link's jitter spread evenly around it ([`Topology::one_way_draw`]).
//! The file format and where the builtin numbers come from are in `topologies/README.md`.
//!
//! Loading is the only I/O here ([`Topology::load`] reads a file); protocol cores only ever
//! see the [`Membership`] derived from it.

mod builtin;
mod error;
mod file;
#[cfg(test)]
#[path = "topology_test.rs"]
mod tests;

pub use error::TopologyError;

use crate::id::NodeId;
use crate::protocol::{Member, Membership};
use std::path::Path;

/// How a host draws one link's one-way delay: `low_us + uniform[0, spread_us]`
/// ([`Topology::one_way_draw`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayDraw {
    /// The shortest delay drawn, µs.
    pub low_us: u64,
    /// Width of the uniform draw above `low_us`, µs (0: a fixed delay).
    pub spread_us: u64,
}

/// A site: a cloud region, a data centre or a rack.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Canonical id, used in links and in [`Member::region`] (e.g. `us-east-1`).
    pub name: String,
    /// Optional short name (e.g. `VA`); lookups accept it as well as `name`.
    pub alias: Option<String>,
    /// Replicas placed here (may be 0 for a client-only region).
    pub replicas: u16,
    /// Client sites placed here.
    pub clients: u32,
    /// Round-trip time between two hosts of this region, in milliseconds.
    pub intra_rtt_ms: f64,
}

impl Region {
    /// The alias if there is one, else the name: the short label for tables.
    pub fn label(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

/// Regions, the RTT matrix between them and where replicas and clients sit.
///
/// Always valid: at least one region and one replica, every pair of regions linked,
/// symmetric, every latency finite and non-negative.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    name: String,
    description: String,
    source: Option<String>,
    regions: Vec<Region>,
    /// `n × n`, row-major, symmetric; the diagonal holds each region's `intra_rtt_ms`.
    rtt_ms: Vec<f64>,
    /// Same shape; the diagonal holds each region's intra-region jitter.
    jitter_ms: Vec<f64>,
    /// Region index of each replica, indexed by `NodeId`.
    replica_regions: Vec<usize>,
}

impl Topology {
    /// Parses a topology from TOML text (format in `topologies/README.md`).
    pub fn parse(toml_text: &str) -> Result<Self, TopologyError> {
        file::parse(toml_text)
    }

    /// Reads and parses a topology file; errors name the path.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|error| TopologyError::InFile {
            path: path.to_owned(),
            error: Box::new(error),
        })
    }

    /// A topology shipped with Meridian (see [`Topology::builtin_names`]).
    pub fn builtin(name: &str) -> Option<Self> {
        // The builtin files are tested to parse, so an error here is unreachable in a
        // tested build; `ok()` keeps the signature simple.
        builtin::text(name).and_then(|text| Self::parse(text).ok())
    }

    /// Names accepted by [`Topology::builtin`].
    pub fn builtin_names() -> &'static [&'static str] {
        builtin::NAMES
    }

    /// Either a builtin name or a path to a `.toml` file.
    ///
    /// A builtin name wins over a file of the same name in the working directory; write
    /// `./name` to force the file.
    pub fn resolve(name_or_path: &str) -> Result<Self, TopologyError> {
        if let Some(topology) = Self::builtin(name_or_path) {
            return Ok(topology);
        }
        let path = Path::new(name_or_path);
        let looks_like_path = name_or_path.ends_with(".toml")
            || name_or_path.contains(std::path::MAIN_SEPARATOR)
            || name_or_path.contains('/');
        if looks_like_path || path.exists() {
            return Self::load(path);
        }
        Err(TopologyError::UnknownTopology {
            name: name_or_path.to_owned(),
            known: Self::builtin_names().join(", "),
        })
    }

    /// Its name (e.g. `epaxos-5`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One line on what it models.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Where its numbers come from, if the file says.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// Every region, in file order (the order region indices refer to).
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Index of the region with this name or alias.
    pub fn region_index(&self, name_or_alias: &str) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| r.name == name_or_alias || r.alias.as_deref() == Some(name_or_alias))
    }

    /// Round-trip time between regions `a` and `b` in milliseconds; the in-region RTT when
    /// `a == b`.
    ///
    /// # Panics
    /// If `a` or `b` is not a region index (a caller bug).
    pub fn rtt_ms(&self, a: usize, b: usize) -> f64 {
        self.rtt_ms[self.cell(a, b)]
    }

    /// Jitter (ping mdev, or a synthetic value) of the `a`–`b` RTT in milliseconds.
    ///
    /// # Panics
    /// If `a` or `b` is not a region index (a caller bug).
    pub fn jitter_ms(&self, a: usize, b: usize) -> f64 {
        self.jitter_ms[self.cell(a, b)]
    }

    /// One-way delay from `a` to `b`: RTT / 2, in microseconds, rounded to the nearest.
    ///
    /// # Panics
    /// If `a` or `b` is not a region index (a caller bug).
    pub fn one_way_us(&self, a: usize, b: usize) -> u64 {
        ms_to_us(self.rtt_ms(a, b) / 2.0)
    }

    /// The one-way delays hosts draw for the `a` → `b` link: `low_us` plus a uniform draw
    /// from `[0, spread_us]`, in microseconds. The jitter is an RTT spread, so each
    /// direction gets half of it, centred on RTT / 2: the drawn delays keep the measured
    /// mean RTT, which is what optimum latencies are computed from. (Added on top of
    /// RTT / 2 instead, every link would be slower than measured by half its jitter.)
    ///
    /// # Panics
    /// If `a` or `b` is not a region index (a caller bug).
    pub fn one_way_draw(&self, a: usize, b: usize) -> DelayDraw {
        let mean_us = self.one_way_us(a, b);
        let spread_us = ms_to_us((self.jitter_ms(a, b) / 2.0).max(0.0)).min(2 * mean_us);
        DelayDraw {
            low_us: mean_us - spread_us / 2,
            spread_us,
        }
    }

    /// Replicas in id order with their region index: `NodeId(0)..` assigned region by
    /// region, in file order.
    pub fn replicas(&self) -> Vec<(NodeId, usize)> {
        self.replica_regions
            .iter()
            .enumerate()
            .map(|(i, &region)| (node_id(i), region))
            .collect()
    }

    /// Region index of replica `node`, if it exists.
    pub fn region_of_node(&self, node: NodeId) -> Option<usize> {
        self.replica_regions.get(node.index()).copied()
    }

    /// The cluster the replicas form: members `(id, region name)` and the RTT between every
    /// two replicas in microseconds (0 from a replica to itself, the in-region RTT between
    /// two replicas of one region).
    pub fn membership(&self) -> Membership {
        let members = self
            .replicas()
            .into_iter()
            .map(|(id, region)| Member {
                id,
                region: self.regions[region].name.clone(),
            })
            .collect();
        let rtt_us = self
            .replica_regions
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                self.replica_regions
                    .iter()
                    .enumerate()
                    .map(|(j, &b)| {
                        if i == j {
                            0
                        } else {
                            ms_to_us(self.rtt_ms(a, b))
                        }
                    })
                    .collect()
            })
            .collect();
        Membership { members, rtt_us }
    }

    /// The same topology with `clients` client sites in every region.
    pub fn with_clients_per_region(mut self, clients: u32) -> Self {
        for region in &mut self.regions {
            region.clients = clients;
        }
        self
    }

    /// The same topology with `replicas` replicas in every region (ids are reassigned
    /// region by region). Fails if that places none or too many.
    pub fn with_replicas_per_region(mut self, replicas: u16) -> Result<Self, TopologyError> {
        let count = u64::from(replicas) * self.regions.len() as u64;
        file::check_replica_count(count)?;
        for region in &mut self.regions {
            region.replicas = replicas;
        }
        self.replica_regions = replica_regions(&self.regions);
        Ok(self)
    }

    /// Assembles a validated topology (called by the parser only).
    fn from_parts(
        name: String,
        description: String,
        source: Option<String>,
        regions: Vec<Region>,
        rtt_ms: Vec<f64>,
        jitter_ms: Vec<f64>,
    ) -> Self {
        debug_assert_eq!(rtt_ms.len(), regions.len() * regions.len());
        debug_assert_eq!(jitter_ms.len(), rtt_ms.len());
        let replica_regions = replica_regions(&regions);
        Self {
            name,
            description,
            source,
            regions,
            rtt_ms,
            jitter_ms,
            replica_regions,
        }
    }

    fn cell(&self, a: usize, b: usize) -> usize {
        let n = self.regions.len();
        assert!(
            a < n && b < n,
            "region index out of range: {a}, {b} (n = {n})"
        );
        a * n + b
    }
}

/// Region index of every replica, region by region in order.
fn replica_regions(regions: &[Region]) -> Vec<usize> {
    regions
        .iter()
        .enumerate()
        .flat_map(|(i, region)| std::iter::repeat_n(i, usize::from(region.replicas)))
        .collect()
}

/// `NodeId` of the replica at position `i`.
fn node_id(i: usize) -> NodeId {
    // The replica count is validated to fit a u16 (`file::check_replica_count`).
    NodeId(u16::try_from(i).expect("replica count validated to fit u16"))
}

/// Milliseconds (finite, non-negative: validated on load) to whole microseconds.
fn ms_to_us(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}
