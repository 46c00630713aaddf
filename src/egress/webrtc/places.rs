//! Places for viewers under `[webrtc] max_viewers` and
//! `max_viewers_per_camera`: taken when an offer arrives, checked and
//! counted under one lock (so concurrent offers cannot both see the last
//! free place), and given back when the [`ViewerPlace`] drops, that is when
//! the offer fails or the viewer ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which limit refused a viewer, with the count that reached it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Full {
    /// `max_viewers_per_camera` is reached for this camera.
    #[error("camera {camera:?} has {viewers} viewers, the most allowed (max_viewers_per_camera)")]
    Camera { camera: String, viewers: usize },
    /// `max_viewers` is reached over all cameras.
    #[error("the gateway has {viewers} viewers, the most allowed (max_viewers)")]
    Gateway { viewers: usize },
}

/// Viewers (and offers being answered) over all cameras and per camera.
#[derive(Debug)]
pub(crate) struct ViewerPlaces {
    /// `[webrtc] max_viewers`.
    max_total: usize,
    /// `[webrtc] max_viewers_per_camera`.
    max_per_camera: usize,
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
pub(crate) struct ViewerPlace {
    /// Where to give it back.
    places: Arc<ViewerPlaces>,
    /// Whose count it is in.
    camera: String,
}

impl ViewerPlaces {
    pub fn new(max_total: usize, max_per_camera: usize) -> Arc<ViewerPlaces> {
        Arc::new(ViewerPlaces {
            max_total,
            max_per_camera,
            counts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a viewer of `camera`, or says which limit is
    /// reached.
    pub fn try_take(self: &Arc<Self>, camera: &str) -> Result<ViewerPlace, Full> {
        let mut counts = self.lock();
        let of_camera = counts.per_camera.get(camera).copied().unwrap_or(0);
        if of_camera >= self.max_per_camera {
            return Err(Full::Camera {
                camera: camera.to_string(),
                viewers: of_camera,
            });
        }
        if counts.total >= self.max_total {
            return Err(Full::Gateway {
                viewers: counts.total,
            });
        }
        counts.total += 1;
        *counts.per_camera.entry(camera.to_string()).or_insert(0) += 1;
        Ok(ViewerPlace {
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

impl Drop for ViewerPlace {
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

    #[test]
    fn limits_per_camera_and_overall() {
        let places = ViewerPlaces::new(3, 2);
        let a1 = places.try_take("a").unwrap();
        let _a2 = places.try_take("a").unwrap();
        assert_eq!(
            places.try_take("a").unwrap_err(),
            Full::Camera {
                camera: "a".into(),
                viewers: 2
            }
        );
        let _b1 = places.try_take("b").unwrap();
        assert_eq!(
            places.try_take("b").unwrap_err(),
            Full::Gateway { viewers: 3 }
        );
        // A refusal takes nothing.
        assert_eq!(places.total(), 3);
        drop(a1);
        assert_eq!((places.total(), places.of_camera("a")), (2, 1));
        let _b2 = places.try_take("b").unwrap();
        assert_eq!(places.of_camera("b"), 2);
    }

    #[test]
    fn places_come_back_and_leave_no_entry() {
        let places = ViewerPlaces::new(10, 10);
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
            let places = ViewerPlaces::new(5, 2);
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
