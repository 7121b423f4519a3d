//! Why a topology could not be loaded.

use std::path::PathBuf;

/// A topology file (or builtin name) that could not be turned into a [`super::Topology`].
///
/// Every message names the offending region, link or field, so a user can fix the file
/// without reading the loader.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology file {}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error, as text (keeps the enum comparable).
        message: String,
    },
    /// The file was read but its content is invalid; `error` says how.
    #[error("topology file {}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        error: Box<TopologyError>,
    },
    /// Not TOML, or TOML with a missing, mistyped or unknown field. `message` is the toml
    /// crate's, with line, column and field name.
    #[error("invalid topology TOML: {message}")]
    Toml {
        /// The toml crate's message.
        message: String,
    },
    /// `regions` is empty or absent.
    #[error("topology has no regions")]
    NoRegions,
    /// Every region has `replicas = 0`.
    #[error("topology places no replica: every region has replicas = 0")]
    NoReplicas,
    /// More replicas than [`crate::id::NodeId`] can number.
    #[error("topology places {count} replicas, more than the {max} a NodeId can number")]
    TooManyReplicas {
        /// Replicas placed in total.
        count: u64,
        /// The limit.
        max: u16,
    },
    /// A region (or its alias) is the empty string.
    #[error("region #{index} has an empty {field}")]
    EmptyName {
        /// Position of the region in `regions`, from 0.
        index: usize,
        /// `name` or `alias`.
        field: &'static str,
    },
    /// Two regions share a name or alias, so lookups would be ambiguous.
    #[error("region name or alias `{name}` is used by two regions")]
    DuplicateRegion {
        /// The name used twice.
        name: String,
    },
    /// A link names a region that is not in `regions`.
    #[error("link {a} <-> {b}: unknown region `{region}`")]
    UnknownRegion {
        /// The link's `a` end as written.
        a: String,
        /// The link's `b` end as written.
        b: String,
        /// The end that matches no region name or alias.
        region: String,
    },
    /// A link from a region to itself; the in-region RTT is the region's `intra_rtt_ms`.
    #[error("link {region} <-> {region}: a region's own RTT is its intra_rtt_ms, not a link")]
    SelfLink {
        /// The region.
        region: String,
    },
    /// A pair of regions without a link: the RTT matrix must be complete.
    #[error("no link between regions `{a}` and `{b}`: every pair of regions needs one")]
    MissingLink {
        /// One region.
        a: String,
        /// The other.
        b: String,
    },
    /// A pair given twice with different values: the matrix would not be symmetric.
    #[error(
        "link {a} <-> {b} is given twice with different values \
         (rtt_ms {first_rtt_ms} vs {second_rtt_ms}, jitter_ms {first_jitter_ms} vs \
         {second_jitter_ms}): RTTs are symmetric, give each pair once"
    )]
    AsymmetricLink {
        /// One region (canonical name).
        a: String,
        /// The other (canonical name).
        b: String,
        /// RTT of the first entry.
        first_rtt_ms: f64,
        /// RTT of the second entry.
        second_rtt_ms: f64,
        /// Jitter of the first entry.
        first_jitter_ms: f64,
        /// Jitter of the second entry.
        second_jitter_ms: f64,
    },
    /// A latency that is negative, NaN or infinite.
    #[error("{field} = {value}: must be a finite number of milliseconds >= 0")]
    InvalidMs {
        /// Where it is, e.g. `links[us-east-1 <-> us-west-1].rtt_ms`.
        field: String,
        /// The bad value.
        value: f64,
    },
    /// [`super::Topology::resolve`] got neither a builtin name nor a path.
    #[error("unknown topology `{name}`: not a builtin ({known}) and not a path to a .toml file")]
    UnknownTopology {
        /// What was asked for.
        name: String,
        /// The builtin names, comma-separated.
        known: String,
    },
}
