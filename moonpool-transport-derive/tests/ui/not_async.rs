use moonpool_transport::service;

#[service]
trait Store {
    fn get(&self, key: String) -> u64;
}

fn main() {}
