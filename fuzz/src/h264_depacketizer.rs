//! Drives the H.264 depacketizer (RFC 6184) with an arbitrary script of
//! packets and checks its invariants after every step.

use arbitrary::Arbitrary;
use bytes::Bytes;
use camgate::h264::Depacketizer;
use camgate::rtp::RtpPacket;

/// One scripted packet.
#[derive(Arbitrary, Debug)]
struct Packet {
    /// Added to the previous sequence number (1 is in order; 0 a duplicate;
    /// anything else a gap or a late packet).
    seq_delta: u16,
    /// Added to the previous RTP timestamp.
    ts_delta: u16,
    /// RTP marker bit.
    marker: bool,
    /// RTP payload.
    payload: Vec<u8>,
}

/// The script: whether SDP parameter sets exist, then the packets.
#[derive(Arbitrary, Debug)]
struct Script {
    sdp_params: bool,
    packets: Vec<Packet>,
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `Script` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(script) =
        <Script as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    let params = script.sdp_params.then(|| {
        camgate::h264::ParameterSets::from_sprop("Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==")
            .expect("valid sprop")
    });
    let mut d = Depacketizer::new(params);
    let mut seq = 0u16;
    let mut ts = 0u32;
    for p in &script.packets {
        seq = seq.wrapping_add(p.seq_delta);
        ts = ts.wrapping_add(u32::from(p.ts_delta));
        let mut raw = Vec::with_capacity(12 + p.payload.len());
        RtpPacket::write(&mut raw, p.marker, 96, seq, ts, 0x1234, &p.payload);
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
