//! Bayesian probabilistic matrix factorization (BPMF, Salakhutdinov & Mnih
//! 2008) with user and item biases, trained by Gibbs sampling:
//! r̂(u, i) = μ + b_u + b_i + p_u·q_i, averaged over posterior samples.
//!
//! Each user's augmented vector x_u = [p_u, b_u] has the prior
//! N(μ_U, Λ_U⁻¹), with (μ_U, Λ_U) under a Normal–Wishart hyperprior; items
//! likewise with x_i = [q_i, b_i]. Given the items, a user's conditional is
//! the Gaussian of the ALS ridge solve, `(Λ_U + α·ΣyyᵀΣ) x = Λ_U μ_U + α·Σy t`
//! with y = [q_j, 1] and t = r − μ − b_j, and a Gibbs step draws
//! x = mean + L⁻ᵀz from it instead of taking the mean. The noise precision α
//! gets a Gamma prior. After `burn_in` sweeps, every `thin`-th sample of both
//! sides (and the user hyperparameters, for fold-in) is kept; predictions
//! average over the kept samples.
//!
//! Determinism: every row draws from its own ChaCha8 stream seeded from
//! (seed, sweep, side, row) and all sums are taken sequentially, so the
//! model depends only on the data and the seed, not on rayon's scheduling.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{ChiSquared, Distribution, Gamma, StandardNormal};
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BpmfParams {
    pub rank: usize,
    /// Gibbs sweeps discarded before samples are kept.
    pub burn_in: usize,
    /// Samples kept (each side, each sample: `rows × (rank + 1)` floats).
    pub samples: usize,
    /// Sweeps between kept samples.
    pub thin: usize,
    /// Initial (or, with `sample_alpha` false, fixed) noise precision α.
    pub alpha: f64,
    /// Sample α from its Gamma conditional (prior shape/rate below).
    pub sample_alpha: bool,
    pub alpha_shape: f64,
    pub alpha_rate: f64,
    /// Normal–Wishart hyperprior: β₀ (strength of μ₀ = 0) and ν₀ = D + extra.
    pub beta0: f64,
    pub nu0_extra: f64,
    /// Standard deviation of the initial factors.
    pub init_std: f64,
    pub seed: u64,
}

impl Default for BpmfParams {
    fn default() -> Self {
        Self {
            rank: 10,
            burn_in: 20,
            samples: 100,
            thin: 2,
            alpha: 2.0,
            sample_alpha: true,
            alpha_shape: 1.0,
            alpha_rate: 1.0,
            beta0: 2.0,
            nu0_extra: 0.0,
            init_std: 0.1,
            seed: 42,
        }
    }
}

/// Prior of one side in one sample: mean and precision (row-major D×D).
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    pub mean: Vec<f64>,
    pub precision: Vec<f64>,
}

/// A trained model: ids sorted ascending; each kept sample's factors are
/// row-major with the bias last, samples concatenated.
#[derive(Debug, Clone, PartialEq)]
pub struct BpmfModel {
    pub rank: usize,
    pub global_mean: f64,
    pub users: Vec<u64>,
    pub items: Vec<u64>,
    pub samples: usize,
    /// `samples × users.len() × (rank + 1)`: p_u then b_u.
    pub user_factors: Vec<f64>,
    /// `samples × items.len() × (rank + 1)`: q_i then b_i.
    pub item_factors: Vec<f64>,
    /// Per sample: the user prior and the noise precision α (for fold-in).
    pub user_hyper: Vec<Hyper>,
    pub alpha: Vec<f64>,
}

/// A user folded in against the fixed item samples: one vector [p, b] per
/// kept sample (the conditional mean given that sample's items).
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedUser {
    pub rank: usize,
    pub vectors: Vec<f64>,
}

/// Ratings of one side grouped by row: (other side's index, rating).
struct Rows {
    start: Vec<usize>,
    entries: Vec<(u32, f64)>,
}

impl Rows {
    fn new(n: usize, pairs: impl Iterator<Item = (u32, u32, f64)> + Clone) -> Self {
        let mut start = vec![0usize; n + 1];
        for (row, _, _) in pairs.clone() {
            start[row as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut entries = vec![(0u32, 0.0); start[n]];
        for (row, col, r) in pairs {
            entries[fill[row as usize]] = (col, r);
            fill[row as usize] += 1;
        }
        Self { start, entries }
    }

    fn row(&self, i: usize) -> &[(u32, f64)] {
        &self.entries[self.start[i]..self.start[i + 1]]
    }
}

// ---- small dense linear algebra on row-major slices ----

/// In-place Cholesky A = LLᵀ (lower triangle of `a` becomes L). False if
/// A is not positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    true
}

/// Solves L y = b in place.
fn solve_lower(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Solves Lᵀ x = y in place.
fn solve_upper_t(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Inverse of an SPD matrix through its Cholesky factor.
fn spd_inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = a.to_vec();
    assert!(cholesky(&mut l, n), "SPD matrix expected");
    let mut inv = vec![0.0; n * n];
    let mut e = vec![0.0; n];
    for c in 0..n {
        e.fill(0.0);
        e[c] = 1.0;
        solve_lower(&l, n, &mut e);
        solve_upper_t(&l, n, &mut e);
        for r in 0..n {
            inv[r * n + c] = e[r];
        }
    }
    inv
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn row_rng(seed: u64, sweep: usize, side: u64, row: usize) -> ChaCha8Rng {
    let s = mix(mix(mix(seed) ^ sweep as u64) ^ side) ^ row as u64;
    ChaCha8Rng::seed_from_u64(mix(s))
}

/// Accumulates the conditional of one row: precision `a` = Λ + α·Σyyᵀ and
/// `b` = Λμ + α·Σy·t, where y = [other factors, 1], t = r − μ − b_other.
#[allow(clippy::too_many_arguments)]
fn conditional(
    row: &[(u32, f64)],
    other: &[f64],
    k: usize,
    mean: f64,
    hyper: &Hyper,
    alpha: f64,
    a: &mut [f64],
    b: &mut [f64],
) {
    let w = k + 1;
    a.fill(0.0);
    b.fill(0.0);
    for &(j, r) in row {
        let f = &other[j as usize * w..(j as usize + 1) * w];
        let t = r - mean - f[k];
        for p in 0..k {
            let fp = f[p];
            let ap = &mut a[p * w..p * w + p + 1];
            for q in 0..=p {
                ap[q] += fp * f[q];
            }
            b[p] += fp * t;
        }
        let ak = &mut a[k * w..k * w + k];
        for q in 0..k {
            ak[q] += f[q];
        }
        a[k * w + k] += 1.0;
        b[k] += t;
    }
    for p in 0..w {
        b[p] *= alpha;
        let mut lm = 0.0;
        for q in 0..w {
            lm += hyper.precision[p * w + q] * hyper.mean[q];
        }
        b[p] += lm;
        for q in 0..=p {
            a[p * w + q] = alpha * a[p * w + q] + hyper.precision[p * w + q];
        }
    }
}

/// One Gibbs half-sweep: draws every row of `solve` given `other`.
#[allow(clippy::too_many_arguments)]
fn sample_side(
    rows: &Rows,
    other: &[f64],
    solve: &mut [f64],
    k: usize,
    mean: f64,
    hyper: &Hyper,
    alpha: f64,
    seed: u64,
    sweep: usize,
    side: u64,
) {
    let w = k + 1;
    solve.par_chunks_mut(w).enumerate().for_each_init(
        || (vec![0.0; w * w], vec![0.0; w]),
        |(a, b), (i, out)| {
            conditional(rows.row(i), other, k, mean, hyper, alpha, a, b);
            assert!(cholesky(a, w), "posterior precision is positive definite");
            solve_lower(a, w, b);
            solve_upper_t(a, w, b); // b = conditional mean
            let mut rng = row_rng(seed, sweep, side, i);
            let mut z: Vec<f64> = (0..w).map(|_| StandardNormal.sample(&mut rng)).collect();
            solve_upper_t(a, w, &mut z); // L⁻ᵀz ~ N(0, A⁻¹)
            for d in 0..w {
                out[d] = b[d] + z[d];
            }
        },
    );
}

/// Draws (μ, Λ) from the Normal–Wishart posterior given the rows of `x`.
fn sample_hyper(x: &[f64], w: usize, params: &BpmfParams, rng: &mut ChaCha8Rng) -> Hyper {
    let n = x.len() / w;
    let nf = n as f64;
    let mut xbar = vec![0.0; w];
    for row in x.chunks(w) {
        for d in 0..w {
            xbar[d] += row[d];
        }
    }
    if n > 0 {
        xbar.iter_mut().for_each(|v| *v /= nf);
    }
    // W*⁻¹ = W₀⁻¹ + N·S̄ + β₀N/(β₀+N)·x̄x̄ᵀ with W₀ = I, μ₀ = 0.
    let mut winv = vec![0.0; w * w];
    for d in 0..w {
        winv[d * w + d] = 1.0;
    }
    for row in x.chunks(w) {
        for p in 0..w {
            let dp = row[p] - xbar[p];
            for q in 0..w {
                winv[p * w + q] += dp * (row[q] - xbar[q]);
            }
        }
    }
    let beta0 = params.beta0;
    let c = beta0 * nf / (beta0 + nf);
    for p in 0..w {
        for q in 0..w {
            winv[p * w + q] += c * xbar[p] * xbar[q];
        }
    }
    let wstar = spd_inverse(&winv, w);
    let nu = w as f64 + params.nu0_extra + nf;
    // Bartlett: Λ = C A Aᵀ Cᵀ with W* = CCᵀ.
    let mut cfac = wstar.clone();
    assert!(cholesky(&mut cfac, w), "W* is positive definite");
    let mut afac = vec![0.0; w * w];
    for i in 0..w {
        let chi = ChiSquared::new(nu - i as f64).expect("ν > D − 1");
        afac[i * w + i] = chi.sample(rng).sqrt();
        for j in 0..i {
            afac[i * w + j] = StandardNormal.sample(rng);
        }
    }
    // M = C·A (both lower triangular).
    let mut m = vec![0.0; w * w];
    for i in 0..w {
        for j in 0..=i {
            let mut s = 0.0;
            for t in j..=i {
                s += cfac[i * w + t] * afac[t * w + j];
            }
            m[i * w + j] = s;
        }
    }
    let mut precision = vec![0.0; w * w];
    for i in 0..w {
        for j in 0..w {
            let mut s = 0.0;
            for t in 0..w {
                s += m[i * w + t] * m[j * w + t];
            }
            precision[i * w + j] = s;
        }
    }
    // μ ~ N(μ*, (β*Λ)⁻¹), μ* = N x̄ / (β₀ + N).
    let betastar = beta0 + nf;
    let mut l: Vec<f64> = precision.iter().map(|v| v * betastar).collect();
    assert!(cholesky(&mut l, w), "Λ is positive definite");
    let mut z: Vec<f64> = (0..w).map(|_| StandardNormal.sample(rng)).collect();
    solve_upper_t(&l, w, &mut z);
    let mean = (0..w).map(|d| nf * xbar[d] / betastar + z[d]).collect();
    Hyper { mean, precision }
}

fn dot_predict(mean: f64, u: &[f64], i: &[f64], k: usize) -> f64 {
    let mut s = mean + u[k] + i[k];
    for d in 0..k {
        s += u[d] * i[d];
    }
    s
}

/// Trains on (user, item, rating) triples.
pub fn train(ratings: &[(u64, u64, f64)], params: &BpmfParams) -> BpmfModel {
    train_with_hook(ratings, params, |_, _, _, _| {})
}

/// `train`, calling `hook(sweep, user sample, item sample, α)` after every
/// sweep (diagnostics).
#[doc(hidden)]
pub fn train_with_hook(
    ratings: &[(u64, u64, f64)],
    params: &BpmfParams,
    mut hook: impl FnMut(usize, &[f64], &[f64], f64),
) -> BpmfModel {
    let k = params.rank;
    let w = k + 1;
    let mut users: Vec<u64> = ratings.iter().map(|r| r.0).collect();
    users.sort_unstable();
    users.dedup();
    let mut items: Vec<u64> = ratings.iter().map(|r| r.1).collect();
    items.sort_unstable();
    items.dedup();
    let index = |ids: &[u64], id: u64| ids.binary_search(&id).expect("indexed above") as u32;
    let triples: Vec<(u32, u32, f64)> = ratings
        .iter()
        .map(|&(u, i, r)| (index(&users, u), index(&items, i), r))
        .collect();
    let global_mean = if ratings.is_empty() {
        0.0
    } else {
        ratings.iter().map(|r| r.2).sum::<f64>() / ratings.len() as f64
    };
    let by_user = Rows::new(users.len(), triples.iter().map(|&(u, i, r)| (u, i, r)));
    let by_item = Rows::new(items.len(), triples.iter().map(|&(u, i, r)| (i, u, r)));

    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let init = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f64> {
        let mut v: Vec<f64> = (0..n * w)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                params.init_std * z
            })
            .collect();
        for row in v.chunks_mut(w) {
            row[k] = 0.0;
        }
        v
    };
    let mut uf = init(users.len(), &mut rng);
    let mut vf = init(items.len(), &mut rng);
    let mut alpha = params.alpha;
    let mut model = BpmfModel {
        rank: k,
        global_mean,
        users,
        items,
        samples: 0,
        user_factors: Vec::new(),
        item_factors: Vec::new(),
        user_hyper: Vec::new(),
        alpha: Vec::new(),
    };
    if ratings.is_empty() {
        return model;
    }
    let thin = params.thin.max(1);
    let sweeps = params.burn_in + params.samples * thin;
    let mut resid = vec![0.0; by_user.start.len() - 1];
    for sweep in 0..sweeps {
        let hv = sample_hyper(&vf, w, params, &mut rng);
        let hu = sample_hyper(&uf, w, params, &mut rng);
        sample_side(
            &by_user,
            &vf,
            &mut uf,
            k,
            global_mean,
            &hu,
            alpha,
            params.seed,
            sweep,
            0,
        );
        sample_side(
            &by_item,
            &uf,
            &mut vf,
            k,
            global_mean,
            &hv,
            alpha,
            params.seed,
            sweep,
            1,
        );
        if params.sample_alpha {
            resid.par_iter_mut().enumerate().for_each(|(u, out)| {
                let x = &uf[u * w..(u + 1) * w];
                *out = by_user
                    .row(u)
                    .iter()
                    .map(|&(j, r)| {
                        let y = &vf[j as usize * w..(j as usize + 1) * w];
                        (r - dot_predict(global_mean, x, y, k)).powi(2)
                    })
                    .sum();
            });
            let sse: f64 = resid.iter().sum();
            let shape = params.alpha_shape + 0.5 * ratings.len() as f64;
            let rate = params.alpha_rate + 0.5 * sse;
            alpha = Gamma::new(shape, 1.0 / rate)
                .expect("positive")
                .sample(&mut rng);
        }
        hook(sweep, &uf, &vf, alpha);
        if sweep >= params.burn_in && (sweep - params.burn_in + 1).is_multiple_of(thin) {
            model.user_factors.extend_from_slice(&uf);
            model.item_factors.extend_from_slice(&vf);
            model.user_hyper.push(hu);
            model.alpha.push(alpha);
            model.samples += 1;
        }
    }
    model
}

impl BpmfModel {
    fn item_index(&self, item: u64) -> Option<usize> {
        self.items.binary_search(&item).ok()
    }

    /// The unclamped posterior-mean prediction; the global mean plus whatever
    /// biases are known for a user or item never seen in training.
    pub fn predict_raw(&self, user: u64, item: u64) -> f64 {
        let w = self.rank + 1;
        let u = self.users.binary_search(&user).ok();
        let i = self.item_index(item);
        if self.samples == 0 || (u.is_none() && i.is_none()) {
            return self.global_mean;
        }
        let (nu, ni) = (self.users.len(), self.items.len());
        let mut sum = 0.0;
        for s in 0..self.samples {
            let mut score = self.global_mean;
            let uv = u.map(|u| &self.user_factors[(s * nu + u) * w..(s * nu + u + 1) * w]);
            let iv = i.map(|i| &self.item_factors[(s * ni + i) * w..(s * ni + i + 1) * w]);
            match (uv, iv) {
                (Some(a), Some(b)) => score = dot_predict(self.global_mean, a, b, self.rank),
                (Some(a), None) => score += a[self.rank],
                (None, Some(b)) => score += b[self.rank],
                (None, None) => {}
            }
            sum += score;
        }
        sum / self.samples as f64
    }

    /// The predicted rating, clamped to 0.5–5.
    pub fn predict(&self, user: u64, item: u64) -> f64 {
        self.predict_raw(user, item).clamp(0.5, 5.0)
    }

    /// A user's vectors from their ratings alone, item samples held fixed:
    /// per kept sample, the mean of the user's conditional given that
    /// sample's items, user prior and α. Ratings of unknown items are
    /// ignored; with none left the user falls back to the prior mean.
    pub fn fold_in(&self, ratings: &[(u64, f64)]) -> FoldedUser {
        let k = self.rank;
        let w = k + 1;
        let row: Vec<(u32, f64)> = ratings
            .iter()
            .filter_map(|&(i, r)| self.item_index(i).map(|j| (j as u32, r)))
            .collect();
        let ni = self.items.len();
        let mut vectors = vec![0.0; self.samples * w];
        let mut a = vec![0.0; w * w];
        for s in 0..self.samples {
            let other = &self.item_factors[s * ni * w..(s + 1) * ni * w];
            let b = &mut vectors[s * w..(s + 1) * w];
            conditional(
                &row,
                other,
                k,
                self.global_mean,
                &self.user_hyper[s],
                self.alpha[s],
                &mut a,
                b,
            );
            assert!(
                cholesky(&mut a, w),
                "posterior precision is positive definite"
            );
            solve_lower(&a, w, b);
            solve_upper_t(&a, w, b);
        }
        FoldedUser { rank: k, vectors }
    }

    /// Unclamped prediction for a folded-in user.
    pub fn predict_folded_raw(&self, user: &FoldedUser, item: u64) -> f64 {
        let w = self.rank + 1;
        if self.samples == 0 {
            return self.global_mean;
        }
        let ni = self.items.len();
        let i = self.item_index(item);
        let mut sum = 0.0;
        for s in 0..self.samples {
            let uv = &user.vectors[s * w..(s + 1) * w];
            sum += match i {
                Some(i) => dot_predict(
                    self.global_mean,
                    uv,
                    &self.item_factors[(s * ni + i) * w..(s * ni + i + 1) * w],
                    self.rank,
                ),
                None => self.global_mean + uv[self.rank],
            };
        }
        sum / self.samples as f64
    }

    /// Prediction for a folded-in user, clamped to 0.5–5.
    pub fn predict_folded(&self, user: &FoldedUser, item: u64) -> f64 {
        self.predict_folded_raw(user, item).clamp(0.5, 5.0)
    }

    /// Root mean squared error over (user, item, rating) triples.
    pub fn rmse(&self, test: &[(u64, u64, f64)]) -> f64 {
        if test.is_empty() {
            return 0.0;
        }
        let sum: f64 = test
            .iter()
            .map(|&(u, i, r)| (self.predict(u, i) - r).powi(2))
            .sum();
        (sum / test.len() as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn low_rank(
        seed: u64,
        users: u64,
        items: u64,
        per_user: usize,
        noise: f64,
    ) -> Vec<(u64, u64, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut g = || -> f64 { StandardNormal.sample(&mut rng) };
        let p: Vec<Vec<f64>> = (0..users)
            .map(|_| (0..3).map(|_| g() * 0.5).collect())
            .collect();
        let q: Vec<Vec<f64>> = (0..items)
            .map(|_| (0..3).map(|_| g() * 0.5).collect())
            .collect();
        let bu: Vec<f64> = (0..users).map(|_| g() * 0.3).collect();
        let bi: Vec<f64> = (0..items).map(|_| g() * 0.3).collect();
        let mut out = Vec::new();
        for u in 0..users {
            for _ in 0..per_user {
                let i = rng.random_range(0..items);
                let dot: f64 = p[u as usize]
                    .iter()
                    .zip(&q[i as usize])
                    .map(|(a, b)| a * b)
                    .sum();
                let e: f64 = StandardNormal.sample(&mut rng);
                out.push((
                    u + 1,
                    i + 1,
                    3.5 + bu[u as usize] + bi[i as usize] + dot + e * noise,
                ));
            }
        }
        out
    }

    type Triples = Vec<(u64, u64, f64)>;

    fn split(all: &[(u64, u64, f64)]) -> (Triples, Triples) {
        let mut train_set = Vec::new();
        let mut test_set = Vec::new();
        for (n, t) in all.iter().enumerate() {
            if n % 10 == 0 {
                test_set.push(*t)
            } else {
                train_set.push(*t)
            }
        }
        (train_set, test_set)
    }

    fn small() -> BpmfParams {
        BpmfParams {
            rank: 6,
            burn_in: 10,
            samples: 20,
            thin: 1,
            seed: 1,
            ..Default::default()
        }
    }

    #[test]
    fn linear_algebra_helpers() {
        let a = vec![4.0, 2.0, 2.0, 3.0];
        let inv = spd_inverse(&a, 2);
        // A·A⁻¹ = I
        for r in 0..2 {
            for c in 0..2 {
                let v: f64 = (0..2).map(|t| a[r * 2 + t] * inv[t * 2 + c]).sum();
                assert!((v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky(&mut not_pd, 2));
    }

    #[test]
    fn recovers_a_low_rank_model_and_beats_the_mean() {
        let (train_set, test_set) = split(&low_rank(7, 300, 200, 60, 0.2));
        let model = train(&train_set, &small());
        let rmse = model.rmse(&test_set);
        let mean = model.global_mean;
        let baseline = (test_set.iter().map(|t| (t.2 - mean).powi(2)).sum::<f64>()
            / test_set.len() as f64)
            .sqrt();
        assert!(rmse < 0.35, "test RMSE {rmse} (noise 0.2)");
        assert!(
            rmse < baseline * 0.5,
            "{rmse} vs the global mean's {baseline}"
        );
        assert_eq!(model.samples, 20);
        assert_eq!(model.user_factors.len(), 20 * model.users.len() * 7);
    }

    #[test]
    fn deterministic_for_a_seed_regardless_of_threads() {
        let data = low_rank(3, 60, 40, 15, 0.1);
        let params = BpmfParams {
            rank: 4,
            burn_in: 3,
            samples: 3,
            thin: 1,
            seed: 9,
            ..Default::default()
        };
        let a = train(&data, &params);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one.install(|| train(&data, &params));
        assert_eq!(a, b);
        let c = train(&data, &BpmfParams { seed: 10, ..params });
        assert_ne!(a.user_factors, c.user_factors);
    }

    #[test]
    fn unknowns_fall_back_and_empty_input_trains() {
        let data = low_rank(3, 50, 40, 20, 0.1);
        let model = train(&data, &small());
        let mean_only = model.predict(10_000, 20_000);
        assert_eq!(mean_only, model.global_mean.clamp(0.5, 5.0));
        let empty = train(&[], &small());
        assert!(empty.users.is_empty());
        assert_eq!(empty.predict(1, 1), 0.5);
        // A user folded in from nothing predicts from the prior.
        let f = model.fold_in(&[]);
        assert!(model.predict_folded(&f, 1).is_finite());
    }

    #[test]
    fn fold_in_matches_trained_users() {
        let (train_set, test_set) = split(&low_rank(5, 200, 150, 50, 0.2));
        let model = train(&train_set, &small());
        let mut sq_trained = 0.0;
        let mut sq_folded = 0.0;
        for &(u, i, r) in &test_set {
            let mine: Vec<(u64, f64)> = train_set
                .iter()
                .filter(|t| t.0 == u)
                .map(|t| (t.1, t.2))
                .collect();
            let f = model.fold_in(&mine);
            sq_trained += (model.predict(u, i) - r).powi(2);
            sq_folded += (model.predict_folded(&f, i) - r).powi(2);
        }
        let n = test_set.len() as f64;
        let (a, b) = ((sq_trained / n).sqrt(), (sq_folded / n).sqrt());
        assert!((a - b).abs() < 0.02, "trained {a} vs folded {b}");
        assert!(b < 0.35);
    }

    #[test]
    fn a_new_user_folds_in_and_unknown_items_are_ignored() {
        let all = low_rank(11, 200, 150, 50, 0.2);
        // User 1 never seen in training; fold them in from 9/10 of their ratings.
        let train_set: Vec<_> = all.iter().copied().filter(|t| t.0 != 1).collect();
        let mine: Vec<(u64, u64, f64)> = all.iter().copied().filter(|t| t.0 == 1).collect();
        let model = train(&train_set, &small());
        let known: Vec<(u64, f64)> = mine.iter().skip(5).map(|t| (t.1, t.2)).collect();
        let f = model.fold_in(&known);
        assert_eq!(f.vectors.len(), model.samples * (model.rank + 1));
        let mut with_junk = known.clone();
        with_junk.push((999_999, 5.0));
        assert_eq!(model.fold_in(&with_junk), f);
        let prior_only = model.fold_in(&[]);
        let err = |g: &FoldedUser| -> f64 {
            mine.iter()
                .take(5)
                .map(|t| (model.predict_folded(g, t.1) - t.2).powi(2))
                .sum::<f64>()
        };
        assert!(
            err(&f) < err(&prior_only),
            "{} vs {}",
            err(&f),
            err(&prior_only)
        );
        assert!((err(&f) / 5.0).sqrt() < 0.5);
    }
}
