//! Core types: parsing, display, serde, and the typed errors bad input gets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use moonpool_core::{
    AddressParseError, CodecError, Endpoint, FLAG_TLS, JsonCodec, MessageCodec, NetworkAddress,
    OpenOptions, StorageProvider, TokioStorageProvider, UID, UidParseError,
    WELL_KNOWN_RESERVED_COUNT, WellKnownToken,
};

#[test]
fn test_network_address_rejects_nonsense_naming_it() {
    let error = "nonsense".parse::<NetworkAddress>().unwrap_err();
    assert_eq!(
        error,
        AddressParseError::MissingPort {
            input: "nonsense".into()
        }
    );
    assert!(error.to_string().contains("'nonsense'"), "{error}");
}

#[test]
fn test_network_address_errors_name_the_bad_part() {
    let error = "10.0.0.300:4500".parse::<NetworkAddress>().unwrap_err();
    assert!(matches!(&error, AddressParseError::InvalidIp { ip, .. } if ip == "10.0.0.300"));
    let error = "10.0.0.1:99999".parse::<NetworkAddress>().unwrap_err();
    assert!(matches!(&error, AddressParseError::InvalidPort { port, .. } if port == "99999"));
    assert!(error.to_string().contains("99999"));
    let error = "::1:80".parse::<NetworkAddress>().unwrap_err();
    assert!(matches!(error, AddressParseError::MissingPort { .. }));
    assert_eq!(
        "".parse::<NetworkAddress>().unwrap_err(),
        AddressParseError::Empty
    );
}

#[test]
fn test_network_address_parses_v4_v6_and_flags() {
    let v4: NetworkAddress = "10.0.0.1:4500".parse().unwrap();
    assert_eq!(v4.ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(v4.port, 4500);
    assert!(!v4.is_tls());
    let v6: NetworkAddress = "[::1]:4500".parse().unwrap();
    assert_eq!(v6.ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(v6.to_string(), "[::1]:4500");
    let tls: NetworkAddress = "10.0.0.2:443:tls".parse().unwrap();
    assert_eq!(tls.flags, FLAG_TLS);
    assert_eq!(tls.to_string(), "10.0.0.2:443:tls");
    assert_eq!(tls.to_string().parse::<NetworkAddress>().unwrap(), tls);
    let json = serde_json::to_string(&v6).unwrap();
    assert_eq!(serde_json::from_str::<NetworkAddress>(&json).unwrap(), v6);
}

#[test]
fn test_uid_from_31_hex_chars_is_a_length_error() {
    let text = "0123456789abcdef0123456789abcde";
    assert_eq!(text.len(), 31);
    let error = text.parse::<UID>().unwrap_err();
    assert_eq!(
        error,
        UidParseError::WrongLength {
            input: text.into(),
            len: 31
        }
    );
    assert!(error.to_string().contains(text));
    assert!(error.to_string().contains("31"));
}

#[test]
fn test_uid_rejects_non_hex_and_round_trips() {
    let error = "0123456789abcdef0123456789abcdeg"
        .parse::<UID>()
        .unwrap_err();
    assert!(matches!(
        error,
        UidParseError::NotHex { character: 'g', .. }
    ));
    let error = "+123456789abcdef0123456789abcdef"
        .parse::<UID>()
        .unwrap_err();
    assert!(matches!(
        error,
        UidParseError::NotHex { character: '+', .. }
    ));
    let uid = UID::new(u64::MAX - 5, 0xdead_beef);
    assert_eq!(uid.to_string().len(), 32);
    assert_eq!(uid.to_string().parse::<UID>().unwrap(), uid);
    assert_eq!(uid.to_string().to_uppercase().parse::<UID>().unwrap(), uid);
    let json = serde_json::to_string(&uid).unwrap();
    assert_eq!(serde_json::from_str::<UID>(&json).unwrap(), uid);
}

#[test]
fn test_well_known_tokens() {
    assert_eq!(WellKnownToken::EndpointNotFound.index(), 0);
    assert_eq!(WellKnownToken::Ping.index(), 1);
    assert_eq!(WellKnownToken::UnauthorizedEndpoint.index(), 2);
    assert_eq!(WELL_KNOWN_RESERVED_COUNT, 64);
    let uid = WellKnownToken::Ping.uid();
    assert!(uid.is_well_known());
    assert_eq!(uid.second, 1);
    assert_eq!(
        WellKnownToken::from_index(2),
        Some(WellKnownToken::UnauthorizedEndpoint)
    );
    assert_eq!(WellKnownToken::from_index(10), None);
    let address: NetworkAddress = "10.0.0.1:1".parse().unwrap();
    let endpoint = Endpoint::well_known(address, WellKnownToken::Ping);
    assert_eq!(endpoint.token, uid);
    assert_ne!(endpoint.adjusted(1), endpoint);
    assert_eq!(endpoint.adjusted(1).address, address);
}

#[test]
fn test_json_codec_decoding_garbage_names_type_and_length() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Request {
        key: String,
    }
    let error = JsonCodec.decode::<Request>(b"\x00\xffgarbage").unwrap_err();
    match &error {
        CodecError::Decode { type_name, len, .. } => {
            assert!(type_name.ends_with("Request"), "{type_name}");
            assert_eq!(*len, 9);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains("Request"), "{error}");
    // Well-formed JSON of the wrong shape is a typed error too.
    assert!(JsonCodec.decode::<Request>(br#"{"nope": 1}"#).is_err());
}

#[test]
fn test_json_codec_encode_error_is_typed() {
    use std::collections::BTreeMap;
    // JSON object keys must be strings: a map keyed by a tuple cannot be encoded.
    let mut map = BTreeMap::new();
    map.insert((1, 2), "x");
    let error = JsonCodec.encode(&map).unwrap_err();
    assert!(matches!(error, CodecError::Encode { .. }), "{error:?}");
}

#[tokio::test]
async fn test_open_missing_file_without_create_is_typed_error_naming_path() {
    let dir = tempfile::tempdir().unwrap();
    let storage = TokioStorageProvider::with_root(dir.path());
    let error = storage
        .open("no-such-file.log", OpenOptions::read_only())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(error.path, std::path::Path::new("no-such-file.log"));
    assert!(error.to_string().contains("no-such-file.log"), "{error}");
    // It converts into an io::Error of the same kind, for `?` in io::Result code.
    let io: std::io::Error = error.into();
    assert_eq!(io.kind(), ErrorKind::NotFound);
}

#[test]
fn test_json_codec_encode_into_appends_and_restores_on_error() {
    let mut out = b"prefix:".to_vec();
    JsonCodec.encode_into(&(1u32, "two"), &mut out).unwrap();
    assert_eq!(out, b"prefix:[1,\"two\"]");
    // A map with non-string keys cannot be JSON: the error leaves `out` untouched.
    let mut map = std::collections::BTreeMap::new();
    map.insert(vec![1u8], 2u8);
    let error = JsonCodec.encode_into(&map, &mut out).unwrap_err();
    assert!(matches!(error, CodecError::Encode { .. }), "{error:?}");
    assert_eq!(out, b"prefix:[1,\"two\"]");
}

#[tokio::test]
async fn test_an_absolute_path_stays_under_the_root() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let storage = TokioStorageProvider::with_root(dir.path());
    let mut file = storage
        .open("/inside.log", OpenOptions::read_write_create())
        .await
        .unwrap();
    file.write_all(b"x").await.unwrap();
    file.flush().await.unwrap();
    assert!(dir.path().join("inside.log").exists());
    assert!(storage.exists("inside.log").await.unwrap());
    assert!(!std::path::Path::new("/inside.log").exists());
}

#[tokio::test]
async fn test_a_trailing_separator_survives_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), b"p").unwrap();
    let storage = TokioStorageProvider::with_root(dir.path());
    for path in ["plain/", "/plain/", "//plain/.", "plain//"] {
        let opened = storage.open(path, OpenOptions::read_write_create()).await;
        assert!(opened.is_err(), "{path} opened the file under the root");
        assert!(!storage.exists(path).await.unwrap(), "{path} exists");
    }
    assert!(storage.exists("/plain").await.unwrap());
    assert_eq!(std::fs::read(dir.path().join("plain")).unwrap(), b"p");
}
