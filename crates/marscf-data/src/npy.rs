//! NumPy's `.npy` arrays (format versions 1 to 3) of integers and floats, and `.npz`
//! archives of them, read and written ([`header`], [`write_npz`]).
//!
//! An `.npz` file is a zip archive (stored or deflated) with one `NAME.npy` member per array;
//! the archive is read with the `zip` crate. An `.npy` member is the magic `\x93NUMPY`, a
//! version, a header length, a header that is a Python dict literal
//! `{'descr': '<i8', 'fortran_order': False, 'shape': (N, 3072), }`, then the raw elements.
//!
//! The `.npy` part is parsed here rather than with the `npyz` crate: `npyz` 0.9.1 panics
//! ("attempt to multiply with overflow") on a header whose shape product overflows `u64`,
//! which a corrupt file can hold, and this reader only needs integer arrays in C order.
//! Every size is computed with checked arithmetic and checked against the bytes present, so
//! a corrupt header never causes a large allocation.

use std::io::{Read, Seek, Write};

use crate::DataError;

/// Element type of an array: integer (`i`, `u`, `b` for bools) or float (`f`), its size and
/// byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementType {
    /// Whether the elements are floats (`f4`, `f8`).
    pub float: bool,
    /// Whether the elements are signed (`i`, and floats) or unsigned (`u`, or `b` for bools).
    pub signed: bool,
    /// Bytes per element: 1, 2, 4 or 8.
    pub size: usize,
    /// Whether multi-byte elements are big-endian.
    pub big_endian: bool,
}

/// An integer array read from an `.npy` file: its shape and its raw elements in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: ElementType,
    /// `product(shape) * dtype.size` bytes, C order.
    pub data: Vec<u8>,
}

/// The header of an `.npy` array: what its data bytes, which follow it, hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The shape, outermost dimension first.
    pub shape: Vec<usize>,
    /// The element type.
    pub dtype: ElementType,
    /// Bytes of data that follow the header, `product(shape) * dtype.size`.
    pub data_len: usize,
}

impl NpyHeader {
    /// Parses the header at the start of `bytes` (which may go on with the data); returns it
    /// and the offset of the first data byte.
    pub fn parse(bytes: &[u8], file: &str) -> Result<(Self, usize), DataError> {
        let err = |message: String| DataError::npz(file, message);
        let (header_start, header_len) = header_extent(bytes, file)?;
        let data_start = header_start
            .checked_add(header_len)
            .ok_or_else(|| err("header length overflows".into()))?;
        let header = bytes
            .get(header_start..data_start)
            .ok_or_else(|| err(format!("header of {header_len} bytes runs past the end")))?;
        let header = std::str::from_utf8(header).map_err(|_| err("header is not text".into()))?;
        let (dtype, fortran, shape) =
            parse_header(header).map_err(|m| err(format!("header: {m}")))?;
        let data_len = shape
            .iter()
            .try_fold(dtype.size, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| err(format!("shape {shape:?} overflows")))?;
        if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
            return Err(err("Fortran-ordered arrays are not supported".into()));
        }
        Ok((
            Self {
                shape,
                dtype,
                data_len,
            },
            data_start,
        ))
    }

    /// Reads the header from the start of `reader`, leaving it at the first data byte; returns
    /// it and the offset of that byte. An I/O error other than the end of the input is passed
    /// to `io_err`.
    fn read(
        reader: &mut impl Read,
        file: &str,
        io_err: impl Fn(std::io::Error) -> DataError,
    ) -> Result<(Self, usize), DataError> {
        let mut prefix = vec![0u8; 10];
        let got = read_full(reader, &mut prefix).map_err(&io_err)?;
        prefix.truncate(got);
        if matches!(prefix.get(6), Some(2 | 3)) {
            let mut len = [0u8; 2];
            let got = read_full(reader, &mut len).map_err(&io_err)?;
            prefix.extend_from_slice(&len[..got]);
        }
        let (header_start, header_len) = header_extent(&prefix, file)?;
        // Grows with the bytes present: a forged length cannot cause a large allocation.
        reader
            .take(header_len as u64)
            .read_to_end(&mut prefix)
            .map_err(&io_err)?;
        let (header, data_start) = Self::parse(&prefix, file)?;
        debug_assert_eq!(data_start, header_start + header_len);
        Ok((header, data_start))
    }
}

/// `(offset, length)` of the header text, from the magic, version and length fields.
fn header_extent(bytes: &[u8], file: &str) -> Result<(usize, usize), DataError> {
    let err = |message: String| DataError::npz(file, message);
    if bytes.len() < 10 || !bytes.starts_with(b"\x93NUMPY") {
        return Err(err("not an .npy array (no \\x93NUMPY magic)".into()));
    }
    match bytes[6] {
        1 => Ok((10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]])))),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            Ok((
                12,
                usize::try_from(len).map_err(|_| err("header length overflows".into()))?,
            ))
        }
        v => Err(err(format!("unsupported .npy format version {v}"))),
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl NpyArray {
    /// Parses an `.npy` file held in `bytes` (consumed to avoid a copy of the data).
    pub fn from_vec(mut bytes: Vec<u8>, file: &str) -> Result<Self, DataError> {
        let (header, data_start) = NpyHeader::parse(&bytes, file)?;
        let got = bytes.len() - data_start;
        if got != header.data_len {
            return Err(DataError::Truncated {
                path: file.into(),
                expected: header.data_len,
                got,
            });
        }
        bytes.drain(..data_start);
        Ok(Self {
            shape: header.shape,
            dtype: header.dtype,
            data: bytes,
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements of a float array as `f64` (float32 widened exactly); an integer array
    /// is an error.
    pub fn to_f64(&self, file: &str) -> Result<Vec<f64>, DataError> {
        let ElementType {
            float,
            size,
            big_endian,
            ..
        } = self.dtype;
        if !float {
            return Err(DataError::npz(file, "the array holds integers, not floats"));
        }
        Ok(self
            .data
            .chunks_exact(size)
            .map(|chunk| {
                let mut buf = [0u8; 8];
                buf[..size].copy_from_slice(chunk);
                if big_endian {
                    buf[..size].reverse();
                }
                match size {
                    4 => f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as f64,
                    _ => f64::from_le_bytes(buf),
                }
            })
            .collect())
    }

    /// The elements of any integer type as `i64`; an unsigned 64-bit element above
    /// `i64::MAX` is an error, and so is a float array.
    pub fn to_i64(&self, file: &str) -> Result<Vec<i64>, DataError> {
        let ElementType {
            float,
            signed,
            size,
            big_endian,
        } = self.dtype;
        if float {
            return Err(DataError::npz(file, "the array holds floats, not integers"));
        }
        self.data
            .chunks_exact(size)
            .map(|chunk| {
                let mut buf = [0u8; 8];
                let fill = if signed && chunk[if big_endian { 0 } else { size - 1 }] & 0x80 != 0 {
                    0xff
                } else {
                    0
                };
                buf.fill(fill);
                if big_endian {
                    chunk
                        .iter()
                        .rev()
                        .zip(buf.iter_mut())
                        .for_each(|(s, d)| *d = *s);
                } else {
                    chunk.iter().zip(buf.iter_mut()).for_each(|(s, d)| *d = *s);
                }
                let value = i64::from_le_bytes(buf);
                if !signed && size == 8 && value < 0 {
                    return Err(DataError::npz(file, "a uint64 element does not fit in i64"));
                }
                Ok(value)
            })
            .collect()
    }
}

/// The most bytes a deflate stream can inflate to per compressed byte. A match copies at
/// most 258 bytes and costs at least 2 bits (a 1-bit length code and a 1-bit distance code in
/// the most skewed Huffman tables), so `n` compressed bytes inflate to at most `1032 n` bytes
/// (plus one last match, [`DEFLATE_SLACK`]).
pub const DEFLATE_MAX_RATIO: u64 = 1032;
/// The bytes one last match adds to the bound of [`DEFLATE_MAX_RATIO`]: a deflated member of `n`
/// compressed bytes inflates to at most `1032 n + 258` bytes.
pub const DEFLATE_SLACK: u64 = 258;

/// An `.npz` archive open for reading its arrays.
///
/// Every size an allocation depends on is bounded by the archive's bytes: a member's declared
/// (uncompressed) size `s` must satisfy `s <= c` for a stored member and
/// `s <= 1032 c + 258` for a deflated one of `c` compressed bytes, the zip reader fails once a
/// member inflates past `s`, and an array's header must promise exactly the `s - h` bytes
/// that follow its `h`-byte header.
pub struct Npz<R> {
    archive: zip::ZipArchive<R>,
    file: String,
}

/// An array's member opened for reading: the header read, the reader at the first data byte.
pub struct NpyStream<'a, R: Read> {
    /// The array's header; its `data_len` is the member's size past the header.
    pub header: NpyHeader,
    /// The member (`archive.npz:name.npy`), for errors.
    pub file: String,
    /// The data bytes; reading to the end checks the member's CRC-32.
    pub data: zip::read::ZipFile<'a, R>,
}

impl<R: Read> NpyStream<'_, R> {
    /// The whole array, read (to the end, checking the CRC-32) into memory that grows with the
    /// bytes read, never beyond `header.data_len`.
    pub fn into_array(mut self) -> Result<NpyArray, DataError> {
        let mut data = Vec::new();
        (&mut self.data)
            .take(self.header.data_len as u64)
            .read_to_end(&mut data)
            .map_err(DataError::zip::<std::io::Error>(&self.file))?;
        let extra = std::io::copy(&mut self.data, &mut std::io::sink())
            .map_err(DataError::zip::<std::io::Error>(&self.file))?;
        if data.len() != self.header.data_len || extra > 0 {
            return Err(DataError::Truncated {
                path: self.file.into(),
                expected: self.header.data_len,
                got: data
                    .len()
                    .saturating_add(usize::try_from(extra).unwrap_or(usize::MAX)),
            });
        }
        Ok(NpyArray {
            shape: self.header.shape,
            dtype: self.header.dtype,
            data,
        })
    }
}

impl<R: Read + Seek> Npz<R> {
    /// Opens the archive; `file` names it in errors.
    pub fn new(reader: R, file: &str) -> Result<Self, DataError> {
        let archive = zip::ZipArchive::new(reader).map_err(DataError::zip(file))?;
        Ok(Self {
            archive,
            file: file.to_string(),
        })
    }

    /// The array `name` (the member `name.npy`), or `None` if the archive has no such member.
    pub fn array(&mut self, name: &str) -> Result<Option<NpyArray>, DataError> {
        self.stream(name)?.map(NpyStream::into_array).transpose()
    }

    /// The array `name` with its header read and its data not yet, or `None` if the archive
    /// has no member `name.npy`. The header must promise exactly the bytes the member holds
    /// past it (else a [`DataError::Truncated`] naming the member): an array's size is then
    /// bounded by the archive's bytes (see [`Npz`]) before anything is allocated for it.
    pub fn stream(&mut self, name: &str) -> Result<Option<NpyStream<'_, R>>, DataError> {
        let Some((mut entry, file)) = self.member(name)? else {
            return Ok(None);
        };
        let size = entry.size();
        let (header, data_start) = NpyHeader::read(&mut entry, &file, DataError::zip(&file))?;
        let held = size.saturating_sub(data_start as u64);
        if header.data_len as u64 != held {
            return Err(DataError::Truncated {
                path: file.clone().into(),
                expected: header.data_len,
                got: usize::try_from(held).unwrap_or(usize::MAX),
            });
        }
        Ok(Some(NpyStream {
            header,
            file,
            data: entry,
        }))
    }

    /// The member `name.npy` and its name for errors, its declared size checked against its
    /// compressed bytes.
    fn member(
        &mut self,
        name: &str,
    ) -> Result<Option<(zip::read::ZipFile<'_, R>, String)>, DataError> {
        let member = format!("{name}.npy");
        let file = format!("{}:{member}", self.file);
        let entry = match self.archive.by_name(&member) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(DataError::zip(&file)(e)),
        };
        let (size, compressed) = (entry.size(), entry.compressed_size());
        let most = match entry.compression() {
            zip::CompressionMethod::Stored => compressed,
            zip::CompressionMethod::Deflated => compressed
                .saturating_mul(DEFLATE_MAX_RATIO)
                .saturating_add(DEFLATE_SLACK),
            // Not readable with this crate's features: the read fails with the zip error.
            _ => size,
        };
        if size > most {
            return Err(DataError::npz(
                file,
                format!(
                    "the zip directory declares {size} bytes, more than its {compressed} \
                     compressed bytes can hold (at most {most})"
                ),
            ));
        }
        Ok(Some((entry, file)))
    }
}

/// The header of an `.npy` file (format 1.0) of dtype `descr` (say `|u1`, `<f8`) and `shape`
/// in C order, up to the first data byte, as `numpy.save` writes it: the dict padded with
/// spaces and a newline to a multiple of 64 bytes.
///
/// # Panics
/// If the header exceeds format 1.0's 65,535 bytes (a shape of thousands of dimensions).
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let len = u16::try_from(dict.len()).expect("an .npy 1.0 header holds at most 65,535 bytes");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes to `out` an `.npz` archive of the arrays `(name, descr, shape, data)`, each the
/// member `name.npy`, stored uncompressed as `numpy.savez` does (zip64 where a member
/// needs it). `data` writes an array's elements in C order, exactly
/// `product(shape) * size` bytes of them, so that a large array is streamed, not held.
pub fn write_npz<W: Write + Seek>(
    out: W,
    arrays: Vec<NpzMember<'_>>,
) -> Result<W, zip::result::ZipError> {
    let mut zip = zip::ZipWriter::new(out);
    for NpzMember {
        name,
        descr,
        shape,
        data,
    } in arrays
    {
        let invalid = |what: String| {
            zip::result::ZipError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name}.npy: {what}"),
            ))
        };
        let element = element_type(descr).map_err(invalid)?;
        let header = header(descr, shape);
        let bytes = shape
            .iter()
            .fold(element.size as u64, |acc, &d| acc.saturating_mul(d as u64));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes.saturating_add(header.len() as u64) >= u32::MAX as u64);
        zip.start_file(format!("{name}.npy"), options)?;
        zip.write_all(&header)?;
        let mut counted = CountingWriter {
            out: &mut zip,
            written: 0,
        };
        data(&mut counted)?;
        if counted.written != bytes {
            return Err(invalid(format!(
                "{} bytes of elements written, {bytes} expected for {descr} {shape:?}",
                counted.written
            )));
        }
    }
    zip.finish()
}

/// A writer that counts the bytes it passes on.
struct CountingWriter<W> {
    out: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One array of [`write_npz`]: its name, dtype, shape and the writer of its elements.
pub struct NpzMember<'a> {
    /// The array's name (the member `name.npy`).
    pub name: &'a str,
    /// Its NumPy dtype string, byte order, kind and size: `|u1`, `<f8`.
    pub descr: &'a str,
    /// Its shape, outermost first.
    pub shape: &'a [usize],
    /// Writes its elements in C order.
    pub data: ElementWriter<'a>,
}

/// Writes an [`NpzMember`]'s elements (as bytes of its dtype) into its member.
pub type ElementWriter<'a> = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + 'a>;

/// `(dtype, fortran_order, shape)` from the header dict as `numpy.lib.format` writes it:
/// its three keys in this order, `{'descr': '<u1', 'fortran_order': False, 'shape': (50000,
/// 3072), }` (Python 2's `L` after an integer accepted, the trailing comma optional).
fn parse_header(text: &str) -> Result<(ElementType, bool, Vec<usize>), String> {
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("not a dict")?;
    let (descr, rest) = entry(body, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.strip_suffix('\''))
        .ok_or("'descr' is not a quoted dtype string (structured dtypes are not supported)")?;
    let (fortran, rest) = entry(rest, "fortran_order")?;
    let fortran = match fortran {
        "True" => true,
        "False" => false,
        _ => return Err("'fortran_order' is not a bool".into()),
    };
    let (shape, rest) = entry(rest, "shape")?;
    if !rest.trim().is_empty() {
        return Err("text after 'shape'".into());
    }
    let dims = shape
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("'shape' is not a tuple")?;
    // `()`, `(3,)`, `(2, 3)`: one comma after the last dimension is allowed, no other gap.
    let dims = dims.trim();
    let dims = dims
        .strip_suffix(',')
        .filter(|d| !d.is_empty())
        .unwrap_or(dims);
    let shape = match dims.trim() {
        "" => Vec::new(),
        dims => dims
            .split(',')
            .map(|d| {
                let d = d.trim();
                let digits = d.strip_suffix('L').unwrap_or(d);
                let size = if digits.bytes().all(|b| b.is_ascii_digit()) {
                    digits.parse::<usize>().ok()
                } else {
                    None
                };
                size.ok_or_else(|| format!("dimension {d:?} is not a size"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok((element_type(descr)?, fortran, shape))
}

/// The value of the entry `'key': value,` at the start of `text` (trimmed, the comma
/// optional at the end), and the text after it. A value ends at the first comma outside
/// parentheses, brackets and quotes.
fn entry<'a>(text: &'a str, key: &str) -> Result<(&'a str, &'a str), String> {
    let missing = || format!("no '{key}' entry where NumPy writes it");
    let after_key = text
        .trim_start()
        .strip_prefix(&format!("'{key}'"))
        .ok_or_else(missing)?;
    let value = after_key
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(missing)?;
    let (mut depth, mut quoted) = (0usize, false);
    for (i, c) in value.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' | '}' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => return Ok((value[..i].trim(), &value[i + 1..])),
            _ => {}
        }
    }
    Ok((value.trim(), ""))
}

/// A dtype string such as `|u1`, `<i8`, `>u2`, `<f4`, `<f8`.
fn element_type(descr: &str) -> Result<ElementType, String> {
    let unsupported = || format!("dtype {descr:?} is not an integer or float32/float64 type");
    let bytes = descr.as_bytes();
    let (order, kind, size) = match bytes {
        [order @ (b'<' | b'>' | b'|' | b'='), kind, size @ ..] => (*order, *kind, size),
        _ => return Err(unsupported()),
    };
    let size = match size {
        b"1" => 1,
        b"2" => 2,
        b"4" => 4,
        b"8" => 8,
        _ => return Err(unsupported()),
    };
    let (float, signed) = match kind {
        b'f' if size >= 4 => (true, true),
        b'i' => (false, true),
        b'u' => (false, false),
        b'b' if size == 1 => (false, false),
        _ => return Err(unsupported()),
    };
    Ok(ElementType {
        float,
        signed,
        size,
        big_endian: order == b'>',
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_numpy_writes_and_refuses_others() {
        let read = |h: &str| parse_header(h).map(|(t, f, s)| (t.size, t.signed, f, s));
        assert_eq!(
            read("{'descr': '<u1', 'fortran_order': False, 'shape': (50000, 3072), }    \n"),
            Ok((1, false, false, vec![50000, 3072]))
        );
        assert_eq!(
            read("{'descr': '<i8', 'fortran_order': True, 'shape': (7,)}"),
            Ok((8, true, true, vec![7]))
        );
        assert_eq!(
            read("{'descr': '|u1', 'fortran_order': False, 'shape': (), }"),
            Ok((1, false, false, vec![]))
        );
        for (header, error) in [
            (
                "{'descr': [('a', '<u1')], 'fortran_order': False, 'shape': (2,), }",
                "structured",
            ),
            (
                "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
                "not an integer or float32/float64 type",
            ),
            (
                "{'fortran_order': False, 'descr': '<u1', 'shape': (2,), }",
                "no 'descr' entry",
            ),
            (
                "{'descr': '<u1', 'fortran_order': 0, 'shape': (2,), }",
                "not a bool",
            ),
            (
                "{'descr': '<u1', 'fortran_order': False, 'shape': [2], }",
                "not a tuple",
            ),
            (
                "{'descr': '<u1', 'fortran_order': False, 'shape': (-2,), }",
                "not a size",
            ),
            (
                "{'descr': '<u1', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                "after 'shape'",
            ),
            ("'descr': '<u1'", "not a dict"),
        ] {
            let refused = read(header).unwrap_err();
            assert!(refused.contains(error), "{header}: {refused}");
        }
    }

    #[test]
    fn float_arrays_read_back_as_written() {
        let values = [1.5f64, -2.25, 1e-300, f64::MAX];
        let little: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut bytes = header("<f8", &[4]);
        bytes.extend_from_slice(&little);
        let array = NpyArray::from_vec(bytes, "t.npy").unwrap();
        assert_eq!(array.to_f64("t.npy").unwrap(), values);
        assert!(array.to_i64("t.npy").is_err());
        let big: Vec<u8> = [0.1f32, -3.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let mut bytes = header(">f4", &[2]);
        bytes.extend_from_slice(&big);
        let array = NpyArray::from_vec(bytes, "t.npy").unwrap();
        assert_eq!(array.to_f64("t.npy").unwrap(), [0.1f32 as f64, -3.0]);
        let mut bytes = header("|u1", &[1]);
        bytes.push(7);
        assert!(
            NpyArray::from_vec(bytes, "t.npy")
                .unwrap()
                .to_f64("t.npy")
                .is_err()
        );
    }

    #[test]
    fn write_npz_refuses_short_data_and_unknown_dtypes() {
        let member = |descr: &'static str, data: &'static [u8]| NpzMember {
            name: "x",
            descr,
            shape: &[2],
            data: Box::new(move |out: &mut dyn Write| out.write_all(data)),
        };
        let out = || std::io::Cursor::new(Vec::new());
        let written = write_npz(out(), vec![member("<u2", &[1, 0, 2, 0])]).unwrap();
        let mut npz = Npz::new(std::io::Cursor::new(written.into_inner()), "t.npz").unwrap();
        assert_eq!(
            npz.array("x").unwrap().unwrap().to_i64("t").unwrap(),
            [1, 2]
        );
        for (descr, data) in [
            ("<u2", &[1u8, 0, 2][..]),
            ("<u2", &[0; 5]),
            ("<c8", &[0; 16]),
        ] {
            let err = write_npz(out(), vec![member(descr, data)]).unwrap_err();
            assert!(err.to_string().contains("x.npy"), "{descr} {data:?}: {err}");
        }
    }

    /// An `.npy` file of format `version` (2 or 3: a 4-byte header length) holding `header`
    /// and then `data`.
    fn npy_file(version: u8, header: &str, data: &[u8]) -> NpyArray {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&[version, 0]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        NpyArray::from_vec(bytes, "a").unwrap()
    }

    #[test]
    fn reads_version_3_headers() {
        let header = "{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }\n";
        let a = npy_file(3, header, &[1, 2]);
        assert_eq!((a.to_i64("a").unwrap(), a.shape), (vec![0x0201], vec![1]));
    }

    #[test]
    fn reads_python2_headers_and_version_2() {
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 1L), }";
        let a = npy_file(2, header, &[7, 8]);
        assert_eq!((a.shape, a.data), (vec![2, 1], vec![7, 8]));
    }
}
