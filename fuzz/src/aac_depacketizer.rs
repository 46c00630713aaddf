//! Drives the AAC depacketizers (RFC 3640 `mpeg4-generic`, RFC 6416
//! `MP4A-LATM`) with a script of packets and checks their invariants after
//! every step; the SDP config the stream starts from may be fuzzed too.
//!
//! The input is framed rather than `arbitrary`-decoded, so that seeds are
//! real GStreamer packets from `tests/fixtures/aac/` (written by
//! `scripts/make-aac-fixtures.sh`): one byte of options, then records
//! `[control][length: u16 BE][payload]`. Options bits 0-2 pick the format
//! (see [`FORMATS`]); with bit 7 the first record is not a packet but the
//! `config=` bytes of the fmtp. Control bit 0 is the marker; bits 1-2 the
//! timestamp step (0, +1024, +1, -1024); bit 3 reports a loss before the
//! packet. A record cut short ends the script.

use bytes::Bytes;
use camgate::aac::{AacFormat, Depacketizer};

/// Encoding and fmtp of each format the options byte picks (`{config}` is
/// replaced by the fuzzed config, or the one given).
pub const FORMATS: [(&str, &str, &str); 8] = [
    // GStreamer's rtpmp4gpay: AAC-hbr, 48 kHz mono.
    (
        "MPEG4-GENERIC",
        "mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={config}",
        "1188",
    ),
    // AAC-lbr.
    (
        "MPEG4-GENERIC",
        "mode=AAC-lbr;sizelength=6;indexlength=2;indexdeltalength=2;config={config}",
        "1188",
    ),
    // Every optional AU-header field and an auxiliary section.
    (
        "MPEG4-GENERIC",
        "mode=generic;sizelength=13;indexlength=3;indexdeltalength=3;CTSDeltaLength=4;\
         DTSDeltaLength=4;randomAccessIndication=1;streamStateIndication=2;\
         auxiliaryDataSizeLength=8;config={config}",
        "1210",
    ),
    // No AU headers: one access unit per packet, ended by the marker.
    ("MPEG4-GENERIC", "mode=generic;config={config}", "1188"),
    // GStreamer's rtpmp4apay: LATM, config out of band.
    ("MP4A-LATM", "cpresent=0;config={config}", "40002310"),
    // LATM, config in band only.
    ("MP4A-LATM", "cpresent=1", ""),
    // LATM, 2 sub-frames per element, a CRC, config out of band and in band.
    ("MP4A-LATM", "cpresent=1;config={config}", "410026203fd5a0"),
    // LATM 24 kHz stereo (RFC 6416 style), out of band.
    ("MP4A-LATM", "cpresent=0;config={config}", "400024203fc0"),
];

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let Some((&options, mut rest)) = data.split_first() else {
        return;
    };
    let (encoding, fmtp, default_config) = FORMATS[usize::from(options & 7)];
    let mut config = default_config.to_string();
    if options & 0x80 != 0 {
        let Some((bytes, next)) = record(rest) else {
            return;
        };
        config = bytes.1.iter().map(|b| format!("{b:02x}")).collect();
        rest = next;
    }
    let fmtp = fmtp.replace("{config}", &config);
    let Ok(format) = AacFormat::from_sdp(encoding, 48_000, Some(&fmtp)) else {
        return;
    };
    let mut d = Depacketizer::new(format);
    d.check_invariants();
    let mut ts = 0u32;
    while let Some(((control, payload), next)) = record(rest) {
        rest = next;
        ts = ts.wrapping_add([0, 1024, 1, 0u32.wrapping_sub(1024)][usize::from(control >> 1 & 3)]);
        if control & 8 != 0 {
            d.lost();
            d.check_invariants();
        }
        d.push(&Bytes::copy_from_slice(payload), ts, control & 1 != 0);
        d.check_invariants();
        while let Some(au) = d.pull() {
            d.check_invariants();
            assert!(!au.data.is_empty());
            assert!(au.data.len() <= camgate::aac::depacketizer::MAX_AU_BYTES);
        }
    }
}

/// A record's control byte and payload.
type Record<'a> = (u8, &'a [u8]);

/// The next `[control][length][payload]` record and what follows it.
fn record(data: &[u8]) -> Option<(Record<'_>, &[u8])> {
    let [control, hi, lo, tail @ ..] = data else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
    let (payload, next) = tail.split_at(len);
    Some(((*control, payload), next))
}
