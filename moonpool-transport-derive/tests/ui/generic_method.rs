use moonpool_transport::service;

#[service]
trait Store {
    async fn get<T>(&self, key: String) -> T;
}

fn main() {}
