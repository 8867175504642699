//! Winograd kernels kept across the forwards without autodiff that reuse a weight tensor:
//! the steps of sampling and the batches of an evaluation run the same weights through the
//! convolution again and again, and transforming a kernel anew at every sampling step took
//! 9 % of the mAR prior's sampling (docs/performance.md, sixth session).
//!
//! An entry is keyed by the address and length of its weight's storage and by the
//! convolution's geometry (less the batch), and holds a clone of the weight tensor: while it
//! is cached, that storage is neither freed, so that no other tensor can take its address,
//! nor written in place, since Flex writes in place only to storage that one tensor alone
//! holds. A key seen once holds nothing: a new weight at a freed address is at worst kept
//! one use early.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use burn::backend::flex::FlexTensor;

use super::conv::{ConvGeometry, Uses};
use super::tuning::{CACHED_KERNEL_LARGEST, CACHED_KERNEL_VALUES, WEIGHTS_SEEN_ONCE};
use super::winograd6::{self, Kernel};

// Every kernel kept fits in the budget on its own (`Cache::keep` relies on it).
const _: () = assert!(CACHED_KERNEL_LARGEST <= CACHED_KERNEL_VALUES);

/// One cached kernel.
struct Entry {
    key: Key,
    kernel: Arc<Kernel>,
    /// The weight the kernel was made from, held so that its storage stays as it is.
    _weight: FlexTensor,
}

/// What identifies a kernel: where the weight's values lie, and the geometry (batch 1).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    address: usize,
    len: usize,
    geometry: ConvGeometry,
}

/// The kernels kept, the most recently used last, the values they hold together, and the
/// keys of the weights seen once (kept on their second use, so that weights made anew at
/// every call, as weight normalisation's are, neither fill the cache nor push the others
/// out).
struct Cache {
    kept: VecDeque<Entry>,
    values: usize,
    seen_once: VecDeque<Key>,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    kept: VecDeque::new(),
    values: 0,
    seen_once: VecDeque::new(),
});

/// The Winograd kernel of `weight` for the convolutions of geometry `g` (any batch): kept
/// from its weight's second use on, for as long as the kernels used since fit in
/// [`CACHED_KERNEL_VALUES`]. `None` where [`winograd6`] does not apply, the weight is not
/// contiguous, its kernel is larger than [`CACHED_KERNEL_LARGEST`], or it is seen for the
/// first time and a kernel for one call does not pay ([`winograd6::pays`]).
pub fn winograd_kernel(weight: &FlexTensor, g: &ConvGeometry) -> Option<Arc<Kernel>> {
    if !winograd6::applies(g) || winograd6::kernel_values(g) > CACHED_KERNEL_LARGEST {
        return None;
    }
    let w = weight.as_slice::<f32>()?;
    let key = Key {
        address: w.as_ptr() as usize,
        len: w.len(),
        geometry: ConvGeometry { batch: 1, ..*g },
    };
    let lock = || CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let keep = {
        let mut cache = lock();
        if let Some(kernel) = cache.take(key) {
            return Some(kernel);
        }
        cache.note(key)
    };
    if !keep && !winograd6::pays(g, Uses::Once) {
        return None;
    }
    // Transformed outside the lock: other threads' convolutions need not wait for it.
    let kernel = Arc::new(Kernel::new(w, g));
    if keep {
        let mut cache = lock();
        // Another thread may have kept the same kernel meanwhile.
        if cache.take(key).is_none() {
            let entry = Entry {
                key,
                kernel: Arc::clone(&kernel),
                _weight: weight.clone(),
            };
            cache.keep(entry, CACHED_KERNEL_VALUES);
        }
    }
    Some(kernel)
}

impl Cache {
    /// The kept kernel of `key`, moved to the most recently used place.
    fn take(&mut self, key: Key) -> Option<Arc<Kernel>> {
        let at = self.kept.iter().position(|e| e.key == key)?;
        let entry = self.kept.remove(at).expect("the entry just found");
        let kernel = Arc::clone(&entry.kernel);
        self.kept.push_back(entry);
        Some(kernel)
    }

    /// `entry` kept as the most recently used, the least recently used dropped until the
    /// values of all fit in `budget` (at least the entry's own).
    fn keep(&mut self, entry: Entry, budget: usize) {
        let values = entry.kernel.values();
        while self.values + values > budget {
            let oldest = self
                .kept
                .pop_front()
                .expect("kept kernels hold the values counted");
            self.values -= oldest.kernel.values();
        }
        self.values += values;
        self.kept.push_back(entry);
    }

    /// Whether `key` was seen once before (then its kernel is to be kept); else it is noted
    /// as seen once.
    fn note(&mut self, key: Key) -> bool {
        if let Some(at) = self.seen_once.iter().position(|&k| k == key) {
            self.seen_once.remove(at);
            return true;
        }
        if self.seen_once.len() >= WEIGHTS_SEEN_ONCE {
            self.seen_once.pop_front();
        }
        self.seen_once.push_back(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::glue::tensor;
    use super::*;

    /// A cache entry for a 32 -> `c_out` kernel on 4x4 maps, told apart by `address`.
    fn entry(address: usize, c_out: usize) -> Entry {
        let g = ConvGeometry::same_3x3(1, 32, 4, c_out);
        let w = vec![0.0f32; c_out * 32 * 3 * 3];
        Entry {
            key: Key {
                address,
                len: w.len(),
                geometry: g,
            },
            kernel: Arc::new(Kernel::new(&w, &g)),
            _weight: tensor(w, [c_out, 32, 3, 3]),
        }
    }

    /// The addresses kept, least recently used first, after checking the values counted.
    fn kept(cache: &Cache) -> Vec<usize> {
        let values: usize = cache.kept.iter().map(|e| e.kernel.values()).sum();
        assert_eq!(cache.values, values, "the values counted are those kept");
        cache.kept.iter().map(|e| e.key.address).collect()
    }

    #[test]
    fn a_weight_seen_once_takes_winograd_over_enough_tiles_only() {
        // 192 -> 96 on 4x4 maps: one tile per sample.
        let geometry = |batch| ConvGeometry::same_3x3(batch, 192, 4, 96);
        let weight = || tensor(vec![0.5f32; 96 * 192 * 9], [96, 192, 3, 3]);
        let few = weight();
        assert!(
            winograd_kernel(&few, &geometry(16)).is_none(),
            "16 tiles, once"
        );
        assert!(
            winograd_kernel(&few, &geometry(16)).is_some(),
            "kept on its second use"
        );
        assert!(
            winograd_kernel(&weight(), &geometry(32)).is_some(),
            "32 tiles, once"
        );
    }

    #[test]
    fn room_is_made_by_dropping_the_least_recently_used() {
        let mut cache = Cache {
            kept: VecDeque::new(),
            values: 0,
            seen_once: VecDeque::new(),
        };
        let budget = 3 * 36 * 32 * 32;
        for address in 0..3 {
            cache.keep(entry(address, 32), budget);
        }
        assert_eq!(kept(&cache), [0, 1, 2]);
        // Using the first makes the second the least recently used, which a fourth pushes out.
        let first = cache.kept[0].key;
        assert!(cache.take(first).is_some());
        cache.keep(entry(3, 32), budget);
        assert_eq!(kept(&cache), [2, 0, 3]);
        // A kernel of twice the size pushes out two.
        cache.keep(entry(4, 64), budget);
        assert_eq!(kept(&cache), [3, 4]);
    }
}
