use moonpool_transport::service;

#[service]
trait Store {
    async fn get(self, key: String) -> u64;
}

fn main() {}
