//! Shared fixtures for Meridian's integration tests.
