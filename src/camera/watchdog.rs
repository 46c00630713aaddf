//! The deadlines of one playing RTSP session, sans-IO: media (RTP at all),
//! pictures (RTP that forms video), the UDP probe of `transport = "auto"`,
//! and keyframe refresh after damage (ask again, then restart). The driver
//! reports what happened with `handle_*(now)`, sleeps until
//! [`Watchdog::poll_timeout`] and calls [`Watchdog::handle_timeout`],
//! which says why the session must end, if it must.

use std::time::{Duration, Instant};

/// While the picture stays frozen, the keyframe request is repeated this
/// often (a request or its answer may be lost).
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(500);
/// Fewest time between two keyframe requests: a new damage episode asks at
/// once unless a request went out this recently.
pub const MIN_REFRESH_GAP: Duration = Duration::from_millis(50);

/// The limits a watchdog enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// No RTP, or no complete video picture, this long while playing ends
    /// the session.
    pub media_timeout: Duration,
    /// `Some` in `auto` mode over UDP: no RTP at all this long after PLAY
    /// ends the session so the supervisor falls back to TCP.
    pub udp_probe: Option<Duration>,
    /// How long the picture may stay frozen after damage before the
    /// session is restarted; `None`: automatic from the measured GOP (see
    /// [`crate::config::refresh_timeout_for`]).
    pub refresh_timeout: Option<Duration>,
}

/// Why a session must end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expired {
    /// No RTP for `media_timeout` while playing.
    NoMedia(Duration),
    /// RTP arrives but no video picture completed for `media_timeout`.
    NoPictures(Duration),
    /// Nothing at all arrived over UDP within the probe time.
    NoUdpMedia(Duration),
    /// Frozen after damage this long without a clean keyframe.
    RefreshTimeout(Duration),
}

/// The session's deadlines.
#[derive(Debug)]
pub struct Watchdog {
    /// What is enforced.
    limits: Limits,
    /// When PLAY succeeded; no deadline runs before.
    playing_since: Option<Instant>,
    /// When the last RTP packet arrived (or PLAY, before the first).
    last_media: Option<Instant>,
    /// RTP packets of this session: the UDP probe holds until the first.
    media_packets: u64,
    /// When the last video picture completed (or PLAY, before the first).
    last_picture: Option<Instant>,
    /// Since when the picture has been frozen waiting for a keyframe.
    frozen_since: Option<Instant>,
    /// The measured keyframe interval, for the automatic refresh timeout.
    gop: Option<Duration>,
    /// A keyframe request is wanted.
    want_refresh: bool,
    /// When a keyframe was last requested (rate limit, repeat).
    last_refresh: Option<Instant>,
}

impl Watchdog {
    /// A watchdog for a session that is not playing yet.
    pub fn new(limits: Limits) -> Self {
        Watchdog {
            limits,
            playing_since: None,
            last_media: None,
            media_packets: 0,
            last_picture: None,
            frozen_since: None,
            gop: None,
            want_refresh: false,
            last_refresh: None,
        }
    }

    /// PLAY succeeded at `now`: the media and picture deadlines start.
    pub fn handle_playing(&mut self, now: Instant) {
        if self.playing_since.is_none() {
            self.playing_since = Some(now);
            self.last_media = Some(now);
            self.last_picture = Some(now);
        }
    }

    /// When PLAY succeeded, if it did.
    pub fn playing_since(&self) -> Option<Instant> {
        self.playing_since
    }

    /// An RTP packet of the session arrived at `now` (from the camera:
    /// rejected packets do not count).
    pub fn handle_media(&mut self, now: Instant) {
        self.media_packets += 1;
        self.last_media = Some(now);
    }

    /// `count` video pictures completed at `now` (the media path reports
    /// them).
    pub fn handle_pictures(&mut self, count: u64, now: Instant) {
        if count > 0 {
            self.last_picture = Some(now);
        }
    }

    /// The video's repair state after the last packet or timeout: since
    /// when it has been frozen after damage (`None`: clean), and the
    /// measured GOP.
    pub fn handle_video(&mut self, frozen_since: Option<Instant>, gop: Option<Duration>) {
        self.frozen_since = frozen_since;
        if gop.is_some() {
            self.gop = gop;
        }
    }

    /// Something asks for a keyframe (the repair gate, a viewer).
    pub fn handle_refresh_wanted(&mut self) {
        self.want_refresh = true;
    }

    /// True when a keyframe request should go out at `now` (wanted, and
    /// the last one is at least [`MIN_REFRESH_GAP`] old); the caller sends
    /// it. Call after every `handle_*`.
    pub fn poll_refresh(&mut self, now: Instant) -> bool {
        if !self.want_refresh {
            return false;
        }
        if self
            .last_refresh
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_REFRESH_GAP)
        {
            return false;
        }
        self.want_refresh = false;
        self.last_refresh = Some(now);
        true
    }

    /// The refresh timeout in force, from the configured one and the
    /// measured GOP ([`crate::config::refresh_timeout_for`]).
    pub fn refresh_timeout(&self) -> Duration {
        crate::config::refresh_timeout_for(self.limits.refresh_timeout, self.gop)
    }

    fn media_deadline(&self) -> Option<Instant> {
        let start = self.playing_since?;
        Some(match (self.limits.udp_probe, self.media_packets) {
            (Some(probe), 0) => start + probe,
            _ => self.last_media.unwrap_or(start) + self.limits.media_timeout,
        })
    }

    fn picture_deadline(&self) -> Option<Instant> {
        // Before the first packet the media deadline speaks.
        if self.media_packets == 0 {
            return None;
        }
        Some(self.last_picture? + self.limits.media_timeout)
    }

    fn refresh_deadline(&self) -> Option<Instant> {
        Some(self.frozen_since? + self.refresh_timeout())
    }

    /// When a frozen picture's keyframe request is repeated.
    fn reask(&self) -> Option<Instant> {
        self.frozen_since?;
        Some(self.last_refresh? + REFRESH_INTERVAL)
    }

    /// When a wanted but rate-limited request may go out.
    fn pending_refresh(&self) -> Option<Instant> {
        if !self.want_refresh {
            return None;
        }
        Some(self.last_refresh? + MIN_REFRESH_GAP)
    }

    /// The earliest deadline; call [`Watchdog::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.media_deadline(),
            self.picture_deadline(),
            self.refresh_deadline(),
            self.reask(),
            self.pending_refresh(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Checks the deadlines at `now`: `Err` says why the session must end.
    /// A frozen picture whose last request is old wants another (see
    /// [`Watchdog::poll_refresh`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Expired> {
        if let Some(since) = self.frozen_since {
            if self.refresh_deadline().is_some_and(|d| now >= d) {
                return Err(Expired::RefreshTimeout(
                    now.saturating_duration_since(since),
                ));
            }
        }
        if self.reask().is_some_and(|d| now >= d) {
            self.want_refresh = true;
        }
        if self.media_deadline().is_some_and(|d| now >= d) {
            return Err(match self.limits.udp_probe {
                Some(probe) if self.media_packets == 0 => Expired::NoUdpMedia(probe),
                _ => Expired::NoMedia(self.limits.media_timeout),
            });
        }
        if self.picture_deadline().is_some_and(|d| now >= d) {
            return Err(Expired::NoPictures(self.limits.media_timeout));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            media_timeout: 5 * S,
            udp_probe: None,
            refresh_timeout: None,
        }
    }

    /// Runs the watchdog's timers until `until` with media and pictures
    /// every `every` (none when `None`); returns the first expiry.
    fn run(
        w: &mut Watchdog,
        from: Instant,
        until: Instant,
        media: bool,
        pictures: bool,
    ) -> Option<(Expired, Instant)> {
        let mut now = from;
        while now < until {
            now += 40 * MS;
            if media {
                w.handle_media(now);
            }
            w.handle_pictures(u64::from(pictures), now);
            if let Some(t) = w.poll_timeout() {
                if t <= now {
                    if let Err(e) = w.handle_timeout(now) {
                        return Some((e, now));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn nothing_runs_before_play() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.handle_timeout(t0 + 3600 * S), Ok(()));
    }

    #[test]
    fn steady_media_and_pictures_never_expire() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        assert_eq!(run(&mut w, t0, t0 + 60 * S, true, true), None);
    }

    #[test]
    fn silence_expires_after_the_media_timeout() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        w.handle_media(t0 + S);
        w.handle_pictures(1, t0 + S);
        assert_eq!(w.poll_timeout(), Some(t0 + 6 * S));
        assert_eq!(w.handle_timeout(t0 + 6 * S - MS), Ok(()));
        assert_eq!(w.handle_timeout(t0 + 6 * S), Err(Expired::NoMedia(5 * S)));
    }

    #[test]
    fn media_without_pictures_expires() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        let (why, at) = run(&mut w, t0, t0 + 60 * S, true, false).expect("expires");
        assert_eq!(why, Expired::NoPictures(5 * S));
        assert!(
            at >= t0 + 5 * S && at < t0 + 5 * S + 50 * MS,
            "{:?}",
            at - t0
        );
    }

    #[test]
    fn udp_probe_holds_until_the_first_packet_only() {
        let t0 = Instant::now();
        let probe = Limits {
            udp_probe: Some(3 * S),
            ..limits()
        };
        let mut w = Watchdog::new(probe);
        w.handle_playing(t0);
        assert_eq!(w.poll_timeout(), Some(t0 + 3 * S));
        assert_eq!(
            w.handle_timeout(t0 + 3 * S),
            Err(Expired::NoUdpMedia(3 * S))
        );

        // Once media flowed, the ordinary timeout applies.
        let mut w = Watchdog::new(probe);
        w.handle_playing(t0);
        w.handle_media(t0 + S);
        w.handle_pictures(1, t0 + S);
        assert_eq!(w.handle_timeout(t0 + 4 * S), Ok(()));
        assert_eq!(w.handle_timeout(t0 + 6 * S), Err(Expired::NoMedia(5 * S)));
    }

    #[test]
    fn frozen_picture_asks_again_then_restarts() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        w.handle_media(t0);
        w.handle_video(Some(t0), Some(S));
        w.handle_refresh_wanted();
        assert!(w.poll_refresh(t0));
        assert!(!w.poll_refresh(t0));
        // Asked again every REFRESH_INTERVAL while frozen.
        let mut asks = vec![];
        let mut now = t0;
        let ended = loop {
            now += 10 * MS;
            w.handle_media(now);
            w.handle_pictures(1, now);
            if w.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = w.handle_timeout(now) {
                    break (e, now);
                }
            }
            if w.poll_refresh(now) {
                asks.push(now - t0);
            }
        };
        // GOP 1 s: automatic timeout is the 4 s minimum.
        assert_eq!(ended.0, Expired::RefreshTimeout(4 * S));
        assert_eq!(ended.1, t0 + 4 * S);
        assert_eq!(asks.len(), 7, "{asks:?}");
        assert_eq!(asks[0], REFRESH_INTERVAL);
    }

    #[test]
    fn refresh_timeout_follows_the_gop_or_the_configuration() {
        let mut w = Watchdog::new(limits());
        assert_eq!(w.refresh_timeout(), 4 * S);
        w.handle_video(None, Some(3 * S));
        assert_eq!(w.refresh_timeout(), 6 * S);
        // A later report without a GOP keeps the measured one.
        w.handle_video(None, None);
        assert_eq!(w.refresh_timeout(), 6 * S);
        let w = Watchdog::new(Limits {
            refresh_timeout: Some(2 * S),
            ..limits()
        });
        assert_eq!(w.refresh_timeout(), 2 * S);
    }

    #[test]
    fn a_clean_keyframe_stops_the_refresh_clock() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        w.handle_video(Some(t0), None);
        w.handle_video(None, None);
        assert_eq!(run(&mut w, t0, t0 + 30 * S, true, true), None);
    }

    #[test]
    fn requests_are_rate_limited_but_not_lost() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(limits());
        w.handle_playing(t0);
        w.handle_media(t0);
        w.handle_refresh_wanted();
        assert!(w.poll_refresh(t0));
        w.handle_refresh_wanted();
        assert!(!w.poll_refresh(t0 + 10 * MS));
        // The pending request wakes the driver when the gap is over.
        assert_eq!(w.poll_timeout(), Some(t0 + MIN_REFRESH_GAP));
        assert!(w.poll_refresh(t0 + MIN_REFRESH_GAP));
        assert!(!w.poll_refresh(t0 + S));
    }
}
