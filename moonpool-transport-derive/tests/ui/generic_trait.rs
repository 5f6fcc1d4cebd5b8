use moonpool_transport::service;

#[service]
trait Store<V> {
    async fn get(&self, key: String) -> V;
}

fn main() {}
