//! Drives the H.264 analyzer and repair gate (RFC 6184 access units) with
//! arbitrary NAL units and checks the gate's invariants after every step.

use arbitrary::Arbitrary;
use bytes::Bytes;
use camgate::h264::analyzer::Analyzer;
use camgate::h264::repair::{OnDamage, RepairGate};
use camgate::h264::{nal_type, AccessUnit, ParameterSets};

/// One scripted access unit.
#[derive(Arbitrary, Debug)]
struct Unit {
    /// Added to the previous RTP timestamp.
    ts_delta: u32,
    /// `AccessUnit::damaged`.
    damaged: bool,
    /// `AccessUnit::loss_before`.
    loss_before: bool,
    /// NAL units, each with its header byte.
    nals: Vec<Vec<u8>>,
}

/// The script: policy, whether SDP parameter sets exist, the access units.
#[derive(Arbitrary, Debug)]
struct Script {
    forward: bool,
    sdp_params: bool,
    units: Vec<Unit>,
}

fn count(au: &AccessUnit, t: u8) -> usize {
    au.nals
        .iter()
        .filter(|n| n.first().map(|h| h & 0x1f) == Some(t))
        .count()
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
        ParameterSets::from_sprop("Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==").expect("valid sprop")
    });
    let policy = if script.forward {
        OnDamage::Forward
    } else {
        OnDamage::DropUntilKeyframe
    };
    let mut analyzer = Analyzer::new(params.as_ref());
    let mut gate = RepairGate::new(policy, params);
    let mut timestamp = 0u32;
    for unit in script.units {
        timestamp = timestamp.wrapping_add(unit.ts_delta);
        let au = AccessUnit {
            timestamp,
            nals: unit.nals.into_iter().map(Bytes::from).collect(),
            damaged: unit.damaged,
            loss_before: unit.loss_before,
        };
        let analysis = analyzer.analyze(&au);
        assert!(analysis.damage.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(analysis.idr, au.is_idr());
        let (sps_in, pps_in) = (count(&au, nal_type::SPS), count(&au, nal_type::PPS));
        let out = gate.process(au, &analysis);
        assert!(out.forward.is_some() != out.dropped.is_some());
        assert!(!out.discontinuity || out.forward.is_some());
        if let Some(fwd) = &out.forward {
            // Inserted at most once, and only where missing.
            assert!(count(fwd, nal_type::SPS) <= sps_in.max(1));
            assert!(count(fwd, nal_type::PPS) <= pps_in.max(1));
        }
        if policy == OnDamage::Forward {
            assert!(out.forward.is_some());
        }
        gate.check_invariants();
    }
    let s = analyzer.stats();
    assert!(s.idr <= s.access_units && s.b_frames <= s.access_units);
}
