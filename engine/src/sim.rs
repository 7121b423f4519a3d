//! Deterministic discrete-event simulator driving protocol cores.
