//! [`StateHandle`]: a per-world blackboard shared by processes, workloads and invariants.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shared state for one seed: processes and workloads publish what they know, invariants and
/// checks read it. It survives process reboots (it is the test's memory, not the process's).
///
/// ```
/// use moonpool_sim::StateHandle;
/// let state = StateHandle::default();
/// state.publish("leaders", vec!["a".to_string()]);
/// assert_eq!(state.get::<Vec<String>>("leaders").unwrap().len(), 1);
/// state.update("leaders", |leaders: &mut Vec<String>| leaders.push("b".into()));
/// assert_eq!(state.get::<Vec<String>>("leaders").unwrap().len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct StateHandle {
    entries: Arc<Mutex<BTreeMap<String, Box<dyn Any + Send>>>>,
}

impl StateHandle {
    /// Stores `value` under `key`, replacing what was there.
    pub fn publish<T: Any + Send>(&self, key: &str, value: T) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), Box::new(value));
    }

    /// A copy of the value under `key`, if there is one of type `T`.
    pub fn get<T: Any + Clone>(&self, key: &str) -> Option<T> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }

    /// Changes the value under `key` in place (inserting `T::default()` first if missing).
    pub fn update<T: Any + Send + Default>(&self, key: &str, change: impl FnOnce(&mut T)) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries
            .entry(key.to_string())
            .or_insert_with(|| Box::new(T::default()));
        if let Some(value) = entry.downcast_mut::<T>() {
            change(value);
        }
    }

    /// True when `key` holds a value.
    pub fn contains(&self, key: &str) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key)
    }
}
