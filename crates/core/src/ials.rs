//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008).
//!
//! Every known (user, item) pair has preference 1 and confidence c >= 1; all
//! other pairs have preference 0 and confidence 1.  Minimises
//!   sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + reg (|x_u|^2 + |y_i|^2)
//! by alternating exact (Cholesky) or conjugate-gradient row solves using the
//! precomputed Gram matrix YᵀY.  Deterministic for a seed: every row is solved
//! independently (rayon only decides who solves it) and Gram matrices are
//! reduced over fixed chunks in a fixed order.
//!
//! After the last iteration the user factors are re-solved exactly against the
//! final item factors, so `score_user(u)` and `fold_in(items of u)` run the
//! same computation and agree.

use crate::linalg::{cholesky_solve, dot};
use nalgebra::{DMatrixView, DMatrixViewMut};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use std::time::Instant;

/// Rows with at least this many entries use the gemm Gram update.
const GEMM_MIN_ROWS: usize = 24;
const GEMM_BLOCK: usize = 512;

/// How a rating r becomes a confidence c.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Confidence {
    /// c = 1 + alpha (ratings ignored).
    Binary,
    /// c = 1 + alpha * r.
    Linear,
    /// c = 1 + alpha * ln(1 + r / eps).
    Log { eps: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    /// Exact normal-equation solve per row: O(n_u k² + k³).
    Cholesky,
    /// `steps` warm-started conjugate-gradient steps per row: O(steps (n_u k + k²)).
    ConjugateGradient { steps: usize },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IalsParams {
    pub factors: usize,
    pub regularization: f64,
    pub alpha: f64,
    pub confidence: Confidence,
    pub iterations: usize,
    pub solver: Solver,
    /// Standard deviation of the Normal(0, ·) initial factors.
    pub init_std: f64,
    pub seed: u64,
}

impl Default for IalsParams {
    /// Best measured configuration on ML-100K (see REPORT.md).
    fn default() -> Self {
        IalsParams {
            factors: 64,
            regularization: 30.0,
            alpha: 2.0,
            confidence: Confidence::Log { eps: 1.0 },
            iterations: 15,
            solver: Solver::ConjugateGradient { steps: 3 },
            init_std: 0.01,
            seed: 42,
        }
    }
}

impl IalsParams {
    fn confidence_of(&self, r: f64) -> f64 {
        match self.confidence {
            Confidence::Binary => 1.0 + self.alpha,
            Confidence::Linear => 1.0 + self.alpha * r,
            Confidence::Log { eps } => 1.0 + self.alpha * (1.0 + r / eps).ln(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct IalsModel {
    /// Sorted item ids; score vectors are indexed like this.
    pub items: Vec<u64>,
    /// Sorted user ids known at training time.
    pub users: Vec<u64>,
    pub params: IalsParams,
    /// n_items × k, row-major.
    pub item_factors: Vec<f64>,
    /// n_users × k, row-major.
    pub user_factors: Vec<f64>,
    /// YᵀY of the final item factors (k × k, full), kept for fold-in.
    pub yty: Vec<f64>,
    /// Train items of each user (index CSR), for excluding seen items.
    pub user_ptr: Vec<usize>,
    pub user_items: Vec<u32>,
    /// Wall seconds of each iteration (both half-steps), then the final user pass.
    pub iteration_seconds: Vec<f64>,
}

/// Deterministic Gram matrix FᵀF (full, k × k) of an n × k row-major matrix.
pub fn gram(f: &[f64], k: usize) -> Vec<f64> {
    const ROWS: usize = 512;
    let parts: Vec<Vec<f64>> = f
        .par_chunks(k * ROWS)
        .map(|chunk| {
            let mut g = vec![0.0; k * k];
            for row in chunk.chunks_exact(k) {
                for p in 0..k {
                    let rp = row[p];
                    let gr = &mut g[p * k..p * k + p + 1];
                    for (gq, &rq) in gr.iter_mut().zip(&row[..p + 1]) {
                        *gq += rp * rq;
                    }
                }
            }
            g
        })
        .collect();
    let mut g = vec![0.0; k * k];
    for part in parts {
        for (a, b) in g.iter_mut().zip(part) {
            *a += b;
        }
    }
    for p in 0..k {
        for q in 0..p {
            g[q * k + p] = g[p * k + q];
        }
    }
    g
}

struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    /// Gathered rows sqrt(c-1)·y_j for the blocked (gemm) Gram update.
    g: Vec<f64>,
}

impl Scratch {
    fn new(k: usize) -> Self {
        Scratch {
            a: vec![0.0; k * k],
            b: vec![0.0; k],
            r: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            g: Vec::new(),
        }
    }
}

/// Exact solve of one row: (YᵀY + Σ (c-1) y yᵀ + reg I) x = Σ c y.
fn solve_row_exact(
    y: &[f64],
    yty: &[f64],
    k: usize,
    reg: f64,
    row: &[(usize, f64)],
    s: &mut Scratch,
    x: &mut [f64],
) {
    s.a.copy_from_slice(yty);
    for d in 0..k {
        s.a[d * k + d] += reg;
    }
    s.b.iter_mut().for_each(|v| *v = 0.0);
    if row.len() >= GEMM_MIN_ROWS && row.iter().all(|r| r.1 >= 1.0) {
        // A += Gᵀ G with G the gathered rows sqrt(c-1)·y_j, blocked through
        // matrixmultiply (SIMD kernel); b = Σ c y_j.
        for block in row.chunks(GEMM_BLOCK) {
            s.g.clear();
            for &(j, c) in block {
                let yj = &y[j * k..j * k + k];
                let w = (c - 1.0).max(0.0).sqrt();
                for (b, &v) in s.b.iter_mut().zip(yj) {
                    *b += c * v;
                }
                s.g.extend(yj.iter().map(|v| w * v));
            }
            let n = block.len();
            let g = DMatrixView::from_slice_with_strides(&s.g, n, k, k, 1);
            let gt = DMatrixView::from_slice_with_strides(&s.g, k, n, 1, k);
            DMatrixViewMut::from_slice(&mut s.a, k, k).gemm(1.0, &gt, &g, 1.0);
        }
        cholesky_solve(&mut s.a, &s.b, x, k);
        return;
    }
    for &(j, c) in row {
        let yj = &y[j * k..j * k + k];
        let w = c - 1.0;
        for p in 0..k {
            s.b[p] += c * yj[p];
            let wp = w * yj[p];
            let ar = &mut s.a[p * k..p * k + p + 1];
            for (aq, &yq) in ar.iter_mut().zip(&yj[..p + 1]) {
                *aq += wp * yq;
            }
        }
    }
    cholesky_solve(&mut s.a, &s.b, x, k);
}

/// A v = (YᵀY + reg I) v + Σ (c-1)(y.v) y, written into `out`.
fn apply_a(
    y: &[f64],
    yty: &[f64],
    k: usize,
    reg: f64,
    row: &[(usize, f64)],
    v: &[f64],
    out: &mut [f64],
) {
    for p in 0..k {
        out[p] = dot(&yty[p * k..p * k + k], v) + reg * v[p];
    }
    for &(j, c) in row {
        let yj = &y[j * k..j * k + k];
        let w = (c - 1.0) * dot(yj, v);
        for (o, &yq) in out.iter_mut().zip(yj) {
            *o += w * yq;
        }
    }
}

/// Warm-started CG (as in the `implicit` library) from the current `x`.
#[allow(clippy::too_many_arguments)] // the hot loop's inputs, kept flat on purpose
fn solve_row_cg(
    y: &[f64],
    yty: &[f64],
    k: usize,
    reg: f64,
    row: &[(usize, f64)],
    steps: usize,
    s: &mut Scratch,
    x: &mut [f64],
) {
    // r = b - A x
    apply_a(y, yty, k, reg, row, x, &mut s.ap);
    s.r.iter_mut().zip(&s.ap).for_each(|(r, a)| *r = -a);
    for &(j, c) in row {
        let yj = &y[j * k..j * k + k];
        for (r, &yq) in s.r.iter_mut().zip(yj) {
            *r += c * yq;
        }
    }
    s.p.copy_from_slice(&s.r);
    let mut rs_old = dot(&s.r, &s.r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        apply_a(y, yty, k, reg, row, &s.p, &mut s.ap);
        let alpha = rs_old / dot(&s.p, &s.ap);
        for (((xq, rq), &pq), &apq) in x.iter_mut().zip(&mut s.r).zip(&s.p).zip(&s.ap) {
            *xq += alpha * pq;
            *rq -= alpha * apq;
        }
        let rs_new = dot(&s.r, &s.r);
        let beta = rs_new / rs_old;
        for (pq, &rq) in s.p.iter_mut().zip(&s.r) {
            *pq = rq + beta * *pq;
        }
        rs_old = rs_new;
    }
}

/// Re-solves every row of `x` (n × k) against the fixed other side `y`.
#[allow(clippy::too_many_arguments)]
fn solve_side(
    x: &mut [f64],
    y: &[f64],
    k: usize,
    ptr: &[usize],
    idx: &[u32],
    conf: &[f64],
    reg: f64,
    solver: Solver,
) {
    let yty = gram(y, k);
    x.par_chunks_mut(k).enumerate().for_each_init(
        || (Scratch::new(k), Vec::<(usize, f64)>::new()),
        |(s, row), (u, xu)| {
            row.clear();
            row.extend((ptr[u]..ptr[u + 1]).map(|p| (idx[p] as usize, conf[p])));
            match solver {
                Solver::Cholesky => solve_row_exact(y, &yty, k, reg, row, s, xu),
                Solver::ConjugateGradient { steps } => {
                    solve_row_cg(y, &yty, k, reg, row, steps, s, xu)
                }
            }
        },
    );
}

/// Trains on (user id, item id, rating) triples; a repeated (user, item) pair
/// keeps its last rating.
pub fn train(interactions: &[(u64, u64, f64)], params: &IalsParams) -> IalsModel {
    let data = Indexed::new(interactions);
    let k = params.factors;
    let (n_users, n_items) = (data.users.len(), data.items.len());
    let u_conf: Vec<f64> = data
        .user_ratings
        .iter()
        .map(|&r| params.confidence_of(r))
        .collect();
    let (i_ptr, i_idx, i_r) = data.transpose();
    let i_conf: Vec<f64> = i_r.iter().map(|&r| params.confidence_of(r)).collect();

    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let normal = Normal::new(0.0, params.init_std).expect("init_std must be finite and >= 0");
    let mut uf: Vec<f64> = (0..n_users * k).map(|_| normal.sample(&mut rng)).collect();
    let mut itf: Vec<f64> = (0..n_items * k).map(|_| normal.sample(&mut rng)).collect();

    let mut iteration_seconds = Vec::new();
    for _ in 0..params.iterations {
        let t = Instant::now();
        solve_side(
            &mut itf,
            &uf,
            k,
            &i_ptr,
            &i_idx,
            &i_conf,
            params.regularization,
            params.solver,
        );
        solve_side(
            &mut uf,
            &itf,
            k,
            &data.user_ptr,
            &data.user_items,
            &u_conf,
            params.regularization,
            params.solver,
        );
        iteration_seconds.push(t.elapsed().as_secs_f64());
    }
    // Final exact user pass, identical to fold-in.
    let t = Instant::now();
    solve_side(
        &mut uf,
        &itf,
        k,
        &data.user_ptr,
        &data.user_items,
        &u_conf,
        params.regularization,
        Solver::Cholesky,
    );
    iteration_seconds.push(t.elapsed().as_secs_f64());
    let yty = gram(&itf, k);
    IalsModel {
        items: data.items,
        users: data.users,
        params: *params,
        item_factors: itf,
        user_factors: uf,
        yty,
        user_ptr: data.user_ptr,
        user_items: data.user_items,
        iteration_seconds,
    }
}

impl IalsModel {
    pub fn item_index(&self, item: u64) -> Option<usize> {
        self.items.binary_search(&item).ok()
    }

    pub fn user_index(&self, user: u64) -> Option<usize> {
        self.users.binary_search(&user).ok()
    }

    fn scores_for(&self, x: &[f64]) -> Vec<f64> {
        let k = self.params.factors;
        self.item_factors
            .chunks_exact(k)
            .map(|y| dot(y, x))
            .collect()
    }

    /// Scores of every item (model item order) for a training user.
    pub fn score_user(&self, user: u64) -> Option<Vec<f64>> {
        let u = self.user_index(user)?;
        let k = self.params.factors;
        Some(self.scores_for(&self.user_factors[u * k..u * k + k]))
    }

    /// Item indices the training user interacted with.
    pub fn train_items(&self, user: u64) -> Vec<usize> {
        match self.user_index(user) {
            Some(u) => self.user_items[self.user_ptr[u]..self.user_ptr[u + 1]]
                .iter()
                .map(|&i| i as usize)
                .collect(),
            None => Vec::new(),
        }
    }

    /// User vector for an arbitrary set of (item id, rating), item factors fixed.
    /// Unknown items are ignored; an empty set gives the zero vector.
    pub fn fold_in_vector(&self, rated: &[(u64, f64)]) -> Vec<f64> {
        let k = self.params.factors;
        let row: Vec<(usize, f64)> = map_rated(&self.items, rated)
            .into_iter()
            .map(|(i, r)| (i, self.params.confidence_of(r)))
            .collect();
        let mut x = vec![0.0; k];
        if !row.is_empty() {
            let mut s = Scratch::new(k);
            solve_row_exact(
                &self.item_factors,
                &self.yty,
                k,
                self.params.regularization,
                &row,
                &mut s,
                &mut x,
            );
        }
        x
    }

    /// Scores of every item for a (possibly new) user's current ratings, without retraining.
    pub fn fold_in(&self, rated: &[(u64, f64)]) -> Vec<f64> {
        self.scores_for(&self.fold_in_vector(rated))
    }

    /// A model for serving from its items' side alone (as saved by the
    /// batch): scores and fold-in work, trained users are not known.
    pub fn from_item_factors(items: Vec<u64>, item_factors: Vec<f64>, params: IalsParams) -> Self {
        assert_eq!(item_factors.len(), items.len() * params.factors);
        let yty = gram(&item_factors, params.factors);
        IalsModel {
            items,
            users: Vec::new(),
            params,
            item_factors,
            user_factors: Vec::new(),
            yty,
            user_ptr: vec![0],
            user_items: Vec::new(),
            iteration_seconds: Vec::new(),
        }
    }

    /// The `n` best unseen items of every trained user, with their scores.
    pub fn recommend_all(&self, n: usize) -> Vec<(u64, Vec<(u64, f64)>)> {
        let k = self.params.factors;
        (0..self.users.len())
            .into_par_iter()
            .map(|u| {
                let scores = self.scores_for(&self.user_factors[u * k..(u + 1) * k]);
                let mut excluded = vec![false; self.items.len()];
                for &i in &self.user_items[self.user_ptr[u]..self.user_ptr[u + 1]] {
                    excluded[i as usize] = true;
                }
                let top = crate::eval::top_k(&scores, &excluded, n)
                    .into_iter()
                    .map(|j| (self.items[j], scores[j]))
                    .collect();
                (self.users[u], top)
            })
            .collect()
    }

    /// For every item, the `n` most similar `eligible` items by the cosine
    /// of their factors (the item itself left out); items without factors
    /// (a zero vector) get none.
    pub fn similar_items(&self, eligible: &[bool], n: usize) -> Vec<(u64, Vec<(u64, f64)>)> {
        let k = self.params.factors;
        let unit: Vec<f64> = self
            .item_factors
            .chunks_exact(k)
            .flat_map(|y| {
                let norm = dot(y, y).sqrt();
                y.iter()
                    .map(move |v| if norm > 0.0 { v / norm } else { 0.0 })
            })
            .collect();
        (0..self.items.len())
            .into_par_iter()
            .map(|i| {
                let yi = &unit[i * k..(i + 1) * k];
                if yi.iter().all(|v| *v == 0.0) {
                    return (self.items[i], Vec::new());
                }
                let scores: Vec<f64> = unit
                    .chunks_exact(k)
                    .enumerate()
                    .map(|(j, yj)| {
                        if j != i && eligible.get(j).copied().unwrap_or(false) {
                            dot(yi, yj)
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect();
                let top = crate::eval::top_k(&scores, &[], n)
                    .into_iter()
                    .filter(|&j| scores[j].is_finite() && scores[j] > f64::NEG_INFINITY)
                    .map(|j| (self.items[j], scores[j]))
                    .collect();
                (self.items[i], top)
            })
            .collect()
    }

    /// Top-k item ids for a user's ratings, excluding the rated items.
    pub fn recommend(&self, rated: &[(u64, f64)], k: usize) -> Vec<u64> {
        let scores = self.fold_in(rated);
        let exclude: Vec<usize> = rated
            .iter()
            .filter_map(|&(i, _)| self.item_index(i))
            .collect();
        let mut excluded = vec![false; self.items.len()];
        for i in exclude {
            excluded[i] = true;
        }
        crate::eval::top_k(&scores, &excluded, k)
            .into_iter()
            .map(|i| self.items[i])
            .collect()
    }
}

/// A user's ratings as one number, the same whatever their order: equal
/// fingerprints mean (but for a 2^-64 chance) the same (movie, half-star)
/// pairs, so the list computed at training is what fold-in would give now.
pub fn ratings_fingerprint(ratings: impl IntoIterator<Item = (u64, f64)>) -> u64 {
    ratings.into_iter().fold(0u64, |acc, (movie, rating)| {
        acc.wrapping_add(rating_hash(movie, rating))
    })
}

/// One rating's share of [`ratings_fingerprint`]: the fingerprint is the
/// wrapping sum of these, so it can be accumulated rating by rating.
pub fn rating_hash(movie: u64, rating: f64) -> u64 {
    let half_stars = (rating * 2.0).round() as u64;
    splitmix64(movie.wrapping_mul(16).wrapping_add(half_stars))
}

/// SplitMix64's finalizer: a stable, well-mixed 64-bit hash of one value.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Interactions mapped to dense indices: sorted distinct user and item ids,
/// and a user-major CSR with (item index, rating), duplicates resolved so that
/// the last occurrence of a (user, item) pair in the input wins.
#[derive(Clone, Debug)]
pub(crate) struct Indexed {
    pub users: Vec<u64>,
    pub items: Vec<u64>,
    pub user_ptr: Vec<usize>,
    pub user_items: Vec<u32>,
    pub user_ratings: Vec<f64>,
}

impl Indexed {
    fn new(interactions: &[(u64, u64, f64)]) -> Self {
        let mut users: Vec<u64> = interactions.iter().map(|t| t.0).collect();
        users.sort_unstable();
        users.dedup();
        let mut items: Vec<u64> = interactions.iter().map(|t| t.1).collect();
        items.sort_unstable();
        items.dedup();
        let mut trip: Vec<(u32, u32, usize)> = interactions
            .iter()
            .enumerate()
            .map(|(pos, &(u, i, _))| {
                (
                    users.binary_search(&u).unwrap() as u32,
                    items.binary_search(&i).unwrap() as u32,
                    pos,
                )
            })
            .collect();
        trip.sort_unstable();
        let mut user_ptr = vec![0usize; users.len() + 1];
        let mut user_items = Vec::with_capacity(trip.len());
        let mut user_ratings = Vec::with_capacity(trip.len());
        for (n, &(u, i, pos)) in trip.iter().enumerate() {
            // keep the last occurrence (largest pos) of each (u, i)
            if let Some(next) = trip.get(n + 1)
                && next.0 == u
                && next.1 == i
            {
                continue;
            }
            user_ptr[u as usize + 1] += 1;
            user_items.push(i);
            user_ratings.push(interactions[pos].2);
        }
        for u in 0..users.len() {
            user_ptr[u + 1] += user_ptr[u];
        }
        Indexed {
            users,
            items,
            user_ptr,
            user_items,
            user_ratings,
        }
    }

    fn nnz(&self) -> usize {
        self.user_items.len()
    }

    /// Item-major transpose: (ptr, user indices, ratings); users ascending in each item.
    fn transpose(&self) -> (Vec<usize>, Vec<u32>, Vec<f64>) {
        let n_items = self.items.len();
        let mut ptr = vec![0usize; n_items + 1];
        for &i in &self.user_items {
            ptr[i as usize + 1] += 1;
        }
        for i in 0..n_items {
            ptr[i + 1] += ptr[i];
        }
        let mut fill = ptr.clone();
        let mut idx = vec![0u32; self.nnz()];
        let mut val = vec![0f64; self.nnz()];
        for u in 0..self.users.len() {
            for p in self.user_ptr[u]..self.user_ptr[u + 1] {
                let i = self.user_items[p] as usize;
                idx[fill[i]] = u as u32;
                val[fill[i]] = self.user_ratings[p];
                fill[i] += 1;
            }
        }
        (ptr, idx, val)
    }
}

/// Maps (item id, rating) pairs onto item indices of a sorted id list,
/// dropping unknown items; for a repeated item the last pair wins.
pub(crate) fn map_rated(items: &[u64], rated: &[(u64, f64)]) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, usize, f64)> = rated
        .iter()
        .enumerate()
        .filter_map(|(pos, &(id, r))| items.binary_search(&id).ok().map(|i| (i, pos, r)))
        .collect();
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<(usize, f64)> = Vec::with_capacity(v.len());
    for (i, _, r) in v {
        match out.last_mut() {
            Some(last) if last.0 == i => last.1 = r,
            _ => out.push((i, r)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two disjoint taste groups: users 0..20 like items 0..10, users 20..40 like 10..20.
    fn blocks() -> Vec<(u64, u64, f64)> {
        let mut v = Vec::new();
        for u in 0..40u64 {
            let base = if u < 20 { 0 } else { 10 };
            for j in 0..10u64 {
                // each user skips one item of its group; user 0 also skips item 3
                if j != u % 10 && !(u == 0 && j == 3) {
                    v.push((u, base + j, 1.0 + ((u + j) % 5) as f64));
                }
            }
        }
        v
    }

    fn small() -> IalsParams {
        IalsParams {
            factors: 4,
            regularization: 0.1,
            alpha: 5.0,
            iterations: 10,
            ..IalsParams::default()
        }
    }

    #[test]
    fn batch_lists_exclude_seen_items_and_similar_items_share_a_group() {
        let data = blocks();
        let m = train(&data, &small());
        let lists = m.recommend_all(3);
        assert_eq!(lists.len(), 40);
        for (user, list) in &lists {
            assert!(!list.is_empty());
            for (item, _) in list {
                assert!(
                    !data.iter().any(|r| r.0 == *user && r.1 == *item),
                    "{user} saw {item}"
                );
            }
            // Each user's single unseen item of their own group comes first.
            let group = if *user < 20 { 0..10 } else { 10..20 };
            assert!(group.contains(&list[0].0), "{user}: {list:?}");
        }
        let mut eligible = vec![true; 20];
        eligible[15] = false;
        let similar = m.similar_items(&eligible, 5);
        for (item, list) in &similar {
            assert_eq!(list.len(), 5);
            let group = if *item < 10 { 0..10 } else { 10..20 };
            for (other, score) in list {
                assert!(
                    other != item && *other != 15 && group.contains(other),
                    "{item}: {list:?}"
                );
                assert!(*score <= 1.0 + 1e-9);
            }
        }
        // A serving copy from the items' side folds in as the trained model does.
        let serving =
            IalsModel::from_item_factors(m.items.clone(), m.item_factors.clone(), m.params);
        assert_eq!(
            serving.fold_in(&[(1, 4.0), (2, 5.0)]),
            m.fold_in(&[(1, 4.0), (2, 5.0)])
        );
    }

    #[test]
    fn learns_block_structure_and_excludes_seen() {
        let m = train(&blocks(), &small());
        assert_eq!(m.items, (0..20).collect::<Vec<u64>>());
        // user 0 has not rated items 0 and 3: they should come first
        let rated: Vec<(u64, f64)> = blocks()
            .iter()
            .filter(|t| t.0 == 0)
            .map(|t| (t.1, t.2))
            .collect();
        let mut rec = m.recommend(&rated, 2);
        rec.sort();
        assert_eq!(rec, vec![0, 3]);
        assert!(rec.iter().all(|i| !rated.iter().any(|r| r.0 == *i)));
    }

    #[test]
    fn fingerprints_ignore_order_and_see_every_change() {
        let ratings = [(1u64, 4.0), (7, 3.5), (42, 5.0)];
        let fp = ratings_fingerprint(ratings);
        assert_eq!(fp, ratings_fingerprint([(42, 5.0), (1, 4.0), (7, 3.5)]));
        assert_ne!(fp, ratings_fingerprint([(1, 4.0), (7, 3.5)]), "one fewer");
        assert_ne!(
            fp,
            ratings_fingerprint([(1, 4.0), (7, 3.5), (42, 4.5)]),
            "re-rated"
        );
        assert_ne!(
            fp,
            ratings_fingerprint([(1, 4.0), (8, 3.5), (42, 5.0)]),
            "another movie"
        );
        assert_ne!(
            fp,
            ratings_fingerprint([(1, 3.5), (7, 4.0), (42, 5.0)]),
            "ratings swapped"
        );
        assert_eq!(ratings_fingerprint([]), 0);
    }

    #[test]
    fn fold_in_reproduces_trained_user() {
        for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 3 }] {
            let m = train(&blocks(), &IalsParams { solver, ..small() });
            let data = blocks();
            for u in [0u64, 25] {
                let rated: Vec<(u64, f64)> = data
                    .iter()
                    .filter(|t| t.0 == u)
                    .map(|t| (t.1, t.2))
                    .collect();
                let a = m.score_user(u).unwrap();
                let b = m.fold_in(&rated);
                for (x, y) in a.iter().zip(&b) {
                    assert!((x - y).abs() < 1e-9, "{x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let d = blocks();
        let p = IalsParams {
            solver: Solver::ConjugateGradient { steps: 3 },
            ..small()
        };
        let a = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| train(&d, &p));
        let b = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| train(&d, &p));
        assert_eq!(a.item_factors, b.item_factors);
        assert_eq!(a.user_factors, b.user_factors);
    }

    /// Denser pseudo-random data so that rows exceed GEMM_MIN_ROWS.
    fn dense() -> Vec<(u64, u64, f64)> {
        let mut v = Vec::new();
        for u in 0..80u64 {
            for i in 0..60u64 {
                let h = (u * 2654435761 + i * 40503 + u * i * 97) % 100;
                if h < 55 {
                    v.push((u, i, 1.0 + (h % 5) as f64));
                }
            }
        }
        v
    }

    #[test]
    fn gemm_gram_path_matches_rank_one_path() {
        let k = 8;
        let y: Vec<f64> = (0..60 * k)
            .map(|t| ((t * 7919) % 101) as f64 / 101.0 - 0.5)
            .collect();
        let yty = gram(&y, k);
        let row: Vec<(usize, f64)> = (0..40).map(|j| (j, 1.0 + (j % 4) as f64)).collect();
        assert!(row.len() >= GEMM_MIN_ROWS);
        let mut s = Scratch::new(k);
        let mut x1 = vec![0.0; k];
        solve_row_exact(&y, &yty, k, 0.5, &row, &mut s, &mut x1);
        // naive normal equations, solved by nalgebra LU
        let mut a = nalgebra::DMatrix::<f64>::identity(k, k) * 0.5;
        let mut b = nalgebra::DVector::<f64>::zeros(k);
        for p in 0..k {
            for q in 0..k {
                a[(p, q)] += yty[p * k + q];
            }
        }
        for &(j, c) in &row {
            for p in 0..k {
                b[p] += c * y[j * k + p];
                for q in 0..k {
                    a[(p, q)] += (c - 1.0) * y[j * k + p] * y[j * k + q];
                }
            }
        }
        let x2 = a.lu().solve(&b).unwrap();
        for (a, b) in x1.iter().zip(x2.iter()) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn deterministic_across_thread_counts_dense() {
        let d = dense();
        for solver in [Solver::Cholesky, Solver::ConjugateGradient { steps: 3 }] {
            let p = IalsParams {
                factors: 16,
                iterations: 4,
                solver,
                ..IalsParams::default()
            };
            let a = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| train(&d, &p));
            let b = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap()
                .install(|| train(&d, &p));
            assert_eq!(a.item_factors, b.item_factors);
            assert_eq!(a.user_factors, b.user_factors);
            let rated: Vec<(u64, f64)> =
                d.iter().filter(|t| t.0 == 3).map(|t| (t.1, t.2)).collect();
            assert_eq!(a.fold_in(&rated), a.score_user(3).unwrap());
        }
    }

    #[test]
    fn unknown_user_and_items() {
        let m = train(&blocks(), &small());
        assert!(m.score_user(999).is_none());
        assert!(m.fold_in(&[(999, 5.0)]).iter().all(|&s| s == 0.0));
        assert_eq!(m.fold_in(&[]).len(), 20);
    }
}
