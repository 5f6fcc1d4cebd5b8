use moonpool_transport::service;

#[service]
trait Store {
    async fn get(&self, key: String) -> u64;
    async fn get(&self, key: u64) -> u64;
}

fn main() {}
