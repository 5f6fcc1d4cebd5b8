use moonpool_transport_derive::actor_impl;

trait Account {
    async fn balance(&self) -> u64;
}

struct AccountActor;

// `#[reentrant]` belongs on the trait's method, where the caller's reference and the host read
// it; `#[actor_impl]` refuses it on the implementation.
#[actor_impl]
impl Account for AccountActor {
    #[reentrant]
    async fn balance(&self) -> u64 {
        0
    }
}

fn main() {}
