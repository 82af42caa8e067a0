//! The native host's worker program (`handrail_native_host::worker`), for runs of the
//! kit where no installed `handrail-native-worker` is at hand.

fn main() {
    handrail_native_host::worker::main()
}
