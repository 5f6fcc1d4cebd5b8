//! Encoding: a serde `Serializer` that appends straight to the caller's `Vec<u8>`.

use serde::Serialize;
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};

use super::Depth;
use super::error::Error;

/// The most bytes a varint takes: 64 bits in 7-bit groups.
const VARINT_LEN_MAX: usize = 10;

/// `value` as an unsigned LEB128 varint: the bytes and how many of them are used.
#[inline]
fn varint(mut value: u64) -> ([u8; VARINT_LEN_MAX], usize) {
    let mut bytes = [0u8; VARINT_LEN_MAX];
    let mut len = 0;
    for slot in bytes.iter_mut() {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        len += 1;
        if value == 0 {
            *slot = low;
            break;
        }
        *slot = low | 0x80;
    }
    (bytes, len)
}

/// Appends `value` as a varint.
#[inline]
fn write_varint(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else {
        let (bytes, len) = varint(value);
        out.extend_from_slice(bytes.get(..len).unwrap_or(&bytes));
    }
}

/// Appends to `out`; tracks nesting depth so that everything it writes can be decoded.
pub(super) struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    depth: Depth,
}

impl<'a> Serializer<'a> {
    /// A serializer appending to `out`.
    #[inline]
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            depth: Depth::default(),
        }
    }

    /// Starts a tuple or struct variant: one level down, then its index.
    #[inline]
    fn begin_variant(&mut self, variant_index: u32) -> Result<Fields<'_, 'a>, Error> {
        self.depth.enter()?;
        write_varint(self.out, u64::from(variant_index));
        Ok(Fields { ser: self })
    }

    /// Starts a sequence or map: its count prefix now, or a placeholder to patch at the end.
    fn begin_counted(&mut self, len: Option<usize>) -> Result<Counted<'_, 'a>, Error> {
        self.depth.enter()?;
        let prefix = match len {
            Some(declared) => {
                write_varint(self.out, declared as u64);
                Prefix::Known { declared }
            }
            None => {
                self.out.push(0);
                Prefix::Unknown {
                    placeholder: self.out.len() - 1,
                }
            }
        };
        let content_start = self.out.len();
        Ok(Counted {
            ser: self,
            prefix,
            content_start,
            count: 0,
        })
    }
}

/// How a sequence's count is written.
enum Prefix {
    /// Already written.
    Known {
        /// The count the `Serialize` impl announced.
        declared: usize,
    },
    /// A one-byte placeholder at this index, replaced by the real count at the end.
    Unknown {
        /// Index of the placeholder byte in the output.
        placeholder: usize,
    },
}

/// A sequence or map being written: checks the count and patches it in if it was unknown.
pub(super) struct Counted<'s, 'a> {
    ser: &'s mut Serializer<'a>,
    prefix: Prefix,
    content_start: usize,
    count: usize,
}

impl Counted<'_, '_> {
    /// Finishes the sequence: the count must match the announced one and every element must have
    /// taken at least one byte (the decoder bounds counts by the bytes left).
    fn finish(self) -> Result<(), Error> {
        let bytes = self.ser.out.len() - self.content_start;
        if self.count > bytes {
            return Err(Error::ZeroSizedElements {
                count: self.count,
                bytes,
            });
        }
        match self.prefix {
            Prefix::Known { declared } if declared != self.count => {
                return Err(Error::LengthMismatch {
                    declared,
                    actual: self.count,
                });
            }
            Prefix::Known { .. } => {}
            Prefix::Unknown { placeholder } => {
                let (varint_bytes, len) = varint(self.count as u64);
                let varint_bytes = varint_bytes.get(..len).unwrap_or(&varint_bytes);
                if let [byte] = varint_bytes
                    && let Some(slot) = self.ser.out.get_mut(placeholder)
                {
                    *slot = *byte;
                } else {
                    // Rare: 128 or more elements. Widen the prefix by shifting the contents.
                    self.ser
                        .out
                        .splice(placeholder..placeholder + 1, varint_bytes.iter().copied());
                }
            }
        }
        self.ser.depth.leave();
        Ok(())
    }
}

impl SerializeSeq for Counted<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeMap for Counted<'_, '_> {
    type Ok = ();
    type Error = Error;

    #[inline]
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.count += 1;
        key.serialize(&mut *self.ser)
    }

    #[inline]
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Tuples, structs and their variants: fields in order, nothing else.
pub(super) struct Fields<'s, 'a> {
    ser: &'s mut Serializer<'a>,
}

/// Implements one of the fixed-length compound traits for [`Fields`].
macro_rules! fields_impl {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl $trait for Fields<'_, '_> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $method<T: ?Sized + Serialize>(
                &mut self,
                $($key: &'static str,)?
                value: &T,
            ) -> Result<(), Error> {
                value.serialize(&mut *self.ser)
            }

            #[inline]
            fn end(self) -> Result<(), Error> {
                self.ser.depth.leave();
                Ok(())
            }
        }
    };
}

fields_impl!(SerializeTuple, serialize_element);
fields_impl!(SerializeTupleStruct, serialize_field);
fields_impl!(SerializeTupleVariant, serialize_field);
fields_impl!(SerializeStruct, serialize_field, _key);
fields_impl!(SerializeStructVariant, serialize_field, _key);

/// Implements a fixed-width little-endian integer or float method.
macro_rules! fixed_width {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            #[inline]
            fn $method(self, value: $ty) -> Result<(), Error> {
                self.out.extend_from_slice(&value.to_le_bytes());
                Ok(())
            }
        )*
    };
}

impl<'s, 'a> serde::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Counted<'s, 'a>;
    type SerializeTuple = Fields<'s, 'a>;
    type SerializeTupleStruct = Fields<'s, 'a>;
    type SerializeTupleVariant = Fields<'s, 'a>;
    type SerializeMap = Counted<'s, 'a>;
    type SerializeStruct = Fields<'s, 'a>;
    type SerializeStructVariant = Fields<'s, 'a>;

    fixed_width! {
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128,
        serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128,
        serialize_f32: f32, serialize_f64: f64,
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<(), Error> {
        self.out.push(value);
        Ok(())
    }

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.out.push(u8::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_char(self, value: char) -> Result<(), Error> {
        self.serialize_u32(u32::from(value))
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<(), Error> {
        self.serialize_bytes(value.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        write_varint(self.out, value.len() as u64);
        self.out.extend_from_slice(value);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.depth.enter()?;
        self.out.push(0);
        self.depth.leave();
        Ok(())
    }

    #[inline]
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        self.depth.enter()?;
        self.out.push(1);
        value.serialize(&mut *self)?;
        self.depth.leave();
        Ok(())
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.depth.enter()?;
        write_varint(self.out, u64::from(variant_index));
        self.depth.leave();
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.depth.enter()?;
        value.serialize(&mut *self)?;
        self.depth.leave();
        Ok(())
    }

    #[inline]
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.depth.enter()?;
        write_varint(self.out, u64::from(variant_index));
        value.serialize(&mut *self)?;
        self.depth.leave();
        Ok(())
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Counted<'s, 'a>, Error> {
        self.begin_counted(len)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Fields<'s, 'a>, Error> {
        self.depth.enter()?;
        Ok(Fields { ser: self })
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Fields<'s, 'a>, Error> {
        self.depth.enter()?;
        Ok(Fields { ser: self })
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Fields<'s, 'a>, Error> {
        self.begin_variant(variant_index)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Counted<'s, 'a>, Error> {
        self.begin_counted(len)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Fields<'s, 'a>, Error> {
        self.depth.enter()?;
        Ok(Fields { ser: self })
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Fields<'s, 'a>, Error> {
        self.begin_variant(variant_index)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}
