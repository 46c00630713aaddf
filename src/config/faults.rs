//! `[camera.faults]`: the faults a simulated camera injects, seeded so runs
//! repeat (the firmware and network failures camgate exists to survive).
//! The schema lives in config, below the simulator that acts on it.

/// Which faults a sim camera injects. All probabilities are 0.0..=1.0; all
/// periods are seconds, 0 meaning never. Default: no fault, PLI honoured.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Seed of the fault generator (per camera session: seed ^ hash(name)).
    pub seed: u64,
    /// TCP: probability that an interleaved RTP packet is cut short, the
    /// rest of it silently lost (the old live555 partial-write bug): the
    /// probability per video frame (×3 for keyframes), one packet of the
    /// frame picked with a weight of its size.
    pub truncate: f64,
    /// TCP: like `truncate`, but the cut packet is then sent again whole.
    pub truncate_resend: f64,
    /// TCP: probability of garbage bytes between two frames (checked before
    /// each interleaved `$` frame).
    pub garbage: f64,
    /// Every this many seconds, stop sending for `stall_ms`, then send what
    /// was held back in a burst.
    pub stall_every_s: f64,
    /// Length of a stall.
    pub stall_ms: u64,
    /// UDP: probability a packet is lost.
    pub udp_loss: f64,
    /// UDP: probability a packet is delayed behind the next few.
    pub udp_reorder: f64,
    /// UDP: probability a packet is sent twice.
    pub udp_duplicate: f64,
    /// Every this many seconds, the video SSRC changes (and sequence numbers
    /// restart), as when a camera's encoder restarts.
    pub ssrc_change_every_s: f64,
    /// Every this many seconds, the RTP timestamp jumps forward by 10 s.
    pub timestamp_jump_every_s: f64,
    /// Every this many seconds, the camera drops the connection (reboot).
    pub reboot_every_s: f64,
    /// A playing session that received no RTCP receiver report from the
    /// client for this many seconds is ended (TCP: the connection is
    /// dropped; UDP: the session stops sending), as some firmware does.
    pub require_rr_s: f64,
    /// SPS and PPS only in the SDP, never in band.
    pub sprop_only: bool,
    /// Honour RTCP PLI/FIR by jumping to the clip's next IDR at once. The
    /// ONVIF SetSynchronizationPoint trigger is honoured either way, as on
    /// cameras that ignore RTCP feedback but implement ONVIF.
    pub honour_pli: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 1,
            truncate: 0.0,
            truncate_resend: 0.0,
            garbage: 0.0,
            stall_every_s: 0.0,
            stall_ms: 0,
            udp_loss: 0.0,
            udp_reorder: 0.0,
            udp_duplicate: 0.0,
            ssrc_change_every_s: 0.0,
            timestamp_jump_every_s: 0.0,
            reboot_every_s: 0.0,
            require_rr_s: 0.0,
            sprop_only: false,
            honour_pli: true,
        }
    }
}

/// What a query value must be, for parsing and error messages.
enum Kind {
    /// A probability, 0.0..=1.0.
    Probability,
    /// A period in seconds, finite and not negative (0: never).
    Seconds,
    /// A whole number.
    Integer,
    /// `1`/`0`, `true`/`false`, `on`/`off`, `yes`/`no`; empty means true.
    Flag,
}

/// The query keys, in the order [`Faults::to_query`] writes them.
const KEYS: [(&str, Kind); 15] = [
    ("seed", Kind::Integer),
    ("truncate", Kind::Probability),
    ("truncate_resend", Kind::Probability),
    ("garbage", Kind::Probability),
    ("stall_every_s", Kind::Seconds),
    ("stall_ms", Kind::Integer),
    ("udp_loss", Kind::Probability),
    ("udp_reorder", Kind::Probability),
    ("udp_duplicate", Kind::Probability),
    ("ssrc_change_every_s", Kind::Seconds),
    ("timestamp_jump_every_s", Kind::Seconds),
    ("reboot_every_s", Kind::Seconds),
    ("require_rr_s", Kind::Seconds),
    ("sprop_only", Kind::Flag),
    ("honour_pli", Kind::Flag),
];

/// A parsed query value.
enum Value {
    /// Probabilities and periods.
    Real(f64),
    /// Seeds and milliseconds.
    Integer(u64),
    /// Flags.
    Flag(bool),
}

impl Faults {
    /// The faults a camera URL query (`truncate=0.02&seed=7&sprop_only=1`,
    /// without the `?`) asks for, over the defaults. See
    /// [`Faults::with_query`].
    pub fn from_query(query: &str) -> Result<Faults, String> {
        Faults::default().with_query(query)
    }

    /// These faults with the keys of `query` (the field names) overriding
    /// them; keys may repeat (the last wins) and are percent-decoded. The
    /// error is a sentence naming the unknown key or the key whose value is
    /// out of range, for a 400 answer.
    pub fn with_query(&self, query: &str) -> Result<Faults, String> {
        let mut f = self.clone();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some((name, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
                return Err(format!("unknown fault key `{key}`"));
            };
            let v = parse_value(kind, value.trim()).ok_or_else(|| {
                let want = match kind {
                    Kind::Probability => "a probability from 0 to 1",
                    Kind::Seconds => "a number of seconds, 0 or more",
                    Kind::Integer => "a whole number, 0 or more",
                    Kind::Flag => "1 or 0",
                };
                format!("fault key `{name}` has value `{value}`; it must be {want}")
            })?;
            f.set(name, v);
        }
        Ok(f)
    }

    /// The query that gives these faults through [`Faults::from_query`]:
    /// only the keys that differ from the defaults, in a fixed order
    /// (`seed` first, then as the fields). Empty for the defaults.
    pub fn to_query(&self) -> String {
        let default = Faults::default();
        let mut parts = Vec::new();
        for (name, _) in &KEYS {
            let (mine, theirs) = (self.get(name), default.get(name));
            if mine != theirs {
                parts.push(format!("{name}={mine}"));
            }
        }
        parts.join("&")
    }

    /// One field by query key, formatted for [`Faults::to_query`].
    fn get(&self, name: &str) -> String {
        let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
        match name {
            "seed" => self.seed.to_string(),
            "truncate" => self.truncate.to_string(),
            "truncate_resend" => self.truncate_resend.to_string(),
            "garbage" => self.garbage.to_string(),
            "stall_every_s" => self.stall_every_s.to_string(),
            "stall_ms" => self.stall_ms.to_string(),
            "udp_loss" => self.udp_loss.to_string(),
            "udp_reorder" => self.udp_reorder.to_string(),
            "udp_duplicate" => self.udp_duplicate.to_string(),
            "ssrc_change_every_s" => self.ssrc_change_every_s.to_string(),
            "timestamp_jump_every_s" => self.timestamp_jump_every_s.to_string(),
            "reboot_every_s" => self.reboot_every_s.to_string(),
            "require_rr_s" => self.require_rr_s.to_string(),
            "sprop_only" => flag(self.sprop_only),
            "honour_pli" => flag(self.honour_pli),
            _ => String::new(),
        }
    }

    /// Sets one field by query key; `v` has the key's kind.
    fn set(&mut self, name: &str, v: Value) {
        match (name, v) {
            ("seed", Value::Integer(n)) => self.seed = n,
            ("stall_ms", Value::Integer(n)) => self.stall_ms = n,
            ("truncate", Value::Real(x)) => self.truncate = x,
            ("truncate_resend", Value::Real(x)) => self.truncate_resend = x,
            ("garbage", Value::Real(x)) => self.garbage = x,
            ("stall_every_s", Value::Real(x)) => self.stall_every_s = x,
            ("udp_loss", Value::Real(x)) => self.udp_loss = x,
            ("udp_reorder", Value::Real(x)) => self.udp_reorder = x,
            ("udp_duplicate", Value::Real(x)) => self.udp_duplicate = x,
            ("ssrc_change_every_s", Value::Real(x)) => self.ssrc_change_every_s = x,
            ("timestamp_jump_every_s", Value::Real(x)) => self.timestamp_jump_every_s = x,
            ("reboot_every_s", Value::Real(x)) => self.reboot_every_s = x,
            ("require_rr_s", Value::Real(x)) => self.require_rr_s = x,
            ("sprop_only", Value::Flag(b)) => self.sprop_only = b,
            ("honour_pli", Value::Flag(b)) => self.honour_pli = b,
            _ => {}
        }
    }

    /// An error naming the first setting out of range (a probability
    /// outside 0..=1, a negative or non-finite period), for front ends that
    /// build `Faults` in code; sessions clamp such values rather than panic.
    pub fn validate(&self) -> Result<(), String> {
        // Round-trip through the query parser, which checks every range.
        Faults::from_query(&self.to_query()).map(|_| ())
    }
}

/// Parses one query value of `kind`.
fn parse_value(kind: &Kind, v: &str) -> Option<Value> {
    match kind {
        Kind::Probability => {
            let x: f64 = v.parse().ok()?;
            (0.0..=1.0).contains(&x).then_some(Value::Real(x))
        }
        Kind::Seconds => {
            let x: f64 = v.parse().ok()?;
            (x.is_finite() && x >= 0.0).then_some(Value::Real(x))
        }
        Kind::Integer => v.parse().ok().map(Value::Integer),
        Kind::Flag => match v.to_ascii_lowercase().as_str() {
            "" | "1" | "true" | "on" | "yes" => Some(Value::Flag(true)),
            "0" | "false" | "off" | "no" => Some(Value::Flag(false)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_overrides_a_base_and_round_trips() {
        let f = Faults::from_query("truncate=0.02&seed=7&udp_loss=0.05&sprop_only=1&honour_pli=0")
            .unwrap();
        assert_eq!(f.truncate, 0.02);
        assert_eq!(f.seed, 7);
        assert_eq!(f.udp_loss, 0.05);
        assert!(f.sprop_only && !f.honour_pli);
        assert_eq!(
            f.to_query(),
            "seed=7&truncate=0.02&udp_loss=0.05&sprop_only=1&honour_pli=0"
        );
        assert_eq!(Faults::from_query(&f.to_query()).unwrap(), f);
        assert_eq!(Faults::default().to_query(), "");
        assert_eq!(Faults::from_query("").unwrap(), Faults::default());

        let all = Faults {
            seed: u64::MAX,
            truncate: 0.1,
            truncate_resend: 1.0 / 3.0,
            garbage: 1e-9,
            stall_every_s: 2.5,
            stall_ms: 700,
            udp_loss: 0.5,
            udp_reorder: 0.25,
            udp_duplicate: 1.0,
            ssrc_change_every_s: 3.0,
            timestamp_jump_every_s: 4.0,
            reboot_every_s: 60.0,
            require_rr_s: 8.0,
            sprop_only: true,
            honour_pli: false,
        };
        assert_eq!(Faults::from_query(&all.to_query()).unwrap(), all);
        assert!(all.validate().is_ok());

        let base = Faults {
            garbage: 0.5,
            ..Faults::default()
        };
        let f = base.with_query("seed=3&garbage=0&sprop_only").unwrap();
        assert_eq!((f.seed, f.garbage, f.sprop_only), (3, 0.0, true));
    }

    #[test]
    fn bad_queries_name_the_key() {
        for (q, key) in [
            ("bogus=1", "bogus"),
            ("truncate=2", "truncate"),
            ("truncate=NaN", "truncate"),
            ("udp_loss=-0.1", "udp_loss"),
            ("stall_every_s=inf", "stall_every_s"),
            ("stall_ms=-5", "stall_ms"),
            ("require_rr_s=-1", "require_rr_s"),
            ("seed=x", "seed"),
            ("honour_pli=maybe", "honour_pli"),
        ] {
            let e = Faults::from_query(q).unwrap_err();
            assert!(e.contains(&format!("`{key}`")), "{q}: {e}");
        }
        let bad = Faults {
            udp_loss: 3.0,
            ..Faults::default()
        };
        assert!(bad.validate().unwrap_err().contains("udp_loss"));
    }
}
