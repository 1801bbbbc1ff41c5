//! Avro object container files (what `s3` objects and `http` bodies hold with
//! `encoding: avro`), written from records already encoded as datums: the header (magic,
//! `avro.schema`, `avro.codec: null`, a sync marker) and one block with every datum.

use std::hash::{BuildHasher, RandomState};

/// The first four bytes of every container file.
const MAGIC: &[u8; 4] = b"Obj\x01";

/// A container file with `datums` (encoded with the schema whose JSON is `schema_json`).
pub(crate) fn container<'a>(
    schema_json: &str,
    datums: impl ExactSizeIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let count = datums.len();
    let mut out = Vec::with_capacity(schema_json.len() + 64);
    out.extend_from_slice(MAGIC);
    put_long(&mut out, 2);
    put_bytes(&mut out, b"avro.codec");
    put_bytes(&mut out, b"null");
    put_bytes(&mut out, b"avro.schema");
    put_bytes(&mut out, schema_json.as_bytes());
    put_long(&mut out, 0);
    let marker = sync_marker();
    out.extend_from_slice(&marker);
    if count > 0 {
        let mut block = Vec::new();
        for datum in datums {
            block.extend_from_slice(datum);
        }
        put_long(&mut out, len(count));
        put_long(&mut out, len(block.len()));
        out.extend_from_slice(&block);
        out.extend_from_slice(&marker);
    }
    out
}

/// A length as an Avro long.
fn len(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An Avro `long`: zig-zag, then base-128 varint.
#[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)] // bit patterns, on purpose
fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z & 0x7f) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Avro `bytes` (and `string`): the length, then the bytes.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_long(out, len(bytes.len()));
    out.extend_from_slice(bytes);
}

/// 16 random bytes that end each block.
fn sync_marker() -> [u8; 16] {
    let state = RandomState::new();
    let mut marker = [0u8; 16];
    marker[..8].copy_from_slice(&state.hash_one(1u8).to_le_bytes());
    marker[8..].copy_from_slice(&state.hash_one(2u8).to_le_bytes());
    marker
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value as Avro;
    use apache_avro::{Reader, Schema};

    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let mut out = Vec::new();
        for n in [0, -1, 1, 63, -64, 64, 300] {
            put_long(&mut out, n);
        }
        assert_eq!(out, [0, 1, 2, 126, 127, 128, 1, 216, 4]);
    }

    #[test]
    fn the_avro_reader_reads_what_is_written() {
        let json = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#;
        let schema = Schema::parse_str(json).unwrap();
        let values = [
            Avro::Record(vec![
                ("a".into(), Avro::Long(1)),
                ("b".into(), Avro::String("x".into())),
            ]),
            Avro::Record(vec![
                ("a".into(), Avro::Long(-5)),
                ("b".into(), Avro::String("yé".into())),
            ]),
        ];
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap();
        let datums: Vec<Vec<u8>> = values
            .iter()
            .map(|v| writer.write_value_to_vec(v.clone()).unwrap())
            .collect();
        let file = container(json, datums.iter().map(Vec::as_slice));
        let read: Vec<Avro> = Reader::new(&file[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(read, values);
        let empty = container(json, std::iter::empty());
        assert_eq!(Reader::new(&empty[..]).unwrap().count(), 0);
    }
}
