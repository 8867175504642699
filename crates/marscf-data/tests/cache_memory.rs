//! Peak memory of loading a synthetic, scaled-down ImageNet64 (npz batches and an image
//! folder) into memory and through the decode cache, from `/proc/self/status` (`VmHWM`, the
//! peak resident set). Each measurement runs in a fresh process (this binary, re-run with
//! `--probe`), so that neither other tests nor memory the allocator kept from an earlier
//! phase blur it: hence `harness = false`. Linux only. Prints the figures.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use marscf_data::{CacheDir, DatasetName, LoadOptions, MnistLayout, load, load_with};
use marscf_test_support::{
    files::{npy_header, png},
    temp_dir,
};

const IMAGE_BYTES: usize = 3 * 64 * 64;

/// A field of `/proc/self/status` in bytes.
fn status(field: &str) -> usize {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// The byte of image `i` at offset `j`.
fn pixel(i: usize, j: usize) -> u8 {
    (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8
}

/// An npz batch of `n` 64x64 images, written to disk a row at a time.
fn write_npz(path: &Path, first: usize, n: usize) {
    let mut zip = zip::ZipWriter::new(BufWriter::new(File::create(path).unwrap()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("data.npy", stored).unwrap();
    zip.write_all(&npy_header("|u1", &[n, IMAGE_BYTES]))
        .unwrap();
    let mut row = vec![0u8; IMAGE_BYTES];
    for i in first..first + n {
        row.iter_mut()
            .enumerate()
            .for_each(|(j, p)| *p = pixel(i, j));
        zip.write_all(&row).unwrap();
    }
    zip.start_file("labels.npy", stored).unwrap();
    zip.write_all(&npy_header("<i8", &[n])).unwrap();
    for i in first..first + n {
        zip.write_all(&((i % 1000) as i64 + 1).to_le_bytes())
            .unwrap();
    }
    zip.finish().unwrap();
}

/// ImageNet64 as npz: `n` training images in 4 batches, 16 validation images.
fn npz_root(root: &Path, n: usize) {
    for k in 0..4 {
        let path = root.join(format!("train_data_batch_{}.npz", k + 1));
        write_npz(&path, k * n / 4, n / 4);
    }
    write_npz(&root.join("val_data.npz"), 0, 16);
}

/// ImageNet64 as image folders: `n` training PNGs in 4 classes, 16 validation PNGs.
fn folder_root(root: &Path, n: usize) {
    for (split, count) in [("train_64x64", n), ("valid_64x64", 16)] {
        for i in 0..count {
            let dir = root.join(split).join(format!("n{:02}", i % 4));
            std::fs::create_dir_all(&dir).unwrap();
            let rgb: Vec<u8> = (0..IMAGE_BYTES).map(|j| pixel(i, j)).collect();
            std::fs::write(dir.join(format!("{i:06}.png")), png(64, 64, &rgb)).unwrap();
        }
    }
}

/// One phase, in this process: prints `peak <bytes above the start> anon <bytes>`, the
/// second the anonymous memory a full pass over the loaded images adds.
fn probe(phase: &str, root: &Path) {
    let start = status("VmRSS:");
    let name = DatasetName::Imagenet64;
    let layout = MnistLayout::Reference;
    let options = LoadOptions::cached(layout, CacheDir::InDataRoot);
    let (train, _) = match phase {
        "memory" => load(name, Some(root), layout).unwrap(),
        "build" | "mapped" => load_with(name, Some(root), &options).unwrap(),
        other => panic!("unknown phase {other}"),
    };
    let peak = status("VmHWM:").saturating_sub(start);
    assert_eq!(train.pixels.is_mapped(), phase != "memory");
    // A pass over every image: for a mapping, the pages touched are file-backed (RssFile,
    // reclaimable page cache), not anonymous memory.
    let anon_before = status("RssAnon:");
    let sum: u64 = (0..train.len())
        .map(|i| train.image(i).iter().map(|&b| u64::from(b)).sum::<u64>())
        .sum();
    assert!(sum > 0);
    let anon = status("RssAnon:").saturating_sub(anon_before);
    println!("peak {peak} anon {anon}");
}

/// `(peak, anon)` of `phase` run in a fresh process.
fn run_probe(phase: &str, root: &Path) -> (usize, usize) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--probe", phase])
        .arg(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{phase}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["peak", peak, "anon", anon] => (peak.parse().unwrap(), anon.parse().unwrap()),
        _ => panic!("{phase}: unexpected output {text:?}"),
    }
}

struct Figures {
    in_memory: usize,
    build: usize,
    mapped_load: usize,
    pass_anon: usize,
}

fn measure(root: &Path) -> Figures {
    let (in_memory, _) = run_probe("memory", root);
    let (build, _) = run_probe("build", root);
    let (mapped_load, pass_anon) = run_probe("mapped", root);
    Figures {
        in_memory,
        build,
        mapped_load,
        pass_anon,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, phase, root] = args.as_slice()
        && flag == "--probe"
    {
        probe(phase, Path::new(root));
        return;
    }
    if !cfg!(target_os = "linux") {
        println!("cache_memory: skipped, /proc/self/status is Linux's");
        return;
    }
    const MIB: f64 = 1024.0 * 1024.0;
    for (layout, sizes) in [("npz", [2_000, 8_000]), ("folder", [500, 2_000])] {
        let mut figures = Vec::new();
        for n in sizes {
            let root = temp_dir("cache_memory");
            match layout {
                "npz" => npz_root(root.path(), n),
                _ => folder_root(root.path(), n),
            }
            let f = measure(root.path());
            println!(
                "{layout:>6} {n:>5} images ({:5.1} MiB of pixels): peak in memory {:6.1} MiB, \
                 building the cache {:5.1} MiB, loading the cache {:5.2} MiB, \
                 anonymous memory of a full pass {:5.2} MiB",
                (n * IMAGE_BYTES) as f64 / MIB,
                f.in_memory as f64 / MIB,
                f.build as f64 / MIB,
                f.mapped_load as f64 / MIB,
                f.pass_anon as f64 / MIB,
            );
            figures.push((n, f));
        }
        let [(n0, small), (n1, large)] = [&figures[0], &figures[1]].map(|(n, f)| (*n, f));
        let extra = (n1 - n0) as f64;
        let per_image = |a: usize, b: usize| (b as f64 - a as f64) / extra;
        println!(
            "{layout:>6}: per extra image, in memory {:.0} B, building the cache {:.0} B, \
             loading the cache {:.1} B (an image is {IMAGE_BYTES} B)",
            per_image(small.in_memory, large.in_memory),
            per_image(small.build, large.build),
            per_image(small.mapped_load, large.mapped_load),
        );
        // In memory the peak grows by at least the pixels; through the cache by a small
        // fraction of them (labels, the file names of an image folder).
        assert!(per_image(small.in_memory, large.in_memory) > 0.9 * IMAGE_BYTES as f64);
        assert!(per_image(small.build, large.build) < 0.1 * IMAGE_BYTES as f64);
        assert!(per_image(small.mapped_load, large.mapped_load) < 0.05 * IMAGE_BYTES as f64);
        assert!(large.pass_anon < (n1 * IMAGE_BYTES) / 10);
    }
}
