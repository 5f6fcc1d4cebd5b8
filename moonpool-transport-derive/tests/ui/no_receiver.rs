use moonpool_transport::service;

#[service]
trait Store {
    async fn get(key: String) -> u64;
}

fn main() {}
