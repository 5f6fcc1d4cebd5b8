//! The deserializing half of the JSON fast path: reads what the fast serializer writes (compact
//! JSON: no whitespace, strings without escapes, integers) and makes the same calls on the
//! visitors, with the same values, as `serde_json::from_slice` makes on that input. Anything
//! else (whitespace, an escape, a float, a 128-bit integer, bytes, an error anywhere, even one a
//! `Deserialize` impl swallowed) makes it give up, and the caller decodes with `serde_json`, so
//! a value decoded here is always the value `serde_json` would have decoded.

use serde::de::{self, Visitor};

use super::ser::Bail;

mod access;

use access::{Map, Seq, UnitVariant, Variant};

/// Nesting of arrays and objects the fast path follows (`serde_json` allows 127).
const DEPTH_MAX: u32 = 64;

/// Decodes a `T` from all of `bytes`, or `None` where the fast path gave up.
#[inline]
pub(crate) fn read<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    let mut reader = Reader {
        bytes,
        at: 0,
        depth: 0,
        bailed: false,
    };
    let value = T::deserialize(&mut reader).ok()?;
    (!reader.bailed && reader.at == bytes.len()).then_some(value)
}

pub(crate) struct Reader<'de> {
    bytes: &'de [u8],
    at: usize,
    depth: u32,
    /// Set at every error that passed through the reader (its own or a visitor's), so that a
    /// `Deserialize` impl that recovers from an error cannot make the result differ from
    /// `serde_json`'s, which would have seen other errors or none.
    bailed: bool,
}

/// A parsed integer, as `serde_json` classifies it.
enum Number {
    Unsigned(u64),
    Negative(i64),
}

impl<'de> Reader<'de> {
    #[inline]
    fn bail<T>(&mut self) -> Result<T, Bail> {
        self.bailed = true;
        Err(Bail)
    }

    /// Marks the reader when `result` is an error.
    #[inline]
    fn check<T>(&mut self, result: Result<T, Bail>) -> Result<T, Bail> {
        if result.is_err() {
            self.bailed = true;
        }
        result
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn eat(&mut self, expected: u8) -> Result<(), Bail> {
        if self.peek() == Some(expected) {
            self.at += 1;
            Ok(())
        } else {
            self.bail()
        }
    }

    #[inline]
    fn eat_word(&mut self, word: &[u8]) -> Result<(), Bail> {
        let end = self.at + word.len();
        if self.bytes.get(self.at..end) == Some(word) {
            self.at = end;
            Ok(())
        } else {
            self.bail()
        }
    }

    /// A string without escapes or control characters, after its opening quote; its closing
    /// quote is consumed.
    #[inline]
    fn string(&mut self) -> Result<&'de str, Bail> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let mut ascii = true;
        for (len, &byte) in rest.iter().enumerate() {
            match byte {
                b'"' => {
                    let raw = rest.get(..len).unwrap_or_default();
                    let text = if ascii {
                        // SAFETY: `ascii` is still set, so the loop above saw every byte of
                        // `raw` (all before the quote) and none was 0x80 or above.
                        unsafe { ascii_str(raw) }
                    } else {
                        match std::str::from_utf8(raw) {
                            Ok(text) => text,
                            Err(_) => return self.bail(),
                        }
                    };
                    self.at += len + 1;
                    return Ok(text);
                }
                b'\\' | 0x00..=0x1F => break,
                0x80..=0xFF => ascii = false,
                _ => {}
            }
        }
        self.bail()
    }

    /// An integer as `serde_json`'s `parse_integer` reads it, when it stays an integer (no
    /// fraction, no exponent, no overflow of `u64`, not `-0` or below `i64::MIN`).
    #[inline]
    fn number(&mut self) -> Result<Number, Bail> {
        // Parsed with a local position, stored once at the end.
        let bytes = self.bytes;
        let mut at = self.at;
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let significand: u64 = match bytes.get(at) {
            Some(b'0') => {
                at += 1;
                0
            }
            Some(&digit @ b'1'..=b'9') => {
                at += 1;
                let mut value = u64::from(digit - b'0');
                while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
                    let Some(next) = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                    else {
                        return self.bail();
                    };
                    value = next;
                    at += 1;
                }
                value
            }
            _ => return self.bail(),
        };
        // A leading zero followed by a digit is an error; a fraction or an exponent a float.
        if matches!(bytes.get(at), Some(b'0'..=b'9' | b'.' | b'e' | b'E')) {
            return self.bail();
        }
        self.at = at;
        if !negative {
            return Ok(Number::Unsigned(significand));
        }
        // `serde_json` makes `-0` and anything below `i64::MIN` a float.
        let value = significand.wrapping_neg() as i64;
        if value >= 0 {
            return self.bail();
        }
        Ok(Number::Negative(value))
    }

    #[inline]
    fn visit_number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Bail> {
        let result = match self.number()? {
            Number::Unsigned(value) => visitor.visit_u64(value),
            Number::Negative(value) => visitor.visit_i64(value),
        };
        self.check(result)
    }

    #[inline]
    fn enter(&mut self) -> Result<(), Bail> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return self.bail();
        }
        self.at += 1;
        Ok(())
    }

    #[inline]
    fn seq<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Bail> {
        self.enter()?;
        let result = visitor.visit_seq(Seq {
            reader: &mut *self,
            first: true,
        });
        let value = self.check(result)?;
        self.depth -= 1;
        self.eat(b']')?;
        Ok(value)
    }

    #[inline]
    fn map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Bail> {
        self.enter()?;
        let result = visitor.visit_map(Map {
            reader: &mut *self,
            first: true,
        });
        let value = self.check(result)?;
        self.depth -= 1;
        self.eat(b'}')?;
        Ok(value)
    }

    /// Skips one value of the fast path's grammar (what `deserialize_ignored_any` does).
    #[inline]
    fn skip(&mut self) -> Result<(), Bail> {
        match self.peek() {
            Some(b'n') => self.eat_word(b"null"),
            Some(b't') => self.eat_word(b"true"),
            Some(b'f') => self.eat_word(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(b'"') => {
                self.at += 1;
                self.string().map(drop)
            }
            Some(b'[') => {
                self.enter()?;
                let mut first = true;
                while self.peek() != Some(b']') {
                    if !first {
                        self.eat(b',')?;
                        if self.peek() == Some(b']') {
                            return self.bail();
                        }
                    }
                    first = false;
                    self.skip()?;
                }
                self.depth -= 1;
                self.eat(b']')
            }
            Some(b'{') => {
                self.enter()?;
                let mut first = true;
                while self.peek() != Some(b'}') {
                    if !first {
                        self.eat(b',')?;
                    }
                    first = false;
                    self.eat(b'"')?;
                    self.string()?;
                    self.eat(b':')?;
                    self.skip()?;
                }
                self.depth -= 1;
                self.eat(b'}')
            }
            _ => self.bail(),
        }
    }
}

/// `bytes` as a `str`, without the UTF-8 check that `str::from_utf8` makes (some sixty
/// instructions for a field name).
///
/// # Safety
///
/// Every byte of `bytes` is below 0x80 (`string` clears its `ascii` flag at the first byte that
/// is not).
#[inline]
unsafe fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: every byte of `bytes` is below 0x80 (the caller's promise, asserted above in debug
    // builds), and a byte below 0x80 is a whole UTF-8 sequence of one byte (a code point up to
    // U+007F), so `bytes` is valid UTF-8 of `bytes.len()` code points. `json::tests::
    // test_json_fast_path_strings_are_checked_for_utf8` decodes ASCII, non-ASCII and invalid
    // strings both ways.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// `name` is one `serde_json` gives a meaning of its own (its raw values).
#[inline]
fn is_serde_json_private(name: &str) -> bool {
    name.starts_with("$serde_json")
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Bail;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b'n') => {
                self.eat_word(b"null")?;
                let result = visitor.visit_unit();
                self.check(result)
            }
            Some(b't') => {
                self.eat_word(b"true")?;
                let result = visitor.visit_bool(true);
                self.check(result)
            }
            Some(b'f') => {
                self.eat_word(b"false")?;
                let result = visitor.visit_bool(false);
                self.check(result)
            }
            Some(b'-' | b'0'..=b'9') => self.visit_number(visitor),
            Some(b'"') => self.deserialize_str(visitor),
            Some(b'[') => self.seq(visitor),
            Some(b'{') => self.map(visitor),
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b't' | b'f') => self.deserialize_any(visitor),
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.bail()
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.bail()
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        // An integer reaches a float's visitor as `serde_json` hands it over; a float bails.
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.visit_number(visitor)
    }

    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.eat(b'"')?;
        let text = self.string()?;
        let result = visitor.visit_borrowed_str(text);
        self.check(result)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.bail()
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.bail()
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        let result = if self.peek() == Some(b'n') {
            self.eat_word(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(&mut *self)
        };
        self.check(result)
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.eat_word(b"null")?;
        let result = visitor.visit_unit();
        self.check(result)
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        self.deserialize_unit(visitor)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        if is_serde_json_private(name) {
            return self.bail();
        }
        let result = visitor.visit_newtype_struct(&mut *self);
        self.check(result)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b'[') => self.seq(visitor),
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Bail> {
        self.deserialize_seq(visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        self.deserialize_seq(visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b'{') => self.map(visitor),
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b'[') => self.seq(visitor),
            Some(b'{') => self.map(visitor),
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        match self.peek() {
            Some(b'{') => {
                self.enter()?;
                let result = visitor.visit_enum(Variant { reader: &mut *self });
                let value = self.check(result)?;
                self.depth -= 1;
                self.eat(b'}')?;
                Ok(value)
            }
            Some(b'"') => {
                let result = visitor.visit_enum(UnitVariant { reader: &mut *self });
                self.check(result)
            }
            _ => self.bail(),
        }
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.skip()?;
        let result = visitor.visit_unit();
        self.check(result)
    }
}
