//! Where a benchmark runs: the deterministic simulator (`sim`) or real server processes
//! (`cluster`).

pub mod sim;
