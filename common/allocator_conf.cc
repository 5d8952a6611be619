// jemalloc's options for the executables that run a node (passage_allocator in the top
// CMakeLists.txt compiles this file into each of them). jemalloc reads this string at its
// first allocation; MALLOC_CONF, read after it, still overrides it (e.g. thp:default).
//
// thp:always: jemalloc asks for transparent huge pages (madvise MADV_HUGEPAGE) on the memory
// it maps. THP is `madvise` on the hosts this runs on, so each 4 KiB page of fresh memory was
// a minor fault, an exit on this VM: the store's memtables (RocksDB arena blocks; a claim's
// records, ~4.5 KB, touch a new page per claim) cost the writer thread ~1.2 faults per claim,
// ~17 % of its time, and a rebuild's growing buffers and tables likewise. A 2 MiB page is one
// fault. api_bench --mode claims: faults ~1.9 -> ~0.35 per claim, the writer's CPU per claim
// 0.81x, the node's 0.95x; rebuild of 1 M events 0.77x CPU per event. Cost: peak RSS +40-50
// MiB (each arena's partly used huge pages: 328 -> 375 MiB on the 1 M rebuild). With THP's
// defrag at `madvise`, a fault may compact memory to find a huge page when none is free.
extern "C" {
// The name and type jemalloc looks for (an unprefixed build, as Debian's); the test
// allocator_conf_tests checks that it takes.
const char* malloc_conf = "thp:always";
}
