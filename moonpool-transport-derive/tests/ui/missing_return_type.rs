use moonpool_transport::service;

#[service]
trait Store {
    async fn put(&self, key: String, value: u64);
}

fn main() {}
