//! Fuzzes the RTCP compound packet parser (RFC 3550 section 6) with
//! arbitrary bytes, and round-trips arbitrary reports through the writers
//! (RR, SR, SDES, BYE, PLI, FIR) and the parser.

use arbitrary::Arbitrary;
use camgate::rtp::rtcp::{self, ReportBlock, SenderReport};

#[derive(Arbitrary, Debug)]
struct Reports {
    ssrc: u32,
    blocks: Vec<(u32, u8, i32, u32, u32, u32, u32)>,
    cname: String,
    sr: Option<(u32, u64, u32, u32, u32)>,
    bye: Option<(Vec<u32>, Option<String>)>,
    pli: Option<u32>,
    fir: Option<(u32, u8)>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Bytes from the network.
    Raw(Vec<u8>),
    /// What camgate writes, which its own parser must read back.
    Written(Reports),
}

/// Walks a compound packet: every body inside the input, the walk ends at
/// the first error, and the SR finder agrees with the walk.
fn walk(data: &[u8]) -> usize {
    let mut n = 0;
    let mut failed = false;
    for p in rtcp::packets(data) {
        assert!(!failed, "packets() yielded after an error");
        match p {
            Ok(p) => {
                assert!(p.body.len() + 4 <= data.len());
                assert!(p.count < 32);
                n += 1;
            }
            Err(_) => failed = true,
        }
    }
    let sr = rtcp::find_sender_report(data);
    assert_eq!(
        rtcp::parse_sender_report(data),
        sr.as_ref().ok().and_then(|s| *s)
    );
    if let Ok(Some(sr)) = sr {
        assert_eq!(sr.lsr(), (sr.ntp_timestamp >> 16) as u32);
    }
    n
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes):
/// decoded as `Input` the way `fuzz_target!` does, ignored when too short.
pub fn run(data: &[u8]) {
    let Ok(input) =
        <Input as arbitrary::Arbitrary>::arbitrary_take_rest(arbitrary::Unstructured::new(data))
    else {
        return;
    };
    match input {
        Input::Raw(data) => {
            walk(&data);
        }
        Input::Written(r) => {
            let mut out = Vec::new();
            let mut expected = 0;
            let sr = r.sr.map(|(ssrc, ntp, rtp, packets, octets)| SenderReport {
                ssrc,
                ntp_timestamp: ntp,
                rtp_timestamp: rtp,
                packet_count: packets,
                octet_count: octets,
            });
            if let Some(sr) = &sr {
                rtcp::write_sender_report(&mut out, sr);
                rtcp::write_sdes_cname(&mut out, sr.ssrc, &r.cname);
                expected += 2;
            }
            let blocks: Vec<ReportBlock> = r
                .blocks
                .iter()
                .map(
                    |&(ssrc, fraction_lost, cumulative_lost, ext, jitter, lsr, dlsr)| ReportBlock {
                        ssrc,
                        fraction_lost,
                        cumulative_lost,
                        extended_highest_sequence: ext,
                        jitter,
                        last_sr: lsr,
                        delay_since_last_sr: dlsr,
                    },
                )
                .collect();
            rtcp::write_receiver_report(&mut out, r.ssrc, &blocks, &r.cname);
            expected += 2;
            if let Some((ssrcs, reason)) = &r.bye {
                rtcp::write_bye(&mut out, ssrcs, reason.as_deref());
                expected += 1;
            }
            if let Some(media) = r.pli {
                rtcp::write_pli(&mut out, r.ssrc, media);
                expected += 1;
            }
            if let Some((media, seq)) = r.fir {
                rtcp::write_fir(&mut out, r.ssrc, media, seq);
                expected += 1;
            }
            assert_eq!(out.len() % 4, 0);
            assert!(rtcp::packets(&out).all(|p| p.is_ok()));
            assert_eq!(walk(&out), expected);
            assert_eq!(rtcp::parse_sender_report(&out), sr);
        }
    }
}
