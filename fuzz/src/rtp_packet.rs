//! Fuzzes the RTP packet parser (RFC 3550 5.1), the RTCP sender report
//! parser and receiver statistics: no input may panic.

use bytes::Bytes;
use camgate::rtp::rtcp::{self, ReceiverStats};
use camgate::rtp::RtpPacket;

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    if let Ok(p) = RtpPacket::parse(Bytes::copy_from_slice(data)) {
        let payload = p.payload();
        assert!(payload.len() + 12 <= data.len());
        assert_eq!(&payload[..], p.payload_slice());
        // Writing back the header fields gives a packet that parses the same.
        let mut out = Vec::new();
        RtpPacket::write(
            &mut out,
            p.marker,
            p.payload_type,
            p.sequence,
            p.timestamp,
            p.ssrc,
            &payload,
        );
        let q = RtpPacket::parse(Bytes::from(out)).expect("rewritten packet parses");
        assert_eq!(
            (q.marker, q.payload_type, q.sequence, q.timestamp, q.ssrc),
            (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc)
        );
        assert_eq!(q.payload(), payload);
    }

    // RTCP: the whole input as a compound packet.
    let sr = rtcp::parse_sender_report(data);
    assert_eq!(sr, rtcp::find_sender_report(data).ok().flatten());
    for p in rtcp::packets(data) {
        if p.is_err() {
            break;
        }
    }

    // Receiver statistics over (seq, ts, arrival) triples taken from the input.
    let mut stats = ReceiverStats::new();
    for (i, c) in data.chunks_exact(10).enumerate() {
        let seq = u16::from_be_bytes([c[0], c[1]]);
        let ts = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
        let arrival = u32::from_be_bytes([c[6], c[7], c[8], c[9]]);
        stats.on_packet(seq);
        if i % 7 == 6 {
            let b = stats.report_block(1, arrival, ts, 0);
            assert!((-0x80_0000..=0x7f_ffff).contains(&b.cumulative_lost));
            let mut out = Vec::new();
            rtcp::write_receiver_report(&mut out, 2, &[b], "fuzz");
            assert!(rtcp::packets(&out).all(|p| p.is_ok()));
        }
    }
}
