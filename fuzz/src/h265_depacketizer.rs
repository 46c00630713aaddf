//! Drives the H.265 depacketizer (RFC 7798) with a script of packets and
//! checks its invariants after every step.
//!
//! The input is framed rather than `arbitrary`-decoded, so that seeds are
//! real packetized pictures from `tests/fixtures/h265/` (written by
//! `scripts/make-h265-fixtures.sh`): one byte of options (bit 0: SDP
//! parameter sets), then records `[control][length: u16 BE][payload]`.
//! Control bit 0 is the marker; bits 1-2 the sequence step (+1, +0 a
//! duplicate, +2 a loss, -3 a late packet); bits 3-4 the timestamp step
//! (0, +3600, +1, -3600). A record cut short ends the script.

use bytes::Bytes;
use camgate::h265::{Depacketizer, ParameterSets};
use camgate::rtp::RtpPacket;

/// The VPS, SPS and PPS of `tests/fixtures/h265/p.h265`.
pub const SPROP: (&str, &str, &str) = (
    "QAEMAf//AWAAAAMAkAAAAwAAAwA/koCQ",
    "QgEBAWAAAAMAkAAAAwAAAwA/oAUCAWllkqSTK8BaAgAAAwACAAADADIQ",
    "RAHBcrRCQA==",
);

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let Some((&options, mut rest)) = data.split_first() else {
        return;
    };
    let params = (options & 1 != 0)
        .then(|| ParameterSets::from_sprop(SPROP.0, SPROP.1, SPROP.2).expect("valid sprop"));
    let mut d = Depacketizer::new(params);
    let (mut seq, mut ts) = (0u16, 0u32);
    while let [control, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        seq = seq.wrapping_add([1, 0, 2, 0u16.wrapping_sub(3)][usize::from(control >> 1 & 3)]);
        ts = ts.wrapping_add([0, 3600, 1, 0u32.wrapping_sub(3600)][usize::from(control >> 3 & 3)]);
        let mut raw = Vec::with_capacity(12 + payload.len());
        RtpPacket::write(&mut raw, control & 1 != 0, 96, seq, ts, 0x1234, payload);
        let pkt = RtpPacket::parse(Bytes::from(raw)).expect("written packet parses");
        d.push(&pkt);
        d.check_invariants();
        while let Some(au) = d.pull() {
            d.check_invariants();
            assert!(au.damaged || !au.nals.is_empty());
        }
    }
    d.flush();
    d.check_invariants();
    while d.pull().is_some() {
        d.check_invariants();
    }
}
