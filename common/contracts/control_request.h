#pragma once
// The control topic (<prefix>.control), record key = id:
//
//   {"id": "...", "cancel": true}
//
// ends the request within about a second with a done event, finish_reason "cancelled", and
// frees its KV caches on every stage. Schema: proto/schemas/control.schema.json. Parsing never
// throws on bad input.
#include <optional>
#include <string>
#include <string_view>

#include "contracts/prompt_request.h"

namespace fleet {

struct ControlRequest {
  std::string id;
  bool cancel = false;
};

struct ControlParseResult {
  std::optional<ControlRequest> request;  // set when valid
  std::optional<ContractError> error;     // set when invalid
  bool ok() const { return request.has_value(); }
};

// The body's id wins over the record key; one of them must be a valid request id.
ControlParseResult parse_control_record(std::string_view value, std::optional<std::string_view> key = std::nullopt);

}  // namespace fleet
