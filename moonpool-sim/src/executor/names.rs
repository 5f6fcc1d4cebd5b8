//! The names of recent spawns, shared by the next spawns of the same name.

use std::sync::Arc;

/// Most names a [`NameCache`] holds.
const CACHED_NAMES: usize = 16;

/// The names of the last few distinct spawns, so that a task spawned under a name seen lately
/// shares that name's text instead of allocating its own: a runner's seeds spawn the same few
/// names (a process's main task, a workload, a connection handler) seed after seed, and an
/// executor renewed from a spare keeps its cache (see `Shared::renew`). Only immutable text is
/// shared: a name is compared by its contents, and a task's name reads the same whether it came
/// from the cache or not. Bounded: past [`CACHED_NAMES`] distinct names the oldest entry is
/// replaced, so a workload spawning ever-new names (`conn-1`, `conn-2`, ...) costs one
/// comparison per cached name and an allocation, as without a cache.
#[derive(Default)]
pub(crate) struct NameCache {
    names: Vec<Arc<str>>,
    /// Where the next new name goes once the cache is full.
    next: usize,
}

impl NameCache {
    /// The name `head` followed by `tail`: a cached copy, or a new one (then cached).
    pub(crate) fn get(&mut self, head: &str, tail: &str) -> Arc<str> {
        let len = head.len() + tail.len();
        // Equal length, starting with `head` and ending with `tail`: exactly `head` + `tail`.
        if let Some(name) = self
            .names
            .iter()
            .find(|name| name.len() == len && name.starts_with(head) && name.ends_with(tail))
        {
            return Arc::clone(name);
        }
        let name: Arc<str> = if tail.is_empty() {
            Arc::from(head)
        } else {
            let mut text = String::with_capacity(len);
            text.push_str(head);
            text.push_str(tail);
            Arc::from(text)
        };
        if self.names.len() < CACHED_NAMES {
            self.names.push(Arc::clone(&name));
        } else if let Some(entry) = self.names.get_mut(self.next) {
            *entry = Arc::clone(&name);
            self.next = (self.next + 1) % CACHED_NAMES;
        }
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_name_cache_gives_the_joined_text_and_shares_repeated_names() {
        let mut cache = NameCache::default();
        let first = cache.get("echo", "#main");
        assert_eq!(&*first, "echo#main");
        let again = cache.get("echo", "#main");
        assert!(Arc::ptr_eq(&first, &again), "a repeated name is shared");
        // The same text split differently is the same name.
        assert!(Arc::ptr_eq(&first, &cache.get("echo#", "main")));
        assert!(Arc::ptr_eq(&first, &cache.get("echo#main", "")));
        // Same length, same start or end, different text: not confused.
        assert_eq!(&*cache.get("echo", "#mainx"), "echo#mainx");
        assert_eq!(&*cache.get("echx", "#main"), "echx#main");
        assert_eq!(&*cache.get("echo", "#maim"), "echo#maim");
        assert_eq!(&*cache.get("", ""), "");
        assert_eq!(&*cache.get("é", "ü"), "éü");
        // Ever-new names: each is right, and the cache stays bounded.
        for n in 0..100 {
            let head = format!("conn-{n}");
            assert_eq!(&*cache.get(&head, "::run"), format!("conn-{n}::run"));
            assert!(cache.names.len() <= CACHED_NAMES);
        }
        // The most recent names are still shared.
        let recent = cache.get("conn-99", "::run");
        assert!(Arc::ptr_eq(&recent, &cache.get("conn-99", "::run")));
    }
}
