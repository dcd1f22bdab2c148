#include "contracts/control_request.h"

#include <nlohmann/json.hpp>

namespace fleet {

ControlParseResult parse_control_record(std::string_view value, std::optional<std::string_view> key) {
  ControlParseResult out;
  auto fail = [&](const char* code, std::string message) {
    out.error = ContractError{code, std::move(message)};
    return out;
  };
  if (value.size() > 64 * 1024) return fail(error_code::kInvalidRequest, "a control record is at most 64 KiB");
  nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded()) return fail(error_code::kInvalidJson, "the control record is not valid JSON");
  if (!j.is_object()) return fail(error_code::kInvalidRequest, "a control record is a JSON object {\"id\", \"cancel\": true}");
  for (const auto& [k, v] : j.items())
    if (k != "id" && k != "cancel") return fail(error_code::kInvalidRequest, "unknown field '" + k + "' (known: id, cancel)");
  ControlRequest r;
  if (j.contains("id")) {
    if (!j["id"].is_string()) return fail(error_code::kInvalidRequest, "id must be a string");
    r.id = j["id"].get<std::string>();
  } else if (key) {
    r.id = std::string(*key);
  }
  if (!is_valid_request_id(r.id))
    return fail(error_code::kInvalidRequest, "id must be 1-128 characters of [A-Za-z0-9._:-]");
  if (!j.contains("cancel") || j["cancel"] != true)
    return fail(error_code::kInvalidRequest, "\"cancel\": true is the only control action");
  r.cancel = true;
  out.request = r;
  return out;
}

}  // namespace fleet
