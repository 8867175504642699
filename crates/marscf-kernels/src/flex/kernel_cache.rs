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

use super::conv::ConvGeometry;
use super::tuning::{CACHED_KERNEL_LARGEST, CACHED_KERNEL_VALUES, WEIGHTS_SEEN_ONCE};
use super::winograd6::{self, Kernel};

// Every kernel kept fits in the budget on its own (`Cache::make_room` relies on it).
const _: () = assert!(CACHED_KERNEL_LARGEST <= CACHED_KERNEL_VALUES);

/// One cached kernel.
struct Entry {
    key: Key,
    /// The kernel's values, `36 Ci Co`.
    values: usize,
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
/// contiguous or its kernel is larger than [`CACHED_KERNEL_LARGEST`].
pub fn winograd_kernel(weight: &FlexTensor, g: &ConvGeometry) -> Option<Arc<Kernel>> {
    let values = 36 * g.c_in * g.c_out;
    if !winograd6::applies(g) || values > CACHED_KERNEL_LARGEST {
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
    // Transformed outside the lock: other threads' convolutions need not wait for it.
    let kernel = Arc::new(Kernel::new(w, g));
    if keep {
        let mut cache = lock();
        // Another thread may have kept the same kernel meanwhile.
        if cache.take(key).is_none() {
            cache.make_room(values, CACHED_KERNEL_VALUES);
            cache.kept.push_back(Entry {
                key,
                values,
                kernel: Arc::clone(&kernel),
                _weight: weight.clone(),
            });
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

    /// The least recently used kernels dropped until `values` more fit in `budget`
    /// (at least `values`), and those values counted.
    fn make_room(&mut self, values: usize, budget: usize) {
        while self.values + values > budget {
            let oldest = self
                .kept
                .pop_front()
                .expect("kept kernels hold the values counted");
            self.values -= oldest.values;
        }
        self.values += values;
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

    /// A cache entry for a 32 -> 8 kernel on 4x4 maps (`36 x 32 x 8` values), told apart by
    /// `address`.
    fn entry(address: usize) -> Entry {
        let g = ConvGeometry {
            batch: 1,
            c_in: 32,
            size: [4, 4],
            c_out: 8,
            kernel: [3, 3],
            padding: [(1, 1); 2],
            dilation: [1, 1],
        };
        let w = vec![0.0f32; 8 * 32 * 3 * 3];
        Entry {
            key: Key {
                address,
                len: w.len(),
                geometry: g,
            },
            values: 36 * 32 * 8,
            kernel: Arc::new(Kernel::new(&w, &g)),
            _weight: tensor(w, [8, 32, 3, 3]),
        }
    }

    #[test]
    fn room_is_made_by_dropping_the_least_recently_used() {
        let mut cache = Cache {
            kept: VecDeque::new(),
            values: 0,
            seen_once: VecDeque::new(),
        };
        let values = 36 * 32 * 8;
        let budget = 3 * values;
        for address in 0..3 {
            cache.make_room(values, budget);
            cache.kept.push_back(entry(address));
        }
        assert_eq!(cache.values, budget);
        // Using the first makes the second the least recently used, which a fourth pushes out.
        let first = cache.kept[0].key;
        assert!(cache.take(first).is_some());
        cache.make_room(values, budget);
        cache.kept.push_back(entry(3));
        let kept: Vec<usize> = cache.kept.iter().map(|e| e.key.address).collect();
        assert_eq!(kept, [2, 0, 3]);
        assert_eq!(cache.values, budget);
        // A kernel of twice the size pushes out two.
        cache.make_room(2 * values, budget);
        assert_eq!(cache.kept.len(), 1);
        assert_eq!(cache.values, budget);
    }
}
