#pragma once
// The small RocksDB folder each consumer keeps for itself (the relay's checkpoint, a
// replica's offsets, the mailer's ledger): created when missing, with a small write
// buffer and few info-log files, since it holds little and is written often.

#include <rocksdb/db.h>

#include <cstddef>
#include <memory>
#include <string>

namespace passage::consumers {

rocksdb::Status open_state_db(const std::string& path, std::unique_ptr<rocksdb::DB>& db,
                              std::size_t write_buffer_bytes = 1u << 20);

}  // namespace passage::consumers
