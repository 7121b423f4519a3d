//! The TOML file format (see `topologies/README.md`) and its validation.
//!
//! Parsing goes in two steps: serde reads the file into the raw `*Entry` structs (syntax,
//! types, unknown fields), then [`build`] checks what serde cannot (names unique, links
//! complete and symmetric, latencies finite and non-negative) and fills the RTT matrix.

use super::{Region, Topology, TopologyError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: Option<String>,
    // Defaulted so that an empty list and a missing one both give `NoRegions`.
    #[serde(default)]
    regions: Vec<RegionEntry>,
    #[serde(default)]
    links: Vec<LinkEntry>,
}

/// One `[[regions]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionEntry {
    name: String,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default = "one_u16")]
    replicas: u16,
    #[serde(default = "one_u32")]
    clients: u32,
    #[serde(default)]
    intra_rtt_ms: f64,
    #[serde(default)]
    intra_jitter_ms: f64,
}

/// One `[[links]]` entry: an unordered pair of regions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    a: String,
    b: String,
    rtt_ms: f64,
    #[serde(default)]
    jitter_ms: f64,
}

fn one_u16() -> u16 {
    1
}

fn one_u32() -> u32 {
    1
}

/// Parses and validates TOML text into a topology.
pub(super) fn parse(text: &str) -> Result<Topology, TopologyError> {
    let file: TopologyFile = toml::from_str(text).map_err(|e| TopologyError::Toml {
        message: e.to_string(),
    })?;
    build(file)
}

fn build(file: TopologyFile) -> Result<Topology, TopologyError> {
    if file.regions.is_empty() {
        return Err(TopologyError::NoRegions);
    }
    let (regions, intra_jitter_ms) = regions(file.regions)?;
    let n = regions.len();
    let index_of = |name: &str| {
        regions
            .iter()
            .position(|r| r.name == name || r.alias.as_deref() == Some(name))
    };

    // Diagonal from the regions; off-diagonal filled once per unordered pair.
    let mut rtt_ms = vec![f64::NAN; n * n];
    let mut jitter_ms = vec![f64::NAN; n * n];
    for (i, region) in regions.iter().enumerate() {
        rtt_ms[i * n + i] = region.intra_rtt_ms;
        jitter_ms[i * n + i] = intra_jitter_ms[i];
    }
    let mut seen: BTreeMap<(usize, usize), (f64, f64)> = BTreeMap::new();
    for link in &file.links {
        let unknown = |region: &str| TopologyError::UnknownRegion {
            a: link.a.clone(),
            b: link.b.clone(),
            region: region.to_owned(),
        };
        let a = index_of(&link.a).ok_or_else(|| unknown(&link.a))?;
        let b = index_of(&link.b).ok_or_else(|| unknown(&link.b))?;
        if a == b {
            return Err(TopologyError::SelfLink {
                region: regions[a].name.clone(),
            });
        }
        let field = |what: &str| format!("links[{} <-> {}].{what}", link.a, link.b);
        check_ms(&field("rtt_ms"), link.rtt_ms)?;
        check_ms(&field("jitter_ms"), link.jitter_ms)?;
        let key = (a.min(b), a.max(b));
        if let Some(&(first_rtt_ms, first_jitter_ms)) = seen.get(&key) {
            // Repeating a pair with the same values is harmless; different values are not.
            if first_rtt_ms != link.rtt_ms || first_jitter_ms != link.jitter_ms {
                return Err(TopologyError::AsymmetricLink {
                    a: regions[key.0].name.clone(),
                    b: regions[key.1].name.clone(),
                    first_rtt_ms,
                    second_rtt_ms: link.rtt_ms,
                    first_jitter_ms,
                    second_jitter_ms: link.jitter_ms,
                });
            }
            continue;
        }
        seen.insert(key, (link.rtt_ms, link.jitter_ms));
        for (x, y) in [(a, b), (b, a)] {
            rtt_ms[x * n + y] = link.rtt_ms;
            jitter_ms[x * n + y] = link.jitter_ms;
        }
    }
    for a in 0..n {
        for b in a + 1..n {
            if !seen.contains_key(&(a, b)) {
                return Err(TopologyError::MissingLink {
                    a: regions[a].name.clone(),
                    b: regions[b].name.clone(),
                });
            }
        }
    }
    Ok(Topology::from_parts(
        file.name,
        file.description,
        file.source,
        regions,
        rtt_ms,
        jitter_ms,
    ))
}

/// Checks the region list; returns the regions and their intra-region jitter (which lives
/// on the matrix diagonal, not in [`Region`]).
fn regions(entries: Vec<RegionEntry>) -> Result<(Vec<Region>, Vec<f64>), TopologyError> {
    // Every name and alias, to the region that owns it.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut regions = Vec::with_capacity(entries.len());
    let mut intra_jitter_ms = Vec::with_capacity(entries.len());
    let mut replicas: u64 = 0;
    for (index, entry) in entries.into_iter().enumerate() {
        for (field, name) in [("name", Some(&entry.name)), ("alias", entry.alias.as_ref())] {
            let Some(name) = name else { continue };
            if name.is_empty() {
                return Err(TopologyError::EmptyName { index, field });
            }
            // An alias equal to its own region's name is redundant but not ambiguous.
            if names
                .insert(name.clone(), index)
                .is_some_and(|owner| owner != index)
            {
                return Err(TopologyError::DuplicateRegion { name: name.clone() });
            }
        }
        let field = |what: &str| format!("regions[{}].{what}", entry.name);
        check_ms(&field("intra_rtt_ms"), entry.intra_rtt_ms)?;
        check_ms(&field("intra_jitter_ms"), entry.intra_jitter_ms)?;
        replicas += u64::from(entry.replicas);
        intra_jitter_ms.push(entry.intra_jitter_ms);
        regions.push(Region {
            name: entry.name,
            alias: entry.alias,
            replicas: entry.replicas,
            clients: entry.clients,
            intra_rtt_ms: entry.intra_rtt_ms,
        });
    }
    check_replica_count(replicas)?;
    Ok((regions, intra_jitter_ms))
}

/// Replicas are numbered `NodeId(0..count)`: at least one, at most what a `u16` numbers.
pub(super) fn check_replica_count(count: u64) -> Result<(), TopologyError> {
    if count == 0 {
        return Err(TopologyError::NoReplicas);
    }
    if count > u64::from(u16::MAX) {
        return Err(TopologyError::TooManyReplicas {
            count,
            max: u16::MAX,
        });
    }
    Ok(())
}

/// A latency must be a finite, non-negative number of milliseconds.
fn check_ms(field: &str, value: f64) -> Result<(), TopologyError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(TopologyError::InvalidMs {
            field: field.to_owned(),
            value,
        })
    }
}
