#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace fleet {
// Parses a JSON file; throws std::runtime_error "PATH: <reason>" when it cannot be read or parsed.
nlohmann::json read_json_file(const std::string& path);
// Writes TEXT to PATH (replacing it); throws std::runtime_error "PATH: write failed".
void write_text_file(const std::string& path, const std::string& text);
}  // namespace fleet
