//! camgate: an RTSP camera ingest gateway.
//!
//! Sans-IO protocol cores (`rtsp`, `rtp`, `h264`, `h265`) take bytes, packets and
//! time in and give events out; `camera`, `egress`, `http` and `sim` are the
//! tokio drivers around them. The layers, and one camera's data path as
//! built, are described in `docs/architecture.md`; `tests/architecture.rs`
//! keeps the layers true.

#![deny(unsafe_code)]

pub mod aac;
pub mod access;
pub mod camera;
pub mod cluster;
pub mod codec_info;
pub mod config;
pub mod credentials;
pub mod egress;
pub mod gateway;
pub mod h264;
pub mod h265;
pub mod health;
pub mod http;
pub mod metrics;
pub mod onvif;
pub mod password;
pub mod probe;
pub mod redact;
pub mod reload;
pub mod rtp;
pub mod rtsp;
pub mod service;
pub mod sim;
pub mod sys;
pub mod tls;
