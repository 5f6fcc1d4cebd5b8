//! Decoding: a serde `Deserializer` over a byte slice that borrows strings and bytes from it and
//! checks every length against the bytes left before anything is reserved.

use serde::de::{
    DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::Depth;
use super::error::Error;

/// Reads one value from `input`, front to back.
pub(super) struct Deserializer<'de> {
    input: &'de [u8],
    offset: usize,
    depth: Depth,
}

impl<'de> Deserializer<'de> {
    /// A deserializer at the start of `input`.
    #[inline]
    pub(super) fn new(input: &'de [u8]) -> Self {
        Self {
            input,
            offset: 0,
            depth: Depth::default(),
        }
    }

    /// Where the next read starts.
    #[inline]
    pub(super) fn offset(&self) -> usize {
        self.offset
    }

    /// Checks that the value used the whole input.
    #[inline]
    pub(super) fn finish(&self) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes {
                offset: self.offset,
                count,
            }),
        }
    }

    /// Bytes not read yet.
    #[inline]
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.offset)
    }

    /// The next `len` bytes, borrowed from the input.
    #[inline]
    fn take(&mut self, len: usize) -> Result<&'de [u8], Error> {
        let input: &'de [u8] = self.input;
        match input
            .get(self.offset..)
            .and_then(|rest| rest.split_at_checked(len))
        {
            Some((taken, _)) => {
                self.offset += len;
                Ok(taken)
            }
            None => Err(self.unexpected_end(len)),
        }
    }

    /// The next `N` bytes as an array.
    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        match self
            .input
            .get(self.offset..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
            Some(bytes) => {
                self.offset += N;
                Ok(*bytes)
            }
            None => Err(self.unexpected_end(N)),
        }
    }

    /// The next byte.
    #[inline]
    fn take_byte(&mut self) -> Result<u8, Error> {
        match self.input.get(self.offset) {
            Some(&byte) => {
                self.offset += 1;
                Ok(byte)
            }
            None => Err(self.unexpected_end(1)),
        }
    }

    /// The error for a read of `needed` bytes that runs off the end.
    #[cold]
    fn unexpected_end(&self, needed: usize) -> Error {
        Error::UnexpectedEnd {
            offset: self.offset,
            needed,
            remaining: self.remaining(),
        }
    }

    /// An unsigned LEB128 varint: canonical (no redundant zero groups) and at most 64 bits.
    #[inline]
    fn take_varint(&mut self) -> Result<u64, Error> {
        let start = self.offset;
        let first = self.take_byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let mut value = u64::from(first & 0x7f);
        let mut shift = 7u32;
        loop {
            let byte = self.take_byte()?;
            let group = u64::from(byte & 0x7f);
            // The tenth byte (shift 63) may only carry the top bit, and must end the varint.
            if shift == 63 && byte > 1 {
                return Err(Error::VarintOverflow { offset: start });
            }
            value |= group << shift;
            if byte & 0x80 == 0 {
                if byte == 0 {
                    return Err(Error::VarintNonCanonical { offset: start });
                }
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A length prefix, which may not exceed the bytes left: every byte and every element takes
    /// at least one byte, so a larger count is malformed, and nothing is reserved before this.
    #[inline]
    fn take_len(&mut self) -> Result<usize, Error> {
        let offset = self.offset;
        let len = self.take_varint()?;
        let remaining = self.remaining();
        if len > remaining as u64 {
            return Err(Error::LengthTooLarge {
                offset,
                len,
                remaining,
            });
        }
        Ok(len as usize)
    }

    /// A length-prefixed byte string, borrowed from the input.
    #[inline]
    fn take_bytes(&mut self) -> Result<&'de [u8], Error> {
        let len = self.take_len()?;
        self.take(len)
    }

    /// A length-prefixed UTF-8 string, borrowed from the input.
    #[inline]
    fn take_str(&mut self) -> Result<&'de str, Error> {
        let bytes = self.take_bytes()?;
        std::str::from_utf8(bytes).map_err(|error| Error::InvalidUtf8 {
            offset: self.offset - bytes.len() + error.valid_up_to(),
            len: bytes.len(),
        })
    }

    /// A 0/1 byte; `invalid` builds the error for any other value.
    #[inline]
    fn take_flag(&mut self, invalid: fn(usize, u8) -> Error) -> Result<bool, Error> {
        let offset = self.offset;
        match self.take_byte()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(invalid(offset, byte)),
        }
    }

    /// Visits `count` values in a row (as a sequence, or as map entries when `as_map`), then
    /// comes back up the level the caller entered.
    #[inline]
    fn visit_counted<V: Visitor<'de>>(
        &mut self,
        count: usize,
        visitor: V,
        as_map: bool,
    ) -> Result<V::Value, Error> {
        let counted = Counted {
            de: &mut *self,
            left: count,
        };
        let value = if as_map {
            visitor.visit_map(counted)
        } else {
            visitor.visit_seq(counted)
        };
        self.depth.leave();
        value
    }
}

/// Implements a fixed-width little-endian integer or float method.
macro_rules! fixed_width {
    ($($method:ident: $ty:ty => $visit:ident),* $(,)?) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                visitor.$visit(<$ty>::from_le_bytes(self.take_array()?))
            }
        )*
    };
}

/// Implements methods that the format cannot support because it is not self-describing.
macro_rules! not_self_describing {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
                Err(Error::NotSelfDescribing { method: stringify!($method) })
            }
        )*
    };
}

impl<'de> serde::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fixed_width! {
        deserialize_i8: i8 => visit_i8, deserialize_i16: i16 => visit_i16,
        deserialize_i32: i32 => visit_i32, deserialize_i64: i64 => visit_i64,
        deserialize_i128: i128 => visit_i128,
        deserialize_u16: u16 => visit_u16, deserialize_u32: u32 => visit_u32,
        deserialize_u64: u64 => visit_u64, deserialize_u128: u128 => visit_u128,
        deserialize_f32: f32 => visit_f32, deserialize_f64: f64 => visit_f64,
    }

    not_self_describing!(
        deserialize_any,
        deserialize_ignored_any,
        deserialize_identifier
    );

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.take_byte()?)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value = self.take_flag(|offset, byte| Error::InvalidBool { offset, byte })?;
        visitor.visit_bool(value)
    }

    #[inline]
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let offset = self.offset;
        let value = u32::from_le_bytes(self.take_array()?);
        match char::from_u32(value) {
            Some(value) => visitor.visit_char(value),
            None => Err(Error::InvalidChar { offset, value }),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.take_str()?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.take_str()?)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.take_bytes()?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_bytes(self.take_bytes()?)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.depth.enter()?;
        let some = self.take_flag(|offset, byte| Error::InvalidOptionTag { offset, byte })?;
        let value = if some {
            visitor.visit_some(&mut *self)
        } else {
            visitor.visit_none()
        };
        self.depth.leave();
        value
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.depth.enter()?;
        let value = visitor.visit_newtype_struct(&mut *self);
        self.depth.leave();
        value
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.depth.enter()?;
        let count = self.take_len()?;
        self.visit_counted(count, visitor, false)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.depth.enter()?;
        self.visit_counted(len, visitor, false)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.depth.enter()?;
        self.visit_counted(len, visitor, false)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.depth.enter()?;
        let count = self.take_len()?;
        self.visit_counted(count, visitor, true)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.depth.enter()?;
        self.visit_counted(fields.len(), visitor, false)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.depth.enter()?;
        let value = visitor.visit_enum(&mut *self);
        self.depth.leave();
        value
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// `count` values in a row, as a sequence or as map entries (key, value, key, value, ...).
struct Counted<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Counted<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Counted<'_, 'de> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut Deserializer<'de> {
    type Error = Error;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let offset = self.offset;
        let index = self.take_varint()?;
        let index =
            u32::try_from(index).map_err(|_| Error::VariantIndexTooLarge { offset, index })?;
        let variant = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Deserializer<'de> {
    type Error = Error;

    #[inline]
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(Counted {
            de: self,
            left: len,
        })
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(Counted {
            de: self,
            left: fields.len(),
        })
    }
}
