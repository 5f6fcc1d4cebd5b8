use moonpool_transport::service;

#[service(id = 0x1_0000_0000_0000_0000)]
trait Store {
    async fn get(&self, key: String) -> u64;
}

fn main() {}
