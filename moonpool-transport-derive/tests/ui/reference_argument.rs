use moonpool_transport::service;

#[service]
trait Store {
    async fn get(&self, key: &str) -> u64;
}

fn main() {}
