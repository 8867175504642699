//! Files whose headers promise far more than they hold: each is a typed error naming the file,
//! reached in memory bounded by the file's bytes, not by what its header says.
//!
//! This binary counts its heap with its own global allocator: the peak of live bytes during a
//! parse, above what was live before it. The allocator refuses any single request above
//! [`REFUSE_ABOVE`] (the process then aborts with "memory allocation of N bytes failed"), so
//! a reader that trusts a header fails here instead of reserving memory the machine lacks.
//! The tests of this file run one at a time (see [`measured`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use marscf_data::DataError;
use marscf_data::idx::parse_images;
use marscf_data::imagenet::{ImagenetSize, parse_npz_batch};
use marscf_test_support::files::{gzip, idx_images, npy, npy_header, npz};

/// Largest single allocation served; larger requests fail.
const REFUSE_ABOVE: usize = 1 << 30;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// [`System`], counting live bytes and their peak.
struct Counting;

impl Counting {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` with the caller's layout; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Self::grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `f`'s result and the peak of live heap bytes while it ran, above those live before it;
/// one measurement at a time, so that the tests of this binary do not blur each other's.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    (out, peak)
}

const MIB: usize = 1 << 20;
const IMAGE_32: usize = 3 * 32 * 32;

#[test]
fn npz_claiming_1e11_images_is_an_error_naming_the_member() {
    let n = 100_000_000_000usize;
    let mut data = npy_header("|u1", &[n, IMAGE_32]);
    data.extend_from_slice(&[7; 100]);
    let labels: Vec<u8> = (0..2i64).flat_map(|l| (l + 1).to_le_bytes()).collect();
    for (compressed, with_labels) in [(false, false), (true, false), (false, true)] {
        let mut members = vec![("data", data.clone())];
        if with_labels {
            members.push(("labels", npy("<i8", &[2], &labels)));
        }
        let bytes = npz(&members, compressed);
        let (result, peak) =
            measured(|| parse_npz_batch(Cursor::new(&bytes), "huge.npz", ImagenetSize::S32));
        let err = result.expect_err("the data is 100 bytes");
        assert!(
            matches!(
                &err,
                DataError::Truncated { path: file, expected, got: 100 }
                    if file == std::path::Path::new("huge.npz:data.npy") && *expected == n * IMAGE_32
            ),
            "compressed {compressed}, labels {with_labels}: {err}"
        );
        assert!(err.to_string().starts_with("huge.npz:data.npy: "), "{err}");
        assert!(
            peak < MIB,
            "peak {peak} bytes for a {} byte file",
            bytes.len()
        );
    }
}

#[test]
fn npz_whose_labels_claim_1e11_items_is_an_error_naming_the_member() {
    let set_bytes = vec![3u8; 2 * IMAGE_32];
    let mut labels = npy_header("<i8", &[100_000_000_000]);
    labels.extend_from_slice(&1i64.to_le_bytes());
    let bytes = npz(
        &[
            ("data", npy("|u1", &[2, IMAGE_32], &set_bytes)),
            ("labels", labels),
        ],
        true,
    );
    let (result, peak) =
        measured(|| parse_npz_batch(Cursor::new(&bytes), "l.npz", ImagenetSize::S32));
    let err = result.expect_err("one label for two images");
    assert!(
        matches!(&err, DataError::Mismatch { path: file, .. } | DataError::Truncated { path: file, .. }
            if file == std::path::Path::new("l.npz:labels.npy")),
        "{err}"
    );
    assert!(peak < MIB, "peak {peak} bytes");
}

/// Offsets of the 4-byte uncompressed-size fields of every local and central header of a
/// zip archive (signatures `PK\3\4` at +22 and `PK\1\2` at +24).
fn zip_size_fields(bytes: &[u8]) -> Vec<usize> {
    let mut fields = Vec::new();
    for i in 0..bytes.len().saturating_sub(4) {
        match &bytes[i..i + 4] {
            b"PK\x03\x04" => fields.push(i + 22),
            b"PK\x01\x02" => fields.push(i + 24),
            _ => {}
        }
    }
    fields
}

#[test]
fn npz_whose_zip_directory_forges_a_large_size_is_an_error() {
    // One real image, deflated; the npy header and the zip's size fields both claim a million
    // (3 GB of pixels), which the few compressed bytes cannot inflate to.
    let n = 1_000_000usize;
    let mut data = npy_header("|u1", &[n, IMAGE_32]);
    let header_len = data.len();
    data.extend_from_slice(&[0; IMAGE_32]);
    let mut bytes = npz(&[("data", data)], true);
    let forged = u32::try_from(header_len + n * IMAGE_32).unwrap();
    let fields = zip_size_fields(&bytes);
    assert_eq!(fields.len(), 2, "one local and one central header");
    for at in fields {
        bytes[at..at + 4].copy_from_slice(&forged.to_le_bytes());
    }
    let (result, peak) =
        measured(|| parse_npz_batch(Cursor::new(&bytes), "forged.npz", ImagenetSize::S32));
    let err = result.expect_err("the member holds one image");
    let text = marscf_test_support::chain(&err);
    assert!(text.starts_with("forged.npz:data.npy: "), "{text}");
    assert!(
        matches!(&err, DataError::Npz { message, .. } if message.contains("zip directory declares")),
        "{text}"
    );
    assert!(peak < MIB, "peak {peak} bytes");
}

#[test]
fn gzip_idx_with_megabytes_after_its_images_is_an_error_in_bounded_memory() {
    let images = 4;
    let mut raw = idx_images(&vec![9; images * 28 * 28], images as u32, 28, 28);
    let promised = raw.len();
    raw.resize(promised + 8 * MIB, 0);
    let file = gzip(&raw);
    drop(raw);
    let (result, peak) = measured(|| parse_images(&file, "long.gz"));
    let err = result.expect_err("8 MiB follow the images");
    assert!(
        matches!(&err, DataError::TrailingData { path: file, expected }
            if file == std::path::Path::new("long.gz") && *expected == promised),
        "{err}"
    );
    assert!(peak < MIB, "peak {peak} bytes: the zeros were inflated");
}

#[test]
fn gzip_idx_claiming_more_images_than_it_holds_is_truncated() {
    let pixels = vec![5u8; 3 * 28 * 28];
    // A valid gzip stream with 3 of the 4 images promised.
    let short = gzip(&idx_images(&pixels, 4, 28, 28));
    let (result, _) = measured(|| parse_images(&short, "short.gz"));
    let err = result.expect_err("3 of 4 images");
    assert!(
        matches!(&err, DataError::Truncated { path: file, expected, got }
            if file == std::path::Path::new("short.gz") && *expected == 16 + 4 * 784 && *got == 16 + 3 * 784),
        "{err}"
    );
    // A header claiming 2^32 - 1 images (3.4 TB): nothing near that is reserved.
    let (result, peak) =
        measured(|| parse_images(&gzip(&idx_images(&pixels, u32::MAX, 28, 28)), "big.gz"));
    assert!(
        matches!(&result, Err(DataError::Truncated { path: file, .. }) if file == std::path::Path::new("big.gz")),
        "{result:?}"
    );
    assert!(peak < MIB, "peak {peak} bytes");
    // A gzip stream cut short: the decoder's error, naming the file.
    let full = gzip(&idx_images(&[5; 4 * 784], 4, 28, 28));
    let (result, _) = measured(|| parse_images(&full[..full.len() - 12], "cut.gz"));
    assert!(
        matches!(&result, Err(DataError::Gzip { path: file, .. }) if file == std::path::Path::new("cut.gz")),
        "{result:?}"
    );
}
