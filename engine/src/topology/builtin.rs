//! Topologies compiled into the binary from the workspace's `topologies/` directory.

/// `(name, TOML text)` of every builtin, in the order [`super::Topology::builtin_names`]
/// lists them. Each file's `name` field equals its name here (a test checks it).
pub(super) const BUILTINS: &[(&str, &str)] = &[
    ("lan-3", include_str!("../../../topologies/lan-3.toml")),
    ("lan-5", include_str!("../../../topologies/lan-5.toml")),
    (
        "epaxos-3",
        include_str!("../../../topologies/epaxos-3.toml"),
    ),
    (
        "epaxos-5",
        include_str!("../../../topologies/epaxos-5.toml"),
    ),
    (
        "aws-5-tempo",
        include_str!("../../../topologies/aws-5-tempo.toml"),
    ),
    ("gcp-13", include_str!("../../../topologies/gcp-13.toml")),
    ("gcp-20", include_str!("../../../topologies/gcp-20.toml")),
    ("aws-19", include_str!("../../../topologies/aws-19.toml")),
];

/// The builtin names (kept in a const so `builtin_names` can hand out a `'static` slice).
pub(super) const NAMES: &[&str] = &[
    "lan-3",
    "lan-5",
    "epaxos-3",
    "epaxos-5",
    "aws-5-tempo",
    "gcp-13",
    "gcp-20",
    "aws-19",
];

/// The TOML text of builtin `name`.
pub(super) fn text(name: &str) -> Option<&'static str> {
    BUILTINS
        .iter()
        .find(|(builtin, _)| *builtin == name)
        .map(|(_, text)| *text)
}
