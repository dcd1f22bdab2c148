#pragma once
// A read-only memory map of a whole file. Pages are read from disk only when touched, so a
// stage that maps a 10 GB checkpoint but reads two layers keeps only those layers resident.
#include <cstddef>
#include <cstdint>
#include <string>

namespace fleet {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws std::runtime_error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace fleet
