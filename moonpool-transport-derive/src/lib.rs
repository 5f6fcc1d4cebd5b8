//! # moonpool-transport-derive
//!
//! The `#[service]` attribute of `moonpool-transport`: one trait definition becomes a typed RPC
//! interface, served on a `NetTransport` and called through it, on Tokio and in simulation
//! alike. Use it through `moonpool_transport::service` (or `moonpool::service`); its
//! documentation, with the generated surface, is on [`macro@service`].
//!
//! Inside: `model` (the trait read into a service, every misuse a spanned error) → `expand` (the
//! generated code).

mod actor;
mod expand;
mod model;

use proc_macro::TokenStream;
use quote::quote;

/// Makes a typed RPC interface of a trait: a server that serves an implementation on a
/// `NetTransport`, and a client that is plain data.
///
/// # What you write
///
/// ```
/// use moonpool_transport::service;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// pub enum KvError {
///     Missing,
/// }
///
/// /// A key-value store.
/// #[service]
/// pub trait Kv {
///     /// Stores `value` under `key`.
///     async fn put(&self, key: String, value: u64) -> ();
///     /// The value under `key`.
///     async fn get(&self, key: String) -> Result<u64, KvError>;
/// }
/// ```
///
/// Each method is `async fn name(&self, args...) -> Resp` or `-> Result<Resp, E>`: any number
/// of owned arguments, and `Resp`, `E` and every argument serde types that are `Send + 'static`.
/// A `-> Result<Resp, E>` method keeps the service's own `E` apart from transport failures on the
/// client side.
///
/// # What you get
///
/// Next to the trait, in the same module and with the trait's visibility:
///
/// | Item | What it is |
/// |---|---|
/// | `trait Kv: Send + Sync + 'static` | the trait, each method now `fn put(&self, key: String, value: u64) -> impl Future<Output = ()> + Send`: implement it with `async fn` as written |
/// | `struct KvPutRequest { pub key: String, pub value: u64 }`, `struct KvGetRequest { pub key: String }` | one serde request per method, its fields the arguments |
/// | `struct KvClient` | the client: `Copy`, serde, `Eq`/`Ord`/`Hash`; it is the service's base endpoint and nothing else |
/// | `KvClient::new(base: Endpoint)`, `KvClient::endpoint()`, `KvClient::INTERFACE_ID` | build one from a known address and base token; read them back |
/// | `KvClient::put(&self, &transport, key, value) -> Call<'_, KvPutRequest, (), C>` | a call, sent by one of its delivery modes: `send()`, `try_get_reply()`, `get_reply()`, `get_reply_unless_failed_for(d)`; each reply future has `.timeout(d)` and ends with `Result<(), ReplyError>` |
/// | `KvClient::get(&self, &transport, key) -> FallibleCall<'_, KvGetRequest, u64, KvError, C>` | the same modes, ending with `Result<u64, CallError<KvError>>`: `CallError::Service(KvError)` or `CallError::Transport(ReplyError)` |
/// | `struct KvServer` | the running service: `KvServer::serve(&transport, implementation)` (fresh random base token), `serve_at(&transport, base, implementation)`; `client()`, `endpoint()`, `is_serving()`, `stop()`; dropping it stops serving |
///
/// With `#[service(well_known = 7)]` (an application well-known index, `3..64`), for bootstrap
/// services that clients find from an address alone: `KvClient::WELL_KNOWN_BASE`,
/// `KvClient::well_known(address)` and `KvServer::serve_well_known(&transport,
/// implementation)`.
///
/// ```
/// # use moonpool_transport::service;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// # pub enum KvError { Missing }
/// # #[service]
/// # pub trait Kv {
/// #     async fn put(&self, key: String, value: u64) -> ();
/// #     async fn get(&self, key: String) -> Result<u64, KvError>;
/// # }
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
/// use moonpool_core::TokioProviders;
/// use moonpool_transport::{CallError, NetTransportBuilder};
///
/// #[derive(Default)]
/// struct Memory(Mutex<BTreeMap<String, u64>>);
///
/// impl Kv for Memory {
///     async fn put(&self, key: String, value: u64) {
///         self.0.lock().unwrap().insert(key, value);
///     }
///     async fn get(&self, key: String) -> Result<u64, KvError> {
///         self.0.lock().unwrap().get(&key).copied().ok_or(KvError::Missing)
///     }
/// }
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// # runtime.block_on(async {
/// let providers = TokioProviders::new();
/// let server = NetTransportBuilder::new(providers.clone())
///     .local_address("127.0.0.1:0".parse().unwrap())
///     .build_listening()
///     .await
///     .unwrap();
/// let kv = KvServer::serve(&server, Memory::default()).unwrap();
/// let client: KvClient = kv.client(); // data: send it to anyone
///
/// let transport = NetTransportBuilder::new(providers).build().unwrap();
/// client.put(&transport, "a".into(), 1).get_reply().await.unwrap();
/// assert_eq!(client.get(&transport, "a".into()).get_reply().await, Ok(1));
/// assert_eq!(
///     client.get(&transport, "b".into()).get_reply().await,
///     Err(CallError::Service(KvError::Missing))
/// );
/// # });
/// ```
///
/// # Tokens
///
/// Method `i` (in declaration order) lives at
/// `interface::method_token(base, KvClient::INTERFACE_ID, i)`: the base token mixed with the
/// interface id (a hash of the trait's name and its methods' names and types), adjusted by the
/// index. The base is random per `serve` by default (a rebooted server has new tokens), or fixed
/// (`serve_at`, `well_known`). A client of one service pointed at another finds nothing there:
/// `EndpointNotFound`, never the wrong method.
///
/// Because the hashed id changes with the trait's name, renaming `Kv` (or a method, or a type
/// as written) gives new tokens. A well-known service whose clients are built from other code,
/// or another version of it, pins its id instead: with `#[service(id = 0x6b76_0001)]` (any
/// `u64` literal) the interface id is `interface::pinned_interface_id(0x6b76_0001)`, made from
/// that number alone. Keep pinned ids unique, and pick a new one when a method's arguments or
/// reply change shape: the macro cannot see other crates, so two services that pin the same id
/// have the same tokens. Served at one base on one transport, the second fails to start with
/// `TransportError::TokenInUse`; anywhere else, a client of one pointed at the other reaches
/// the other's method of the same index.
///
/// ```
/// # use moonpool_transport::service;
/// use moonpool_transport::interface::pinned_interface_id;
///
/// /// The coordinator every process finds at its well-known address.
/// #[service(well_known = 5, id = 0xC00D)]
/// pub trait Coordinator {
///     async fn generation(&self) -> u64;
/// }
///
/// assert_eq!(CoordinatorClient::INTERFACE_ID, pinned_interface_id(0xC00D));
/// ```
///
/// # Serving
///
/// Each method is served by its own task, spawned through the transport's providers: one
/// request at a time by default, or up to a bound with `#[serve(in_flight_max = 16)]` on the
/// method (or `#[service(in_flight_max = 16)]` for every method); requests beyond the bound wait
/// in the method's receive queue. A handler that panics, or returns through
/// `moonpool_transport::no_reply()`, answers its caller `BrokenPromise`, and the method goes on
/// serving. The codec is the transport's (`JsonCodec` or `BinaryCodec`, chosen on
/// `NetTransportBuilder`): the generated code names none.
///
/// # Options
///
/// - `well_known = N`: a well-known base (see above).
/// - `id = N`: pins the interface id (see Tokens): a `u64` integer literal.
/// - `in_flight_max = N`: the default bound of requests handled at once, per method (1).
/// - `crate = path`: where `moonpool_transport` is, when the macro cannot tell from
///   `Cargo.toml` (it uses `::moonpool_transport` when that is a dependency, else
///   `::moonpool::transport`).
///
/// # Misuse
///
/// Compile errors that point at the offending item and say what to do: a generic trait or
/// method, a method that is not `async`, takes `self` by value, has no return type, takes a
/// reference argument, or reuses a name; an option that is not one of the above, or an `id` that
/// is not a `u64` literal.
///
/// # Virtual actors
///
/// A trait with a method that takes `&mut self` (or is marked `#[reentrant]`) is a virtual actor
/// type of `moonpool::actors`: `#[service]` generates the trait, one request type per method and
/// `NameRef`, the reference (data: the identity, with one typed method per trait method taking
/// an `ActorClient`). Implement the trait on a type marked [`macro@actor_impl`]; see
/// `moonpool::actors` and `docs/actors.md` for the whole picture.
///
/// Each actor method is one of:
///
/// - `async fn name(&mut self, ..)`: a **turn** (the default). It runs alone: no other call of
///   the activation runs while it does, even while it is suspended at an `.await`.
/// - `#[reentrant] async fn name(&self, ..)`: a **re-entrant** method. Its calls start while
///   other re-entrant calls of the same activation are suspended (they interleave on the
///   activation's one task, never in parallel), but never while a turn runs; a turn waits for
///   the running re-entrant calls, and messages behind it wait for the turn. With a re-entrant
///   method the trait requires `Sync`, so what these methods change lives in atomics or behind
///   a lock that is not held across an `.await`.
///
/// ```ignore
/// #[service]
/// pub trait Account {
///     /// A turn: changes the balance alone.
///     async fn deposit(&mut self, amount: u64) -> u64;
///     /// Re-entrant: reads beside other reads, never during a deposit.
///     #[reentrant]
///     async fn balance(&self) -> u64;
/// }
/// ```
///
/// Misuse that the macro refuses, naming the method: a `&self` method without `#[reentrant]` in
/// an actor trait, `#[reentrant]` on a `&mut self` method, `#[reentrant]` with arguments, and
/// `#[serve(..)]` bounds or `well_known`/`in_flight_max` options on an actor. `#[actor_impl]`
/// refuses `#[reentrant]` on the implementation (it belongs on the trait's method).
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match service_impl(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Wires an implementation of a virtual actor trait (a `#[service]` trait with `&mut self`
/// methods, and `#[reentrant]` `&self` ones) into the actor host: on `impl Counter for
/// CounterActor`, it adds `moonpool::actors::ActorDispatch` for `CounterActor`, which decodes
/// each message and runs the method (re-entrant ones with the actor borrowed shared). The type
/// must also implement `moonpool::actors::Actor` (its lifecycle). It takes no options.
#[proc_macro_attribute]
pub fn actor_impl(attr: TokenStream, item: TokenStream) -> TokenStream {
    match actor::actor_impl(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn service_impl(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let options = model::Options::parse(attr)?;
    let item: syn::ItemTrait = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[service] goes on a trait: `trait Name { async fn method(&self, ..) -> T; }`",
        )
    })?;
    let krate = match &options.krate {
        Some(path) => quote!(#path),
        None => crate_path(),
    };
    let service = model::Service::read(item, options)?;
    if service
        .methods
        .iter()
        .any(|method| method.mutable || method.reentrant)
    {
        return actor::expand(&service);
    }
    Ok(expand::expand(&service, &krate))
}

/// `::moonpool_transport` when the crate being compiled depends on it (or is it), else
/// `::moonpool::transport` when it depends on the facade.
fn crate_path() -> proc_macro2::TokenStream {
    let direct = quote!(::moonpool_transport);
    if std::env::var("CARGO_PKG_NAME").is_ok_and(|name| name == "moonpool-transport") {
        return direct;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return direct;
    };
    let Ok(manifest) = std::fs::read_to_string(std::path::Path::new(&dir).join("Cargo.toml"))
    else {
        return direct;
    };
    let depends_on = |name: &str| {
        manifest.lines().any(|line| {
            let line = line.trim().trim_start_matches('[');
            let line = line
                .strip_prefix("dependencies.")
                .or_else(|| line.strip_prefix("dev-dependencies."))
                .unwrap_or(line);
            line.strip_prefix(name).is_some_and(|rest| {
                rest.starts_with([' ', '=', '.', ']']) || rest.trim_start().starts_with('=')
            })
        })
    };
    if depends_on("moonpool-transport") || !depends_on("moonpool") {
        direct
    } else {
        quote!(::moonpool::transport)
    }
}
