use moonpool_transport::service;

#[service(id = "store")]
trait Store {
    async fn get(&self, key: String) -> u64;
}

fn main() {}
