//! Drives the H.265 analyzer and repair gate (RFC 7798 access units) with a
//! script of access units and checks the gate's invariants after every
//! step.
//!
//! The input is framed rather than `arbitrary`-decoded, so that seeds are
//! real pictures from `tests/fixtures/h265/` (written by
//! `scripts/make-h265-fixtures.sh`): one byte of options (bit 0: SDP
//! parameter sets, bit 1: the forward policy), then access units
//! `[control][NAL count]` followed by that many `[length: u16 BE][NAL]`.
//! Control bit 0 is `damaged`, bit 1 `loss_before`, bits 2-3 the timestamp
//! step (+3600, 0, -7200, +10 s). A record cut short ends the script.

use bytes::Bytes;
use camgate::h265::analyzer::Analyzer;
use camgate::h265::repair::{OnDamage, RepairGate};
use camgate::h265::{header, is_irap, nal_type, AccessUnit, ParameterSets};

use super::h265_depacketizer::SPROP;

fn count(au: &AccessUnit, t: u8) -> usize {
    au.nals
        .iter()
        .filter(|n| header(n).map(|h| h.nal_type) == Some(t))
        .count()
}

/// Splits `n` length-prefixed NAL units off `rest`; `None` if cut short.
fn nals(rest: &mut &[u8], n: u8) -> Option<Vec<Bytes>> {
    let mut out = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        if len > tail.len() {
            return None;
        }
        out.push(Bytes::copy_from_slice(&tail[..len]));
        *rest = &tail[len..];
    }
    Some(out)
}

/// Runs one input (the fuzz target calls this with libFuzzer's bytes).
pub fn run(data: &[u8]) {
    let Some((&options, mut rest)) = data.split_first() else {
        return;
    };
    let params = (options & 1 != 0)
        .then(|| ParameterSets::from_sprop(SPROP.0, SPROP.1, SPROP.2).expect("valid sprop"));
    let policy = if options & 2 != 0 {
        OnDamage::Forward
    } else {
        OnDamage::DropUntilKeyframe
    };
    let mut analyzer = Analyzer::new(params.as_ref());
    let mut gate = RepairGate::new(policy, params);
    let mut timestamp = 0u32;
    while let [control, n, tail @ ..] = rest {
        rest = tail;
        let Some(nals) = nals(&mut rest, *n) else {
            break;
        };
        let step = [3600, 0, 0u32.wrapping_sub(7200), 900_000][usize::from(control >> 2 & 3)];
        timestamp = timestamp.wrapping_add(step);
        let au = AccessUnit {
            timestamp,
            nals,
            damaged: control & 1 != 0,
            loss_before: control & 2 != 0,
        };
        let analysis = analyzer.analyze(&au);
        assert!(analysis.damage.windows(2).all(|w| w[0] < w[1]));
        assert!(!analysis.irap || is_irap(&au));
        assert!(!(analysis.irap && analysis.rasl));
        let before = [nal_type::VPS, nal_type::SPS, nal_type::PPS].map(|t| count(&au, t));
        let out = gate.process(au, &analysis);
        assert!(out.forward.is_some() != out.dropped.is_some());
        assert!(!out.discontinuity || out.forward.is_some());
        if let Some(fwd) = &out.forward {
            // Inserted at most once, and only where missing.
            for (t, n) in [nal_type::VPS, nal_type::SPS, nal_type::PPS]
                .into_iter()
                .zip(before)
            {
                assert!(count(fwd, t) <= n.max(1));
            }
        }
        if policy == OnDamage::Forward {
            assert!(out.forward.is_some());
        }
        gate.check_invariants();
    }
    let s = analyzer.stats();
    assert!(s.irap <= s.access_units && s.b_frames <= s.access_units);
}
