use moonpool_transport::service;

#[service(well_known = 1)]
trait Store {
    async fn get(&self, key: String) -> u64;
}

fn main() {}
