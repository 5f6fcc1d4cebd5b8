//! The link-time catalog of every assertion and buggify call site.
//!
//! Each macro call of [`chaos`](super) creates a `static` [`Site`] and registers it in
//! [`SITES`], a [`linkme`] distributed slice: the linker gathers them into one array, so the
//! catalog holds every site of the code linked into the binary, reached or not, at no run-time
//! cost (no constructor runs before `main`). A simulator uses it to tell "this site was never
//! reached" from "this site does not exist", and to list every buggify point.
//!
//! [`SiteScope`] picks the sites one test owns, by path prefix.

use super::Site;

#[doc(hidden)]
pub use linkme as __linkme;

/// Every assertion and buggify site linked into this binary, in link order.
#[linkme::distributed_slice]
pub static SITES: [Site];

/// Every registered site, sorted by file, line and column.
pub fn sites() -> Vec<&'static Site> {
    let mut sites: Vec<&'static Site> = SITES.iter().collect();
    sites.sort_by_key(|s| (s.file, s.line, s.column));
    sites
}

/// The path a `Site::function` names, without the macro's own items and with closures and async
/// blocks folded into their function: `a::b::f::{{closure}}::SITE::__site_function::__site_marker`
/// becomes `a::b::f`.
pub fn clean_function_path(raw: &str) -> String {
    let mut path = raw
        .strip_suffix("::SITE::__site_function::__site_marker")
        .unwrap_or(raw);
    // Trimmed as a slice, copied once (a copy per closure level before).
    while let Some(stripped) = path.strip_suffix("::{{closure}}") {
        path = stripped;
    }
    path.to_string()
}

/// Which sites a test owns, by prefix of their module path or function path
/// (`my_tests::alpha`, `my_tests::alpha::test_reads`). Empty: no prefix given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteScope {
    /// A site is in scope when its module path or function path starts with one of these.
    pub include: Vec<String>,
    /// A site is out of scope when its module path or function path starts with one of these
    /// (wins over `include`).
    pub exclude: Vec<String>,
}

impl SiteScope {
    /// True when `site` (whose function path is `function`) starts with one of `prefixes`.
    fn matches(prefixes: &[String], site: &Site, function: &str) -> bool {
        prefixes
            .iter()
            .any(|p| site.module.starts_with(p.as_str()) || function.starts_with(p.as_str()))
    }

    /// True when `include` names `site`.
    pub fn includes(&self, site: &Site, function: &str) -> bool {
        Self::matches(&self.include, site, function)
    }

    /// True when `exclude` names `site`.
    pub fn excludes(&self, site: &Site, function: &str) -> bool {
        Self::matches(&self.exclude, site, function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_site_here() -> &'static Site {
        let closure = || crate::__chaos_site!("catalog-test", None);
        closure()
    }

    #[test]
    fn test_a_site_is_registered_with_its_function() {
        let site = a_site_here();
        assert!(
            sites().iter().any(|s| std::ptr::eq(*s, site)),
            "the site is in the catalog"
        );
        assert_eq!(site.module, "moonpool_core::chaos::catalog::tests");
        assert_eq!(
            site.function_path(),
            "moonpool_core::chaos::catalog::tests::a_site_here"
        );
    }

    #[test]
    fn test_a_scope_matches_module_or_function_prefixes() {
        let site = a_site_here();
        let function = site.function_path();
        let scope = SiteScope {
            include: vec!["moonpool_core::chaos::catalog::tests::a_site".to_string()],
            exclude: Vec::new(),
        };
        assert!(scope.includes(site, &function));
        let other = SiteScope {
            include: vec!["moonpool_core::chaos::catalog::tests::other".to_string()],
            exclude: vec!["moonpool_core::chaos".to_string()],
        };
        assert!(!other.includes(site, &function));
        assert!(other.excludes(site, &function));
    }

    #[test]
    fn test_every_site_location_literal_is_its_file_line_and_column() {
        for site in sites() {
            let expected = format!("{}:{}:{}", site.file, site.line, site.column);
            assert_eq!(site.location_str(), expected);
            assert_eq!(site.location(), expected);
        }
        let here = a_site_here();
        assert!(here.location_str().starts_with(here.file));
    }

    #[test]
    fn test_closures_fold_into_their_function() {
        assert_eq!(
            clean_function_path(
                "a::b::{{closure}}::{{closure}}::SITE::__site_function::__site_marker"
            ),
            "a::b"
        );
        assert_eq!(clean_function_path("unrelated"), "unrelated");
    }
}
