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

/// 64-bit FNV-1a of an id.
fn fnv(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64's finalizer: every input bit moves every output bit.
fn mix(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The weight of a node for a camera from their ids' hashes: each id is
/// hashed once per placement (10,000 cameras over 20 nodes is 200,000
/// weights, each a few multiplications).
fn combine(camera: u64, node: u64) -> u64 {
    mix(camera ^ mix(node))
}

/// The weight of `node` for `camera`: the ids hashed (FNV-1a), combined
/// and mixed (splitmix64) so that similar ids spread.
pub fn weight(camera: &str, node: &str) -> u64 {
    combine(fnv(camera), fnv(node))
}

/// How far above the mean a node's share may go: rendezvous hashing alone
/// spreads binomially (30 cameras over 3 nodes: 16 on one is not rare), so
/// each node takes at most 10 % more than its even share (bounded-load
/// rendezvous hashing).
pub const LOAD_BOUND: f64 = 1.1;

/// The owner each camera should have (none only when every node is full).
///
/// First each camera goes to the node of highest weight for it while that
/// node has room (at most [`LOAD_BOUND`] times the even share, and its
/// `max_cameras`); cameras in id order, so every node computes the same.
/// A camera whose best node is full stays with `current` owner if that is
/// a candidate with room, else goes to the next node by weight with room.
/// So when a node joins, the cameras it is best for move to it; when one
/// leaves, its cameras move (and a few that had spilled over may return to
/// their best node as room appears).
pub fn place<'a>(
    cameras: impl IntoIterator<Item = &'a str>,
    nodes: &[Candidate],
    current: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return out;
    }
    let mut ids: Vec<&str> = cameras.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    // The even share (plus the bound) of the nodes without a lower limit:
    // nodes whose `max_cameras` is below it take that, the others share
    // the rest.
    let mut limits: Vec<usize> = nodes.iter().filter_map(|n| n.max_cameras).collect();
    limits.sort_unstable();
    let mut rest = ids.len() as f64 * LOAD_BOUND;
    let mut sharing = nodes.len();
    for m in limits {
        if sharing > 1 && (m as f64) < rest / sharing as f64 {
            rest -= m as f64;
            sharing -= 1;
        } else {
            break;
        }
    }
    let share = (rest / sharing as f64).ceil() as usize;
    let room_of = |n: &Candidate| share.max(1).min(n.max_cameras.unwrap_or(usize::MAX));
    let mut load: HashMap<&str, usize> = HashMap::new();
    let has_room = |load: &HashMap<&str, usize>, n: &Candidate| {
        load.get(n.id.as_str()).copied().unwrap_or(0) < room_of(n)
    };
    let node_hashes: Vec<u64> = nodes.iter().map(|n| fnv(&n.id)).collect();
    let best = |camera: u64| {
        nodes
            .iter()
            .zip(&node_hashes)
            .max_by(|(a, ha), (b, hb)| {
                combine(camera, **ha)
                    .cmp(&combine(camera, **hb))
                    .then_with(|| b.id.cmp(&a.id))
            })
            .map(|(n, _)| n)
            .expect("nodes is not empty")
    };
    // Each camera to its best node, while it has room.
    let mut spilled = Vec::new();
    for camera in &ids {
        let n = best(fnv(camera));
        if has_room(&load, n) {
            *load.entry(n.id.as_str()).or_default() += 1;
            out.insert(camera.to_string(), n.id.clone());
        } else {
            spilled.push(*camera);
        }
    }
    // The rest: where they are, if there is room; else by weight.
    let mut ranked: Vec<(u64, &Candidate)> = Vec::with_capacity(nodes.len());
    for camera in spilled {
        let stay = current
            .get(camera)
            .and_then(|o| nodes.iter().find(|n| n.id == *o))
            .filter(|n| has_room(&load, n));
        let owner = stay.or_else(|| {
            ranked.clear();
            let hc = fnv(camera);
            ranked.extend(
                nodes
                    .iter()
                    .zip(&node_hashes)
                    .map(|(n, hn)| (combine(hc, *hn), n)),
            );
            ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
            ranked.iter().map(|(_, n)| *n).find(|n| has_room(&load, n))
        });
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
        let p = place(cams.iter().map(String::as_str), &nodes(20), &HashMap::new());
        assert_eq!(p.len(), 10_000);
        for (node, n) in counts(&p) {
            // 500 each on average; binomial spread.
            assert!((400..=600).contains(&n), "{node}: {n}");
        }
        // 30 over 3: at most 10 % over the even share, so 8 to 11 each.
        let p = place(
            cams.iter().take(30).map(String::as_str),
            &nodes(3),
            &HashMap::new(),
        );
        for (node, n) in counts(&p) {
            assert!((8..=11).contains(&n), "{node}: {n} of 30");
        }
    }

    #[test]
    fn only_the_leaving_nodes_cameras_move_and_they_come_back() {
        let cams = cameras(5_000);
        let all = nodes(10);
        let before = place(cams.iter().map(String::as_str), &all, &HashMap::new());
        let without: Vec<_> = all.iter().filter(|n| n.id != "node-3").cloned().collect();
        let owners: HashMap<String, String> = before.clone().into_iter().collect();
        let after = place(cams.iter().map(String::as_str), &without, &owners);
        let mut extra = 0;
        for c in &cams {
            if before[c] != "node-3" {
                extra += usize::from(before[c] != after[c]);
            } else {
                assert_ne!(after[c], "node-3");
            }
        }
        // Only cameras that had spilled over from a full node may return.
        assert!(
            extra <= cams.len() / 100,
            "{extra} cameras of live nodes moved"
        );
        // It returns: the cameras it is best for come back.
        let owners: HashMap<String, String> = after.into_iter().collect();
        let back = place(cams.iter().map(String::as_str), &all, &owners);
        let differ = cams.iter().filter(|c| back[*c] != before[*c]).count();
        assert!(differ <= cams.len() / 100, "{differ} differ from before");
    }

    #[test]
    fn limits_are_respected_and_the_rest_spills_over() {
        let cams = cameras(100);
        let mut ns = nodes(3);
        ns[0].max_cameras = Some(10);
        let p = place(cams.iter().map(String::as_str), &ns, &HashMap::new());
        let c = counts(&p);
        assert_eq!(p.len(), 100);
        assert_eq!(c["node-0"], 10);
        // All full: some cameras have no owner.
        for n in &mut ns {
            n.max_cameras = Some(20);
        }
        let p = place(cams.iter().map(String::as_str), &ns, &HashMap::new());
        assert_eq!(p.len(), 60);
        assert!(place(cams.iter().map(String::as_str), &[], &HashMap::new()).is_empty());
    }

    #[test]
    fn the_order_nodes_are_listed_in_does_not_matter() {
        let cams = cameras(500);
        let mut ns = nodes(5);
        let a = place(cams.iter().map(String::as_str), &ns, &HashMap::new());
        ns.reverse();
        assert_eq!(
            place(cams.iter().map(String::as_str), &ns, &HashMap::new()),
            a
        );
    }
}
