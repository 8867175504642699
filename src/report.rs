//! What a training run shows its user: a metrics log (JSON lines), a plot of train and
//! test bits/dim against steps, and grids of samples.

use std::io::Write;
use std::path::Path;

use burn::tensor::Tensor;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use marscf_data::atomic_file::Existing;

use crate::{ModelError, files};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// Optimizer step.
    pub step: u64,
    /// Epoch (from 0).
    pub epoch: u64,
    /// Seconds since the run started (resumes included).
    pub seconds: f64,
    /// Mean train bits/dim of the step's batch.
    pub train_bits_per_dim: Option<f64>,
    /// Test bits/dim, at evaluations.
    pub test_bits_per_dim: Option<f64>,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Training throughput.
    pub images_per_second: Option<f64>,
}

/// Appends one record to the log at `path`.
pub fn append_metrics(path: &Path, record: &MetricsRecord) -> Result<(), ModelError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(ModelError::io("open", path))?;
    let line = serde_json::to_string(record).expect("a record serialises");
    writeln!(file, "{line}").map_err(ModelError::io("append to", path))
}

/// The records of the log at `path` (none if it does not exist); unreadable lines are
/// skipped (a crash can cut the last one short).
pub fn read_metrics(path: &Path) -> Vec<MetricsRecord> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Keeps only the records up to `step` (what a resumed run had checkpointed).
pub fn truncate_metrics(path: &Path, step: u64) -> Result<(), ModelError> {
    let kept: Vec<String> = read_metrics(path)
        .into_iter()
        .filter(|r| r.step <= step)
        .map(|r| serde_json::to_string(&r).expect("a record serialises"))
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    files::write(path, text.as_bytes(), Existing::Replace)
}

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Width and height of the learning curve, in pixels.
const PLOT_SIZE: (u32, u32) = (900, 560);

/// Draws train (thin, every step) and test (thick, at evaluations) bits/dim against
/// steps into a PNG at `path` (replaced whole).
pub fn plot_metrics(records: &[MetricsRecord], path: &Path) -> Result<(), ModelError> {
    register_font();
    let train: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| Some((r.step as f64, r.train_bits_per_dim?)))
        .filter(|p| p.1.is_finite())
        .collect();
    let test: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| Some((r.step as f64, r.test_bits_per_dim?)))
        .filter(|p| p.1.is_finite())
        .collect();
    let all = train.iter().chain(&test);
    let max_step = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo - 0.05 * (hi - lo + 0.1), hi + 0.05 * (hi - lo + 0.1))
    } else {
        (0.0, 8.0)
    };
    let (width, height) = PLOT_SIZE;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, PLOT_SIZE).into_drawing_area();
        let draw = |e: &dyn std::fmt::Display| {
            ModelError::invalid(path, format!("cannot draw the plot: {e}"))
        };
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("mAR-SCF: bits/dim", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_step, lo..hi)
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_desc("optimizer step")
            .y_desc("bits/dim")
            .draw()
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(LineSeries::new(train, BLUE.mix(0.6)))
            .map_err(|e| draw(&e))?
            .label("train (batch)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE));
        chart
            .draw_series(LineSeries::new(test.clone(), RED.stroke_width(3)))
            .map_err(|e| draw(&e))?
            .label("test")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(3)));
        chart
            .draw_series(test.iter().map(|&p| Circle::new(p, 4, RED.filled())))
            .map_err(|e| draw(&e))?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    let canvas = image::RgbImage::from_raw(width, height, pixels)
        .expect("the buffer holds width x height RGB pixels");
    write_png(canvas, path, Existing::Replace)
}

/// Height of the caption band above a grid, in pixels.
const CAPTION_HEIGHT: usize = 16;
/// Width of one character of the caption (13-pixel DejaVu Sans Mono advances 7.8), with
/// a margin.
const CAPTION_CHAR_WIDTH: usize = 8;

/// Saves images `(N, C, H, W)` in `[-0.5, 0.5]` as a PNG grid, `per_row` per row with a
/// 2-pixel border, under a one-line `caption` if given (say, the temperature); values are
/// clamped, NaN shows as black. One or three channels. An existing `path` is replaced
/// whole, or with [`Existing::Keep`] left as it is ([`ModelError::Exists`]).
pub fn save_image_grid(
    images: Tensor<4>,
    per_row: usize,
    caption: Option<&str>,
    path: &Path,
    existing: Existing,
) -> Result<(), ModelError> {
    let [n, c, h, w] = images.dims();
    let values: Vec<f32> = images
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::invalid(path, format!("cannot read the images back: {e:?}")))?;
    let per_row = per_row.max(1).min(n.max(1));
    let rows = n.div_ceil(per_row);
    let top = if caption.is_some() { CAPTION_HEIGHT } else { 0 };
    // A caption wider than the grid widens the canvas (the grid stays on the left).
    let caption_width = caption.map_or(0, |c| 6 + CAPTION_CHAR_WIDTH * c.chars().count());
    let (pad, height) = (2, top + rows * (h + 2) + 2);
    let width = (per_row * (w + 2) + 2).max(caption_width);
    let mut canvas = image::RgbImage::new(width as u32, height as u32);
    for i in 0..n {
        let (x0, y0) = (
            pad + (i % per_row) * (w + pad),
            top + pad + (i / per_row) * (h + pad),
        );
        for y in 0..h {
            for x in 0..w {
                let channel = |ch: usize| {
                    let v = values[((i * c + ch.min(c - 1)) * h + y) * w + x];
                    let v = if v.is_nan() { -0.5 } else { v.clamp(-0.5, 0.5) };
                    ((v + 0.5) * 255.0).round() as u8
                };
                canvas.put_pixel(
                    (x0 + x) as u32,
                    (y0 + y) as u32,
                    image::Rgb([channel(0), channel(1), channel(2)]),
                );
            }
        }
    }
    if let Some(caption) = caption {
        canvas = with_caption(canvas, caption, path)?;
    }
    write_png(canvas, path, existing)
}

/// `canvas` with `caption` written in white into its top [`CAPTION_HEIGHT`] pixels; `path`
/// names the file in errors.
fn with_caption(
    canvas: image::RgbImage,
    caption: &str,
    path: &Path,
) -> Result<image::RgbImage, ModelError> {
    register_font();
    let draw = |e: &dyn std::fmt::Display| {
        ModelError::invalid(path, format!("cannot draw the caption: {e}"))
    };
    let (width, height) = canvas.dimensions();
    let mut pixels = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        let style = ("sans-serif", CAPTION_HEIGHT as f64 - 3.0)
            .into_font()
            .color(&WHITE);
        root.draw_text(caption, &style, (3, 2))
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(image::RgbImage::from_raw(width, height, pixels)
        .expect("the buffer holds width x height RGB pixels"))
}

/// Encodes `canvas` as PNG and writes it to `path` through [`files::write`].
fn write_png(canvas: image::RgbImage, path: &Path, existing: Existing) -> Result<(), ModelError> {
    let png =
        encode_png(&canvas.into()).map_err(ModelError::format(path, "cannot encode the PNG"))?;
    files::write(path, &png, existing)
}

/// `image` encoded as PNG.
pub(crate) fn encode_png(image: &image::DynamicImage) -> Result<Vec<u8>, image::ImageError> {
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png)?;
    Ok(png.into_inner())
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    /// The PNG at `path`, decoded.
    fn read(path: &Path) -> image::RgbImage {
        image::open(path).expect("a PNG").to_rgb8()
    }

    #[test]
    fn a_caption_adds_a_band_above_the_same_grid() {
        let device = crate::select_device().expect("a backend is compiled in");
        device.seed(3);
        let images = Tensor::<4>::random([4, 1, 8, 8], Distribution::Uniform(-0.5, 0.5), &device);
        let dir = tempfile::tempdir().unwrap();
        let (plain, captioned) = (dir.path().join("plain.png"), dir.path().join("c.png"));
        save_image_grid(images.clone(), 2, None, &plain, Existing::Keep).unwrap();
        let caption = "step 12345, temperature 0.7";
        save_image_grid(images, 2, Some(caption), &captioned, Existing::Keep).unwrap();
        let (plain, captioned) = (read(&plain), read(&captioned));
        assert_eq!(plain.dimensions(), (2 * 10 + 2, 2 * 10 + 2));
        let (width, height) = captioned.dimensions();
        assert_eq!(height, plain.height() + CAPTION_HEIGHT as u32);
        assert!(
            width as usize >= 6 + CAPTION_CHAR_WIDTH * caption.chars().count(),
            "the canvas widens to the caption"
        );
        let band_lit = (0..width)
            .flat_map(|x| (0..CAPTION_HEIGHT as u32).map(move |y| (x, y)))
            .filter(|&(x, y)| captioned.get_pixel(x, y).0 != [0, 0, 0])
            .count();
        assert!(band_lit > 50, "the caption is drawn ({band_lit} pixels)");
        let right_half_lit = (width / 2..width)
            .flat_map(|x| (0..CAPTION_HEIGHT as u32).map(move |y| (x, y)))
            .any(|(x, y)| captioned.get_pixel(x, y).0 != [0, 0, 0]);
        assert!(right_half_lit, "the caption's end is not clipped");
        for (x, y, pixel) in plain.enumerate_pixels() {
            assert_eq!(
                captioned.get_pixel(x, y + CAPTION_HEIGHT as u32),
                pixel,
                "({x}, {y})"
            );
        }
    }
}
