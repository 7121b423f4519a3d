//! Meridian replica server: hosts the engine's protocol cores over QUIC with durable storage.
