use moonpool_transport::service;

// `#[reentrant]` takes no arguments.
#[service]
trait Account {
    async fn deposit(&mut self, amount: u64) -> u64;
    #[reentrant(always)]
    async fn balance(&self) -> u64;
}

fn main() {}
