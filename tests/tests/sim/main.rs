//! Simulator integration tests: one binary, one file per area (openraft style).
//! Replay a failing seed with `MERIDIAN_SEED=<n> cargo test -p meridian-tests --test sim -- <name>`.

mod t10_epaxos;
mod t11_epaxos_restart;
mod t12_epaxos_catch_up;
mod t13_epaxos_bounded;
mod t14_epaxos_amnesia;
mod t15_tempo;
mod t16_tempo_bounded;
mod t17_tempo_amnesia;
mod t18_epaxos_membership;
mod t19_tempo_membership;
mod t20_multipaxos;
mod t22_multipaxos_bounded;
mod t23_multipaxos_reads;
mod t24_multipaxos_membership;
mod t30_dynamo;
