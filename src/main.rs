fn main() {
    println!("attnjoule {}", env!("CARGO_PKG_VERSION"));
    for m in attnjoule::kernels::MODULES {
        for e in m.entries {
            println!("{} {} regs={} spill={}/{} stack={}", m.name, e.name, e.registers, e.spill_store_bytes, e.spill_load_bytes, e.stack_bytes);
        }
    }
}
