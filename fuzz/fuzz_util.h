#pragma once
// Helpers shared by the fuzz targets: a per-process scratch directory for the loaders whose
// API takes a path (the input is written to a file there on every run; TMPDIR, default
// /dev/shm when it exists, so no disk I/O), and a little reader for structured inputs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace fleet::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* t = std::getenv("TMPDIR");
    std::filesystem::path base = t && *t ? t : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp");
    std::filesystem::path d = base / ("fleet-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static struct Cleanup {
      std::filesystem::path p;
      ~Cleanup() { std::error_code ec; std::filesystem::remove_all(p, ec); }
    } cleanup{d};
    return d;
  }();
  return dir;
}

// Writes the input to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::filesystem::path p = scratch_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p.string();
}

// Consumes an input front to back: small integers, then length-prefixed byte strings.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  bool empty() const { return left_ == 0; }
  uint8_t byte() {
    if (!left_) return 0;
    --left_;
    return *p_++;
  }
  uint16_t u16() { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  // A u16 little-endian length, then that many bytes (or what is left).
  std::string_view bytes() {
    size_t n = u16();
    if (n > left_) n = left_;
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    left_ -= n;
    return s;
  }

 private:
  const uint8_t* p_;
  size_t left_;
};

}  // namespace fleet::fuzz
