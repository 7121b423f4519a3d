//! Which protocols a run compares, parsed from the command line:
//! `epaxos`, `epaxos-thrifty`, `epaxos-ordered`, `tempo` (f = 1) or `tempo:f=F`, `multipaxos` (leader in the `--leader` region) or
//! `multipaxos:REGION`, `dynamo` (QUORUM) or `dynamo:LEVEL`.

use meridian_engine::Level;
use std::fmt;

/// One protocol configuration to measure.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtocolSpec {
    /// EPaxos; `thrifty` sends PreAccepts to the nearest fast quorum only, `ordered`
    /// processes them at their release time (ordered delivery).
    Epaxos {
        /// Thrifty mode.
        thrifty: bool,
        /// Ordered delivery.
        ordered: bool,
    },
    /// Tempo tolerating `f` failures (fast quorum `floor(n/2) + f`).
    Tempo {
        /// Failures tolerated.
        f: usize,
    },
    /// Multi-Paxos with the initial leader in `leader_region` (name or alias).
    MultiPaxos {
        /// Region of the initial leader.
        leader_region: String,
    },
    /// Dynamo mode at a consistency level.
    Dynamo {
        /// Level of every request.
        level: Level,
    },
}

impl ProtocolSpec {
    /// Parse one item of `--protocols`; `default_leader` is used for a bare `multipaxos`.
    pub fn parse(text: &str, default_leader: &str) -> Result<Self, String> {
        let (name, arg) = match text.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (text, None),
        };
        match (name.to_ascii_lowercase().as_str(), arg) {
            ("epaxos", None) => Ok(Self::Epaxos {
                thrifty: false,
                ordered: false,
            }),
            ("epaxos-thrifty", None) => Ok(Self::Epaxos {
                thrifty: true,
                ordered: false,
            }),
            ("epaxos-ordered", None) => Ok(Self::Epaxos {
                thrifty: false,
                ordered: true,
            }),
            ("tempo", None) => Ok(Self::Tempo { f: 1 }),
            ("tempo", Some(arg)) => {
                let f = arg
                    .strip_prefix("f=")
                    .unwrap_or(arg)
                    .parse::<usize>()
                    .ok()
                    .filter(|&f| f >= 1)
                    .ok_or_else(|| format!("tempo:{arg}: expected tempo:f=F with F >= 1"))?;
                Ok(Self::Tempo { f })
            }
            ("multipaxos" | "paxos", leader) => Ok(Self::MultiPaxos {
                leader_region: leader.unwrap_or(default_leader).to_owned(),
            }),
            ("dynamo", level) => Ok(Self::Dynamo {
                level: level.unwrap_or("QUORUM").parse()?,
            }),
            _ => Err(format!(
                "unknown protocol {text:?}: expected epaxos, epaxos-thrifty, epaxos-ordered, tempo[:f=F], multipaxos[:REGION] or dynamo[:LEVEL]"
            )),
        }
    }

    /// Whether the protocol orders commands (linearizability applies).
    pub fn is_consensus(&self) -> bool {
        !matches!(self, Self::Dynamo { .. })
    }
}

impl fmt::Display for ProtocolSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Epaxos {
                thrifty: false,
                ordered: false,
            } => f.write_str("epaxos"),
            Self::Epaxos { thrifty: true, .. } => f.write_str("epaxos-thrifty"),
            Self::Epaxos { ordered: true, .. } => f.write_str("epaxos-ordered"),
            Self::Tempo { f: faults } => write!(f, "tempo(f={faults})"),
            Self::MultiPaxos { leader_region } => write!(f, "multipaxos(leader={leader_region})"),
            Self::Dynamo { level } => write!(f, "dynamo({level})"),
        }
    }
}

#[cfg(test)]
#[path = "protocols_test.rs"]
mod tests;
