//! The service as the macro understands it, read from the trait, with every misuse collected as
//! an error that points at the offending item and says what to do.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{
    Attribute, Expr, FnArg, GenericArgument, Ident, ItemTrait, Lit, Pat, PathArguments, ReturnType,
    TraitItem, TraitItemFn, Type, TypeParamBound, Visibility,
};

/// First application well-known index, and one past the last (moonpool-core's
/// `WellKnownToken::FirstAvailable` and `WELL_KNOWN_RESERVED_COUNT`).
const WELL_KNOWN_FIRST: u32 = 3;
const WELL_KNOWN_LIMIT: u32 = 64;

/// Names the generated client defines itself; a method may not take them.
const RESERVED: [&str; 3] = ["new", "endpoint", "well_known"];

/// Options of `#[service(...)]`.
#[derive(Default)]
pub struct Options {
    /// `crate = path`: where `moonpool_transport` is.
    pub krate: Option<syn::Path>,
    /// `well_known = N`: the well-known base index.
    pub well_known: Option<u32>,
    /// `in_flight_max = expr`: the default bound of every method.
    pub in_flight_max: Option<Expr>,
    /// `id = N`: the pinned interface id (a `u64`), instead of the hash of the trait.
    pub id: Option<u64>,
}

impl Options {
    pub fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                options.krate = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("well_known") {
                let lit: syn::LitInt = meta.value()?.parse()?;
                let index: u32 = lit.base10_parse()?;
                if !(WELL_KNOWN_FIRST..WELL_KNOWN_LIMIT).contains(&index) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "well-known index {index} is not available to applications: use \
                             {WELL_KNOWN_FIRST}..{WELL_KNOWN_LIMIT} (0..{WELL_KNOWN_FIRST} \
                             belong to Moonpool)"
                        ),
                    ));
                }
                options.well_known = Some(index);
                Ok(())
            } else if meta.path.is_ident("id") {
                if options.id.is_some() {
                    return Err(meta.error("`id` is given twice: keep one"));
                }
                options.id = Some(pinned_id(meta.value()?.parse()?)?);
                Ok(())
            } else if meta.path.is_ident("in_flight_max") {
                options.in_flight_max = Some(in_flight_bound(meta.value()?.parse()?)?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[service] option: expected `id = N`, `well_known = N`, \
                     `in_flight_max = N` or `crate = path`",
                ))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(options)
    }
}

/// The pinned interface id: an unsuffixed (or `u64`) integer literal that fits in 64 bits.
fn pinned_id(expr: Expr) -> syn::Result<u64> {
    const HOW: &str =
        "an integer literal of at most 64 bits, such as `#[service(id = 0x6b76_0001)]`";
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = &expr
    else {
        return Err(syn::Error::new_spanned(
            &expr,
            format!("`id` pins the interface id: write {HOW}"),
        ));
    };
    if !matches!(lit.suffix(), "" | "u64") {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "interface id `{lit}` has the suffix `{}`: an id is a `u64`, written as {HOW}",
                lit.suffix()
            ),
        ));
    }
    lit.base10_parse::<u64>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            format!("interface id `{lit}` does not fit in 64 bits: write {HOW}"),
        )
    })
}

/// A bound of requests in flight: refuses a literal 0.
fn in_flight_bound(expr: Expr) -> syn::Result<Expr> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(lit), ..
    }) = &expr
        && lit.base10_parse::<u64>()? == 0
    {
        return Err(syn::Error::new(
            lit.span(),
            "in_flight_max must be at least 1 (1 serves one request at a time)",
        ));
    }
    Ok(expr)
}

/// One method of the service.
pub struct Method {
    /// Attributes carried to the trait method and the client method (docs among them).
    pub attrs: Vec<Attribute>,
    pub ident: Ident,
    pub args: Vec<(Ident, Type)>,
    /// The return type as written.
    pub output: Type,
    /// `Some((T, E))` for a return type written `Result<T, E>`.
    pub fallible: Option<(Type, Type)>,
    /// The bound of requests in flight, when `#[serve(in_flight_max = N)]` gives one.
    pub in_flight_max: Option<Expr>,
    /// A default body, if the trait gives one.
    pub default: Option<syn::Block>,
    /// True for `&mut self`: a virtual actor's method (see `actor.rs`).
    pub mutable: bool,
    /// True when marked `#[reentrant]`: a virtual actor's method whose calls may interleave
    /// (see `actor.rs`).
    pub reentrant: bool,
}

/// The whole service.
pub struct Service {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub ident: Ident,
    pub supertraits: Vec<TypeParamBound>,
    pub methods: Vec<Method>,
    pub options: Options,
}

/// Collects errors so that every misuse is reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

impl Service {
    pub fn read(item: ItemTrait, options: Options) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let name = item.ident.to_string();
        if !item.generics.params.is_empty() {
            errors.at(
                &item.generics,
                format!(
                    "a #[service] trait cannot be generic: every method's request and reply \
                     types are fixed on the wire. Make `{name}` concrete (one service per type, \
                     or an enum of the cases)"
                ),
            );
        } else if let Some(clause) = &item.generics.where_clause {
            errors.at(
                clause,
                "a #[service] trait cannot have a `where` clause: remove it (the generated code \
                 adds `Send + Sync + 'static`)",
            );
        }
        if let Some(unsafety) = &item.unsafety {
            errors.at(
                unsafety,
                "a #[service] trait cannot be `unsafe`: remove `unsafe`",
            );
        }
        if let Some(auto) = &item.auto_token {
            errors.at(
                auto,
                "a #[service] trait cannot be an auto trait: remove `auto`",
            );
        }
        let mut methods: Vec<Method> = Vec::new();
        for trait_item in item.items {
            let TraitItem::Fn(function) = trait_item else {
                errors.at(
                    &trait_item,
                    "a #[service] trait holds only `async fn` methods: move this item out of \
                     the trait",
                );
                continue;
            };
            let method_name = function.sig.ident.to_string();
            if let Some(first) = methods.iter().find(|m| m.ident == function.sig.ident) {
                let mut error = syn::Error::new_spanned(
                    &function.sig.ident,
                    format!(
                        "method `{method_name}` is defined twice: each method of a service is \
                         its own endpoint; rename one of them"
                    ),
                );
                error.combine(syn::Error::new_spanned(
                    &first.ident,
                    format!("`{method_name}` is first defined here"),
                ));
                errors.push(error);
                continue;
            }
            if RESERVED.contains(&method_name.as_str()) {
                errors.at(
                    &function.sig.ident,
                    format!(
                        "`{method_name}` is taken by the generated client (`{name}Client::\
                         {method_name}`): rename the method"
                    ),
                );
                continue;
            }
            if let Some(method) = read_method(function, &mut errors) {
                methods.push(method);
            }
        }
        let supertraits = item.supertraits.into_iter().collect();
        errors.finish(Service {
            attrs: item.attrs,
            vis: item.vis,
            ident: item.ident,
            supertraits,
            methods,
            options,
        })
    }
}

fn read_method(function: TraitItemFn, outer: &mut Errors) -> Option<Method> {
    let mut local = Errors::default();
    let method = read_method_into(function, &mut local);
    match local.0 {
        Some(error) => {
            outer.push(error);
            None
        }
        None => method,
    }
}

fn read_method_into(function: TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let sig = &function.sig;
    let name = sig.ident.to_string();
    if let Some(constness) = &sig.constness {
        errors.at(
            constness,
            "a #[service] method cannot be `const`: write `async fn`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.at(
            unsafety,
            "a #[service] method cannot be `unsafe`: remove `unsafe`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, "a #[service] method cannot have an ABI: remove it");
    }
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!(
                "`{name}` must be `async fn`: a #[service] method is called over the network \
                 and answers when its handler finishes"
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            &sig.generics,
            format!(
                "`{name}` cannot be generic: its request and reply types are fixed on the wire. \
                 Use concrete types (an enum for several cases)"
            ),
        );
    } else if let Some(clause) = &sig.generics.where_clause {
        errors.at(
            clause,
            format!("`{name}` cannot have a `where` clause: use concrete types"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, "a #[service] method cannot be variadic");
    }
    let mutable = read_receiver(sig, errors);
    let mut args = Vec::new();
    for input in sig.inputs.iter().skip(1) {
        let FnArg::Typed(typed) = input else { continue };
        let ident = match &*typed.pat {
            Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => pat.ident.clone(),
            other => {
                errors.at(
                    other,
                    "name this argument (`name: Type`): it becomes a field of the method's \
                     request",
                );
                continue;
            }
        };
        if let Some(problem) = not_owned(&typed.ty) {
            errors.at(
                &typed.ty,
                format!(
                    "argument `{ident}` {problem}: arguments travel in the request and are \
                     decoded into owned values. Take an owned serde type (`String` rather than \
                     `&str`, `Vec<T>` rather than `&[T]`)"
                ),
            );
        }
        args.push((ident, (*typed.ty).clone()));
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => {
            if contains_impl_trait(ty) {
                errors.at(
                    ty,
                    format!(
                        "`{name}` cannot return `impl Trait`: the reply is decoded by the \
                         caller, so name a concrete serde type"
                    ),
                );
            } else if let Some(problem) = not_owned(ty) {
                errors.at(
                    ty,
                    format!("the reply of `{name}` {problem}: return an owned serde type"),
                );
            }
            (**ty).clone()
        }
        ReturnType::Default => {
            errors.at(
                sig,
                format!(
                    "`{name}` needs a return type: `-> T` (the reply) or `-> Result<T, E>` (E \
                     is the service's own error, kept apart from transport errors); write \
                     `-> ()` for a method that only says it is done"
                ),
            );
            return None;
        }
    };
    let mut attrs = Vec::new();
    let mut in_flight_max = None;
    let mut reentrant = false;
    for attr in function.attrs {
        if attr.path().is_ident("reentrant") {
            if let syn::Meta::Path(_) = &attr.meta {
                reentrant = true;
            } else {
                errors.at(
                    &attr,
                    format!("`#[reentrant]` takes no arguments: write `#[reentrant]` on `{name}`"),
                );
            }
        } else if attr.path().is_ident("serve") {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("in_flight_max") {
                    in_flight_max = Some(in_flight_bound(meta.value()?.parse()?)?);
                    Ok(())
                } else if meta.path.is_ident("serial") {
                    in_flight_max = Some(syn::parse_quote!(1));
                    Ok(())
                } else {
                    Err(meta.error(
                        "unknown #[serve] option: expected `in_flight_max = N` (requests of this \
                         method handled at once) or `serial` (one at a time)",
                    ))
                }
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        } else {
            attrs.push(attr);
        }
    }
    let fallible = result_parts(&output);
    Some(Method {
        attrs,
        ident: sig.ident.clone(),
        args,
        output,
        fallible,
        in_flight_max,
        default: function.default,
        mutable,
        reentrant,
    })
}

/// True for `&mut self` (a virtual actor's method).
fn read_receiver(sig: &syn::Signature, errors: &mut Errors) -> bool {
    let name = sig.ident.to_string();
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            if receiver.reference.is_some()
                && receiver.mutability.is_some()
                && receiver.colon_token.is_none()
            {
                return true;
            } else if receiver.reference.is_none() || receiver.colon_token.is_some() {
                errors.at(
                    receiver,
                    format!(
                        "`{name}` must take `&self`: a service's implementation is shared by \
                         every request, so methods borrow it"
                    ),
                );
            }
        }
        _ => errors.at(
            &sig.ident,
            format!(
                "`{name}` needs `&self` as its first argument: a service method is called on \
                 the service's implementation"
            ),
        ),
    }
    false
}

/// Why `ty` is not an owned type (a reference, or a lifetime other than `'static`), if it is not.
fn not_owned(ty: &Type) -> Option<&'static str> {
    if matches!(ty, Type::Reference(_)) {
        return Some("is a reference");
    }
    fn scan(tokens: TokenStream) -> Option<&'static str> {
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Punct(punct) if punct.as_char() == '&' => {
                    return Some("contains a reference");
                }
                TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                    let is_static = matches!(
                        tokens.peek(),
                        Some(TokenTree::Ident(ident)) if ident == "static"
                    );
                    if !is_static {
                        return Some("borrows (it has a lifetime)");
                    }
                }
                TokenTree::Group(group) => {
                    if let Some(problem) = scan(group.stream()) {
                        return Some(problem);
                    }
                }
                _ => {}
            }
        }
        None
    }
    scan(ty.to_token_stream())
}

fn contains_impl_trait(ty: &Type) -> bool {
    ty.to_token_stream()
        .into_iter()
        .any(|token| matches!(token, TokenTree::Ident(ident) if ident == "impl"))
}

/// `(T, E)` for a type written `Result<T, E>` (any path ending in `Result` with two arguments).
fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &last.arguments else {
        return None;
    };
    let mut types = arguments.args.iter().filter_map(|argument| match argument {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    });
    let (ok, err) = (types.next()?, types.next()?);
    if types.next().is_some() || arguments.args.len() != 2 {
        return None;
    }
    Some((ok, err))
}
