//! Virtual actors: a `#[service]` trait whose methods take `&mut self` (turns, one at a time)
//! or take `&self` and are marked `#[reentrant]` (calls that may interleave with each other)
//! becomes an actor type. Generated next to the trait: the trait (methods made `Send` futures;
//! `Sync` too when a method is re-entrant), one request struct per method, the reference
//! `NameRef` (data: the identity; typed methods that call through an `ActorClient`) and its
//! dispatch (exclusive and shared); `#[actor_impl]` on an implementation wires that dispatch
//! into the host as `ActorDispatch`. The runtime is `moonpool::actors`, so the generated code
//! names `::moonpool::actors`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use crate::model::{Method, Service};

/// Names the generated reference defines itself; a method may not take them.
const RESERVED: [&str; 4] = ["new", "id", "from_id", "into_id"];

/// The runtime's path.
fn runtime() -> TokenStream {
    quote!(::moonpool::actors)
}

fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

fn request_ident(service: &Service, method: &Method) -> Ident {
    format_ident!(
        "{}{}Request",
        service.ident,
        pascal_case(&method.ident.to_string())
    )
}

/// The reference type's name for a trait named `name`.
pub fn ref_ident(name: &Ident) -> Ident {
    format_ident!("{}Ref", name)
}

/// Checks that every method takes `&mut self` (a turn) or takes `&self` and is `#[reentrant]`
/// (never `&mut self` and re-entrant), and uses no name the reference takes; then expands.
pub fn expand(service: &Service) -> syn::Result<TokenStream> {
    let mut error: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut error {
        Some(all) => all.combine(e),
        None => error = Some(e),
    };
    for method in &service.methods {
        let name = method.ident.to_string();
        if method.mutable && method.reentrant {
            push(syn::Error::new_spanned(
                &method.ident,
                format!(
                    "`{name}` is #[reentrant] but takes `&mut self`: a re-entrant call runs \
                     while other re-entrant calls of the same activation are suspended at an \
                     `.await`, so it can only borrow the actor shared. Take `&self` here (keep \
                     what `{name}` changes behind a lock or in an atomic), or remove \
                     #[reentrant] to run `{name}` as a turn of its own"
                ),
            ));
        }
        if !method.mutable && !method.reentrant {
            push(syn::Error::new_spanned(
                &method.ident,
                format!(
                    "`{name}` takes `&self`, but this trait is a virtual actor (a method takes \
                     `&mut self` or is #[reentrant]), whose methods run as turns with `&mut \
                     self` by default. Take `&mut self` here too, mark `{name}` #[reentrant] to \
                     let its calls interleave with each other (never with a `&mut self` turn), \
                     or move `{name}` to a `&self` #[service] trait of its own"
                ),
            ));
        }
        if RESERVED.contains(&name.as_str()) {
            push(syn::Error::new_spanned(
                &method.ident,
                format!(
                    "`{name}` is taken by the generated reference (`{}::{name}`): rename the \
                     method",
                    ref_ident(&service.ident)
                ),
            ));
        }
        if method.in_flight_max.is_some() {
            push(syn::Error::new_spanned(
                &method.ident,
                format!(
                    "`{name}`: `#[serve(..)]` bounds do not apply to actors, which run one \
                     message at a time; remove it"
                ),
            ));
        }
    }
    if service.options.well_known.is_some() || service.options.in_flight_max.is_some() {
        push(syn::Error::new_spanned(
            &service.ident,
            "`well_known` and `in_flight_max` are options of RPC services; a virtual actor \
             takes none",
        ));
    }
    if let Some(error) = error {
        return Err(error);
    }
    let actors = runtime();
    let trait_def = trait_definition(service);
    let requests = service.methods.iter().map(|m| request_struct(service, m));
    let reference = reference(service, &actors);
    Ok(quote! {
        #trait_def
        #(#requests)*
        #reference
    })
}

fn trait_definition(service: &Service) -> TokenStream {
    let Service {
        attrs, vis, ident, ..
    } = service;
    let reference = ref_ident(ident);
    let supertraits = &service.supertraits;
    // Re-entrant calls borrow the actor shared from the activation's task while it may run on
    // any thread of a runtime: the actor must be `Sync` for their futures to be `Send`.
    let sync = service
        .methods
        .iter()
        .any(|method| method.reentrant)
        .then(|| quote!(::core::marker::Sync+));
    let see = format!(
        " A virtual actor type: call it through [`{reference}`]; implement it with \
         `#[actor_impl]` on a type that also implements `moonpool::actors::Actor` (generated by \
         `#[service]`, with one request type per method)."
    );
    let methods = service.methods.iter().map(|method| {
        let Method {
            attrs,
            ident,
            args,
            output,
            ..
        } = method;
        let names = args.iter().map(|(name, _)| name);
        let types = args.iter().map(|(_, ty)| ty);
        let body = match &method.default {
            Some(block) => quote! { { async move #block } },
            None => quote! { ; },
        };
        let receiver = if method.reentrant {
            quote!(&self)
        } else {
            quote!(&mut self)
        };
        quote! {
            #(#attrs)*
            fn #ident(#receiver, #(#names: #types),*)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
            #body
        }
    });
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #see]
        #vis trait #ident: #(#supertraits +)* #sync ::core::marker::Send + 'static {
            #(#methods)*
        }
    }
}

fn request_struct(service: &Service, method: &Method) -> TokenStream {
    let vis = &service.vis;
    let name = request_ident(service, method);
    let serde_path = "::moonpool::actors::__private::serde";
    let summary = format!(
        " The message of [`{}::{}`]: its arguments.",
        service.ident, method.ident
    );
    let fields = method.args.iter().map(|(field, ty)| {
        let doc = format!(" The `{field}` argument.");
        quote! {
            #[doc = #doc]
            pub #field: #ty,
        }
    });
    quote! {
        #[doc = #summary]
        #[derive(
            ::moonpool::actors::__private::serde::Serialize,
            ::moonpool::actors::__private::serde::Deserialize,
        )]
        #[serde(crate = #serde_path)]
        #vis struct #name {
            #(#fields)*
        }
    }
}

fn reference(service: &Service, actors: &TokenStream) -> TokenStream {
    let vis = &service.vis;
    let trait_ident = &service.ident;
    let reference = ref_ident(trait_ident);
    let type_name = trait_ident.to_string();
    let serde_path = "::moonpool::actors::__private::serde";
    let client = Ident::new("client", Span::mixed_site());
    let actor = Ident::new("actor", Span::mixed_site());
    let body = Ident::new("body", Span::mixed_site());
    let method_var = Ident::new("method", Span::mixed_site());
    let implementation = Ident::new("T", Span::mixed_site());
    let summary = format!(
        " A reference to a [`{trait_ident}`] actor: its identity (type `{type_name}` and a \
         key), nothing else."
    );
    let details = " It is data: cloned, compared, hashed and serialized (serde) as its \
                   `ActorId`, so it can travel inside messages. Each method sends one message \
                   through the `ActorClient` given and resolves to the method's reply or an \
                   `ActorError`; the actor is activated wherever its placement puts it if it \
                   is not active.";
    let mut arms = Vec::new();
    let mut shared_arms = Vec::new();
    let mut reentrant = Vec::new();
    let methods = service.methods.iter().enumerate().map(|(index, method)| {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let ident = &method.ident;
        let request = request_ident(service, method);
        let docs = method.attrs.iter().filter(|attr| attr.path().is_ident("doc"));
        let names: Vec<&Ident> = method.args.iter().map(|(name, _)| name).collect();
        let types = method.args.iter().map(|(_, ty)| ty);
        let output = &method.output;
        let call_doc = format!(
            " Sends [`{trait_ident}::{ident}`] to this actor through `client`: the actor's \
             reply, or why there is none."
        );
        let decode = quote! {
            let #request { #(#names),* } = #actors::__private::decode::<#request>(&#body)?;
        };
        if method.reentrant {
            reentrant.push(index);
            let run = quote! {
                #index => {
                    #decode
                    let reply = <#implementation as #trait_ident>::#ident(&*#actor, #(#names),*)
                        .await;
                    #actors::__private::encode(&reply)
                }
            };
            arms.push(run.clone());
            shared_arms.push(run);
        } else {
            arms.push(quote! {
                #index => {
                    #decode
                    let reply = <#implementation as #trait_ident>::#ident(#actor, #(#names),*)
                        .await;
                    #actors::__private::encode(&reply)
                }
            });
        }
        quote! {
            #(#docs)*
            #[doc = ""]
            #[doc = #call_doc]
            #vis fn #ident(
                &self,
                #client: &#actors::ActorClient,
                #(#names: #types),*
            ) -> #actors::__private::BoxFuture<'static, ::core::result::Result<#output, #actors::ActorError>> {
                #client.call(self.id.clone(), #index, &#request { #(#names),* })
            }
        }
    });
    let methods: Vec<TokenStream> = methods.collect();
    let shared = if reentrant.is_empty() {
        quote! {
            let _ = #actor;
            ::core::option::Option::None
        }
    } else {
        quote!(::core::option::Option::Some(#actor))
    };
    let is_reentrant = if reentrant.is_empty() {
        quote!(false)
    } else {
        quote!(::core::matches!(#method_var, #(#reentrant)|*))
    };
    // Without re-entrant methods the shared dispatch holds no borrow of the actor (so a type that
    // is not `Sync` still gets a `Send` future).
    let shared_body = if shared_arms.is_empty() {
        quote! {
            let _ = (#actor, #body);
            async move {
                ::core::result::Result::Err(#actors::ActorError::UnknownMethod {
                    actor_type: ::std::string::String::from(Self::ACTOR_TYPE),
                    method: #method_var,
                })
            }
        }
    } else {
        quote! {
            async move {
                match #method_var {
                    #(#shared_arms)*
                    _ => ::core::result::Result::Err(#actors::ActorError::UnknownMethod {
                        actor_type: ::std::string::String::from(Self::ACTOR_TYPE),
                        method: #method_var,
                    }),
                }
            }
        }
    };
    quote! {
        #[doc = #summary]
        #[doc = ""]
        #[doc = #details]
        #[derive(
            ::core::clone::Clone, ::core::cmp::PartialEq, ::core::cmp::Eq,
            ::core::cmp::PartialOrd, ::core::cmp::Ord, ::core::hash::Hash, ::core::fmt::Debug,
            #actors::__private::serde::Serialize, #actors::__private::serde::Deserialize,
        )]
        #[serde(crate = #serde_path, transparent)]
        #vis struct #reference {
            id: #actors::ActorId,
        }

        #[allow(dead_code)]
        impl #reference {
            /// The actor type's name: the trait's name.
            #vis const ACTOR_TYPE: &'static str = #type_name;

            /// The actor of this type with key `key` (a string, an integer or a UID).
            #[must_use]
            #vis fn new(key: impl ::core::convert::Into<#actors::ActorKey>) -> Self {
                Self { id: #actors::ActorId::new(Self::ACTOR_TYPE, key) }
            }

            /// The reference for `id`, if `id` is of this type (else `id` back).
            ///
            /// # Errors
            /// `id` names another actor type.
            #vis fn from_id(id: #actors::ActorId) -> ::core::result::Result<Self, #actors::ActorId> {
                if id.actor_type == Self::ACTOR_TYPE {
                    ::core::result::Result::Ok(Self { id })
                } else {
                    ::core::result::Result::Err(id)
                }
            }

            /// The actor's identity.
            #[must_use]
            #vis fn id(&self) -> &#actors::ActorId {
                &self.id
            }

            /// The actor's identity, by value.
            #[must_use]
            #vis fn into_id(self) -> #actors::ActorId {
                self.id
            }

            #(#methods)*

            /// Runs message `method` on `actor`: what `#[actor_impl]` wires into the host.
            #[doc(hidden)]
            #vis fn __dispatch<#implementation: #trait_ident>(
                #actor: &mut #implementation,
                #method_var: u32,
                #body: ::std::string::String,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::string::String, #actors::ActorError>,
            > + ::core::marker::Send + '_ {
                async move {
                    match #method_var {
                        #(#arms)*
                        _ => ::core::result::Result::Err(#actors::ActorError::UnknownMethod {
                            actor_type: ::std::string::String::from(Self::ACTOR_TYPE),
                            method: #method_var,
                        }),
                    }
                }
            }

            /// True when message `method` is `#[reentrant]`: what `#[actor_impl]` wires into
            /// the host.
            #[doc(hidden)]
            #vis fn __is_reentrant(#method_var: u32) -> bool {
                #is_reentrant
            }

            /// `actor` borrowed shared for its `#[reentrant]` calls (`None` without any): what
            /// `#[actor_impl]` wires into the host.
            #[doc(hidden)]
            #vis fn __shared<#implementation: #trait_ident + #actors::ActorDispatch>(
                #actor: &#implementation,
            ) -> ::core::option::Option<&dyn #actors::SharedDispatch> {
                #shared
            }

            /// Runs `#[reentrant]` message `method` on `actor`, borrowed shared: what
            /// `#[actor_impl]` wires into the host. Other methods are `UnknownMethod` here.
            #[doc(hidden)]
            #vis fn __dispatch_shared<#implementation: #trait_ident>(
                #actor: &#implementation,
                #method_var: u32,
                #body: ::std::string::String,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::string::String, #actors::ActorError>,
            > + ::core::marker::Send + '_ {
                #shared_body
            }
        }
    }
}

/// `#[actor_impl]` on `impl Trait for Type`: keeps the impl and adds `ActorDispatch` for
/// `Type`, dispatching through the trait's generated reference.
pub fn actor_impl(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new_spanned(
            attr,
            "#[actor_impl] takes no options (a re-entrant method is marked #[reentrant] on the \
             #[service] trait's method)",
        ));
    }
    let item: syn::ItemImpl = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[actor_impl] goes on an implementation of an actor trait: \
             `#[actor_impl] impl Counter for CounterActor { .. }`",
        )
    })?;
    let Some((_, path, _)) = &item.trait_ else {
        return Err(syn::Error::new_spanned(
            &item.self_ty,
            "#[actor_impl] goes on `impl ActorTrait for Type`, not on an inherent impl",
        ));
    };
    for impl_item in &item.items {
        if let syn::ImplItem::Fn(function) = impl_item
            && let Some(attr) = function
                .attrs
                .iter()
                .find(|attr| attr.path().is_ident("reentrant"))
        {
            return Err(syn::Error::new_spanned(
                attr,
                format!(
                    "#[reentrant] belongs on `{}` in the #[service] trait (the callers' \
                     reference and the host read it there), not on the implementation",
                    function.sig.ident
                ),
            ));
        }
    }
    let mut reference = path.clone();
    let Some(last) = reference.segments.last_mut() else {
        return Err(syn::Error::new_spanned(path, "expected a trait path"));
    };
    last.ident = ref_ident(&last.ident);
    last.arguments = syn::PathArguments::None;
    let actors = runtime();
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    Ok(quote! {
        #item

        impl #impl_generics #actors::ActorDispatch for #self_ty #where_clause {
            const ACTOR_TYPE: &'static str = #reference::ACTOR_TYPE;

            fn dispatch(
                &mut self,
                method: u32,
                body: ::std::string::String,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::string::String, #actors::ActorError>,
            > + ::core::marker::Send + '_ {
                #reference::__dispatch::<Self>(self, method, body)
            }

            fn is_reentrant(method: u32) -> bool {
                #reference::__is_reentrant(method)
            }

            fn shared(&self) -> ::core::option::Option<&dyn #actors::SharedDispatch> {
                #reference::__shared::<Self>(self)
            }

            fn dispatch_shared(
                &self,
                method: u32,
                body: ::std::string::String,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::string::String, #actors::ActorError>,
            > + ::core::marker::Send + '_ {
                #reference::__dispatch_shared::<Self>(self, method, body)
            }
        }
    })
}
