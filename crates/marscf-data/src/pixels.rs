//! The bytes of an [`ImageSet`](crate::ImageSet): in memory, or a memory-mapped file of the
//! decode cache ([`crate::cache`]), so that a dataset larger than memory is paged in from disk
//! as batches touch it.
//!
//! Files are mapped with the `memmap2` crate (the maintained successor of `memmap`, used by
//! safetensors, ripgrep and others).

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use memmap2::Mmap;

/// `len * C * H * W` bytes of images, read through [`Deref`] as a `&[u8]`.
#[derive(Clone)]
pub enum Pixels {
    /// Bytes owned in memory.
    InMemory(Vec<u8>),
    /// A range of a read-only memory-mapped file; clones share the mapping.
    Mapped {
        /// The mapping (the whole file).
        map: Arc<Mmap>,
        /// The bytes of the map that are these pixels.
        range: Range<usize>,
    },
}

impl Pixels {
    /// All of `map`.
    pub fn mapped(map: Mmap) -> Self {
        let range = 0..map.len();
        Self::Mapped {
            map: Arc::new(map),
            range,
        }
    }

    /// Whether the bytes are a mapped file rather than owned memory.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped { .. })
    }

    /// The bytes `range` of these pixels: for a mapping, the same mapping (no copy).
    ///
    /// Panics if `range` is out of bounds, as slicing does.
    pub fn slice(&self, range: Range<usize>) -> Self {
        match self {
            Self::InMemory(bytes) => Self::InMemory(bytes[range].to_vec()),
            Self::Mapped { map, range: own } => {
                assert!(
                    range.start <= range.end && range.end <= own.len(),
                    "{range:?} out of bounds"
                );
                Self::Mapped {
                    map: Arc::clone(map),
                    range: own.start + range.start..own.start + range.end,
                }
            }
        }
    }

    /// The bytes as an owned, growable vector, copying a mapping into memory first (as
    /// [`Cow::to_mut`](std::borrow::Cow::to_mut) does).
    pub fn to_mut(&mut self) -> &mut Vec<u8> {
        if let Self::Mapped { .. } = self {
            *self = Self::InMemory(self.to_vec());
        }
        match self {
            Self::InMemory(bytes) => bytes,
            Self::Mapped { .. } => unreachable!("converted to InMemory above"),
        }
    }
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::InMemory(bytes) => bytes,
            Self::Mapped { map, range } => &map[range.clone()],
        }
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(bytes: Vec<u8>) -> Self {
        Self::InMemory(bytes)
    }
}

impl Default for Pixels {
    fn default() -> Self {
        Self::InMemory(Vec::new())
    }
}

/// Equal when the bytes are, wherever they live.
impl PartialEq for Pixels {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Pixels {}

/// The storage and the length, not the (possibly gigabytes of) bytes.
impl fmt::Debug for Pixels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_mapped() {
            "Mapped"
        } else {
            "InMemory"
        };
        write!(f, "Pixels::{kind}({} bytes)", self.len())
    }
}
