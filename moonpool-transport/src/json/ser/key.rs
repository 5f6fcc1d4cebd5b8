//! Map keys, as `serde_json` writes them.

use serde::Serialize;
use serde::ser::{self, Impossible};

use super::{Bail, Writer};

/// A map key, as `serde_json` writes keys: strings as they are, integers and booleans quoted;
/// anything else it refuses (and floats, which it quotes), the fast path leaves to it.
pub(super) struct KeyWriter<'a, 'b>(pub(super) &'a mut Writer<'b>);

impl KeyWriter<'_, '_> {
    #[inline]
    fn quoted(self, put: impl FnOnce(&mut Writer<'_>)) -> Result<(), Bail> {
        self.0.push(b'"');
        put(self.0);
        self.0.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for KeyWriter<'_, '_> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = Impossible<(), Bail>;
    type SerializeTuple = Impossible<(), Bail>;
    type SerializeTupleStruct = Impossible<(), Bail>;
    type SerializeTupleVariant = Impossible<(), Bail>;
    type SerializeMap = Impossible<(), Bail>;
    type SerializeStruct = Impossible<(), Bail>;
    type SerializeStructVariant = Impossible<(), Bail>;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<(), Bail> {
        self.quoted(|w| {
            w.out
                .extend_from_slice(if value { b"true" } else { b"false" })
        })
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<(), Bail> {
        self.quoted(|w| w.put_i64(i64::from(value)))
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<(), Bail> {
        self.quoted(|w| w.put_i64(i64::from(value)))
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<(), Bail> {
        self.quoted(|w| w.put_i64(i64::from(value)))
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<(), Bail> {
        self.quoted(|w| w.put_i64(value))
    }

    #[inline]
    fn serialize_i128(self, _value: i128) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<(), Bail> {
        self.quoted(|w| w.put_u64(u64::from(value)))
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<(), Bail> {
        self.quoted(|w| w.put_u64(u64::from(value)))
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<(), Bail> {
        self.quoted(|w| w.put_u64(u64::from(value)))
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<(), Bail> {
        self.quoted(|w| w.put_u64(value))
    }

    #[inline]
    fn serialize_u128(self, _value: u128) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_f32(self, _value: f32) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_f64(self, _value: f64) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_char(self, value: char) -> Result<(), Bail> {
        self.0.put_str(value.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }

    #[inline]
    fn serialize_str(self, value: &str) -> Result<(), Bail> {
        self.0.put_str(value);
        Ok(())
    }

    #[inline]
    fn serialize_bytes(self, _value: &[u8]) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_none(self) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Bail> {
        self.0.put_str(variant);
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Bail> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Impossible<(), Bail>, Bail> {
        self.0.bail()
    }
}
