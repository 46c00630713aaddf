//! Which node should own each camera: rendezvous (highest random weight)
//! hashing over the live nodes, with an optional per-node limit. Sans-IO
//! and deterministic, so every node computes the same answer from the same
//! view, and when a node joins or leaves only the cameras that must move
//! do (those it takes or those it had), about 1/N of them.

use std::collections::{BTreeMap, HashMap};

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id.
    pub id: String,
    /// Most cameras it takes (`None`: no limit).
    pub max_cameras: Option<usize>,
}

/// The weight of `node` for `camera`: a 64-bit FNV-1a of both, mixed
/// (splitmix64) so that similar ids spread.
pub fn weight(camera: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in camera.bytes().chain([0xff]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The owner each camera should have: the node of highest weight for it
/// that still has room. Cameras are placed in id order, so limits are
/// applied the same way on every node. A camera gets no owner only when
/// every node is full (or there is no node).
pub fn place<'a>(
    cameras: impl IntoIterator<Item = &'a str>,
    nodes: &[Candidate],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return out;
    }
    let mut load: HashMap<&str, usize> = HashMap::new();
    let mut ids: Vec<&str> = cameras.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let limited = nodes.iter().any(|n| n.max_cameras.is_some());
    let mut ranked: Vec<(u64, &Candidate)> = Vec::with_capacity(nodes.len());
    for camera in ids {
        let owner = if limited {
            ranked.clear();
            ranked.extend(nodes.iter().map(|n| (weight(camera, &n.id), n)));
            ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
            ranked.iter().map(|(_, n)| *n).find(|n| {
                n.max_cameras
                    .is_none_or(|m| load.get(n.id.as_str()).copied().unwrap_or(0) < m)
            })
        } else {
            nodes.iter().max_by(|a, b| {
                weight(camera, &a.id)
                    .cmp(&weight(camera, &b.id))
                    .then_with(|| b.id.cmp(&a.id))
            })
        };
        if let Some(n) = owner {
            *load.entry(n.id.as_str()).or_default() += 1;
            out.insert(camera.to_string(), n.id.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: format!("node-{i}"),
                max_cameras: None,
            })
            .collect()
    }

    fn cameras(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cam-{i:05}")).collect()
    }

    fn counts(p: &BTreeMap<String, String>) -> BTreeMap<&str, usize> {
        let mut c = BTreeMap::new();
        for n in p.values() {
            *c.entry(n.as_str()).or_default() += 1;
        }
        c
    }

    #[test]
    fn spreads_evenly() {
        let cams = cameras(10_000);
        let p = place(cams.iter().map(String::as_str), &nodes(20));
        assert_eq!(p.len(), 10_000);
        for (node, n) in counts(&p) {
            // 500 each on average; binomial spread.
            assert!((400..=600).contains(&n), "{node}: {n}");
        }
        let p = place(cams.iter().take(30).map(String::as_str), &nodes(3));
        for (node, n) in counts(&p) {
            assert!((7..=13).contains(&n), "{node}: {n} of 30");
        }
    }

    #[test]
    fn only_the_leaving_nodes_cameras_move_and_they_come_back() {
        let cams = cameras(5_000);
        let all = nodes(10);
        let before = place(cams.iter().map(String::as_str), &all);
        let without: Vec<_> = all.iter().filter(|n| n.id != "node-3").cloned().collect();
        let after = place(cams.iter().map(String::as_str), &without);
        for c in &cams {
            if before[c] != "node-3" {
                assert_eq!(before[c], after[c], "{c} moved without need");
            } else {
                assert_ne!(after[c], "node-3");
            }
        }
        // It returns: the same placement as before.
        assert_eq!(place(cams.iter().map(String::as_str), &all), before);
    }

    #[test]
    fn limits_are_respected_and_the_rest_spills_over() {
        let cams = cameras(100);
        let mut ns = nodes(3);
        ns[0].max_cameras = Some(10);
        let p = place(cams.iter().map(String::as_str), &ns);
        let c = counts(&p);
        assert_eq!(p.len(), 100);
        assert_eq!(c["node-0"], 10);
        // All full: some cameras have no owner.
        for n in &mut ns {
            n.max_cameras = Some(20);
        }
        let p = place(cams.iter().map(String::as_str), &ns);
        assert_eq!(p.len(), 60);
        assert!(place(cams.iter().map(String::as_str), &[]).is_empty());
    }

    #[test]
    fn the_order_nodes_are_listed_in_does_not_matter() {
        let cams = cameras(500);
        let mut ns = nodes(5);
        let a = place(cams.iter().map(String::as_str), &ns);
        ns.reverse();
        assert_eq!(place(cams.iter().map(String::as_str), &ns), a);
    }
}
