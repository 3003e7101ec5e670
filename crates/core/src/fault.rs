//! Faults provoked for real in tests: debug builds read `NETANOM_FAULT_INJECT`
//! (`name=N,name=N`, docs/faults.md); release builds ignore it.

/// The value of fault `name` in `NETANOM_FAULT_INJECT` (debug builds only).
pub fn injected(name: &str) -> Option<u64> {
    if !cfg!(debug_assertions) {
        return None;
    }
    let spec = std::env::var("NETANOM_FAULT_INJECT").ok()?;
    spec.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
    })
}
