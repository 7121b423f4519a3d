//! Dynamo mode: consistent-hash ring, tunable consistency, dotted version vectors.
