//! Cross-region topologies: regions, RTT matrix, replica and client placement.
