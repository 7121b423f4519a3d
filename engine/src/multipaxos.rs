//! Multi-Paxos: the leader-based baseline.
