//! Places for consumers under a gateway-wide and a per-camera limit (WebRTC
//! viewers: `[webrtc] max_viewers`, `max_viewers_per_camera`; RTSP clients:
//! `[rtsp_server] max_rtsp_clients`, `max_rtsp_clients_per_camera`): taken
//! when a consumer asks, checked and counted under one lock (so concurrent
//! requests cannot both see the last free place), and given back when the
//! [`Place`] drops, that is when the request fails or the consumer ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which limit refused a viewer, with the count that reached it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Full {
    /// The per-camera limit is reached for this camera.
    #[error("camera {camera:?} has {count} {}, the most allowed ({})", .names.what, .names.camera_key)]
    Camera {
        camera: String,
        count: usize,
        names: Names,
    },
    /// The limit over all cameras is reached.
    #[error("the gateway has {count} {}, the most allowed ({})", .names.what, .names.total_key)]
    Gateway { count: usize, names: Names },
}

/// What the places are for, as the refusals say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Names {
    /// The consumers, plural (`viewers`).
    pub what: &'static str,
    /// The configuration key of the gateway-wide limit.
    pub total_key: &'static str,
    /// The configuration key of the per-camera limit.
    pub camera_key: &'static str,
}

/// Viewers (and offers being answered) over all cameras and per camera.
#[derive(Debug)]
pub(crate) struct Places {
    /// The gateway-wide limit.
    max_total: usize,
    /// The per-camera limit.
    max_per_camera: usize,
    /// What refusals call them.
    names: Names,
    /// What is taken; one lock, so a check and its count are one step.
    counts: Mutex<Counts>,
}

/// Places taken.
#[derive(Debug, Default)]
struct Counts {
    /// Over all cameras.
    total: usize,
    /// Camera id → places taken; no entry at zero.
    per_camera: HashMap<String, usize>,
}

/// One viewer's place, given back on drop.
#[derive(Debug)]
pub(crate) struct Place {
    /// Where to give it back.
    places: Arc<Places>,
    /// Whose count it is in.
    camera: String,
}

impl Places {
    pub fn new(max_total: usize, max_per_camera: usize, names: Names) -> Arc<Places> {
        Arc::new(Places {
            max_total,
            max_per_camera,
            names,
            counts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a consumer of `camera`, or says which limit is
    /// reached.
    pub fn try_take(self: &Arc<Self>, camera: &str) -> Result<Place, Full> {
        let mut counts = self.lock();
        let of_camera = counts.per_camera.get(camera).copied().unwrap_or(0);
        if of_camera >= self.max_per_camera {
            return Err(Full::Camera {
                camera: camera.to_string(),
                count: of_camera,
                names: self.names,
            });
        }
        if counts.total >= self.max_total {
            return Err(Full::Gateway {
                count: counts.total,
                names: self.names,
            });
        }
        counts.total += 1;
        *counts.per_camera.entry(camera.to_string()).or_insert(0) += 1;
        Ok(Place {
            places: self.clone(),
            camera: camera.to_string(),
        })
    }

    /// Places taken over all cameras.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Places taken for `camera`.
    #[cfg(test)]
    fn of_camera(&self, camera: &str) -> usize {
        self.lock().per_camera.get(camera).copied().unwrap_or(0)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.places.lock();
        counts.total -= 1;
        if let Some(n) = counts.per_camera.get_mut(&self.camera) {
            *n -= 1;
            if *n == 0 {
                counts.per_camera.remove(&self.camera);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    const NAMES: Names = Names {
        what: "viewers",
        total_key: "max_viewers",
        camera_key: "max_viewers_per_camera",
    };

    #[test]
    fn limits_per_camera_and_overall() {
        let places = Places::new(3, 2, NAMES);
        let a1 = places.try_take("a").unwrap();
        let _a2 = places.try_take("a").unwrap();
        assert_eq!(
            places.try_take("a").unwrap_err(),
            Full::Camera {
                camera: "a".into(),
                count: 2,
                names: NAMES
            }
        );
        let _b1 = places.try_take("b").unwrap();
        assert_eq!(
            places.try_take("b").unwrap_err(),
            Full::Gateway {
                count: 3,
                names: NAMES
            }
        );
        // A refusal takes nothing.
        assert_eq!(places.total(), 3);
        drop(a1);
        assert_eq!((places.total(), places.of_camera("a")), (2, 1));
        let _b2 = places.try_take("b").unwrap();
        assert_eq!(places.of_camera("b"), 2);
        assert_eq!(
            places.try_take("b").unwrap_err().to_string(),
            "camera \"b\" has 2 viewers, the most allowed (max_viewers_per_camera)"
        );
    }

    #[test]
    fn places_come_back_and_leave_no_entry() {
        let places = Places::new(10, 10, NAMES);
        let taken: Vec<_> = (0..5).map(|_| places.try_take("a").unwrap()).collect();
        drop(taken);
        assert_eq!(places.total(), 0);
        assert!(places.lock().per_camera.is_empty());
    }

    /// Offers arriving at the same moment on many threads: never more
    /// places than the limits allow, and exactly as many.
    #[test]
    fn concurrent_takes_never_exceed_the_limits() {
        const THREADS: usize = 16;
        for _ in 0..200 {
            let places = Places::new(5, 2, NAMES);
            let start = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let (places, start) = (places.clone(), start.clone());
                    std::thread::spawn(move || {
                        let camera = ["a", "b", "c"][i % 3];
                        start.wait();
                        places.try_take(camera).ok().map(|p| (camera, p))
                    })
                })
                .collect();
            let taken: Vec<_> = handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect();
            for camera in ["a", "b", "c"] {
                let n = taken.iter().filter(|(c, _)| *c == camera).count();
                assert!(n <= 2, "camera {camera} got {n} places");
            }
            // 16 offers for 3 x 2 places per camera, 5 overall: exactly 5.
            assert_eq!(taken.len(), 5);
            assert_eq!(places.total(), 5);
            drop(taken);
            assert_eq!(places.total(), 0);
        }
    }
}
