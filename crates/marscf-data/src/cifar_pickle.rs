//! A batch of CIFAR-10's Python distribution (`cifar-10-batches-py/data_batch_1` ..), as
//! torchvision downloads it: a pickle (protocol 2, written by Python 2's `cPickle`) of a dict
//! `{b'data': uint8 array (N, 3072), b'labels': [N ints], b'batch_label': .., b'filenames': ..}`.
//!
//! The pickle is decoded with the `serde-pickle` crate, which runs no Python code: it keeps
//! unknown callables as opaque stand-ins and, on `BUILD`, replaces the stand-in by the state it
//! is given. A NumPy array is pickled as `numpy.core.multiarray._reconstruct(ndarray, (0,),
//! b'b')` followed by `BUILD` with the state `(version, shape, dtype, is_fortran, raw bytes)`,
//! so after decoding the dict's `data` entry *is* that state tuple (version 1 in all NumPy
//! releases; NumPy's own `__setstate__` also accepts the 4-tuple without it). Its `dtype`
//! entry is likewise only the dtype's state, which does not name the type; the reader
//! instead checks that the raw bytes hold exactly one byte per element, which is what a
//! `uint8` array has (any wider type has more). Keys may be `bytes` (Python 2) or `str`
//! (a batch re-pickled by Python 3).
//!
//! Limits: a pickle that nests containers tens of thousands deep (nothing CIFAR-10 writes)
//! can exhaust the decoder's stack.

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::DataError;
use crate::cifar::{CIFAR_CLASSES, CIFAR_SHAPE, IMAGE_BYTES};
use crate::images::ImageSet;

/// One batch of CIFAR-10's Python distribution as `len` images `[3, 32, 32]` with labels.
pub fn parse_python_batch(bytes: &[u8], file: &str) -> Result<ImageSet, DataError> {
    let err = |message: String| DataError::Pickle {
        file: file.to_string(),
        message,
    };
    let value =
        serde_pickle::value_from_slice(bytes, DeOptions::new().replace_unresolved_globals())
            .map_err(|e| err(e.to_string()))?;
    let Value::Dict(dict) = value else {
        return Err(err(format!(
            "top-level object is {}, expected a dict",
            kind(&value)
        )));
    };
    let entry = |key: &str| {
        dict.get(&HashableValue::Bytes(key.as_bytes().to_vec()))
            .or_else(|| dict.get(&HashableValue::String(key.to_string())))
            .ok_or_else(|| err(format!("the dict has no '{key}' entry")))
    };
    let (n, pixels) = uint8_rows(entry("data")?).map_err(|m| err(format!("'data': {m}")))?;
    let labels = match entry("labels")? {
        Value::List(items) | Value::Tuple(items) => items,
        other => return Err(err(format!("'labels' is {}, expected a list", kind(other)))),
    };
    if labels.len() != n {
        return Err(DataError::Mismatch {
            file: file.to_string(),
            message: format!("{} labels for {n} images", labels.len()),
        });
    }
    let labels = labels
        .iter()
        .enumerate()
        .map(|(index, label)| match label {
            Value::I64(l) if (0..CIFAR_CLASSES as i64).contains(l) => Ok(*l as u16),
            Value::I64(l) => Err(DataError::LabelOutOfRange {
                file: file.to_string(),
                index,
                label: *l,
                classes: CIFAR_CLASSES,
            }),
            other => Err(err(format!(
                "label {index} is {}, expected an int",
                kind(other)
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImageSet {
        shape: CIFAR_SHAPE,
        pixels,
        labels,
    })
}

/// `(n, bytes)` of the reduced state of a C-ordered one-byte NumPy array of shape
/// `(n, 3072)` or `(n, 3, 32, 32)`.
fn uint8_rows(value: &Value) -> Result<(usize, Vec<u8>), String> {
    let Value::Tuple(state) = value else {
        return Err(format!("{}, expected a pickled NumPy array", kind(value)));
    };
    let (shape, fortran, raw) = match state.as_slice() {
        [Value::I64(_), shape, _dtype, fortran, raw] | [shape, _dtype, fortran, raw] => {
            (shape, fortran, raw)
        }
        _ => {
            return Err(format!(
                "array state has {} items, expected 4 or 5",
                state.len()
            ));
        }
    };
    let shape = match shape {
        Value::Tuple(dims) | Value::List(dims) => dims
            .iter()
            .map(|d| match d {
                Value::I64(d) => usize::try_from(*d).map_err(|_| format!("dimension {d}")),
                other => Err(format!("dimension is {}", kind(other))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("shape is {}, expected a tuple", kind(other))),
    };
    let n = match shape.as_slice() {
        [n, IMAGE_BYTES] | [n, 3, 32, 32] => *n,
        _ => return Err(format!("shape {shape:?}, expected (N, {IMAGE_BYTES})")),
    };
    if !matches!(fortran, Value::Bool(false)) {
        return Err("array is not in C order".into());
    }
    let raw = match raw {
        Value::Bytes(raw) => raw,
        other => return Err(format!("array data is {}, expected bytes", kind(other))),
    };
    let expected = n.checked_mul(IMAGE_BYTES).ok_or("shape overflows")?;
    if raw.len() != expected {
        return Err(format!(
            "{} data bytes for shape {shape:?}: not a uint8 array of that shape",
            raw.len()
        ));
    }
    Ok((n, raw.clone()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cifar_pickle, cifar_pickle_with, test_images};

    /// Pickles written by Python 3's own pickler (protocols 2 and 4) from stand-in classes
    /// that reduce exactly as NumPy's `ndarray` and `dtype` do; see
    /// `tests/fixtures/make_cifar_pickles.py`.
    const PY3_PROTOCOL2: &[u8] = include_bytes!("../tests/fixtures/cifar_py3_protocol2.pickle");
    const PY3_PROTOCOL4: &[u8] = include_bytes!("../tests/fixtures/cifar_py3_protocol4.pickle");

    #[test]
    fn reads_a_cpickle_protocol2_batch() {
        let set = test_images(CIFAR_SHAPE, 4, 10);
        let parsed = parse_python_batch(&cifar_pickle(&set), "data_batch_1").unwrap();
        assert_eq!(parsed, set);
    }

    #[test]
    fn reads_batches_pickled_by_python3() {
        // The generator's images: pixel (i, c, y, x) = (i * 7 + c * 50 + y * 3 + x) % 256,
        // labels 3, 1.
        let expected = test_images(CIFAR_SHAPE, 2, 10);
        for bytes in [PY3_PROTOCOL2, PY3_PROTOCOL4] {
            let parsed = parse_python_batch(bytes, "fixture").unwrap();
            assert_eq!(parsed.labels, vec![3, 1]);
            assert_eq!(parsed.pixels, expected.pixels);
        }
    }

    #[test]
    fn rejects_bad_batches() {
        let set = test_images(CIFAR_SHAPE, 2, 10);
        let good = cifar_pickle(&set);
        let is_pickle = |r: Result<ImageSet, DataError>| match r {
            Err(DataError::Pickle { file, .. }) => file == "f",
            _ => false,
        };
        assert!(is_pickle(parse_python_batch(&good[..good.len() / 2], "f")));
        assert!(is_pickle(parse_python_batch(b"not a pickle", "f")));
        assert!(
            is_pickle(parse_python_batch(b"\x80\x02K\x01.", "f")),
            "an int, not a dict"
        );
        // Labels out of range, or as many as the images.
        let bad = cifar_pickle_with(&set.pixels, 2, &[3, 10]);
        let err = parse_python_batch(&bad, "f").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
        let bad = cifar_pickle_with(&set.pixels, 2, &[3]);
        assert!(matches!(
            parse_python_batch(&bad, "f"),
            Err(DataError::Mismatch { .. })
        ));
        // Data bytes that do not fill the shape (or fill it twice, as uint16 would).
        let bad = cifar_pickle_with(&set.pixels[..IMAGE_BYTES], 2, &[1, 2]);
        assert!(is_pickle(parse_python_batch(&bad, "f")));
        let doubled = [set.pixels.clone(), set.pixels.clone()].concat();
        let bad = cifar_pickle_with(&doubled, 2, &[1, 2]);
        assert!(is_pickle(parse_python_batch(&bad, "f")));
    }
}
