//! Building the graph on the exact vectors: Vamana's greedy search and RobustPrune (Subramanya et
//! al., "DiskANN", NeurIPS 2019), inserted in batches of doubling size as ParlayANN does, so the
//! build is parallel and deterministic (the same seed gives the same graph on any thread count).
//!
//! Each batch searches the graph as it was before the batch, prunes every new node's visited set
//! to at most `degree` edges (`α` keeps long edges: a candidate is dropped only when a kept
//! neighbour is `α` times closer to it than the node is), then adds the reverse edges, pruning a
//! node again when it holds more than `1.5 × degree`. At the end every node is pruned to
//! `degree`, the graph is made reachable from the entry point, and free slots are filled with the
//! nearest candidates that pruning dropped: a node block holds `degree` codes whatever its degree,
//! so the extra edges cost the search nothing to score.

use bitseek_codes::kernels::kernels;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// An empty neighbour slot.
pub(crate) const NONE: u32 = u32::MAX;

/// Build choices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    pub degree: usize,
    pub alpha: f32,
    /// Beam of the insertion searches.
    pub beam: usize,
    pub seed: u64,
}

/// Exact squared L2 distances between rows of `data`.
struct Space<'a> {
    data: &'a [f32],
    dim: usize,
    norm2: Vec<f32>,
    dot: fn(&[f32], &[f32]) -> f32,
}

impl Space<'_> {
    #[inline]
    fn row(&self, i: u32) -> &[f32] {
        &self.data[i as usize * self.dim..(i as usize + 1) * self.dim]
    }
    #[inline]
    fn dist(&self, a: u32, b: u32) -> f32 {
        (self.norm2[a as usize] + self.norm2[b as usize]
            - 2.0 * (self.dot)(self.row(a), self.row(b)))
        .max(0.0)
    }
    #[inline]
    fn dist_to(&self, q: &[f32], q2: f32, b: u32) -> f32 {
        (q2 + self.norm2[b as usize] - 2.0 * (self.dot)(q, self.row(b))).max(0.0)
    }
}

/// A set of rows with O(touched) clearing, reused across searches of one thread.
pub(crate) struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Visited {
    pub fn new(n: usize) -> Visited {
        Visited {
            bits: vec![0; n.div_ceil(64)],
            touched: Vec::new(),
        }
    }
    /// Marks `i`; true when it was not marked before.
    #[inline]
    pub fn insert(&mut self, i: u32) -> bool {
        let (w, b) = (i as usize / 64, 1u64 << (i % 64));
        if self.bits[w] & b != 0 {
            return false;
        }
        self.bits[w] |= b;
        self.touched.push(i);
        true
    }
    pub fn clear(&mut self) {
        for &i in &self.touched {
            self.bits[i as usize / 64] = 0;
        }
        self.touched.clear();
    }
}

/// The graph: `degree` neighbour slots per node (nearest first where pruning chose them, [`NONE`]
/// where empty) and the entry point.
pub(crate) struct Built {
    pub neighbors: Vec<u32>,
    pub entry: u32,
}

/// Builds the graph over the rows of `data` (`dim` each) by squared L2 distance.
pub(crate) fn build(data: &[f32], dim: usize, p: Params) -> Built {
    let n = data.len() / dim;
    let dot = kernels().dot_f32;
    let space = Space {
        data,
        dim,
        norm2: data.par_chunks(dim).map(|x| dot(x, x)).collect(),
        dot,
    };
    let entry = medoid(&space, n);
    let r = p.degree;
    let slack = r + r / 2;
    let mut adj: Vec<Vec<u32>> = vec![Vec::new(); n];
    // Candidates pruning dropped, nearest first: what fills free slots at the end.
    let mut spare: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut order: Vec<u32> = (0..n as u32).filter(|&i| i != entry).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(p.seed ^ 0x96a9_4b11));
    let cap = (n / 50).max(64);
    let mut done = 0;
    let mut batch = 1;
    while done < order.len() {
        let ids = &order[done..(done + batch).min(order.len())];
        let outs: Vec<(Vec<u32>, Vec<u32>)> = ids
            .par_iter()
            .map_init(
                || Visited::new(n),
                |vis, &v| {
                    let pool = greedy(&space, &adj, entry, space.row(v), p.beam, vis);
                    let pool: Vec<(f32, u32)> = pool.into_iter().filter(|&(_, c)| c != v).collect();
                    prune(&space, v, &pool, p.alpha, r)
                },
            )
            .collect();
        let mut reverse: Vec<(u32, u32)> = Vec::new();
        for (&v, (kept, dropped)) in ids.iter().zip(outs) {
            reverse.extend(kept.iter().map(|&u| (u, v)));
            adj[v as usize] = kept;
            spare[v as usize] = dropped;
        }
        reverse.sort_unstable();
        let groups: Vec<&[(u32, u32)]> = reverse.chunk_by(|a, b| a.0 == b.0).collect();
        let updated: Vec<(u32, Vec<u32>)> = groups
            .par_iter()
            .map(|g| {
                let u = g[0].0;
                let mut list = adj[u as usize].clone();
                for &(_, v) in g.iter() {
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                if list.len() > slack {
                    list = reprune(&space, u, &list, p.alpha, r);
                }
                (u, list)
            })
            .collect();
        for (u, list) in updated {
            adj[u as usize] = list;
        }
        done += ids.len();
        batch = (batch * 2).min(cap);
    }
    adj.par_iter_mut().enumerate().for_each(|(u, list)| {
        if list.len() > r {
            *list = reprune(&space, u as u32, list, p.alpha, r);
        }
    });
    connect(&space, &mut adj, entry, r, p.beam);
    let mut neighbors = vec![NONE; n * r];
    neighbors
        .par_chunks_mut(r)
        .enumerate()
        .for_each(|(u, slots)| {
            let list = &adj[u];
            slots[..list.len()].copy_from_slice(list);
            let mut len = list.len();
            for &c in &spare[u] {
                if len == r {
                    break;
                }
                if c as usize != u && !slots[..len].contains(&c) {
                    slots[len] = c;
                    len += 1;
                }
            }
        });
    Built { neighbors, entry }
}

/// The row nearest the mean: the entry point of every search.
fn medoid(space: &Space<'_>, n: usize) -> u32 {
    let dim = space.dim;
    let mut mean = vec![0f64; dim];
    for x in space.data.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(x) {
            *m += v as f64;
        }
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    let m2 = (space.dot)(&mean, &mean);
    (0..n as u32)
        .into_par_iter()
        .map(|i| (space.dist_to(&mean, m2, i), i))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map_or(0, |(_, i)| i)
}

/// Vamana's greedy search for `q` from `entry`: the expanded nodes with their distances, nearest
/// first (the candidate pool of the node being inserted).
fn greedy(
    space: &Space<'_>,
    adj: &[Vec<u32>],
    entry: u32,
    q: &[f32],
    beam: usize,
    vis: &mut Visited,
) -> Vec<(f32, u32)> {
    let q2 = (space.dot)(q, q);
    vis.clear();
    vis.insert(entry);
    // (distance, row, expanded), nearest first.
    let mut list: Vec<(f32, u32, bool)> = vec![(space.dist_to(q, q2, entry), entry, false)];
    let mut expanded = Vec::new();
    let mut cur = 0;
    while cur < list.len() {
        let (d, u, _) = list[cur];
        list[cur].2 = true;
        expanded.push((d, u));
        let mut lowest = list.len();
        for &v in &adj[u as usize] {
            if !vis.insert(v) {
                continue;
            }
            let dv = space.dist_to(q, q2, v);
            if list.len() >= beam && dv >= list[list.len() - 1].0 {
                continue;
            }
            let at = list.partition_point(|e| e.0 <= dv);
            list.insert(at, (dv, v, false));
            list.truncate(beam);
            lowest = lowest.min(at);
        }
        cur = if lowest <= cur { lowest } else { cur + 1 };
        while cur < list.len() && list[cur].2 {
            cur += 1;
        }
    }
    expanded.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    expanded
}

/// RobustPrune of `v`'s candidates (nearest first): at most `r` kept, and the nearest dropped ones
/// (up to `r`) for filling slots later.
fn prune(
    space: &Space<'_>,
    v: u32,
    pool: &[(f32, u32)],
    alpha: f32,
    r: usize,
) -> (Vec<u32>, Vec<u32>) {
    let mut kept: Vec<u32> = Vec::with_capacity(r);
    let mut dropped = Vec::new();
    for &(d, c) in pool {
        if c == v {
            continue;
        }
        if kept.len() < r && kept.iter().all(|&k| alpha * space.dist(k, c) > d) {
            kept.push(c);
        } else if dropped.len() < r {
            dropped.push(c);
        }
    }
    (kept, dropped)
}

/// RobustPrune of an existing list (distances recomputed).
fn reprune(space: &Space<'_>, v: u32, list: &[u32], alpha: f32, r: usize) -> Vec<u32> {
    let mut pool: Vec<(f32, u32)> = list.iter().map(|&c| (space.dist(v, c), c)).collect();
    pool.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    prune(space, v, &pool, alpha, r).0
}

/// Makes every node reachable from `entry`: each node the walk from `entry` misses gets an edge
/// from the nearest reached node the greedy search finds with a free slot (or, when none has
/// one, replaces that node's farthest edge, whose target the next round reconnects).
fn connect(space: &Space<'_>, adj: &mut [Vec<u32>], entry: u32, r: usize, beam: usize) {
    let n = adj.len();
    let mut vis = Visited::new(n);
    for _round in 0..64 {
        let reached = reachable(adj, entry);
        let missing: Vec<u32> = (0..n as u32).filter(|&i| !reached[i as usize]).collect();
        if missing.is_empty() {
            return;
        }
        let mut linked = reached.clone();
        for &u in &missing {
            if linked[u as usize] {
                continue;
            }
            let pool = greedy(space, adj, entry, space.row(u), beam, &mut vis);
            let from = pool
                .iter()
                .map(|&(_, c)| c)
                .find(|&c| reached[c as usize] && adj[c as usize].len() < r);
            match from {
                Some(c) => adj[c as usize].push(u),
                None => {
                    let c = pool
                        .iter()
                        .map(|&(_, c)| c)
                        .find(|&c| reached[c as usize])
                        .unwrap_or(entry);
                    let list = &mut adj[c as usize];
                    if list.len() < r {
                        list.push(u);
                    } else {
                        *list.last_mut().expect("a full list") = u;
                    }
                }
            }
            // Everything `u` reaches is now reached through it.
            mark_from(adj, u, &mut linked);
        }
    }
}

/// Nodes reachable from `entry`.
pub(crate) fn reachable(adj: &[Vec<u32>], entry: u32) -> Vec<bool> {
    let mut seen = vec![false; adj.len()];
    mark_from(adj, entry, &mut seen);
    seen
}

/// Marks everything reachable from `start` in `seen`.
fn mark_from(adj: &[Vec<u32>], start: u32, seen: &mut [bool]) {
    if seen[start as usize] {
        return;
    }
    let mut stack = vec![start];
    seen[start as usize] = true;
    while let Some(u) = stack.pop() {
        for &v in &adj[u as usize] {
            if !seen[v as usize] {
                seen[v as usize] = true;
                stack.push(v);
            }
        }
    }
}
