use moonpool_transport::service;

// A re-entrant call runs while other calls of the activation are suspended, so it borrows the
// actor shared: `#[reentrant]` on a `&mut self` method is refused.
#[service]
trait Account {
    async fn deposit(&mut self, amount: u64) -> u64;
    #[reentrant]
    async fn withdraw(&mut self, amount: u64) -> u64;
    #[reentrant]
    async fn balance(&self) -> u64;
}

fn main() {}
