//! The fuzz targets' bodies, one module per target, each with
//! `run(data: &[u8])` taking libFuzzer's raw input (structured targets
//! decode it with `arbitrary` exactly as `fuzz_target!` would).
//!
//! Kept apart from `fuzz_targets/` so that camgate's own test suite
//! (`tests/fuzz_corpus.rs`) runs every file of `fuzz/corpus/<target>/`
//! through the same code on the stable toolchain: what a fuzzer once found
//! stays a regression test.

pub mod aac_depacketizer;
pub mod config;
pub mod h264_analyzer;
pub mod h264_depacketizer;
pub mod h265_analyzer;
pub mod h265_depacketizer;
pub mod jitter_buffer;
pub mod onvif_response;
pub mod rtcp;
pub mod rtp_packet;
pub mod rtsp_client;
pub mod rtsp_framer;
pub mod rtsp_server;
pub mod sdp;
pub mod transport_header;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("aac_depacketizer", aac_depacketizer::run),
    ("config", config::run),
    ("h264_analyzer", h264_analyzer::run),
    ("h264_depacketizer", h264_depacketizer::run),
    ("h265_analyzer", h265_analyzer::run),
    ("h265_depacketizer", h265_depacketizer::run),
    ("jitter_buffer", jitter_buffer::run),
    ("onvif_response", onvif_response::run),
    ("rtcp", rtcp::run),
    ("rtp_packet", rtp_packet::run),
    ("rtsp_client", rtsp_client::run),
    ("rtsp_framer", rtsp_framer::run),
    ("rtsp_server", rtsp_server::run),
    ("sdp", sdp::run),
    ("transport_header", transport_header::run),
];
