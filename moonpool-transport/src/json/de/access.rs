//! What the reader hands the visitors: the elements of an array, the entries of an object, an
//! object's keys and an enum's variant, each as `serde_json` hands them over.

use serde::de::{self, DeserializeSeed, Visitor};

use super::{Bail, Reader, is_serde_json_private};

/// The elements of an array, as `serde_json`'s `SeqAccess` hands them over (no size hint).
pub(super) struct Seq<'a, 'de> {
    pub(super) reader: &'a mut Reader<'de>,
    pub(super) first: bool,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Bail> {
        match self.reader.peek() {
            Some(b']') => return Ok(None),
            Some(b',') if !self.first => {
                self.reader.at += 1;
                if self.reader.peek() == Some(b']') {
                    return self.reader.bail();
                }
            }
            Some(_) if self.first => {}
            _ => return self.reader.bail(),
        }
        self.first = false;
        let result = seed.deserialize(&mut *self.reader).map(Some);
        self.reader.check(result)
    }
}

/// The entries of an object, as `serde_json`'s `MapAccess` hands them over (no size hint).
pub(super) struct Map<'a, 'de> {
    pub(super) reader: &'a mut Reader<'de>,
    pub(super) first: bool,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Bail> {
        match self.reader.peek() {
            Some(b'}') => return Ok(None),
            Some(b',') if !self.first => self.reader.at += 1,
            Some(_) if self.first => {}
            _ => return self.reader.bail(),
        }
        self.first = false;
        if self.reader.peek() != Some(b'"') {
            return self.reader.bail();
        }
        let result = seed.deserialize(Key(&mut *self.reader)).map(Some);
        self.reader.check(result)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Bail> {
        self.reader.eat(b':')?;
        let result = seed.deserialize(&mut *self.reader);
        self.reader.check(result)
    }
}

/// An object's key, at its opening quote, as `serde_json`'s `MapKey` reads it: a string for
/// most types, a quoted integer or boolean for those types.
pub(super) struct Key<'a, 'de>(pub(super) &'a mut Reader<'de>);

impl<'de> Key<'_, 'de> {
    #[inline]
    fn quoted_number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.0.eat(b'"')?;
        if !matches!(self.0.peek(), Some(b'-' | b'0'..=b'9')) {
            return self.0.bail();
        }
        let value = self.0.visit_number(visitor)?;
        self.0.eat(b'"')?;
        Ok(value)
    }
}

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.0.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        let reader = self.0;
        let rest = reader.bytes.get(reader.at..).unwrap_or_default();
        let (value, len) = if rest.starts_with(b"\"true\"") {
            (true, 6)
        } else if rest.starts_with(b"\"false\"") {
            (false, 7)
        } else {
            return reader.bail();
        };
        reader.at += len;
        let result = visitor.visit_bool(value);
        reader.check(result)
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        self.quoted_number(visitor)
    }

    #[inline]
    fn deserialize_i128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_u128<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Bail> {
        self.0.bail()
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Bail> {
        let reader = &mut *self.0;
        let result = visitor.visit_some(Key(&mut *reader));
        reader.check(result)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Bail> {
        let reader = &mut *self.0;
        if is_serde_json_private(name) {
            return reader.bail();
        }
        let result = visitor.visit_newtype_struct(Key(&mut *reader));
        reader.check(result)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// An enum written as `{"Variant":content}`, after its opening brace.
pub(super) struct Variant<'a, 'de> {
    pub(super) reader: &'a mut Reader<'de>,
}

impl<'a, 'de> de::EnumAccess<'de> for Variant<'a, 'de> {
    type Error = Bail;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Bail> {
        if self.reader.peek() != Some(b'"') {
            return self.reader.bail();
        }
        let result = seed.deserialize(Key(&mut *self.reader));
        let variant = self.reader.check(result)?;
        self.reader.eat(b':')?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn unit_variant(self) -> Result<(), Bail> {
        let result = <() as de::Deserialize<'de>>::deserialize(&mut *self.reader);
        self.reader.check(result)
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Bail> {
        let result = seed.deserialize(&mut *self.reader);
        self.reader.check(result)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Bail> {
        de::Deserializer::deserialize_seq(&mut *self.reader, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Bail> {
        de::Deserializer::deserialize_struct(&mut *self.reader, "", fields, visitor)
    }
}

/// An enum written as a string: a unit variant.
pub(super) struct UnitVariant<'a, 'de> {
    pub(super) reader: &'a mut Reader<'de>,
}

impl<'a, 'de> de::EnumAccess<'de> for UnitVariant<'a, 'de> {
    type Error = Bail;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Bail> {
        let result = seed.deserialize(&mut *self.reader);
        let variant = self.reader.check(result)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn unit_variant(self) -> Result<(), Bail> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Bail> {
        self.reader.bail()
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Bail> {
        self.reader.bail()
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Bail> {
        self.reader.bail()
    }
}
