#pragma once
// Stop strings over streamed text: push() returns the text that is safe to emit now, holding
// back any tail that could still grow into a stop string; once a stop string appears, the
// text before it is released and stopped() turns true.
#include <string>
#include <vector>

namespace fleet {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  std::string push(const std::string& text);
  std::string flush();  // end of generation: release what was held back
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace fleet
