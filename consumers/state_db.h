#pragma once
// The small RocksDB folder each consumer keeps for itself (the relay's checkpoint, a
// replica's offsets, the mailer's ledger): created when missing, with a small write
// buffer and few info-log files, since it holds little and is written often.

#include <rocksdb/db.h>

#include <cstddef>
#include <memory>
#include <string>

namespace passage::consumers {

// `hint_prefix_bytes` > 0: the memtable keeps, per key prefix of that length, where its
// last key went in, so keys written in order within a prefix (a sorted batch) are
// inserted near the last one instead of from the top of the skip list
// (memtable_insert_with_hint_prefix_extractor). An option of the open database only.
rocksdb::Status open_state_db(const std::string& path, std::unique_ptr<rocksdb::DB>& db,
                              std::size_t write_buffer_bytes = 1u << 20,
                              std::size_t hint_prefix_bytes = 0);

}  // namespace passage::consumers
