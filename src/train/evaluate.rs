//! Test bits/dim over a whole image set: the mean the trainer tracks ([`evaluate`]), and
//! the report a paper needs ([`evaluate_detailed`]): several dequantisation draws per image,
//! the standard error over images, each image's score and where the bits go per level.
//!
//! For an image `x` with `K` draws `u_1..u_K ~ U(0, 1/2^bits)^D`, each draw gives the
//! dequantised bound `b_k = -(ln p(x + u_k) - D ln 2^bits) / (D ln 2)` in bits/dim. Two
//! scores come of them:
//! - the mean of the bounds, `(1/K) Σ_k b_k`, what [`evaluate`] and the trainer report;
//! - the importance-weighted bound `-(logsumexp_k [-b_k D ln 2] - ln K) / (D ln 2)`, i.e.
//!   `-log2` of the mean over draws of `p(x + u_k)` per dimension: by Jensen's inequality
//!   never above the mean of the bounds, equal to it at `K = 1`, and tightening towards
//!   `-log2 P(x) / D` as `K` grows, `P(x) = 2^(-bits D) E_u p(x + u)` the probability of
//!   `x`'s bin (the `bits` in `b_k` is that `2^(-bits D)`). It is the formula of Flow++'s and DenseFlow's reported numbers with uniform dequantisation
//!   (they draw `u_k` from a learned, variational dequantiser instead).
//!
//! It is accumulated draw by draw (its memory does not grow with `K`). Each reported
//! bits/dim is the mean over images, with standard error `s / sqrt(N)`, `s` the sample
//! standard deviation of the `N` image scores.
//!
//! The per-level breakdown splits the same number as the model accumulates it:
//! `bits/dim = dequantisation + Σ_l (log-det_l + prior_l)`, each term `-(its nats) / (D ln 2)`:
//! `dequantisation = bits` (the starting `-D ln 2^bits`), `log-det_l` the flow steps of level
//! `l`, `prior_l` the prior's log-density of level `l`'s latent. Each is taken as the change
//! of the model's running objective over that stretch, so the terms sum to the total.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use marscf_core::FlowEvent;
use marscf_data::{BatchOptions, ImageSet, make_batch, stream};
use serde::Serialize;

use crate::host::host_f64;
use crate::train::collective::{Collective, OneProcess};
use crate::{MarScf, ModelError, files};
use marscf_data::atomic_file::Existing;

/// The RNG stream of evaluation noise (fixed per batch, so evaluations compare).
const EVAL_STREAM: u64 = 0xe7a1;

/// Which images are scored, and with the model in which mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Ours: dropout off, every image (the last partial batch included).
    #[default]
    Ours,
    /// The reference's (so that a number compares with the paper's): the model as training
    /// leaves it, dropout on (its masks drawn from the device seeded per batch), and the
    /// last partial batch dropped, as its test loader does.
    Reference,
}

/// How [`evaluate_detailed`] scores a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Images per forward pass (at least 1: 0 is [`ModelError::Setting`]).
    pub batch_size: usize,
    /// Seed of the dequantisation noise.
    pub seed: u64,
    /// Dequantisation draws per image (at least 1: 0 is [`ModelError::Setting`]).
    pub draws: usize,
    /// Which images, and the model in which mode.
    pub protocol: Protocol,
}

impl Default for EvalOptions {
    /// Batches of 64, seed 0, one draw, [`Protocol::Ours`].
    fn default() -> Self {
        Self {
            batch_size: 64,
            seed: 0,
            draws: 1,
            protocol: Protocol::Ours,
        }
    }
}

/// One test image's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ImageScore {
    /// Its index in the set.
    pub index: usize,
    /// Its label.
    pub label: u16,
    /// Its bits/dim, the mean over the draws.
    pub bits_per_dim: f64,
    /// Its importance-weighted bound over the draws, in bits/dim.
    pub iw_bits_per_dim: f64,
}

/// One level's share of the bits/dim (mean over images and draws).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelTerms {
    /// The level, from 0.
    pub level: usize,
    /// `-Σ log-dets of the level's flow steps / (D ln 2)`.
    pub log_det: f64,
    /// `-ln p(z_l | z1_l) / (D ln 2)` of the level's latent.
    pub prior: f64,
}

/// Where the bits/dim come from; the terms sum to [`Evaluation::bits_per_dim`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// The dequantisation constant, `-(-D ln 2^bits) / (D ln 2) = bits`.
    pub dequantization: f64,
    /// Each level's terms, bottom first.
    pub levels: Vec<LevelTerms>,
}

impl Breakdown {
    /// The sum of every term.
    pub fn total(&self) -> f64 {
        self.dequantization + self.levels.iter().map(|l| l.log_det + l.prior).sum::<f64>()
    }
}

/// What [`evaluate_detailed`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean bits/dim over images and draws.
    pub bits_per_dim: f64,
    /// Standard error of that mean over images, `s / sqrt(N)` (`None` for fewer than two
    /// images).
    pub standard_error: Option<f64>,
    /// The importance-weighted bound over the draws, in bits/dim, its mean over images.
    pub iw_bits_per_dim: f64,
    /// Standard error of that mean over images (`None` for fewer than two images).
    pub iw_standard_error: Option<f64>,
    /// Draws per image.
    pub draws: usize,
    /// Each image's score, in the set's order.
    pub images: Vec<ImageScore>,
    /// The per-level breakdown.
    pub breakdown: Breakdown,
}

/// The mean test bits/dim of `model` over `set`, in batches of `batch_size`, each image
/// dequantised once with noise drawn from `seed` (what [`evaluate_detailed`] reports with
/// one draw). Runs without autodiff.
pub fn evaluate(
    model: &MarScf,
    set: &ImageSet,
    batch_size: usize,
    seed: u64,
    device: &Device,
) -> Result<f64, ModelError> {
    evaluate_across(model, set, batch_size, seed, device, &OneProcess)
}

/// Scores the images of `set` with `options.draws` dequantisation draws (see the module's
/// documentation) under `options.protocol`. Draw 0 of batch `b` uses the noise [`evaluate`]
/// uses; draw `k` the stream at `b + k 2^32`. [`Protocol::Ours`] runs without autodiff. An
/// evaluation that would score no image (an empty set; under [`Protocol::Reference`], fewer
/// images than one batch) is [`ModelError::NothingToScore`], never a mean of nothing.
pub fn evaluate_detailed(
    model: &MarScf,
    set: &ImageSet,
    options: &EvalOptions,
    device: &Device,
) -> Result<Evaluation, ModelError> {
    let (model, device) = match options.protocol {
        Protocol::Ours => (model.valid(), device.clone().without_autodiff()),
        Protocol::Reference => {
            let device = device.clone().autodiff();
            (model.clone().fork(&device).train(), device)
        }
    };
    let scored = scored_images(set, options)?;
    let tally = tally(&model, set, scored, options, &device, |_| true)?;
    Ok(tally.finish(options.draws))
}

/// [`evaluate`] with the test set's batches shared among the processes of `world` (batch
/// `b` on process `b mod W`, with the noise one process draws for it) and the sums reduced:
/// every process gets the mean bits/dim over the whole set.
pub fn evaluate_across(
    model: &MarScf,
    set: &ImageSet,
    batch_size: usize,
    seed: u64,
    device: &Device,
    world: &dyn Collective,
) -> Result<f64, ModelError> {
    let options = EvalOptions {
        batch_size,
        seed,
        ..EvalOptions::default()
    };
    let scored = scored_images(set, &options)?;
    let (rank, size) = (world.rank(), world.size());
    let (model, device) = (model.valid(), device.clone().without_autodiff());
    let local = tally(&model, set, scored, &options, &device, |b| b % size == rank)?;
    let mut sums = [local.total, local.images.len() as f64];
    world.sum_f64(&mut sums);
    Ok(sums[0] / sums[1])
}

/// How many images `options` scores of `set` (the first ones); settings out of range and
/// evaluations that would score no image are errors.
fn scored_images(set: &ImageSet, options: &EvalOptions) -> Result<usize, ModelError> {
    for (name, value) in [("batch_size", options.batch_size), ("draws", options.draws)] {
        if value == 0 {
            return Err(ModelError::Setting {
                name,
                value: 0.0,
                rule: "at least 1",
            });
        }
    }
    let batch_size = options.batch_size;
    let scored = match options.protocol {
        Protocol::Ours => set.len(),
        Protocol::Reference => set.len() / batch_size * batch_size,
    };
    if scored == 0 {
        let reason = match options.protocol {
            Protocol::Ours => "the test set is empty".to_string(),
            Protocol::Reference => format!(
                "the reference protocol drops the last partial batch, and {} test images make no whole batch of {batch_size}",
                set.len()
            ),
        };
        return Err(ModelError::NothingToScore { reason });
    }
    Ok(scored)
}

/// The tally of the first `scored` images of `set`, in batches of `options.batch_size`,
/// of the batches `b` that `take(b)` selects.
fn tally(
    model: &MarScf,
    set: &ImageSet,
    scored: usize,
    options: &EvalOptions,
    device: &Device,
    take: impl Fn(usize) -> bool,
) -> Result<Tally, ModelError> {
    let indices: Vec<usize> = (0..scored).collect();
    let mut tally = Tally::new(model);
    for (b, chunk) in indices.chunks(options.batch_size).enumerate() {
        if take(b) {
            tally.score_batch(model, set, chunk, b as u64, options, device)?;
        }
    }
    Ok(tally)
}

/// The sums an evaluation accumulates, in bits/dim per image and draw.
struct Tally {
    dims: f64,
    total: f64,
    dequantization: f64,
    terms: Vec<(f64, f64)>,
    images: Vec<ImageScore>,
}

impl Tally {
    fn new(model: &MarScf) -> Self {
        Self {
            dims: model.config.dims_per_sample() as f64,
            total: 0.0,
            dequantization: 0.0,
            terms: vec![(0.0, 0.0); model.config.flow.levels],
            images: Vec::new(),
        }
    }

    /// `-nats / (D ln 2)` summed over the batch.
    fn bits(&self, nats: &[f64]) -> f64 {
        nats.iter()
            .map(|&v| -v / (self.dims * std::f64::consts::LN_2))
            .sum()
    }

    /// Every draw of batch `index` (images `chunk` of `set`).
    fn score_batch(
        &mut self,
        model: &MarScf,
        set: &ImageSet,
        chunk: &[usize],
        index: u64,
        options: &EvalOptions,
        device: &Device,
    ) -> Result<(), ModelError> {
        let batch_options = BatchOptions {
            augment: false,
            dequantize: true,
            bits: model.config.bits,
        };
        let draws = options.draws;
        let mut scores = vec![0.0; chunk.len()];
        let mut weighted = vec![ImportanceWeighted::new(self.dims); chunk.len()];
        for draw in 0..draws as u64 {
            let noise = &mut stream(options.seed, EVAL_STREAM, index + (draw << 32));
            let x = make_batch(set, chunk, batch_options, noise, device);
            if options.protocol == Protocol::Reference {
                device.seed(index + (draw << 32));
            }
            let mut trace = ObjectiveTrace::new(self.terms.len());
            let output = model
                .forward_traced(x, |event, state| trace.record(event, state.logdet.clone()))?;
            self.total += output.bits_per_dim.clone().sum().into_scalar::<f32>() as f64;
            let bits = host_f64(output.bits_per_dim);
            for ((score, weighted), &value) in scores.iter_mut().zip(&mut weighted).zip(&bits) {
                *score += value;
                weighted.add(value);
            }
            let path = trace.finish(output.objective);
            self.dequantization += self.bits(&path.start);
            for (level, (log_det, prior)) in path.levels.into_iter().enumerate() {
                self.terms[level].0 += self.bits(&log_det);
                self.terms[level].1 += self.bits(&prior);
            }
        }
        let scored = chunk
            .iter()
            .zip(scores)
            .zip(weighted)
            .map(|((&index, score), weighted)| ImageScore {
                index,
                label: set.labels[index],
                bits_per_dim: score / draws as f64,
                iw_bits_per_dim: weighted.bits_per_dim(),
            });
        self.images.extend(scored);
        Ok(())
    }

    /// The means over images and draws.
    fn finish(self, draws: usize) -> Evaluation {
        let count = (self.images.len() * draws) as f64;
        let iw = || self.images.iter().map(|s| s.iw_bits_per_dim);
        Evaluation {
            bits_per_dim: self.total / count,
            standard_error: standard_error(self.images.iter().map(|s| s.bits_per_dim)),
            iw_bits_per_dim: iw().sum::<f64>() / self.images.len() as f64,
            iw_standard_error: standard_error(iw()),
            draws,
            breakdown: Breakdown {
                dequantization: self.dequantization / count,
                levels: self
                    .terms
                    .into_iter()
                    .enumerate()
                    .map(|(level, (log_det, prior))| LevelTerms {
                        level,
                        log_det: log_det / count,
                        prior: prior / count,
                    })
                    .collect(),
            },
            images: self.images,
        }
    }
}

/// The importance-weighted bound of one image, draw by draw: with `b_k` the draws' bounds in
/// bits/dim, `c = D ln 2` and `m = min_k b_k`, it is `m - (ln Σ_k e^{-(b_k - m) c} - ln K) / c`
/// (the module's formula, shifted by its largest term so that no exponential overflows;
/// exactly `b_1` at `K = 1`). A draw of zero density (`b_k = +∞`) adds nothing, one of
/// infinite density (`b_k = -∞`) makes the bound `-∞`, and a NaN draw makes it NaN.
#[derive(Debug, Clone, Copy)]
struct ImportanceWeighted {
    /// `D ln 2`.
    nats_per_bit: f64,
    /// The least `b_k` so far.
    min: f64,
    /// `Σ_k e^{-(b_k - min) c}`.
    sum: f64,
    /// Draws so far.
    draws: usize,
}

impl ImportanceWeighted {
    fn new(dims: f64) -> Self {
        Self {
            nats_per_bit: dims * std::f64::consts::LN_2,
            min: f64::INFINITY,
            sum: 0.0,
            draws: 0,
        }
    }

    fn add(&mut self, bits: f64) {
        self.draws += 1;
        if bits == f64::INFINITY {
            return;
        }
        if bits == self.min {
            // Also two infinite densities (`b_k = -∞`), whose difference would be NaN.
            self.sum += 1.0;
        } else if bits < self.min {
            self.sum = self.sum * (-(self.min - bits) * self.nats_per_bit).exp() + 1.0;
            self.min = bits;
        } else {
            self.sum += (-(bits - self.min) * self.nats_per_bit).exp();
        }
    }

    fn bits_per_dim(&self) -> f64 {
        self.min - (self.sum.ln() - (self.draws as f64).ln()) / self.nats_per_bit
    }
}

/// `s / sqrt(N)` of `values`, `s` the sample standard deviation; `None` below two values.
pub fn standard_error(values: impl Iterator<Item = f64> + Clone) -> Option<f64> {
    let n = values.clone().count();
    if n < 2 {
        return None;
    }
    let mean = values.clone().sum::<f64>() / n as f64;
    let variance = values.map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some((variance / n as f64).sqrt())
}

/// Writes `evaluation`'s per-image scores to `path` as CSV
/// (`index,label,bits_per_dim,iw_bits_per_dim`),
/// whole or not at all; an existing `path` is replaced, or with [`Existing::Keep`] left as
/// it is ([`ModelError::Exists`]).
pub fn write_per_image_csv(
    evaluation: &Evaluation,
    path: &Path,
    existing: Existing,
) -> Result<(), ModelError> {
    let mut csv = String::from("index,label,bits_per_dim,iw_bits_per_dim\n");
    for image in &evaluation.images {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            image.index, image.label, image.bits_per_dim, image.iw_bits_per_dim
        ));
    }
    files::write(path, csv.as_bytes(), existing)
}

/// The running objective `(B)` at the points that bound each level's terms.
struct ObjectiveTrace {
    /// After each level's squeeze (its start).
    start: Vec<Option<Tensor<1>>>,
    /// After each level's last flow step.
    steps: Vec<Option<Tensor<1>>>,
    /// After each split's prior term (levels below the top).
    split: Vec<Option<Tensor<1>>>,
}

/// Per sample: the starting objective, and each level's (log-det, prior) in nats.
struct ObjectivePath {
    start: Vec<f64>,
    levels: Vec<(Vec<f64>, Vec<f64>)>,
}

impl ObjectiveTrace {
    fn new(levels: usize) -> Self {
        Self {
            start: vec![None; levels],
            steps: vec![None; levels],
            split: vec![None; levels],
        }
    }

    fn record(&mut self, event: FlowEvent, objective: Tensor<1>) {
        match event {
            FlowEvent::Squeeze { level } => self.start[level] = Some(objective),
            FlowEvent::Step { level, .. } => self.steps[level] = Some(objective),
            FlowEvent::Split { level } => self.split[level] = Some(objective),
        }
    }

    /// The terms, given the final objective (the end of the top level's prior term).
    fn finish(self, objective: Tensor<1>) -> ObjectivePath {
        let top = self.start.len() - 1;
        let take =
            |t: &Option<Tensor<1>>| host_f64(t.clone().expect("the flow traces every level"));
        let levels = (0..=top)
            .map(|level| {
                let start = take(&self.start[level]);
                let steps = take(&self.steps[level]);
                let end = if level < top {
                    take(&self.split[level])
                } else {
                    host_f64(objective.clone())
                };
                let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a - b).collect();
                (diff(&steps, &start), diff(&end, &steps))
            })
            .collect();
        ObjectivePath {
            start: take(&self.start[0]),
            levels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ImportanceWeighted;

    /// `D` of a 3x32x32 image.
    const DIMS: f64 = 3072.0;

    /// The bound of `draws`, folded one by one.
    fn bound(draws: &[f64]) -> f64 {
        let mut weighted = ImportanceWeighted::new(DIMS);
        for &bits in draws {
            weighted.add(bits);
        }
        weighted.bits_per_dim()
    }

    #[test]
    fn one_draw_and_equal_draws_give_the_draw() {
        assert_eq!(bound(&[1.25]), 1.25);
        assert!((bound(&[1.25, 1.25, 1.25]) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn a_far_worse_draw_costs_ln_2_over_c() {
        // p(x + u_2) is e^{-10 c} of p(x + u_1): the mean density is half of p(x + u_1).
        let c = DIMS * std::f64::consts::LN_2;
        let want = 1.25 + std::f64::consts::LN_2 / c;
        assert!((bound(&[11.25, 1.25]) - want).abs() < 1e-12);
        assert!((bound(&[1.25, 11.25]) - want).abs() < 1e-12);
    }

    #[test]
    fn zero_and_infinite_densities_and_nan() {
        let c = DIMS * std::f64::consts::LN_2;
        assert!(
            (bound(&[f64::INFINITY, 1.25]) - (1.25 + std::f64::consts::LN_2 / c)).abs() < 1e-12
        );
        assert_eq!(bound(&[f64::INFINITY, f64::INFINITY]), f64::INFINITY);
        assert_eq!(
            bound(&[f64::NEG_INFINITY, f64::NEG_INFINITY]),
            f64::NEG_INFINITY
        );
        assert_eq!(bound(&[1.25, f64::NEG_INFINITY]), f64::NEG_INFINITY);
        assert!(bound(&[f64::NAN, 1.25]).is_nan());
        assert!(bound(&[1.25, f64::NAN]).is_nan());
    }
}
