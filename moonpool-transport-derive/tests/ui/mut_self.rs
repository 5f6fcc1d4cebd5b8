use moonpool_transport::service;

// `&mut self` makes the trait a virtual actor type: every method must then take `&mut self`.
#[service]
trait Counter {
    async fn increment(&mut self, by: u64) -> u64;
    async fn get(&self) -> u64;
}

fn main() {}
