#pragma once
// How deep a JSON value nests, counted without recursion: nlohmann's copy and dump() recurse
// once per level, so input is measured with this before anything copies or dumps it.
#include <cstddef>
#include <utility>
#include <vector>

namespace fleet {

// Whether `root` (nlohmann::json or ordered_json) nests arrays and objects deeper than
// `max_depth` levels.
template <class Json>
bool json_deeper_than(const Json& root, size_t max_depth) {
  std::vector<std::pair<const Json*, size_t>> todo = {{&root, 1}};
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    if (depth > max_depth) return true;
    for (const auto& child : *v) todo.push_back({&child, depth + 1});
  }
  return false;
}

}  // namespace fleet
