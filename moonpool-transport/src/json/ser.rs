//! The serializing half of the JSON fast path: serde's data model written exactly as
//! `serde_json::to_writer` writes it (compact: no spaces, its escapes, its map-key rules), for
//! everything but floats and 128-bit integers, where it gives up and the caller asks
//! `serde_json` itself.

use std::fmt;

use serde::Serialize;
use serde::ser;

mod key;

use key::KeyWriter;

/// The fast path gave up; the caller encodes the value again with `serde_json`.
#[derive(Debug)]
pub(crate) struct Bail;

impl fmt::Display for Bail {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the JSON fast path")
    }
}

impl std::error::Error for Bail {}

impl ser::Error for Bail {
    #[inline]
    fn custom<T: fmt::Display>(_message: T) -> Self {
        Bail
    }
}

impl serde::de::Error for Bail {
    #[inline]
    fn custom<T: fmt::Display>(_message: T) -> Self {
        Bail
    }
}

/// Appends `value` to `out` as `serde_json::to_writer` would. `false` when the fast path gave
/// up (a float, a 128-bit integer, a key `serde_json` refuses, an error from the value's own
/// `Serialize`, even one it swallowed): what `out` then holds past its old length is garbage.
#[inline]
pub(crate) fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> bool {
    let mut writer = Writer { out, bailed: false };
    let written = value.serialize(&mut writer).is_ok();
    written && !writer.bailed
}

pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Set at every point where this serializer gave up, so that a `Serialize` impl that
    /// swallows the error cannot make the fast path's output differ from `serde_json`'s.
    bailed: bool,
}

impl Writer<'_> {
    #[inline]
    fn bail<T>(&mut self) -> Result<T, Bail> {
        self.bailed = true;
        Err(Bail)
    }

    #[inline]
    fn push(&mut self, byte: u8) {
        self.out.push(byte);
    }

    #[inline]
    fn put_u64(&mut self, value: u64) {
        put_u64(self.out, value);
    }

    #[inline]
    fn put_i64(&mut self, value: i64) {
        if value < 0 {
            self.out.push(b'-');
        }
        put_u64(self.out, value.unsigned_abs());
    }

    #[inline]
    fn put_str(&mut self, value: &str) {
        put_escaped(self.out, value);
    }
}

/// The decimal digits of `value`, as `itoa` writes them.
#[inline]
fn put_u64(out: &mut Vec<u8>, value: u64) {
    // Small values (most counters, ids and lengths) without a loop or a copy of unknown size.
    let digit = |value: u64| b'0' + (value % 10) as u8;
    match value {
        0..=9 => out.push(digit(value)),
        10..=99 => out.extend_from_slice(&[digit(value / 10), digit(value)]),
        100..=999 => out.extend_from_slice(&[digit(value / 100), digit(value / 10), digit(value)]),
        1_000..=9_999 => out.extend_from_slice(&[
            digit(value / 1_000),
            digit(value / 100),
            digit(value / 10),
            digit(value),
        ]),
        _ => {
            // Filled from the end: `u64::MAX` has 20 digits.
            let mut digits = [0u8; 20];
            let mut rest = value;
            let mut len = 0;
            for slot in digits.iter_mut().rev() {
                *slot = digit(rest);
                rest /= 10;
                len += 1;
                if rest == 0 {
                    break;
                }
            }
            out.extend_from_slice(digits.get(digits.len() - len..).unwrap_or_default());
        }
    }
}

/// What `serde_json` writes for a byte of a string: nothing special (0), or the letter of its
/// escape (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`), or `u` for `\u00XX`.
const fn escape_of(byte: u8) -> u8 {
    match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0C => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x00..=0x1F => b'u',
        _ => 0,
    }
}

const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = escape_of(byte as u8);
        byte += 1;
    }
    table
};

#[inline]
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// `value` quoted and escaped as `serde_json` does it (lower-case hex in `\u00XX`; `/` and
/// everything from 0x7F up as they are).
#[inline]
fn put_escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    if bytes.len() <= 16 && !bytes.iter().any(|&byte| needs_escape(byte)) {
        // A short string (a field or variant name, mostly): byte by byte, which costs less
        // than a call to copy a few bytes.
        out.push(b'"');
        for &byte in bytes {
            out.push(byte);
        }
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut run = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPES.get(usize::from(byte)).copied().unwrap_or(0);
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(bytes.get(run..at).unwrap_or_default());
        run = at + 1;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xF)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// Names `serde_json` gives a meaning of its own (its raw values and arbitrary-precision
/// numbers): left to it.
#[inline]
fn is_serde_json_private(name: &str) -> bool {
    name.starts_with("$serde_json")
}

/// Where a compound is: `serde_json`'s own states (an empty one was closed when it began).
#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Empty,
    First,
    Rest,
}

pub(crate) struct Compound<'a, 'b> {
    writer: &'a mut Writer<'b>,
    state: State,
}

impl Compound<'_, '_> {
    /// A comma unless this is the first item (what `begin_array_value`/`begin_object_key` write).
    #[inline]
    fn separate(&mut self) {
        if self.state != State::First {
            self.writer.push(b',');
        }
        self.state = State::Rest;
    }
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<(), Bail> {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<(), Bail> {
        self.put_i64(i64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<(), Bail> {
        self.put_i64(i64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<(), Bail> {
        self.put_i64(i64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<(), Bail> {
        self.put_i64(value);
        Ok(())
    }

    #[inline]
    fn serialize_i128(self, _value: i128) -> Result<(), Bail> {
        self.bail()
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<(), Bail> {
        self.put_u64(u64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<(), Bail> {
        self.put_u64(u64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<(), Bail> {
        self.put_u64(u64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<(), Bail> {
        self.put_u64(value);
        Ok(())
    }

    #[inline]
    fn serialize_u128(self, _value: u128) -> Result<(), Bail> {
        self.bail()
    }

    #[inline]
    fn serialize_f32(self, _value: f32) -> Result<(), Bail> {
        self.bail()
    }

    #[inline]
    fn serialize_f64(self, _value: f64) -> Result<(), Bail> {
        self.bail()
    }

    #[inline]
    fn serialize_char(self, value: char) -> Result<(), Bail> {
        self.put_str(value.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<(), Bail> {
        self.put_str(value);
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, value: &[u8]) -> Result<(), Bail> {
        self.push(b'[');
        for (at, &byte) in value.iter().enumerate() {
            if at > 0 {
                self.push(b',');
            }
            self.put_u64(u64::from(byte));
        }
        self.push(b']');
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Bail> {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Bail> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Bail> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Bail> {
        self.serialize_unit()
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Bail> {
        self.put_str(variant);
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        if is_serde_json_private(name) {
            return self.bail();
        }
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        self.push(b'{');
        self.put_str(variant);
        self.push(b':');
        value.serialize(&mut *self)?;
        self.push(b'}');
        Ok(())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a, 'b>, Bail> {
        self.push(b'[');
        let state = if len == Some(0) {
            self.push(b']');
            State::Empty
        } else {
            State::First
        };
        Ok(Compound {
            writer: self,
            state,
        })
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Bail> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Bail> {
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Bail> {
        self.push(b'{');
        self.put_str(variant);
        self.push(b':');
        self.serialize_seq(Some(len))
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a, 'b>, Bail> {
        self.push(b'{');
        let state = if len == Some(0) {
            self.push(b'}');
            State::Empty
        } else {
            State::First
        };
        Ok(Compound {
            writer: self,
            state,
        })
    }

    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Bail> {
        if is_serde_json_private(name) {
            return self.bail();
        }
        self.serialize_map(Some(len))
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Bail> {
        self.push(b'{');
        self.put_str(variant);
        self.push(b':');
        self.serialize_map(Some(len))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        self.separate();
        value.serialize(&mut *self.writer)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        if self.state != State::Empty {
            self.writer.push(b']');
        }
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        if self.state != State::Empty {
            self.writer.push(b']');
        }
        self.writer.push(b'}');
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Bail> {
        self.separate();
        key.serialize(KeyWriter(&mut *self.writer))
    }

    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Bail> {
        self.writer.push(b':');
        value.serialize(&mut *self.writer)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        if self.state != State::Empty {
            self.writer.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        self.separate();
        self.writer.put_str(key);
        self.writer.push(b':');
        value.serialize(&mut *self.writer)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    #[inline]
    fn end(self) -> Result<(), Bail> {
        if self.state != State::Empty {
            self.writer.push(b'}');
        }
        self.writer.push(b'}');
        Ok(())
    }
}
